"""Write fields (multiscale images) into wells; remove fields and wells.

A write is checked completely before the first byte is written, then goes in the order
that keeps every crash harmless - nothing ever points at data that is not there yet:

1. the root's consolidated metadata is dropped (it is about to be stale);
2. the arrays, level by level, streamed chunk by chunk through dask;
3. the image group document (``multiscales``, ``omero``);
4. the row group (if new) and the well document listing the field;
5. the plate root listing the well (consolidated metadata dropped again, counts raised).

Steps 4 and 5 are read-modify-writes made safe against concurrent writers by
:class:`~hcsfs.write.locking.DocWriter`. A writer killed before step 4 leaves an
unlisted, invisible field (cleaned up when that field is written again); killed
between 4 and 5, a complete field in a well the plate may not list yet (the well
joins the plate with the next field written to it).

Replacing a field (``overwrite=True``) first takes it out of its well, so a crash
mid-way leaves the well without it rather than with half of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hcsfs.errors import PlateWriteError
from hcsfs.keys import join_key
from hcsfs.ome.emit import image_attributes
from hcsfs.ome.model import Axis, Channel, Dataset, ImageMeta
from hcsfs.ome.parse import parse_plate, parse_well
from hcsfs.write.docs import (
    add_field_change,
    add_well_change,
    attributes_key,
    attributes_of,
    group_docs,
    remove_field_change,
    remove_well_change,
    strip_consolidated_change,
    zarr_format_of,
)
from hcsfs.write.locking import DocWriter
from hcsfs.write.pyramid import (
    DOWNSAMPLE_METHODS,
    downsample,
    level_chunks,
    level_shapes,
    level_transform,
)
from hcsfs.zarrmeta import V2_CONSOLIDATED, V2_GROUP, V3_DOC

if TYPE_CHECKING:
    import dask.array

    from hcsfs.plate import Image, Plate, Well

__all__ = ["remove_image", "remove_well", "write_image"]

#: Data types hcsfs writes (what every OME-Zarr reader can display).
SUPPORTED_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
    )
)
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
AXIS_ORDER = "tczyx"
DEFAULT_SPACE_UNIT = "micrometer"
DEFAULT_YX_CHUNK = 1024
CHANNEL_COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


# ----------------------------------------------------------------------------- checks
def check_writable(plate: Plate) -> str:
    """The plate's OME-Zarr version, after checking it can be written to.

    Raises
    ------
    PermissionError
        The plate is open read-only.
    PlateWriteError
        The plate was closed, or is a version hcsfs does not write.
    """
    if plate.fs.read_only:
        raise PermissionError(f"{plate.url}: the plate is open read-only (mode='r')")
    if getattr(plate, "_closed", False):
        raise PlateWriteError(f"{plate.url}: the plate was closed; open it again to write")
    version = plate.version
    if version not in ("0.4", "0.5"):
        raise PlateWriteError(
            f"{plate.url}: hcsfs writes OME-Zarr 0.4 and 0.5 plates; this one is {version}"
        )
    return version


def resolve_well(plate: Plate, row: str, column: str | int) -> tuple[str, int, int]:
    """``("A/1", row_index, column_index)`` for a row and column of the plate."""
    row_name, column_name = str(row), str(column)
    if row_name not in plate.rows:
        raise PlateWriteError(
            f"{plate.url}: no row {row_name!r} in the plate; rows: {', '.join(plate.rows)}"
        )
    if column_name not in plate.columns:
        raise PlateWriteError(
            f"{plate.url}: no column {column_name!r} in the plate; "
            f"columns: {', '.join(plate.columns)}"
        )
    return (
        f"{row_name}/{column_name}",
        plate.rows.index(row_name),
        plate.columns.index(column_name),
    )


def _field_name(field: int | str) -> str:
    if isinstance(field, bool) or not isinstance(field, int | str | np.integer):
        raise PlateWriteError(f"field must be an int or an alphanumeric str, got {field!r}")
    name = str(int(field)) if isinstance(field, int | np.integer) else field
    if isinstance(field, int | np.integer) and int(field) < 0:
        raise PlateWriteError(f"field must not be negative, got {field}")
    if not name.isascii() or not name.isalnum():
        raise PlateWriteError(f"field {name!r} must be alphanumeric (OME-Zarr image path)")
    return name


def _axes(axes: str | Sequence[str]) -> tuple[str, ...]:
    names = tuple(axes)
    if not all(isinstance(a, str) and a in AXIS_TYPES for a in names):
        raise PlateWriteError(f"axes must be letters of 'tczyx', got {axes!r}")
    if len(set(names)) != len(names) or list(names) != sorted(names, key=AXIS_ORDER.index):
        raise PlateWriteError(f"axes must be unique and in the order t, c, z, y, x: {axes!r}")
    if names[-2:] != ("y", "x"):
        raise PlateWriteError(f"axes must end with 'y', 'x', got {axes!r}")
    return names


def _per_axis(
    value: Sequence[float] | Mapping[str, float] | None,
    axes: tuple[str, ...],
    default: float,
    what: str,
    *,
    positive: bool,
) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - set(axes)
        if unknown:
            raise PlateWriteError(f"{what} names axes not in {''.join(axes)!r}: {sorted(unknown)}")
        values = [value.get(a, default) for a in axes]
    else:
        values = list(value)
        if len(values) != len(axes):
            raise PlateWriteError(
                f"{what} has {len(values)} values for {len(axes)} axes {''.join(axes)!r}"
            )
    out: list[float] = []
    for axis, v in zip(axes, values, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float | np.number):
            raise PlateWriteError(f"{what}[{axis!r}] must be a number, got {v!r}")
        f = float(v)
        if not math.isfinite(f) or (positive and f <= 0):
            raise PlateWriteError(f"{what}[{axis!r}] must be a finite positive number, got {v!r}")
        out.append(f)
    return tuple(out)


def _shape_vector(
    value: Sequence[int] | None, shape: tuple[int, ...], axes: tuple[str, ...], what: str
) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = tuple(value)
    if len(values) != len(shape):
        raise PlateWriteError(f"{what} has {len(values)} values for {len(shape)} axes {axes}")
    for axis, v in zip(axes, values, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise PlateWriteError(f"{what}[{axis!r}] must be a positive integer, got {v!r}")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class _Source:
    """The data to write, as a lazy dask array."""

    array: dask.array.Array
    shape: tuple[int, ...]
    dtype: np.dtype


def _source(data: Any) -> _Source:
    import dask.array as da
    import zarr

    if isinstance(data, da.Array):
        array = data
    elif isinstance(data, zarr.Array):
        array = da.from_zarr(data)
    elif isinstance(data, np.ndarray):
        array = da.from_array(data, chunks=data.shape or (), asarray=False)
    else:
        raise PlateWriteError(
            f"data must be a numpy, dask or zarr array, got {type(data).__module__}."
            f"{type(data).__name__}"
        )
    if any(math.isnan(n) for n in array.shape):
        raise PlateWriteError("data has unknown chunk sizes; call compute_chunk_sizes() first")
    dtype = np.dtype(array.dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise PlateWriteError(
            f"unsupported data type {dtype}; use one of "
            f"{', '.join(sorted(str(t) for t in SUPPORTED_DTYPES))}"
        )
    return _Source(array, tuple(int(n) for n in array.shape), dtype)


@dataclass(frozen=True)
class _Plan:
    """A checked write: everything needed, nothing written yet."""

    version: str
    well_path: str
    row_index: int
    column_index: int
    field: str
    node: str
    axes: tuple[str, ...]
    source: _Source
    shapes: list[tuple[int, ...]]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    meta: ImageMeta
    method: str
    compressor: Any
    acquisition: int | None
    replaces: bool
    new_well: bool


def _default_chunks(shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(
        min(n, DEFAULT_YX_CHUNK) if a in ("y", "x") else 1 for a, n in zip(axes, shape, strict=True)
    )


def _channels(
    names: Sequence[str] | None, axes: tuple[str, ...], shape: tuple[int, ...], dtype: np.dtype
) -> tuple[Channel, ...]:
    if "c" not in axes:
        if names is not None:
            raise PlateWriteError("channel_names given but the axes have no 'c' axis")
        return ()
    count = shape[axes.index("c")]
    labels = list(names) if names is not None else [f"channel {i}" for i in range(count)]
    if len(labels) != count or not all(isinstance(n, str) for n in labels):
        raise PlateWriteError(f"channel_names must be {count} strings (size of 'c'), got {names!r}")
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = 0.0, 1.0
    window = {"min": low, "max": high, "start": low, "end": high}
    return tuple(
        Channel(
            label=label,
            color=CHANNEL_COLORS[i % len(CHANNEL_COLORS)] if count > 1 else "FFFFFF",
            window=dict(window),
            active=True,
        )
        for i, label in enumerate(labels)
    )


def _plan(
    plate: Plate,
    row: str,
    column: str | int,
    field: int | str,
    data: Any,
    *,
    axes: str | Sequence[str],
    scale: Sequence[float] | Mapping[str, float] | None,
    translation: Sequence[float] | Mapping[str, float] | None,
    channel_names: Sequence[str] | None,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | None,
    levels: int,
    method: str,
    compressor: Any,
    acquisition: int | None,
    overwrite: bool,
    units: Mapping[str, str] | None,
    name: str | None,
) -> _Plan:
    version = check_writable(plate)
    well_path, row_index, column_index = resolve_well(plate, row, column)
    field_name = _field_name(field)
    axis_names = _axes(axes)
    source = _source(data)
    if len(source.shape) != len(axis_names):
        raise PlateWriteError(
            f"data has {len(source.shape)} dimensions {source.shape} but axes "
            f"{''.join(axis_names)!r} name {len(axis_names)}"
        )
    if any(n == 0 for n in source.shape):
        raise PlateWriteError(f"data is empty (shape {source.shape})")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise PlateWriteError(f"levels must be a positive integer, got {levels!r}")
    if method not in DOWNSAMPLE_METHODS:
        raise PlateWriteError(f"downsample must be one of {DOWNSAMPLE_METHODS}, got {method!r}")
    yx = (axis_names.index("y"), axis_names.index("x"))
    shapes = level_shapes(source.shape, yx, levels)
    for level in range(1, levels):
        if all(shapes[level - 1][i] == 1 for i in yx):
            raise PlateWriteError(
                f"levels={levels} is too many for y, x of {source.shape[yx[0]]}x"
                f"{source.shape[yx[1]]}: level {level - 1} is already one pixel"
            )
    chunk_shape = _shape_vector(chunks, source.shape, axis_names, "chunks") or _default_chunks(
        source.shape, axis_names
    )
    shard_shape = _shape_vector(shards, source.shape, axis_names, "shards")
    if shard_shape is not None:
        if version != "0.5":
            raise PlateWriteError("sharding needs zarr v3: write OME-Zarr 0.5 plates to shard")
        bad = [a for a, s, c in zip(axis_names, shard_shape, chunk_shape, strict=True) if s % c]
        if bad:
            raise PlateWriteError(
                f"shards {shard_shape} must be whole multiples of chunks {chunk_shape} "
                f"(not on {bad})"
            )
    scale0 = _per_axis(scale, axis_names, 1.0, "scale", positive=True) or (1.0,) * len(axis_names)
    translation0 = _per_axis(translation, axis_names, 0.0, "translation", positive=False)
    channels = _channels(channel_names, axis_names, source.shape, source.dtype)
    acquisition = _acquisition(plate, acquisition)
    unit_map = dict(units) if units is not None else {a: DEFAULT_SPACE_UNIT for a in "zyx"}
    axis_meta = tuple(Axis(a, AXIS_TYPES[a], unit_map.get(a)) for a in axis_names)
    datasets = []
    for level in range(levels):
        s, t = level_transform(scale0, translation0, yx, level, method)
        if t is None and translation0 is None and method == "mean" and levels > 1:
            t = (0.0,) * len(axis_names)
        datasets.append(Dataset(str(level), s, t))
    node = join_key(well_path, field_name)
    meta = ImageMeta(
        version=version,
        axes=axis_meta,
        datasets=tuple(datasets),
        name=name if name is not None else node,
        channels=channels,
    )
    well_exists, replaces = _well_state(plate, version, well_path, field_name)
    if replaces and not overwrite:
        raise PlateWriteError(
            f"{plate.url}: field {field_name!r} of well {well_path} exists; pass overwrite=True"
        )
    return _Plan(
        version=version,
        well_path=well_path,
        row_index=row_index,
        column_index=column_index,
        field=field_name,
        node=node,
        axes=axis_names,
        source=source,
        shapes=shapes,
        chunks=chunk_shape,
        shards=shard_shape,
        meta=meta,
        method=method,
        compressor=compressor,
        acquisition=acquisition,
        replaces=replaces,
        new_well=not well_exists,
    )


def _acquisition(plate: Plate, acquisition: int | None) -> int | None:
    ids = [a.id for a in plate.acquisitions]
    if acquisition is None:
        if len(ids) > 1:
            raise PlateWriteError(
                f"{plate.url}: the plate has {len(ids)} acquisitions {ids}; say which one "
                "this field belongs to (acquisition=...)"
            )
        return ids[0] if ids else None
    if isinstance(acquisition, bool) or not isinstance(acquisition, int | np.integer):
        raise PlateWriteError(f"acquisition must be an int id, got {acquisition!r}")
    if int(acquisition) not in ids:
        raise PlateWriteError(
            f"{plate.url}: no acquisition {acquisition} in the plate; acquisitions: {ids or 'none'}"
        )
    return int(acquisition)


def _fresh_doc(plate: Plate, key: str) -> dict[str, Any] | None:
    """A document read from storage now (not from any cache)."""
    writer = _writer(plate)
    doc: dict[str, Any] | None = plate._sync(writer.read(key))[0]
    return doc


def _well_state(plate: Plate, version: str, well_path: str, field: str) -> tuple[bool, bool]:
    """Whether the well document exists, and whether it lists ``field`` (read fresh)."""
    doc = _fresh_doc(plate, attributes_key(version, well_path))
    if doc is None:
        return False, False
    where = f"{plate.url}/{attributes_key(version, well_path)}"
    well = parse_well(attributes_of(version, doc), path=where)
    if well.version != version:
        raise PlateWriteError(
            f"{where}: the well holds OME-Zarr {well.version} metadata but the plate is "
            f"{version}; hcsfs does not mix OME-Zarr versions in one plate"
        )
    return True, any(image.path == field for image in well.images)


def _field_listed(plate: Plate, version: str, well_path: str, field: str) -> bool:
    return _well_state(plate, version, well_path, field)[1]


def _writer(plate: Plate) -> DocWriter:
    fs = plate.fs
    return DocWriter(fs.source, fs.invalidate_cache)


# ----------------------------------------------------------------------------- writing
def write_image(
    plate: Plate,
    row: str,
    column: str | int,
    field: int | str,
    data: Any,
    *,
    axes: str | Sequence[str] = "tczyx",
    scale: Sequence[float] | Mapping[str, float] | None = None,
    translation: Sequence[float] | Mapping[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    levels: int = 1,
    downsample: str = "mean",
    compressor: Any = "auto",
    acquisition: int | None = None,
    overwrite: bool = False,
    units: Mapping[str, str] | None = None,
    name: str | None = None,
) -> Image:
    """Write one field of view, with its resolution pyramid, into a well of ``plate``.

    Parameters
    ----------
    plate
        A plate open for writing (``create_plate`` or ``open_plate(mode="r+")``).
    row, column
        The well: names from ``plate.rows`` / ``plate.columns`` (a column may be an int).
        The well joins the plate's metadata if it is new.
    field
        The field's path in the well (an int or an alphanumeric string).
    data
        A numpy, dask or zarr array. Dask and zarr data stream chunk by chunk: arrays
        larger than memory are fine.
    axes
        Axis names, a subsequence of ``"tczyx"`` ending in ``"yx"``.
    scale, translation
        Level-0 physical pixel size and offset per axis (a sequence, or a mapping by
        axis name). Lower levels are derived (see :mod:`hcsfs.write.pyramid`).
    channel_names
        Labels of the ``c`` axis (written as ``omero`` channels).
    chunks, shards
        Chunk shape (default: 1 on t/c/z, up to 1024 on y/x) and, for OME-Zarr 0.5
        only, shard shape (whole multiples of the chunks). Lower levels clip both.
    levels
        Number of resolution levels; each halves y and x.
    downsample
        ``"mean"`` (2x2 block average) or ``"stride"`` (every second pixel).
    compressor
        zarr ``compressors``: ``"auto"`` (zarr's default), ``None`` or codec(s).
    acquisition
        The acquisition id of the field; required when the plate has several.
    overwrite
        Replace an existing field of that path.
    units
        Unit per axis name (default: ``"micrometer"`` on z, y, x).
    name
        The multiscale's name (default: the field's path, ``"A/1/0"``).

    Returns
    -------
    Image
        The written field.

    Raises
    ------
    PermissionError
        The plate is open read-only.
    PlateWriteError
        Bad input; raised before anything is written.
    """
    try:
        plan = _plan(
            plate,
            row,
            column,
            field,
            data,
            axes=axes,
            scale=scale,
            translation=translation,
            channel_names=channel_names,
            chunks=chunks,
            shards=shards,
            levels=levels,
            method=downsample,
            compressor=compressor,
            acquisition=acquisition,
            overwrite=overwrite,
            units=units,
            name=name,
        )
    except PlateWriteError as exc:
        where = f"{plate.url}: {row}/{column}/{field}"
        if str(exc).startswith(plate.url):
            raise
        raise PlateWriteError(f"{where}: {exc}") from None
    writer = _writer(plate)
    if plan.replaces:
        plate._sync(_unlist_field(plate, writer, plan.version, plan.well_path, plan.field))
    plate._sync(plate.fs.source.delete_tree(plan.node))  # a replaced field, or a crashed one
    plate.fs.invalidate_cache()
    _write_levels(plate, plan)
    plate._sync(_write_group(plate, plan))
    plate._sync(_commit(plate, writer, plan))
    return _image(plate, plan)


def _image(plate: Plate, plan: _Plan) -> Image:
    """The accessor of the written field (no metadata read)."""
    from hcsfs.ome.model import WellRef
    from hcsfs.plate import Image, Well

    row, column = plan.well_path.split("/")
    ref = WellRef(plan.well_path, plan.row_index, plan.column_index, row, column)
    return Image(Well(plate, ref), plan.field, plan.acquisition)


def _array_kwargs(plan: _Plan, level: int) -> dict[str, Any]:
    shape = plan.shapes[level]
    chunks, shards = level_chunks(shape, plan.chunks, plan.shards)
    kwargs: dict[str, Any] = {
        "shape": shape,
        "dtype": plan.source.dtype,
        "chunks": chunks,
        "fill_value": False if plan.source.dtype == np.bool_ else 0,
        "zarr_format": zarr_format_of(plan.version),
        "overwrite": False,  # the node was just cleared: no listing per level
    }
    if plan.compressor != "auto":
        kwargs["compressors"] = plan.compressor
    if plan.version == "0.4":
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        kwargs["dimension_names"] = list(plan.axes)
        if shards is not None:
            kwargs["shards"] = shards
    return kwargs


def _write_levels(plate: Plate, plan: _Plan) -> None:
    """Create each level's array and stream its data in (level k from level k-1)."""
    import dask.array as da
    import zarr

    from hcsfs.store import HCSStore

    yx = (plan.axes.index("y"), plan.axes.index("x"))
    previous: zarr.Array | None = None
    for level in range(len(plan.shapes)):
        kwargs = _array_kwargs(plan, level)
        store = HCSStore(plate.fs, join_key(plan.node, str(level)), read_only=False)
        target = zarr.create_array(store, **kwargs)
        unit = kwargs.get("shards") or kwargs["chunks"]
        if previous is None:
            array = plan.source.array.rechunk(unit)
        else:
            array = downsample(da.from_zarr(previous), yx, plan.method, unit)
        da.store(array, target, lock=False, compute=True)  # type: ignore[arg-type]
        previous = target


