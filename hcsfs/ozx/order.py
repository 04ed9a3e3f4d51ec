"""RFC-9 member order and archive comment."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["ome_comment", "recommended_order"]

ZARR_JSON = "zarr.json"


def _segments(key: str) -> tuple[str, ...]:
    return tuple(key.split("/"))


def recommended_order(keys: Iterable[str]) -> list[str]:
    """Order store keys as RFC-9 recommends.

    The root ``zarr.json`` first, then every other ``zarr.json`` breadth-first (by depth,
    then path), then all remaining keys sorted by path.  Duplicate keys raise ValueError.
    """
    keys = list(keys)
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys")
    metadata = [k for k in keys if k == ZARR_JSON or k.endswith("/" + ZARR_JSON)]
    others = [k for k in keys if not (k == ZARR_JSON or k.endswith("/" + ZARR_JSON))]
    metadata.sort(key=lambda k: (k.count("/"), _segments(k)))
    others.sort(key=_segments)
    return metadata + others


def ome_comment(version: str, **extra: Any) -> bytes:
    """The RFC-9 archive comment: ``{"ome": {"version": ...}, **extra}`` as UTF-8 + NUL."""
    document: dict[str, Any] = {"ome": {"version": version}}
    document.update(extra)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    data = text.encode("utf-8") + b"\x00"
    if len(data) > 0xFFFF:
        raise ValueError("comment longer than 65535 bytes")
    return data
