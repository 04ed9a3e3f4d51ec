"""``hcsfs tree``: the plate's hierarchy (rows, wells, fields, levels, labels) as a tree.

The tree is built from ``fs.ls`` - one listing per group, a level of the hierarchy at
a time, concurrently - and the OME node kinds of :class:`~hcsfs.tree.PlateTree`.
Arrays are leaves: their chunks are never listed, unless ``arrays=True`` asks for
the number and total size of their keys. Metadata documents (``zarr.json``,
``.zattrs`` ...) and hcsfs's own bookkeeping files are left out; any other file or
folder in the plate (``tables/`` ...) is shown.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from fsspec.asyn import sync

from hcsfs.keys import is_internal_key, normalize_key
from hcsfs.zarrmeta import METADATA_NAMES

if TYPE_CHECKING:
    from hcsfs.filesystem import HCSFileSystem

__all__ = ["format_tree", "plate_tree"]

#: What each PlateTree node kind is called in the tree.
KIND_NAMES = {
    "plate": "plate",
    "row": "row",
    "well": "well",
    "image": "field",
    "labels": "labels",
    "label": "label image",
    "array": "array",
    "dir": "",
    "file": "",
}
_PLURALS = {"row": "rows", "well": "wells", "field": "fields", "label image": "label images",
            "array": "arrays", "labels": "labels groups"}  # fmt: skip


_SINGULARS = {"labels": "labels group"}


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key putting ``2`` before ``10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


async def _kind(fs: HCSFileSystem, key: str, parent_kind: str) -> tuple[str, tuple[str, ...]]:
    """The node kind of the directory ``key`` and its OME children, in plate order."""
    node = await fs.tree.node(key)
    if node is None:
        return "dir", ()
    kind = "label" if node.kind == "image" and parent_kind == "labels" else node.kind
    return kind, node.children


async def _build(
    fs: HCSFileSystem,
    key: str,
    kind: str,
    order: tuple[str, ...],
    depth: int | None,
    arrays: bool,
) -> dict[str, Any]:
    """The node at ``key`` with its children down to ``depth`` more levels."""
    name = key.rpartition("/")[2] if key else ""
    node: dict[str, Any] = {"name": name, "key": key, "kind": KIND_NAMES.get(kind, kind)}
    if kind == "array":
        if arrays:
            found = await fs._find(key, detail=True)
            sizes = [int(i["size"]) for i in found.values() if i["type"] == "file"]
            node["keys"] = len(sizes)
            node["bytes"] = sum(sizes)
        return node
    if depth is not None and depth <= 0:
        return node
    entries = await fs._ls(key, detail=True)
    rank = {child: i for i, child in enumerate(order)}
    shown = [
        e
        for e in entries
        if not is_internal_key(e["name"])
        and not (e["type"] == "file" and e["name"].rpartition("/")[2] in METADATA_NAMES)
    ]
    shown.sort(
        key=lambda e: (rank.get(e["name"].rpartition("/")[2], len(rank)), _natural(e["name"]))
    )
    next_depth = None if depth is None else depth - 1

    async def child(entry: dict[str, Any]) -> dict[str, Any]:
        if entry["type"] != "directory":
            leaf = entry["name"].rpartition("/")[2]
            return {"name": leaf, "key": entry["name"], "kind": "", "size": int(entry["size"])}
        child_kind, child_order = await _kind(fs, entry["name"], kind)
        return await _build(fs, entry["name"], child_kind, child_order, next_depth, arrays)

    node["children"] = list(await asyncio.gather(*(child(e) for e in shown)))
    return node


def plate_tree(
    fs: HCSFileSystem, path: str = "", *, depth: int | None = None, arrays: bool = False
) -> dict[str, Any]:
    """The hierarchy of the plate below ``path`` as nested dicts.

    Parameters
    ----------
    fs
        The plate.
    path
        A plate key to start from (``""``: the plate root; ``"A/1"``: a well).
    depth
        How many levels below ``path`` to show (None: all, down to the arrays).
    arrays
        Also count the keys of each array and their total size (lists every array).

    Returns
    -------
    dict
        ``{"name", "key", "kind", "children": [...]}``; kinds are ``plate``, ``row``,
        ``well``, ``field``, ``labels``, ``label image``, ``array`` and ``""`` (other
        folders and files; files carry ``size``). With ``arrays`` each array has
        ``keys`` and ``bytes``.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a folder of the plate.
    """
    key = normalize_key(path)

    async def build() -> dict[str, Any]:
        info = await fs._info(key)
        if info["type"] != "directory":
            raise NotADirectoryError(f"{key}: not a group or folder of the plate")
        parent_kind = ""
        if key.rpartition("/")[2] and key.rpartition("/")[0]:
            parent_kind, _ = await _kind(fs, key.rpartition("/")[0], "")
        kind, order = await _kind(fs, key, parent_kind)
        # an array asked for by name is described (it has no tree of its own to show)
        return await _build(fs, key, kind, order, depth, arrays or kind == "array")

    result: dict[str, Any] = sync(fs.loop, build)
    return result


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _label(node: dict[str, Any]) -> str:
    text = node["name"] + ("/" if "children" in node or node["kind"] not in ("", "array") else "")
    if node["kind"] == "" and "size" in node:
        return f"{text}  ({_size(node['size'])})"
    extra = [node["kind"]] if node["kind"] else []
    if "keys" in node:
        extra.append(f"{node['keys']} keys, {_size(node['bytes'])}")
    return f"{text}  {' · '.join(extra)}" if extra else text


def _count(node: dict[str, Any], counts: dict[str, int]) -> None:
    for child in node.get("children", []):
        kind = child["kind"] or ("folder" if "children" in child else "file")
        counts[kind] = counts.get(kind, 0) + 1
        _count(child, counts)


def format_tree(tree: dict[str, Any], title: str) -> str:
    """``tree``-style text for :func:`plate_tree`'s result, headed by ``title``.

    The last line counts what is shown (``2 rows, 3 wells, 6 fields, 14 arrays``).
    """
    head = [tree["kind"]] if tree["kind"] else []
    if "keys" in tree:
        head.append(f"{tree['keys']} keys, {_size(tree['bytes'])}")
    lines = [f"{title}  {' · '.join(head)}" if head else title]

    def walk(node: dict[str, Any], prefix: str) -> None:
        children = node.get("children", [])
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(child)}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(tree, "")
    counts: dict[str, int] = {}
    _count(tree, counts)
    order = ["row", "well", "field", "labels", "label image", "array", "folder", "file"]
    parts = [
        f"{counts[k]} {_PLURALS.get(k, k + 's') if counts[k] != 1 else _SINGULARS.get(k, k)}"
        for k in order
        if k in counts
    ]
    if "keys" in tree or any("keys" in c for c in _all(tree)):
        total = tree.get("bytes", 0) + sum(c.get("bytes", 0) for c in _all(tree))
        parts.append(f"{_size(total)} in arrays")
    lines.append("")
    lines.append(", ".join(parts) if parts else "empty")
    return "\n".join(lines)


def _all(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for child in node.get("children", []):
        found.append(child)
        found.extend(_all(child))
    return found