async def _write_group(plate: Plate, plan: _Plan) -> None:
    attributes = image_attributes(plan.meta, version=plan.version)
    fs = plate.fs
    for key, doc in group_docs(plan.version, plan.node, attributes).items():
        await fs._pipe_file(key, _dump(doc))


def _dump(doc: dict[str, Any]) -> bytes:
    from hcsfs.index import dumps_doc

    return dumps_doc(doc)


async def _ensure_row_group(plate: Plate, version: str, row: str) -> None:
    source = plate.fs.source
    key = join_key(row, V3_DOC if version == "0.5" else V2_GROUP)
    try:
        await source.size(key)
        return
    except FileNotFoundError:
        pass
    for doc_key, doc in group_docs(version, row, {}).items():
        if doc_key.endswith((V3_DOC, V2_GROUP)):
            await plate.fs._pipe_file(doc_key, _dump(doc))


async def _drop_consolidated(writer: DocWriter, version: str) -> None:
    """Drop the root's consolidated metadata (v3 block, v2 ``.zmetadata``) if present."""
    if version == "0.4":
        await writer.delete(V2_CONSOLIDATED)
    else:
        await writer.update(V3_DOC, strip_consolidated_change(version))


async def _commit(plate: Plate, writer: DocWriter, plan: _Plan) -> None:
    """List the field in its well, then the well in the plate (steps 4 and 5)."""
    if plan.new_well:
        row = plan.well_path.split("/")[0]
        await _ensure_row_group(plate, plan.version, row)
        if plan.version == "0.4":
            await plate.fs._pipe_file(
                join_key(plan.well_path, V2_GROUP), b'{\n  "zarr_format": 2\n}'
            )
    result: dict[str, Any] = {}
    async with writer.locked():
        await writer.update(
            attributes_key(plan.version, plan.well_path),
            add_field_change(plan.version, plan.well_path, plan.field, plan.acquisition, result),
        )
        await writer.update(
            attributes_key(plan.version, ""),
            add_well_change(
                plan.version, plan.well_path, plan.row_index, plan.column_index, result["images"]
            ),
        )
        if plan.version == "0.4":
            await writer.delete(V2_CONSOLIDATED)


