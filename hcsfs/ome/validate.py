"""Rule-by-rule validation of OME-Zarr plate, well, image and label metadata.

Pure functions over a group's raw attributes (``.zattrs`` for zarr v2, the
``attributes`` of ``zarr.json`` for zarr v3). Nothing is raised: every problem is an
:class:`Issue`. ``severity="error"`` marks a MUST rule of the spec (what the official
JSON schemas check, plus a few MUSTs they cannot express, e.g. index ranges);
``"warning"`` marks a SHOULD rule or something hcsfs cannot use. ``strict=True`` turns
the SHOULD rules of the ``strict_*`` schemas (plate/acquisition names,
``maximumfieldcount``, label colours, an explicit version) into errors.

A document is *valid* iff :func:`is_valid` of its issues is true (no errors).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

__all__ = [
    "DEFAULT_V2_VERSION",
    "Issue",
    "MetadataWarning",
    "is_valid",
    "normalize_version",
    "validate_image",
    "validate_label",
    "validate_plate",
    "validate_well",
]

Severity = Literal["error", "warning"]

#: The version assumed for a zarr v2 document without one (0.4 made it optional).
DEFAULT_V2_VERSION = "0.4"

_RELEASED = ("0.1", "0.2", "0.3", "0.4", "0.5")
_V06 = re.compile(r"^0\.6(?:[.-]?(?:dev|rc|a|b|alpha|beta)[0-9]*)?$")
_ALNUM = re.compile(r"^[A-Za-z0-9]+$")
_WELL_PATH = re.compile(r"^[A-Za-z0-9]+/[A-Za-z0-9]+$")
_FIELD_PATH_06 = re.compile(r"^[A-Za-z0-9._-]+$")
_SPACE_LIMITS = (2, 3)
_AXES_LIMITS = (2, 5)
_MAX_DEPTH = 16
_TRANSFORM_TYPES = frozenset(
    {
        "identity",
        "mapAxis",
        "translation",
        "scale",
        "affine",
        "rotation",
        "sequence",
        "displacements",
        "coordinates",
        "inverseOf",
        "bijection",
        "byDimension",
    }
)


class MetadataWarning(UserWarning):
    """Metadata hcsfs can read but that looks wrong (e.g. a well path that disagrees
    with the row and column it is placed at)."""


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (document and field) and what."""

    severity: Severity
    path: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.field}: {self.message}"


def is_valid(issues: list[Issue]) -> bool:
    """Return True when no issue is an error."""
    return not any(issue.severity == "error" for issue in issues)


def normalize_version(raw: object) -> str | None:
    """Return the canonical version string, or None when hcsfs does not know it.

    Released versions are returned as is (``"0.4"``); development versions of 0.6
    (``"0.6rc0"``, ``"0.6-dev"`` ...) keep their original spelling.
    """
    if not isinstance(raw, str):
        return None
    if raw in _RELEASED or _V06.match(raw):
        return raw
    return None


def version_tuple(version: str) -> tuple[int, int]:
    """``"0.4"`` -> ``(0, 4)``; every 0.6 development string -> ``(0, 6)``."""
    return (0, 6) if version.startswith("0.6") else (0, int(version[2]))


