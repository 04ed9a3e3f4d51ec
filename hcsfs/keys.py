"""Plate-relative keys: normalising and refusing anything that could leave the plate root."""

from __future__ import annotations

__all__ = ["is_internal_key", "join_key", "normalize_key", "parent_key", "unsafe_key_reason"]


def is_internal_key(key: str) -> bool:
    """True for hcsfs's own bookkeeping files (lock files, in-flight temp files).

    They live inside a plate directory while a writer works, but are never part of the
    plate: listings, copies and packs leave them out.
    """
    name = key.rpartition("/")[2]
    return name.startswith(".hcsfs") or (".hcsfs-" in name and name.endswith(".tmp"))


def unsafe_key_reason(key: str) -> str | None:
    """Why ``key`` is not a safe plate-relative key, or ``None`` when it is.

    A safe key is ``/``-separated, relative, with no ``.``/``..``/empty segments,
    no backslash and no NUL byte, so it can never name anything outside the plate.
    """
    if not isinstance(key, str):
        return f"key must be a string, got {type(key).__name__}"
    if "\x00" in key:
        return "key contains a NUL byte"
    if "\\" in key:
        return "key contains a backslash"
    if key.startswith("/"):
        return "key is absolute"
    if key == "":
        return None
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return f"key has a {segment or 'empty'!r} segment"
    return None


def normalize_key(key: str) -> str:
    """Strip leading/trailing slashes and check ``key`` is safe.

    Raises
    ------
    ValueError
        When the key could escape the plate root (``..``, backslash, NUL ...).
    """
    stripped = key.strip("/")
    while "//" in stripped:
        stripped = stripped.replace("//", "/")
    reason = unsafe_key_reason(stripped)
    if reason is not None:
        raise ValueError(f"{key!r}: {reason}; keys must stay inside the plate")
    return stripped


def join_key(*parts: str) -> str:
    """Join non-empty key parts with ``/``."""
    if len(parts) == 2:  # the common case, called tens of thousands of times per walk
        head, tail = parts
        if head and tail and "/" not in (head[0], head[-1], tail[0], tail[-1]):
            return f"{head}/{tail}"
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


def parent_key(key: str) -> str:
    """The key of the parent node (``""`` for top-level keys)."""
    return key.rpartition("/")[0]