async def _unlist_field(
    plate: Plate, writer: DocWriter, version: str, well_path: str, field: str
) -> list[dict[str, Any]]:
    result: dict[str, Any] = {}
    async with writer.locked():
        await writer.update(
            attributes_key(version, well_path),
            remove_field_change(version, well_path, field, result),
        )
        await _drop_consolidated(writer, version)
    return list(result.get("images", []))


# ----------------------------------------------------------------------------- removing
def remove_image(well: Well, field: int | str) -> None:
    """Remove a field from its well: first from the metadata, then its data.

    Removing the last field of a well removes the well (see :func:`remove_well`), since
    a well must list at least one field.

    Raises
    ------
    KeyError
        The well lists no such field.
    PermissionError, PlateWriteError
        The plate cannot be written.
    """
    plate = well.plate
    version = check_writable(plate)
    name = _field_name(field)
    if not _field_listed(plate, version, well.path, name):
        raise KeyError(f"no field {name!r} in well {well.path} of {plate.url}")
    writer = _writer(plate)
    left = plate._sync(_unlist_field(plate, writer, version, well.path, name))
    if not left:
        row, column = well.path.split("/")
        remove_well(plate, row, column)
        return
    plate._sync(plate.fs.source.delete_tree(join_key(well.path, name)))
    plate.fs.invalidate_cache()


def remove_well(plate: Plate, row: str, column: str | int) -> None:
    """Remove a well: first from the plate's metadata, then all of its data.

    Raises
    ------
    KeyError
        The plate lists no such well.
    PermissionError, PlateWriteError
        The plate cannot be written (or the row/column is not in the plate).
    """
    version = check_writable(plate)
    well_path, _, _ = resolve_well(plate, row, column)
    root = _fresh_doc(plate, attributes_key(version, ""))
    listed = root is not None and any(
        w.path == well_path for w in parse_plate(attributes_of(version, root), path=plate.url).wells
    )
    if not listed:
        raise KeyError(f"no well {well_path} in plate {plate.url}")
    writer = _writer(plate)

    async def unlist() -> None:
        async with writer.locked():
            await writer.update(attributes_key(version, ""), remove_well_change(version, well_path))
            if version == "0.4":
                await writer.delete(V2_CONSOLIDATED)

    plate._sync(unlist())
    plate._sync(plate.fs.source.delete_tree(well_path))
    plate.fs.invalidate_cache()
