"""Metadata documents as hcsfs writes them: group documents and the changes made to them.

Pure functions over parsed JSON (no I/O). Changes edit the documents in place of the
keys they own and keep everything else (unknown attributes, other OME keys) as found.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from hcsfs.errors import PlateWriteError
from hcsfs.keys import join_key
from hcsfs.ome.parse import parse_plate, parse_well
from hcsfs.write.locking import Unchanged
from hcsfs.zarrmeta import V2_ATTRS, V2_GROUP, V3_DOC

__all__ = [
    "add_field_change",
    "add_well_change",
    "attributes_of",
    "field_sort_key",
    "group_docs",
    "ome_namespace_of",
    "remove_field_change",
    "remove_well_change",
    "strip_consolidated_change",
]


def zarr_format_of(version: str) -> int:
    """2 for OME-Zarr 0.4, 3 for 0.5."""
    return 2 if version == "0.4" else 3


def group_docs(version: str, node: str, attributes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The documents of a group at ``node`` with ``attributes`` (key → JSON)."""
    if zarr_format_of(version) == 3:
        doc = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
        return {join_key(node, V3_DOC): doc}
    return {join_key(node, V2_GROUP): {"zarr_format": 2}, join_key(node, V2_ATTRS): attributes}


def attributes_of(version: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The (mutable) attributes inside a group's attributes document."""
    if zarr_format_of(version) == 2:
        return doc
    attributes = doc.setdefault("attributes", {})
    if not isinstance(attributes, dict):
        raise PlateWriteError("attributes must be a JSON object")
    return attributes


def ome_namespace_of(version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """The (mutable) dict holding the OME keys: ``attributes["ome"]`` in 0.5, else itself."""
    if version == "0.4":
        return attributes
    ome = attributes.setdefault("ome", {"version": version})
    ome.setdefault("version", version)
    return ome


def field_sort_key(path: str) -> tuple[int, int, str]:
    """Fields in natural order: ``"2"`` before ``"10"``, numbers before names."""
    return (0, int(path), "") if path.isdigit() else (1, 0, path)


def _well_block(version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    ns = ome_namespace_of(version, attributes)
    block = ns.setdefault("well", {})
    if version == "0.4":
        block.setdefault("version", version)
    return block


def _check_version(found: str, version: str, where: str) -> None:
    if found != version:
        raise PlateWriteError(
            f"{where}: holds OME-Zarr {found} metadata but the plate is {version}; "
            "hcsfs does not mix OME-Zarr versions in one plate"
        )


def add_field_change(
    version: str, well_path: str, field: str, acquisition: int | None, result: dict[str, Any]
) -> Any:
    """A change adding ``field`` to a well document (creating it when missing).

    ``result["images"]`` receives the well's field list as written.
    """

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": field}
        if acquisition is not None:
            entry["acquisition"] = acquisition
        if doc is None:
            block: dict[str, Any] = {"images": [entry]}
            attributes: dict[str, Any]
            if version == "0.4":
                attributes = {"well": {**block, "version": version}}
            else:
                attributes = {"ome": {"version": version, "well": block}}
            doc = group_docs(version, well_path, attributes)[attributes_key(version, well_path)]
            result["images"] = [entry]
            return doc
        attributes = attributes_of(version, doc)
        meta = parse_well(copy.deepcopy(attributes), path=well_path)
        _check_version(meta.version, version, f"well {well_path}")
        block = _well_block(version, attributes)
        images = [dict(i) for i in block.get("images", [])]
        existing = [i for i in images if i.get("path") == field]
        result["images"] = images
        if existing and existing[0].get("acquisition") == acquisition:
            raise Unchanged
        images = [i for i in images if i.get("path") != field] + [entry]
        images.sort(key=lambda i: field_sort_key(str(i.get("path"))))
        block["images"] = images
        result["images"] = images
        return doc

    return change


def remove_field_change(version: str, well_path: str, field: str, result: dict[str, Any]) -> Any:
    """A change removing ``field`` from a well document (``result["images"]``: what is left)."""

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            result["images"] = []
            raise Unchanged
        attributes = attributes_of(version, doc)
        block = _well_block(version, attributes)
        images = [dict(i) for i in block.get("images", [])]
        kept = [i for i in images if i.get("path") != field]
        result["images"] = kept
        if len(kept) == len(images):
            raise Unchanged
        block["images"] = kept
        return doc

    return change


def attributes_key(version: str, node: str) -> str:
    """The key of the document holding ``node``'s attributes."""
    return join_key(node, V3_DOC if zarr_format_of(version) == 3 else V2_ATTRS)


def _plate_block(version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    ns = ome_namespace_of(version, attributes)
    block = ns.get("plate")
    if not isinstance(block, dict):
        raise PlateWriteError("the plate root has no 'plate' metadata")
    return block


def _strip_consolidated(version: str, doc: dict[str, Any]) -> bool:
    if zarr_format_of(version) == 3 and doc.get("consolidated_metadata") is not None:
        del doc["consolidated_metadata"]
        return True
    if zarr_format_of(version) == 3 and "consolidated_metadata" in doc:
        del doc["consolidated_metadata"]
    return False


def add_well_change(
    version: str,
    well_path: str,
    row_index: int,
    column_index: int,
    images: Sequence[dict[str, Any]],
) -> Any:
    """A change listing a well in the plate root, keeping its counts up to date.

    Also drops the root's consolidated metadata (the hierarchy changed), raises
    ``field_count`` to the well's number of fields, and each acquisition's
    ``maximumfieldcount`` to the well's number of fields in that acquisition.
    """

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise PlateWriteError(f"the plate root document is missing; cannot add {well_path}")
        changed = _strip_consolidated(version, doc)
        attributes = attributes_of(version, doc)
        meta = parse_plate(copy.deepcopy(attributes), path="plate root")
        _check_version(meta.version, version, "plate root")
        block = _plate_block(version, attributes)
        wells = [dict(w) for w in block.get("wells", [])]
        if not any(w.get("path") == well_path for w in wells):
            wells.append({"path": well_path, "rowIndex": row_index, "columnIndex": column_index})
            wells.sort(key=lambda w: (w.get("rowIndex", 0), w.get("columnIndex", 0)))
            block["wells"] = wells
            changed = True
        count = len(images)
        if block.get("field_count") is not None and count > int(block["field_count"]):
            block["field_count"] = count
            changed = True
        for acq in block.get("acquisitions") or []:
            if not isinstance(acq, dict):
                continue
            in_acq = sum(1 for i in images if i.get("acquisition") == acq.get("id"))
            if in_acq and (acq.get("maximumfieldcount") or 0) < in_acq:
                acq["maximumfieldcount"] = in_acq
                changed = True
        if not changed:
            raise Unchanged
        return doc

    return change


def remove_well_change(version: str, well_path: str) -> Any:
    """A change dropping a well from the plate root (and its consolidated metadata)."""

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise Unchanged
        changed = _strip_consolidated(version, doc)
        block = _plate_block(version, attributes_of(version, doc))
        wells = [w for w in block.get("wells", []) if w.get("path") != well_path]
        if len(wells) != len(block.get("wells", [])):
            block["wells"] = wells
            changed = True
        if not changed:
            raise Unchanged
        return doc

    return change


def strip_consolidated_change(version: str) -> Any:
    """A change dropping the root's (v3) consolidated metadata, if it has any."""

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None or not _strip_consolidated(version, doc):
            raise Unchanged
        return doc

    return change
