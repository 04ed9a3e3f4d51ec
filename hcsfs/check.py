"""Validate a whole plate: every document against the spec, and the hierarchy against itself.

Reads the plate one concurrent round per level (plate, wells, images, arrays) and
reports every problem with the document it is in; never stops at the first one.
"""

from __future__ import annotations

from typing import Any

from fsspec.asyn import sync

from hcsfs.errors import HCSError
from hcsfs.keys import join_key
from hcsfs.ome.parse import parse_image, parse_well
from hcsfs.ome.validate import Issue, validate_image, validate_plate, validate_well
from hcsfs.plate import Plate
from hcsfs.zarrmeta import (
    array_doc_key,
    attributes_doc_key,
    parse_array_meta,
    parse_group_attributes,
)

__all__ = ["validate_plate_tree"]


def _issue(path: str, message: str, field: str = "", severity: str = "error") -> Issue:
    return Issue(severity, path, field, message)  # type: ignore[arg-type]


async def _validate(plate: Plate, strict: bool) -> list[Issue]:
    index = plate.index
    issues: list[Issue] = []
    meta = await index.open()
    fmt = index.zarr_format
    root_doc = attributes_doc_key(fmt, "")
    issues += validate_plate(index.root_attributes, path=root_doc, strict=strict)
    well_docs = {attributes_doc_key(fmt, w.path): w.path for w in meta.wells}
    found = await index.docs(well_docs)
    image_nodes: list[str] = []
    for key, doc in found.items():
        if doc is None:
            issues.append(_issue(key, f"well {well_docs[key]} is listed by the plate but missing"))
            continue
        try:
            attrs = parse_group_attributes(fmt, doc, path=key)
        except HCSError as exc:
            issues.append(_issue(key, str(exc)))
            continue
        issues += validate_well(attrs, path=key, strict=strict)
        try:
            well = parse_well(attrs, path=key)
        except HCSError:
            continue
        image_nodes += [join_key(well_docs[key], img.path) for img in well.images]
    image_docs = {attributes_doc_key(fmt, n): n for n in image_nodes}
    array_nodes: list[str] = []
    for key, doc in (await index.docs(image_docs)).items():
        if doc is None:
            issues.append(_issue(key, f"field {image_docs[key]} is listed by its well but missing"))
            continue
        try:
            attrs = parse_group_attributes(fmt, doc, path=key)
        except HCSError as exc:
            issues.append(_issue(key, str(exc)))
            continue
        issues += validate_image(attrs, path=key, strict=strict)
        try:
            image = parse_image(attrs, path=key)
        except HCSError:
            continue
        array_nodes += [join_key(image_docs[key], d.path) for d in image.datasets]
    array_docs = {array_doc_key(fmt, n): n for n in array_nodes}
    for key, doc in (await index.docs(array_docs)).items():
        if doc is None:
            issues.append(
                _issue(key, f"array {array_docs[key]} is listed by multiscales but missing")
            )
            continue
        try:
            parse_array_meta(fmt, doc, path=key)
        except HCSError as exc:
            issues.append(_issue(key, str(exc)))
    return issues


def validate_plate_tree(plate: Plate, *, strict: bool = False) -> list[Issue]:
    """Every problem in the plate: spec rules (``strict`` adds SHOULD rules) and structure."""
    return sync(plate.fs.loop, _validate, plate, strict)


def issues_as_json(issues: list[Issue]) -> list[dict[str, Any]]:
    """Issues as JSON-ready dicts."""
    return [
        {"severity": i.severity, "path": i.path, "field": i.field, "message": i.message}
        for i in issues
    ]
