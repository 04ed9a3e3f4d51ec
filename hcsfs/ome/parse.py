"""Parse OME-Zarr group attributes (any version, 0.1 to 0.6-dev) into :mod:`hcsfs.ome.model`.

Pure functions: the caller reads the document and passes its attributes (zarr v2:
the ``.zattrs`` content; zarr v3: the ``attributes`` of ``zarr.json``) and its name.
Parsing is lenient about style (a missing optional field, ``null`` for an optional
field, schema patterns such as alphanumeric names) and strict about anything that
would make the model ambiguous or unsafe to follow (wrong types, unsafe paths,
duplicates, out-of-range indices, absurd sizes). Every failure is a
:class:`~hcsfs.errors.MetadataError` naming the document and the field; use
:mod:`hcsfs.ome.validate` for a full conformance report.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

from hcsfs.errors import MetadataError, NotAPlateError, UnsupportedVersionError
from hcsfs.ome.model import (
    Acquisition,
    Axis,
    Channel,
    Dataset,
    ImageMeta,
    LabelsMeta,
    PlateMeta,
    WellImageRef,
    WellMeta,
    WellRef,
)
from hcsfs.ome.validate import (
    DEFAULT_V2_VERSION,
    MetadataWarning,
    is_int,
    normalize_version,
    unsafe_path_reason,
    unsafe_segment_reason,
    version_tuple,
)

__all__ = [
    "MAX_AXES",
    "MAX_DATASETS",
    "MAX_GRID_NAMES",
    "MAX_ITEMS",
    "MAX_WELLS",
    "decode_json",
    "ome_namespace",
    "parse_image",
    "parse_labels",
    "parse_plate",
    "parse_well",
    "zarr_json_attributes",
]

#: Most rows (or columns) a plate may name; real plates have at most a few dozen.
MAX_GRID_NAMES = 100_000
#: Most wells a plate may list.
MAX_WELLS = 1_000_000
#: Most entries of any other list (fields of a well, acquisitions, channels, labels)
#: and the largest ``field_count`` / ``maximumfieldcount``.
MAX_ITEMS = 1_000_000
#: Most resolution levels of one image.
MAX_DATASETS = 1_000
#: Most axes of one image.
MAX_AXES = 32
#: Largest JSON document :func:`decode_json` accepts (bytes or characters).
MAX_JSON_SIZE = 256 * 1024 * 1024

_DEFAULT_AXES = (
    Axis("t", "time"),
    Axis("c", "channel"),
    Axis("z", "space"),
    Axis("y", "space"),
    Axis("x", "space"),
)
_TYPE_03 = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


# -- documents and namespaces -------------------------------------------------------------


def decode_json(data: bytes | str, *, path: str) -> dict[str, Any]:
    """Decode one JSON metadata document that must hold an object.

    Raises
    ------
    MetadataError
        For undecodable, non-UTF-8, oversized or non-object documents.
    """
    if len(data) > MAX_JSON_SIZE:
        raise MetadataError(path, f"document is larger than {MAX_JSON_SIZE} bytes")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(path, f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MetadataError(path, f"must hold a JSON object, got {type(value).__name__}")
    return value


def zarr_json_attributes(document: object, *, path: str) -> dict[str, Any]:
    """Return the ``attributes`` of a decoded zarr v3 ``zarr.json`` group document."""
    doc = _need_dict(document, path, "document")
    if doc.get("zarr_format") != 3:
        raise MetadataError(path, f"zarr_format must be 3, got {doc.get('zarr_format')!r:.40}")
    if doc.get("node_type") != "group":
        raise MetadataError(path, f"node_type must be 'group', got {doc.get('node_type')!r:.40}")
    return _need_dict(doc.get("attributes", {}), path, "attributes")


def ome_namespace(attributes: object, *, path: str) -> tuple[dict[str, Any], str | None]:
    """Return the dict holding the OME keys and the raw version string.

    zarr v3 (0.5+): ``attributes["ome"]`` and ``ome.version``. zarr v2 (0.1-0.4): the
    attributes themselves and the first of ``plate.version``, ``well.version``,
    ``multiscales[0].version``, ``image-label.version``; None when there is none.

    Raises
    ------
    MetadataError
        When the attributes or the ``ome`` key are not objects or a version is not a string.
    """
    attrs = _need_dict(attributes, path, "attributes")
    if "ome" in attrs:
        ns = _need_dict(attrs["ome"], path, "ome")
        return ns, _opt_str(ns, "version", path, "ome")
    for key in ("plate", "well", "multiscales", "image-label"):
        container = attrs.get(key)
        if key == "multiscales" and isinstance(container, list) and container:
            container = container[0]
        if isinstance(container, dict) and container.get("version") is not None:
            field = "multiscales[0]" if key == "multiscales" else key
            return attrs, _opt_str(container, "version", path, field)
    return attrs, None


def _version(attributes: object, key: str, path: str) -> tuple[dict[str, Any], str]:
    """The namespace and the normalised version for the document kind ``key``."""
    attrs = _need_dict(attributes, path, "attributes")
    if "ome" in attrs:
        ns = _need_dict(attrs["ome"], path, "ome")
        raw, field = ns.get("version"), "ome.version"
        if raw is None:
            raise MetadataError(path, "ome.version is required")
    else:
        ns = attrs
        container = ns.get(key)
        field = f"{key}.version"
        if key == "multiscales":
            field = "multiscales[0].version"
            container = container[0] if isinstance(container, list) and container else None
        raw = container.get("version") if isinstance(container, dict) else None
        if raw is None:
            return ns, DEFAULT_V2_VERSION
    version = normalize_version(raw)
    if version is None:
        raise UnsupportedVersionError(path, f"{field}: unsupported OME-Zarr version {raw!r:.40}")
    return ns, version


# -- small typed getters -----------------------------------------------------------------


def _need_dict(value: object, path: str, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MetadataError(path, f"{field} must be an object, got {_show(value)}")
    return value


def _need_list(value: object, path: str, field: str, cap: int) -> list[Any]:
    if not isinstance(value, list):
        raise MetadataError(path, f"{field} must be a list, got {_show(value)}")
    if len(value) > cap:
        raise MetadataError(path, f"{field} has {len(value)} entries, more than the cap {cap}")
    return value


def _need_str(obj: dict[str, Any], key: str, path: str, field: str) -> str:
    if key not in obj:
        raise MetadataError(path, f"{field}.{key} is required")
    value = obj[key]
    if not isinstance(value, str):
        raise MetadataError(path, f"{field}.{key} must be a string, got {_show(value)}")
    return value


def _opt_str(obj: dict[str, Any], key: str, path: str, field: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise MetadataError(path, f"{field}.{key} must be a string, got {_show(value)}")
    return value


def _opt_int(
    obj: dict[str, Any], key: str, path: str, field: str, *, minimum: int | None = None
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not is_int(value):
        raise MetadataError(path, f"{field}.{key} must be an integer, got {_show(value)}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise MetadataError(path, f"{field}.{key} must be >= {minimum}, got {number}")
    if abs(number) >= 2**63:
        raise MetadataError(path, f"{field}.{key} is out of range, got {number}")
    return number


def _need_int(obj: dict[str, Any], key: str, path: str, field: str, *, minimum: int) -> int:
    number = _opt_int(obj, key, path, field, minimum=minimum)
    if number is None:
        raise MetadataError(path, f"{field}.{key} is required")
    return number


def _float(value: object, path: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetadataError(path, f"{field} must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise MetadataError(path, f"{field} is out of range") from None
    if not math.isfinite(number):
        raise MetadataError(path, f"{field} must be finite, got {number}")
    return number


def _floats(value: object, path: str, field: str) -> tuple[float, ...]:
    items = _need_list(value, path, field, MAX_AXES)
    return tuple(_float(v, path, f"{field}[{i}]") for i, v in enumerate(items))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- plate ---------------------------------------------------------------------------------


def parse_plate(attributes: object, *, path: str) -> PlateMeta:
    """Parse a plate's root-group attributes.

    Parameters
    ----------
    attributes
        v2 ``.zattrs`` or v3 ``zarr.json`` ``attributes`` content.
    path
        The document name, used in error messages only.

    Returns
    -------
    PlateMeta
        Wells carry their grid indices; for 0.1-0.3 wells without ``rowIndex`` /
        ``columnIndex`` they are derived from the path's row and column names.
        ``WellRef.row`` / ``.column`` are the grid names at those indices.

    Raises
    ------
    NotAPlateError
        There is no ``plate`` key.
    UnsupportedVersionError
        The version is not 0.1-0.5 or a 0.6 development version.
    MetadataError
        Anything malformed. A well path that disagrees with the row and column at its
        indices only warns (:class:`~hcsfs.ome.validate.MetadataWarning`).
    """
    attrs = _need_dict(attributes, path, "attributes")
    ns = attrs.get("ome", attrs)
    if not isinstance(ns, dict):
        raise MetadataError(path, f"ome must be a JSON object, got {type(ns).__name__}")
    if "plate" not in ns:
        raise NotAPlateError(path, "plate: no OME-Zarr plate metadata")
    ns, version = _version(attrs, "plate", path)
    plate = _need_dict(ns["plate"], path, "plate")
    rows = _grid_names(plate, "rows", path)
    columns = _grid_names(plate, "columns", path)
    wells_raw = _need_list(plate.get("wells"), path, "plate.wells", MAX_WELLS)
    indexed = version_tuple(version) >= (0, 4)
    wells: list[WellRef] = []
    seen: dict[str, int] = {}
    places: dict[tuple[int, int], int] = {}
    for i, item in enumerate(wells_raw):
        well = _parse_well_ref(item, i, rows, columns, indexed, path)
        if well.path in seen:
            raise MetadataError(path, f"plate.wells[{i}].path duplicates wells[{seen[well.path]}]")
        place = (well.row_index, well.column_index)
        if place in places:
            raise MetadataError(path, f"plate.wells[{i}] is at the place of wells[{places[place]}]")
        seen[well.path] = places[place] = i
        wells.append(well)
    field_count = _opt_int(plate, "field_count", path, "plate", minimum=1)
    if field_count is not None and field_count > MAX_ITEMS:
        raise MetadataError(path, f"plate.field_count {field_count} exceeds the cap {MAX_ITEMS}")
    return PlateMeta(
        version=version,
        rows=rows,
        columns=columns,
        wells=tuple(wells),
        name=_opt_str(plate, "name", path, "plate"),
        acquisitions=_acquisitions(plate, path),
        field_count=field_count,
    )


def _grid_names(plate: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = _need_list(plate.get(key), path, f"plate.{key}", MAX_GRID_NAMES)
    names: list[str] = []
    for i, item in enumerate(items):
        name = _need_str(
            _need_dict(item, path, f"plate.{key}[{i}]"), "name", path, f"plate.{key}[{i}]"
        )
        if name in names:
            raise MetadataError(path, f"plate.{key}[{i}].name duplicates {name!r:.40}")
        names.append(name)
    return tuple(names)


def _parse_well_ref(
    item: object,
    i: int,
    rows: tuple[str, ...],
    columns: tuple[str, ...],
    indexed: bool,
    path: str,
) -> WellRef:
    field = f"plate.wells[{i}]"
    well = _need_dict(item, path, field)
    wpath = _need_str(well, "path", path, field)
    reason = unsafe_path_reason(wpath)
    if reason or wpath.count("/") != 1:
        why = reason or "is not 'row/column'"
        raise MetadataError(path, f"{field}.path {wpath!r:.40} {why}")
    row_part, col_part = wpath.split("/")
    indices = []
    for key, names, part in (("rowIndex", rows, row_part), ("columnIndex", columns, col_part)):
        index = _opt_int(well, key, path, field, minimum=0)
        if index is None:
            if indexed:
                raise MetadataError(path, f"{field}.{key} is required")
            if part not in names:
                raise MetadataError(
                    path, f"{field}.path: {part!r:.40} is not a name in plate.{key[:-5]}s"
                )
            index = names.index(part)
        if index >= len(names):
            raise MetadataError(path, f"{field}.{key} {index} is out of range ({len(names)})")
        if names[index] != part:
            warnings.warn(
                f"{path}: {field}.path {wpath!r} disagrees with {key} {index} ({names[index]!r})",
                MetadataWarning,
                stacklevel=3,
            )
        indices.append(index)
    return WellRef(wpath, indices[0], indices[1], rows[indices[0]], columns[indices[1]])


def _acquisitions(plate: dict[str, Any], path: str) -> tuple[Acquisition, ...]:
    if plate.get("acquisitions") is None:
        return ()
    items = _need_list(plate["acquisitions"], path, "plate.acquisitions", MAX_ITEMS)
    result: list[Acquisition] = []
    ids: set[int] = set()
    for i, item in enumerate(items):
        field = f"plate.acquisitions[{i}]"
        acq = _need_dict(item, path, field)
        acq_id = _need_int(acq, "id", path, field, minimum=0)
        if acq_id in ids:
            raise MetadataError(path, f"{field}.id duplicates acquisition id {acq_id}")
        ids.add(acq_id)
        count = _opt_int(acq, "maximumfieldcount", path, field, minimum=1)
        if count is not None and count > MAX_ITEMS:
            raise MetadataError(path, f"{field}.maximumfieldcount exceeds the cap {MAX_ITEMS}")
        result.append(
            Acquisition(
                id=acq_id,
                name=_opt_str(acq, "name", path, field),
                maximum_field_count=count,
                description=_opt_str(acq, "description", path, field),
                start_time=_opt_int(acq, "starttime", path, field, minimum=0),
                end_time=_opt_int(acq, "endtime", path, field, minimum=0),
            )
        )
    return tuple(result)


# -- well ----------------------------------------------------------------------------------


def parse_well(attributes: object, *, path: str) -> WellMeta:
    """Parse a well group's attributes.

    Image paths must be one safe path segment (no ``/``, ``\\``, NUL, ``.`` or ``..``).

    Raises
    ------
    UnsupportedVersionError
        For an unknown version.
    MetadataError
        When there is no ``well`` key or anything is malformed.
    """
    attrs = _need_dict(attributes, path, "attributes")
    ns, version = _version(attrs, "well", path)
    if "well" not in ns:
        raise MetadataError(path, "well: no OME-Zarr well metadata")
    well = _need_dict(ns["well"], path, "well")
    items = _need_list(well.get("images"), path, "well.images", MAX_ITEMS)
    images: list[WellImageRef] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        field = f"well.images[{i}]"
        image = _need_dict(item, path, field)
        ipath = _need_str(image, "path", path, field)
        reason = "contains '/'" if "/" in ipath else unsafe_segment_reason(ipath)
        if reason:
            raise MetadataError(path, f"{field}.path {ipath!r:.40} {reason}")
        if ipath in seen:
            raise MetadataError(path, f"{field}.path duplicates {ipath!r:.40}")
        seen.add(ipath)
        images.append(WellImageRef(ipath, _opt_int(image, "acquisition", path, field)))
    return WellMeta(version=version, images=tuple(images))


# -- image ---------------------------------------------------------------------------------


def parse_image(attributes: object, *, path: str) -> ImageMeta:
    """Parse an image group's first ``multiscales`` entry and its ``omero`` channels.

    Scale and translation per dataset combine the dataset's transformations with the
    multiscale-level ones (0.4/0.5: ``scale = s_ds * s_ms``,
    ``translation = s_ms * t_ds + t_ms``). 0.1-0.3 have unit scales; 0.1/0.2 the
    implicit axes ``t, c, z, y, x``. For 0.6-dev the axes are those of the coordinate
    system the datasets map to.

    Raises
    ------
    UnsupportedVersionError
        For an unknown version.
    MetadataError
        When there is no ``multiscales`` key or anything is malformed.
    """
    attrs = _need_dict(attributes, path, "attributes")
    ns, version = _version(attrs, "multiscales", path)
    if "multiscales" not in ns:
        raise MetadataError(path, "multiscales: no OME-Zarr image metadata")
    multiscales = _need_list(ns["multiscales"], path, "multiscales", MAX_ITEMS)
    if not multiscales:
        raise MetadataError(path, "multiscales must not be empty")
    ms = _need_dict(multiscales[0], path, "multiscales[0]")
    items = _need_list(ms.get("datasets"), path, "multiscales[0].datasets", MAX_DATASETS)
    if not items:
        raise MetadataError(path, "multiscales[0].datasets must not be empty")
    datasets = [_need_dict(d, path, f"multiscales[0].datasets[{j}]") for j, d in enumerate(items)]
    vt = version_tuple(version)
    axes = _image_axes(ms, datasets, vt, path)
    parsed = tuple(_dataset(ds, j, ms, vt, len(axes), path) for j, ds in enumerate(datasets))
    return ImageMeta(
        version=version,
        axes=axes,
        datasets=parsed,
        name=_opt_str(ms, "name", path, "multiscales[0]"),
        channels=_channels(ns.get("omero"), path),
        extra_multiscales=len(multiscales) - 1,
        is_label="image-label" in ns,
    )


def _image_axes(
    ms: dict[str, Any], datasets: list[dict[str, Any]], vt: tuple[int, int], path: str
) -> tuple[Axis, ...]:
    if vt <= (0, 2):
        return _DEFAULT_AXES
    field = "multiscales[0].axes"
    if vt == (0, 3):
        names = _need_list(ms.get("axes"), path, field, MAX_AXES)
        axes = []
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise MetadataError(path, f"{field}[{i}] must be a string, got {_show(name)}")
            axes.append(Axis(name, _TYPE_03.get(name)))
        return _unique_axes(tuple(axes), path, field)
    if vt < (0, 6):
        return _axes_list(ms.get("axes"), path, field)
    systems = _need_list(
        ms.get("coordinateSystems"), path, "multiscales[0].coordinateSystems", MAX_ITEMS
    )
    if not systems:
        raise MetadataError(path, "multiscales[0].coordinateSystems must not be empty")
    target = None
    transforms = datasets[0].get("coordinateTransformations")
    if isinstance(transforms, list) and transforms and isinstance(transforms[0], dict):
        output = transforms[0].get("output")
        target = output.get("name") if isinstance(output, dict) else output
    chosen = len(systems) - 1
    for i, cs in enumerate(systems):
        if isinstance(cs, dict) and cs.get("name") == target:
            chosen = i
    cs = _need_dict(systems[chosen], path, f"multiscales[0].coordinateSystems[{chosen}]")
    return _axes_list(cs.get("axes"), path, f"multiscales[0].coordinateSystems[{chosen}].axes")


def _axes_list(value: object, path: str, field: str) -> tuple[Axis, ...]:
    items = _need_list(value, path, field, MAX_AXES)
    axes = []
    for i, item in enumerate(items):
        axis = _need_dict(item, path, f"{field}[{i}]")
        axes.append(
            Axis(
                _need_str(axis, "name", path, f"{field}[{i}]"),
                _opt_str(axis, "type", path, f"{field}[{i}]"),
                _opt_str(axis, "unit", path, f"{field}[{i}]"),
            )
        )
    return _unique_axes(tuple(axes), path, field)


def _unique_axes(axes: tuple[Axis, ...], path: str, field: str) -> tuple[Axis, ...]:
    if not axes:
        raise MetadataError(path, f"{field} must not be empty")
    names = [a.name for a in axes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise MetadataError(path, f"{field}[{i}].name duplicates axis {name!r:.40}")
    return axes


def _dataset(
    ds: dict[str, Any], j: int, ms: dict[str, Any], vt: tuple[int, int], ndim: int, path: str
) -> Dataset:
    field = f"multiscales[0].datasets[{j}]"
    dpath = _need_str(ds, "path", path, field)
    reason = unsafe_path_reason(dpath)
    if reason:
        raise MetadataError(path, f"{field}.path {dpath!r:.40} {reason}")
    if vt < (0, 4):
        return Dataset(dpath, (1.0,) * ndim)
    tfield = f"{field}.coordinateTransformations"
    steps = _need_list(ds.get("coordinateTransformations"), path, tfield, MAX_AXES)
    if not steps:
        raise MetadataError(path, f"{tfield} must not be empty")
    if vt >= (0, 6):
        steps = steps[:1]
    scale, translation = _chain(
        steps, (1.0,) * ndim, None, ndim, path, tfield, need_scale=vt < (0, 6)
    )
    if vt < (0, 6) and ms.get("coordinateTransformations") is not None:
        mfield = "multiscales[0].coordinateTransformations"
        outer = _need_list(ms["coordinateTransformations"], path, mfield, MAX_AXES)
        scale, translation = _chain(outer, scale, translation, ndim, path, mfield, need_scale=False)
    return Dataset(dpath, scale, translation)


def _chain(
    steps: list[Any],
    scale: tuple[float, ...],
    translation: tuple[float, ...] | None,
    ndim: int,
    path: str,
    field: str,
    *,
    need_scale: bool,
    depth: int = 0,
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """Compose scale/translation/identity/sequence steps onto (scale, translation)."""
    seen_scale = False
    for k, item in enumerate(steps):
        sfield = f"{field}[{k}]"
        step = _need_dict(item, path, sfield)
        kind = step.get("type")
        if kind in ("scale", "translation"):
            values = _floats(step.get(kind), path, f"{sfield}.{kind}")
            if len(values) != ndim:
                raise MetadataError(
                    path, f"{sfield}.{kind} has {len(values)} values for {ndim} axes"
                )
            if kind == "scale":
                seen_scale = True
                scale = tuple(a * b for a, b in zip(scale, values, strict=True))
                if translation is not None:
                    translation = tuple(a * b for a, b in zip(translation, values, strict=True))
            else:
                base = translation or (0.0,) * ndim
                translation = tuple(a + b for a, b in zip(base, values, strict=True))
        elif kind == "sequence" and depth < 4:
            inner = _need_list(
                step.get("transformations"), path, f"{sfield}.transformations", MAX_AXES
            )
            scale, translation = _chain(
                inner,
                scale,
                translation,
                ndim,
                path,
                f"{sfield}.transformations",
                need_scale=False,
                depth=depth + 1,
            )
            seen_scale = True
        elif kind == "identity":
            seen_scale = True
        else:
            raise MetadataError(path, f"{sfield}.type {kind!r:.40} is not supported here")
    if need_scale and not seen_scale:
        raise MetadataError(path, f"{field} has no scale transformation")
    return scale, translation


def _channels(value: object, path: str) -> tuple[Channel, ...]:
    if value is None:
        return ()
    omero = _need_dict(value, path, "omero")
    if omero.get("channels") is None:
        return ()
    items = _need_list(omero["channels"], path, "omero.channels", MAX_ITEMS)
    channels = []
    for i, item in enumerate(items):
        field = f"omero.channels[{i}]"
        ch = _need_dict(item, path, field)
        window = None
        if ch.get("window") is not None:
            raw = _need_dict(ch["window"], path, f"{field}.window")
            window = {
                key: _float(raw[key], path, f"{field}.window.{key}")
                for key in ("start", "end", "min", "max")
                if raw.get(key) is not None
            }
        active = ch.get("active")
        if active is not None and not isinstance(active, bool):
            raise MetadataError(path, f"{field}.active must be a boolean, got {_show(active)}")
        channels.append(
            Channel(
                label=_opt_str(ch, "label", path, field),
                color=_opt_str(ch, "color", path, field),
                window=window,
                active=active,
            )
        )
    return tuple(channels)


# -- labels --------------------------------------------------------------------------------


def parse_labels(attributes: object, *, path: str) -> LabelsMeta:
    """Parse a ``labels`` group: the relative paths of its label images.

    ``version`` is the ``ome.version`` for zarr v3 and None for v2 (whose labels
    group carries no version).

    Raises
    ------
    MetadataError
        When there is no ``labels`` list, or a name is not a safe relative path.
    """
    attrs = _need_dict(attributes, path, "attributes")
    version: str | None = None
    ns = attrs
    if "ome" in attrs:
        ns, version = _version(attrs, "labels", path)
    if "labels" not in ns:
        raise MetadataError(path, "labels: no OME-Zarr labels metadata")
    items = _need_list(ns["labels"], path, "labels", MAX_ITEMS)
    names: list[str] = []
    for i, name in enumerate(items):
        if not isinstance(name, str):
            raise MetadataError(path, f"labels[{i}] must be a string, got {_show(name)}")
        reason = unsafe_path_reason(name)
        if reason:
            raise MetadataError(path, f"labels[{i}] {name!r:.40} {reason}")
        if name in names:
            raise MetadataError(path, f"labels[{i}] duplicates {name!r:.40}")
        names.append(name)
    return LabelsMeta(version=version, names=tuple(names))
