"""Consolidated metadata: assemble it from a plate's documents, for zarr v3 and v2.

zarr v3 keeps it inline in the root ``zarr.json`` (``consolidated_metadata``); zarr
v2 in a ``.zmetadata`` document. hcsfs builds both the same way whether it writes
them (``pack``, ``consolidate``) or only serves them (virtual consolidated metadata).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hcsfs.keys import join_key, parent_key
from hcsfs.zarrmeta import V2_ARRAY, V2_ATTRS, V2_GROUP, V3_DOC

__all__ = [
    "V2_METADATA_NAMES",
    "consolidated_v2",
    "consolidated_v3_root",
    "encode_document",
    "metadata_keys",
]

V2_METADATA_NAMES = (V2_GROUP, V2_ATTRS, V2_ARRAY)


def encode_document(doc: Mapping[str, Any]) -> bytes:
    """A metadata document as hcsfs writes it: UTF-8 JSON, indented for people to read.

    A document holding consolidated metadata (every node's document) is written
    compact instead: indentation would more than double it (a 1536-well plate's
    root: 11.4 MB indented, 4.6 MB compact) and every reader pays for the bytes
    twice, to fetch and to parse.
    """
    if _holds_consolidated(doc):
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return json.dumps(doc, indent=2).encode("utf-8")


def _holds_consolidated(doc: Mapping[str, Any]) -> bool:
    block = doc.get("consolidated_metadata")
    if isinstance(block, Mapping) and block.get("metadata"):
        return True
    return "zarr_consolidated_format" in doc  # a v2 .zmetadata document


def metadata_keys(keys: Iterable[str], zarr_format: int) -> list[str]:
    """The metadata documents among ``keys`` (every node's, root included)."""
    names = (V3_DOC,) if zarr_format == 3 else V2_METADATA_NAMES
    return [k for k in keys if k.rpartition("/")[2] in names]


def consolidated_v3_root(
    root: Mapping[str, Any], docs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The root ``zarr.json`` with ``consolidated_metadata`` for every other node.

    ``docs`` maps each node's ``zarr.json`` key to its document; the root's own entry,
    if present, is ignored in favour of ``root``.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for key, doc in docs.items():
        if key == V3_DOC:
            continue
        node = {k: v for k, v in doc.items() if k != "consolidated_metadata"}
        if node.get("node_type") == "group":
            node["consolidated_metadata"] = None
        nodes[parent_key(key)] = node
    result = dict(root)
    result["consolidated_metadata"] = {
        "kind": "inline",
        "must_understand": False,
        "metadata": dict(sorted(nodes.items())),
    }
    return result


def consolidated_v2(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A zarr v2 ``.zmetadata`` document holding every ``.zgroup/.zattrs/.zarray``."""
    return {
        "zarr_consolidated_format": 1,
        "metadata": {key: dict(docs[key]) for key in sorted(docs)},
    }


def node_of(key: str) -> str:
    """The node a metadata key belongs to (``"A/1"`` for ``"A/1/zarr.json"``)."""
    return join_key(parent_key(key))