def unsafe_segment_reason(segment: str) -> str | None:
    """Why ``segment`` cannot be one component of a relative store path, or None."""
    if segment == "":
        return "has an empty segment"
    if segment in (".", ".."):
        return f"has a {segment!r} segment"
    if "\\" in segment or "\x00" in segment:
        return "contains a backslash or NUL"
    return None


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` is not a safe relative ``/``-separated store path, or None."""
    if path.startswith("/"):
        return "is absolute"
    for segment in path.split("/"):
        reason = unsafe_segment_reason(segment)
        if reason:
            return reason
    return None


def is_int(value: object) -> bool:
    """JSON integer: an int (not bool) or an integral finite float."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: object) -> TypeGuard[int | float]:
    """JSON number: int or finite float, never bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class _Report:
    def __init__(self, path: str, strict: bool) -> None:
        self.path = path
        self.strict = strict
        self.issues: list[Issue] = []

    def error(self, field: str, message: str) -> None:
        self.issues.append(Issue("error", self.path, field, message))

    def warn(self, field: str, message: str) -> None:
        self.issues.append(Issue("warning", self.path, field, message))

    def should(self, field: str, message: str) -> None:
        """A SHOULD rule: an error in strict mode, else a warning."""
        (self.error if self.strict else self.warn)(field, message)


# -- shared shape helpers ---------------------------------------------------------------


def _list(r: _Report, value: object, field: str, *, min_items: int = 0) -> list[Any] | None:
    if not isinstance(value, list):
        r.error(field, f"must be a list, got {type(value).__name__}")
        return None
    if len(value) < min_items:
        r.error(field, f"must have at least {min_items} item(s)")
    return value


def _dict(r: _Report, value: object, field: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        r.error(field, f"must be an object, got {type(value).__name__}")
        return None
    return value


def _opt(r: _Report, obj: dict[str, Any], key: str, field: str, check: str) -> None:
    """Check an optional member: ``check`` is str/int/nonneg/pos/number/bool."""
    if key not in obj:
        return
    value = obj[key]
    ok = {
        "str": isinstance(value, str),
        "int": is_int(value),
        "nonneg": is_int(value) and value >= 0,
        "pos": is_int(value) and value > 0,
        "number": is_number(value),
        "bool": isinstance(value, bool),
    }[check]
    if not ok:
        r.error(f"{field}.{key}", f"must be {_WORDS[check]}, got {value!r:.60}")


_WORDS = {
    "str": "a string",
    "int": "an integer",
    "nonneg": "a non-negative integer",
    "pos": "a positive integer",
    "number": "a number",
    "bool": "a boolean",
}


def _numbers(r: _Report, value: object, field: str) -> list[Any] | None:
    items = _list(r, value, field, min_items=1)
    if items is not None and not all(is_number(v) for v in items):
        r.error(field, "must contain only numbers")
        return None
    return items


def _namespace(
    attributes: object, key: str, r: _Report, *, inner_version: Callable[[Any], object]
) -> tuple[dict[str, Any], str] | None:
    """Locate the OME keys and the version; report layout/version problems."""
    if not isinstance(attributes, dict):
        r.error("attributes", "must be an object")
        return None
    if "ome" in attributes:
        ns = _dict(r, attributes["ome"], "ome")
        if ns is None:
            return None
        raw, field, v3 = ns.get("version"), "ome.version", True
        if "version" not in ns:
            r.error(field, "is required in the 'ome' namespace")
            return None
    else:
        ns, v3 = attributes, False
        container = ns.get(key)
        raw = inner_version(container)
        field = f"{key}.version" if key != "multiscales" else "multiscales[0].version"
    if raw is None and not v3:
        r.should(field, f"is missing; assuming {DEFAULT_V2_VERSION}")
        return ns, DEFAULT_V2_VERSION
    version = normalize_version(raw)
    if version is None:
        r.error(field, f"unsupported version {raw!r:.40}")
        return None
    if v3 and version_tuple(version) < (0, 5):
        r.error(field, f"version {version} cannot use the zarr v3 'ome' namespace")
    if not v3 and version_tuple(version) >= (0, 5):
        r.error(field, f"version {version} requires the zarr v3 'ome' namespace")
    return ns, version


def _get_version(container: object) -> object:
    return container.get("version") if isinstance(container, dict) else None


def _first_version(container: object) -> object:
    if isinstance(container, list) and container and isinstance(container[0], dict):
        return container[0].get("version")
    return None


# -- plate ------------------------------------------------------------------------------


def validate_plate(attributes: object, *, path: str, strict: bool = False) -> list[Issue]:
    """Check the ``plate`` metadata of a plate's root group.

    Parameters
    ----------
    attributes
        The group's raw attributes (v2 ``.zattrs`` or v3 ``zarr.json`` ``attributes``).
    path
        The document name, used in every issue.
    strict
        Also enforce the SHOULD rules of the strict schemas.

    Returns
    -------
    list[Issue]
        Every problem found; empty for a clean document.
    """
    r = _Report(path, strict)
    found = _namespace(attributes, "plate", r, inner_version=_get_version)
    if found is None:
        return r.issues
    ns, version = found
    if "plate" not in ns:
        r.error("plate", "is required (not a plate)")
        return r.issues
    plate = _dict(r, ns["plate"], "plate")
    if plate is None:
        return r.issues
    rows = _grid_names(r, plate, "rows")
    columns = _grid_names(r, plate, "columns")
    _plate_wells(r, plate, version, rows, columns)
    _plate_acquisitions(r, plate)
    _opt(r, plate, "field_count", "plate", "pos")
    _opt(r, plate, "name", "plate", "str")
    if "name" not in plate:
        r.should("plate.name", "is recommended")
    return r.issues


def _grid_names(r: _Report, plate: dict[str, Any], key: str) -> list[str] | None:
    field = f"plate.{key}"
    if key not in plate:
        r.error(field, "is required")
        return None
    items = _list(r, plate[key], field, min_items=1)
    if items is None:
        return None
    names: list[str] = []
    for i, item in enumerate(items):
        entry = _dict(r, item, f"{field}[{i}]")
        if entry is None:
            continue
        name = entry.get("name")
        if not isinstance(name, str):
            r.error(f"{field}[{i}].name", "is required and must be a string")
            continue
        if not _ALNUM.match(name):
            r.error(f"{field}[{i}].name", f"must be alphanumeric, got {name!r:.40}")
        if name in names:
            r.error(f"{field}[{i}].name", f"duplicates {name!r:.40}")
        names.append(name)
    return names


def _plate_wells(
    r: _Report,
    plate: dict[str, Any],
    version: str,
    rows: list[str] | None,
    columns: list[str] | None,
) -> None:
    if "wells" not in plate:
        r.error("plate.wells", "is required")
        return
    wells = _list(r, plate["wells"], "plate.wells", min_items=1)
    if wells is None:
        return
    indexed = version_tuple(version) >= (0, 4)
    seen_paths: set[str] = set()
    seen_places: set[tuple[int, int]] = set()
    for i, item in enumerate(wells):
        field = f"plate.wells[{i}]"
        well = _dict(r, item, field)
        if well is None:
            continue
        wpath = well.get("path")
        if not isinstance(wpath, str):
            r.error(f"{field}.path", "is required and must be a string")
            continue
        reason = unsafe_path_reason(wpath)
        if reason or wpath.count("/") != 1:
            r.error(f"{field}.path", f"must be 'row/column', got {wpath!r:.40}")
            continue
        if indexed and not _WELL_PATH.match(wpath):
            r.error(f"{field}.path", f"must be two alphanumeric groups, got {wpath!r:.40}")
        if wpath in seen_paths:
            r.error(f"{field}.path", f"duplicates {wpath!r}")
        seen_paths.add(wpath)
        row_part, col_part = wpath.split("/")
        place = []
        for key, names, part in (("rowIndex", rows, row_part), ("columnIndex", columns, col_part)):
            if key not in well:
                if indexed:
                    r.error(f"{field}.{key}", "is required")
                elif names is not None and part not in names:
                    r.warn(f"{field}.path", f"{part!r} is not a name in plate.{key[:-5]}s")
                continue
            index = well[key]
            if not is_int(index) or index < 0:
                r.error(f"{field}.{key}", f"must be a non-negative integer, got {index!r:.40}")
                continue
            index = int(index)
            if names is not None and index >= len(names):
                r.error(f"{field}.{key}", f"{index} is out of range ({len(names)} names)")
                continue
            place.append(index)
            if names is not None and names[index] != part:
                r.warn(f"{field}.path", f"{part!r} disagrees with {key} -> {names[index]!r}")
        if len(place) == 2:
            if (place[0], place[1]) in seen_places:
                r.error(field, f"a second well at rowIndex {place[0]}, columnIndex {place[1]}")
            seen_places.add((place[0], place[1]))


def _plate_acquisitions(r: _Report, plate: dict[str, Any]) -> None:
    if "acquisitions" not in plate:
        return
    items = _list(r, plate["acquisitions"], "plate.acquisitions")
    if items is None:
        return
    ids: set[int] = set()
    for i, item in enumerate(items):
        field = f"plate.acquisitions[{i}]"
        acq = _dict(r, item, field)
        if acq is None:
            continue
        if "id" not in acq:
            r.error(f"{field}.id", "is required")
        else:
            _opt(r, acq, "id", field, "nonneg")
            if is_int(acq["id"]):
                if acq["id"] in ids:
                    r.error(f"{field}.id", f"duplicates acquisition id {acq['id']}")
                ids.add(int(acq["id"]))
        _opt(r, acq, "maximumfieldcount", field, "pos")
        _opt(r, acq, "name", field, "str")
        _opt(r, acq, "description", field, "str")
        _opt(r, acq, "starttime", field, "nonneg")
        _opt(r, acq, "endtime", field, "nonneg")
        if "name" not in acq:
            r.should(f"{field}.name", "is recommended")
        if "maximumfieldcount" not in acq:
            r.should(f"{field}.maximumfieldcount", "is recommended")


# -- well -------------------------------------------------------------------------------


def validate_well(attributes: object, *, path: str, strict: bool = False) -> list[Issue]:
    """Check the ``well`` metadata of a well group (see :func:`validate_plate`)."""
    r = _Report(path, strict)
    found = _namespace(attributes, "well", r, inner_version=_get_version)
    if found is None:
        return r.issues
    ns, version = found
    if "well" not in ns:
        r.error("well", "is required (not a well)")
        return r.issues
    well = _dict(r, ns["well"], "well")
    if well is None:
        return r.issues
    if "images" not in well:
        r.error("well.images", "is required")
        return r.issues
    images = _list(r, well["images"], "well.images", min_items=1)
    seen: set[str] = set()
    for i, item in enumerate(images or []):
        field = f"well.images[{i}]"
        image = _dict(r, item, field)
        if image is None:
            continue
        ipath = image.get("path")
        if not isinstance(ipath, str):
            r.error(f"{field}.path", "is required and must be a string")
            continue
        reason = _field_path_reason(ipath, version)
        if reason:
            r.error(f"{field}.path", f"{ipath!r:.40} {reason}")
        if ipath in seen:
            r.error(f"{field}.path", f"duplicates {ipath!r:.40}")
        seen.add(ipath)
        _opt(r, image, "acquisition", field, "int")
    return r.issues


def _field_path_reason(path: str, version: str) -> str | None:
    if version_tuple(version) < (0, 6):
        return None if _ALNUM.match(path) else "must be alphanumeric"
    if not _FIELD_PATH_06.match(path):
        return "may only contain letters, digits, '.', '_' and '-'"
    if path in (".", "..") or path.startswith("__"):
        return "is a reserved name"
    return None


# -- label ------------------------------------------------------------------------------


def validate_label(attributes: object, *, path: str, strict: bool = False) -> list[Issue]:
    """Check the ``image-label`` metadata of a label image (see :func:`validate_plate`)."""
    r = _Report(path, strict)
    found = _namespace(attributes, "image-label", r, inner_version=_get_version)
    if found is None:
        return r.issues
    ns, _version = found
    if "image-label" not in ns:
        r.error("image-label", "is required (not a label image)")
        return r.issues
    label = _dict(r, ns["image-label"], "image-label")
    if label is None:
        return r.issues
    if "colors" in label:
        _label_colors(r, label["colors"])
    else:
        r.should("image-label.colors", "is recommended")
    if "properties" in label:
        props = _list(r, label["properties"], "image-label.properties", min_items=1)
        for i, item in enumerate(props or []):
            prop = _dict(r, item, f"image-label.properties[{i}]")
            if prop is not None and not is_number(prop.get("label-value")):
                r.error(f"image-label.properties[{i}].label-value", "is required (a number)")
    if "source" in label and _dict(r, label["source"], "image-label.source") is not None:
        _opt(r, label["source"], "image", "image-label.source", "str")
    return r.issues


def _label_colors(r: _Report, value: object) -> None:
    colors = _list(r, value, "image-label.colors", min_items=1)
    seen: set[float] = set()
    for i, item in enumerate(colors or []):
        field = f"image-label.colors[{i}]"
        color = _dict(r, item, field)
        if color is None:
            continue
        label_value = color.get("label-value")
        if not is_number(label_value):
            r.error(f"{field}.label-value", "is required (a number)")
        elif label_value in seen:
            r.error(f"{field}.label-value", f"duplicates label value {label_value}")
        else:
            seen.add(label_value)
        if "rgba" in color:
            rgba = color["rgba"]
            ok = isinstance(rgba, list) and len(rgba) == 4
            if not ok or not all(is_int(c) and 0 <= c <= 255 for c in rgba):
                r.error(f"{field}.rgba", "must be four integers in 0..255")


# -- image ------------------------------------------------------------------------------


def validate_image(attributes: object, *, path: str, strict: bool = False) -> list[Issue]:
    """Check the ``multiscales`` and ``omero`` metadata of an image group."""
    r = _Report(path, strict)
    found = _namespace(attributes, "multiscales", r, inner_version=_first_version)
    if found is None:
        return r.issues
    ns, version = found
    if "multiscales" not in ns:
        r.error("multiscales", "is required (not an image)")
        return r.issues
    multiscales = _list(r, ns["multiscales"], "multiscales", min_items=1)
    for i, item in enumerate(multiscales or []):
        ms = _dict(r, item, f"multiscales[{i}]")
        if ms is not None:
            _multiscale(r, ms, f"multiscales[{i}]", version)
    if "omero" in ns:
        _omero(r, ns["omero"])
    return r.issues


def _multiscale(r: _Report, ms: dict[str, Any], field: str, version: str) -> None:
    _opt(r, ms, "name", field, "str")
    vt = version_tuple(version)
    ndim: int | None = 5 if vt <= (0, 2) else None
    if vt == (0, 3):
        ndim = _axes_03(r, ms.get("axes"), f"{field}.axes")
    elif (0, 4) <= vt < (0, 6):
        ndim = _axes(r, ms.get("axes"), f"{field}.axes", ordered=True)
    elif vt >= (0, 6):
        ndim = _coordinate_systems(r, ms, field)
    if "datasets" not in ms:
        r.error(f"{field}.datasets", "is required")
        return
    datasets = _list(r, ms["datasets"], f"{field}.datasets", min_items=1)
    for j, item in enumerate(datasets or []):
        dfield = f"{field}.datasets[{j}]"
        ds = _dict(r, item, dfield)
        if ds is None:
            continue
        dpath = ds.get("path")
        if not isinstance(dpath, str):
            r.error(f"{dfield}.path", "is required and must be a string")
        elif unsafe_path_reason(dpath):
            r.error(f"{dfield}.path", f"{dpath!r:.40} {unsafe_path_reason(dpath)}")
        if vt >= (0, 6):
            _dataset_transform_06(r, ds, dfield, ndim)
        elif vt >= (0, 4):
            _scale_translation(r, ds.get("coordinateTransformations"), dfield, ndim, True)
    if (0, 4) <= vt < (0, 6) and "coordinateTransformations" in ms:
        _scale_translation(r, ms["coordinateTransformations"], field, ndim, False)
    if vt >= (0, 6) and "coordinateTransformations" in ms:
        items = _list(r, ms["coordinateTransformations"], f"{field}.coordinateTransformations")
        for k, t in enumerate(items or []):
            _transform(r, t, f"{field}.coordinateTransformations[{k}]", 0, top=True)


def _axes_03(r: _Report, value: object, field: str) -> int | None:
    if value is None:
        r.error(field, "is required")
        return None
    axes = _list(r, value, field)
    if axes is None:
        return None
    order = "tczyx"
    names = [a for a in axes if isinstance(a, str) and a in order]
    if len(names) != len(axes):
        r.error(field, "must be a list of 't', 'c', 'z', 'y', 'x'")
    elif not (2 <= len(names) <= 5) or names != sorted(set(names), key=order.index):
        r.error(field, "must be 2 to 5 unique axes in the order t, c, z, y, x")
    elif names[-2:] != ["y", "x"]:
        r.error(field, "must end with 'y', 'x'")
    return len(axes)


def _axes(r: _Report, value: object, field: str, *, ordered: bool) -> int | None:
    if value is None:
        r.error(field, "is required")
        return None
    axes = _list(r, value, field)
    if axes is None:
        return None
    if not _AXES_LIMITS[0] <= len(axes) <= _AXES_LIMITS[1]:
        r.error(field, f"must have {_AXES_LIMITS[0]} to {_AXES_LIMITS[1]} axes, has {len(axes)}")
    names: list[str] = []
    kinds: list[str] = []
    for i, item in enumerate(axes):
        axis = _dict(r, item, f"{field}[{i}]")
        if axis is None:
            continue
        name = axis.get("name")
        if not isinstance(name, str):
            r.error(f"{field}[{i}].name", "is required and must be a string")
        elif name in names:
            r.error(f"{field}[{i}].name", f"duplicates axis {name!r:.40}")
        else:
            names.append(name)
        _opt(r, axis, "type", f"{field}[{i}]", "str")
        _opt(r, axis, "unit", f"{field}[{i}]", "str")
        _opt(r, axis, "discrete", f"{field}[{i}]", "bool")
        kind = axis.get("type")
        kinds.append(kind if kind in ("space", "time", "channel") else "custom")
    n_space = kinds.count("space")
    if not _SPACE_LIMITS[0] <= n_space <= _SPACE_LIMITS[1]:
        r.error(field, f"must have 2 or 3 axes of type 'space', has {n_space}")
    for kind in ("time", "channel"):
        if kinds.count(kind) > 1:
            r.error(field, f"must have at most one axis of type {kind!r}")
    rank = {"time": 0, "channel": 1, "custom": 1, "space": 2}
    if ordered and [rank[k] for k in kinds] != sorted(rank[k] for k in kinds):
        r.error(field, "must be ordered time, channel/custom, space")
    return len(axes)


def _scale_translation(
    r: _Report, value: object, field: str, ndim: int | None, required: bool
) -> None:
    field = f"{field}.coordinateTransformations"
    if value is None:
        if required:
            r.error(field, "is required")
        return
    items = _list(r, value, field, min_items=1)
    if not items:
        return
    if len(items) > 2:
        r.error(field, "must hold one scale and at most one translation")
    for k, (item, kind) in enumerate(zip(items, ("scale", "translation"), strict=False)):
        t = _dict(r, item, f"{field}[{k}]")
        if t is None:
            continue
        if t.get("type") != kind:
            r.error(f"{field}[{k}].type", f"must be {kind!r}, got {t.get('type')!r:.40}")
            continue
        _vector(r, t.get(kind), f"{field}[{k}].{kind}", ndim)


def _vector(r: _Report, value: object, field: str, ndim: int | None) -> None:
    numbers = _numbers(r, value, field)
    if numbers is not None and ndim is not None and len(numbers) != ndim:
        r.warn(field, f"has {len(numbers)} values for {ndim} axes")


def _coordinate_systems(r: _Report, ms: dict[str, Any], field: str) -> int | None:
    cfield = f"{field}.coordinateSystems"
    if "coordinateSystems" not in ms:
        r.error(cfield, "is required")
        return None
    systems = _list(r, ms["coordinateSystems"], cfield, min_items=1)
    ndims: dict[str, int | None] = {}
    for i, item in enumerate(systems or []):
        cs = _dict(r, item, f"{cfield}[{i}]")
        if cs is None:
            continue
        name = cs.get("name")
        if not isinstance(name, str):
            r.error(f"{cfield}[{i}].name", "is required and must be a string")
        elif name in ndims:
            r.error(f"{cfield}[{i}].name", f"duplicates {name!r:.40}")
        ndims[str(name)] = _axes(r, cs.get("axes"), f"{cfield}[{i}].axes", ordered=False)
    return next(iter(ndims.values()), None)


def _io(r: _Report, t: dict[str, Any], field: str, key: str, member: str) -> None:
    if key not in t:
        r.warn(f"{field}.{key}", "is missing")
        return
    ref = t[key]
    if not isinstance(ref, dict) or not isinstance(ref.get(member), str):
        r.error(f"{field}.{key}", f"must be an object with a string {member!r}")


def _dataset_transform_06(r: _Report, ds: dict[str, Any], field: str, ndim: int | None) -> None:
    field = f"{field}.coordinateTransformations"
    if "coordinateTransformations" not in ds:
        r.error(field, "is required")
        return
    items = _list(r, ds["coordinateTransformations"], field, min_items=1)
    if not items:
        return
    if len(items) != 1:
        r.error(field, "must hold exactly one transformation")
    t = _dict(r, items[0], f"{field}[0]")
    if t is None:
        return
    _io(r, t, f"{field}[0]", "input", "path")
    _io(r, t, f"{field}[0]", "output", "name")
    kind = t.get("type")
    if kind == "sequence":
        steps = t.get("transformations")
        kinds = (
            [s.get("type") for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []
        )
        if kinds not in (["scale"], ["scale", "translation"]):
            r.error(f"{field}[0].transformations", "must be a scale and optional translation")
    elif kind not in ("scale", "identity"):
        r.error(f"{field}[0].type", f"must be scale, identity or sequence, got {kind!r:.40}")
        return
    _transform(r, t, f"{field}[0]", 0, top=False)
    steps = t.get("transformations") if kind == "sequence" else [t]
    for step in steps if isinstance(steps, list) else []:
        vector = step.get(step.get("type")) if isinstance(step, dict) else None
        if isinstance(vector, list) and ndim is not None and len(vector) != ndim:
            r.warn(f"{field}[0]", f"has {len(vector)} values for {ndim} axes")


def _transform(r: _Report, value: object, field: str, depth: int, *, top: bool) -> None:
    t = _dict(r, value, field)
    if t is None:
        return
    if depth > _MAX_DEPTH:
        r.error(field, "is nested too deeply")
        return
    kind = t.get("type")
    if kind not in _TRANSFORM_TYPES:
        r.error(f"{field}.type", f"unknown transformation type {kind!r:.40}")
        return
    if top:
        _io(r, t, field, "input", "name")
        _io(r, t, field, "output", "name")
    has_path = isinstance(t.get("path"), str)
    if kind in ("scale", "translation") and not has_path:
        _numbers(r, t.get(kind), f"{field}.{kind}")
    elif kind in ("affine", "rotation") and not has_path:
        rows = _list(r, t.get(kind), f"{field}.{kind}", min_items=1)
        if rows is not None and not all(
            isinstance(x, list) and all(map(is_number, x)) for x in rows
        ):
            r.error(f"{field}.{kind}", "must be a matrix of numbers")
    elif kind == "mapAxis":
        axes = t.get("mapAxis")
        if not (isinstance(axes, list) and all(is_int(a) for a in axes)) and not isinstance(
            axes, dict
        ):
            r.error(f"{field}.mapAxis", "must be a list of axis indices")
    elif kind in ("sequence", "byDimension"):
        steps = _list(r, t.get("transformations"), f"{field}.transformations", min_items=1)
        for k, step in enumerate(steps or []):
            sub = (
                step.get("transformation")
                if kind == "byDimension" and isinstance(step, dict)
                else step
            )
            _transform(r, sub, f"{field}.transformations[{k}]", depth + 1, top=False)
    elif kind in ("displacements", "coordinates") and not has_path:
        r.error(f"{field}.path", "is required")


def _omero(r: _Report, value: object) -> None:
    omero = _dict(r, value, "omero")
    if omero is None:
        return
    if "channels" not in omero:
        r.error("omero.channels", "is required")
        return
    channels = _list(r, omero["channels"], "omero.channels")
    for i, item in enumerate(channels or []):
        field = f"omero.channels[{i}]"
        ch = _dict(r, item, field)
        if ch is None:
            continue
        for key in ("color", "window"):
            if key not in ch:
                r.error(f"{field}.{key}", "is required")
        _opt(r, ch, "color", field, "str")
        _opt(r, ch, "label", field, "str")
        _opt(r, ch, "family", field, "str")
        _opt(r, ch, "active", field, "bool")
        _opt(r, ch, "inverted", field, "bool")
        _opt(r, ch, "coefficient", field, "number")
        if "window" in ch:
            window = _dict(r, ch["window"], f"{field}.window")
            for key in ("start", "min", "end", "max"):
                if window is not None and not is_number(window.get(key)):
                    r.error(f"{field}.window.{key}", "is required (a number)")
