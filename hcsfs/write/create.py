"""Create plates: the root group with its ``plate`` metadata, on any writable target."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fsspec.asyn import sync

from hcsfs.errors import PlateWriteError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.index import DEFAULT_IMAGE_CACHE_SIZE, DEFAULT_WELL_CACHE_SIZE, dumps_doc
from hcsfs.ome.emit import plate_attributes
from hcsfs.ome.model import Acquisition, PlateMeta
from hcsfs.resolve import is_archive_path, split_hcs_url
from hcsfs.write.docs import group_docs
from hcsfs.write.staging import archive_exists, discard, staging_directory
from hcsfs.zarrmeta import V2_ATTRS, V2_CONSOLIDATED, V2_GROUP, V3_DOC

if TYPE_CHECKING:
    from hcsfs.plate import Plate

__all__ = ["PLATE_TYPES", "column_names", "create_plate", "row_names"]

#: Standard plate layouts: wells → (rows, columns).
PLATE_TYPES: dict[int, tuple[int, int]] = {
    6: (2, 3),
    12: (3, 4),
    24: (4, 6),
    48: (6, 8),
    96: (8, 12),
    384: (16, 24),
    1536: (32, 48),
}
WRITE_VERSIONS = ("0.4", "0.5")


def row_names(count: int) -> tuple[str, ...]:
    """``A, B, ..., Z, AA, AB, ...`` - the usual names of ``count`` plate rows."""
    letters = string.ascii_uppercase
    names = []
    for i in range(count):
        name, n = "", i
        while True:
            name = letters[n % 26] + name
            n = n // 26 - 1
            if n < 0:
                break
        names.append(name)
    return tuple(names)


def column_names(count: int) -> tuple[str, ...]:
    """``1, 2, ..., count`` - the usual names of plate columns."""
    return tuple(str(i) for i in range(1, count + 1))


def _grid(value: int | Sequence[str | int], what: str) -> tuple[str, ...]:
    if isinstance(value, bool):
        raise PlateWriteError(f"{what} must be a count or a list of names, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise PlateWriteError(f"{what} must be at least 1, got {value}")
        return row_names(value) if what == "rows" else column_names(value)
    if isinstance(value, str):
        raise PlateWriteError(
            f"{what} must be a count or a list of names, not the string {value!r}"
        )
    names = tuple(str(v) for v in value)
    if not names:
        raise PlateWriteError(f"{what} must name at least one {what[:-1]}")
    for name in names:
        if not name.isascii() or not name.isalnum():
            raise PlateWriteError(f"{what[:-1]} name {name!r} must be letters and digits only")
    if len(set(names)) != len(names):
        raise PlateWriteError(f"{what} names must be unique: {list(names)}")
    return names


def _layout(
    rows: int | Sequence[str | int] | None,
    columns: int | Sequence[str | int] | None,
    plate_type: int | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if plate_type is not None:
        if plate_type not in PLATE_TYPES:
            raise PlateWriteError(
                f"plate_type must be one of {sorted(PLATE_TYPES)}, got {plate_type!r}"
            )
        n_rows, n_columns = PLATE_TYPES[plate_type]
        rows = n_rows if rows is None else rows
        columns = n_columns if columns is None else columns
        got = (len(_grid(rows, "rows")), len(_grid(columns, "columns")))
        if got != (n_rows, n_columns):
            raise PlateWriteError(
                f"a {plate_type}-well plate has {n_rows} rows x {n_columns} columns, "
                f"got {got[0]} x {got[1]}"
            )
    if rows is None or columns is None:
        raise PlateWriteError("give rows and columns (names or counts), or plate_type")
    return _grid(rows, "rows"), _grid(columns, "columns")


def _acquisitions(
    value: int | Sequence[int | Acquisition | Mapping[str, Any]] | None,
) -> tuple[Acquisition, ...]:
    if value is None:
        return ()
    if isinstance(value, bool):
        raise PlateWriteError(f"acquisitions must be a count or a list, got {value!r}")
    if isinstance(value, int):
        items: list[Any] = list(range(value))
    else:
        items = list(value)
    out: list[Acquisition] = []
    for item in items:
        if isinstance(item, Acquisition):
            acq = item
        elif isinstance(item, Mapping):
            try:
                acq = Acquisition(
                    id=item["id"],
                    name=item.get("name"),
                    maximum_field_count=item.get("maximumfieldcount"),
                    description=item.get("description"),
                    start_time=item.get("starttime"),
                    end_time=item.get("endtime"),
                )
            except KeyError:
                raise PlateWriteError(f"an acquisition needs an 'id': {dict(item)!r}") from None
        elif isinstance(item, int) and not isinstance(item, bool):
            acq = Acquisition(id=item)
        else:
            raise PlateWriteError(f"acquisitions: expected ids, dicts or Acquisition, got {item!r}")
        if not isinstance(acq.id, int) or isinstance(acq.id, bool) or acq.id < 0:
            raise PlateWriteError(f"acquisition ids must be non-negative ints, got {acq.id!r}")
        if acq.name is None:
            acq = Acquisition(
                acq.id,
                f"acquisition {acq.id}",
                acq.maximum_field_count,
                acq.description,
                acq.start_time,
                acq.end_time,
            )
        out.append(acq)
    ids = [a.id for a in out]
    if len(set(ids)) != len(ids):
        raise PlateWriteError(f"acquisition ids must be unique: {ids}")
    return tuple(out)


def _default_name(url: str) -> str:
    base = os.path.basename(split_hcs_url(str(url)).rstrip("/")) or "plate"
    for suffix in (".ozx", ".zip", ".zarr", ".ome"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    return base or "plate"


def create_plate(
    url: str,
    *,
    rows: int | Sequence[str | int] | None = None,
    columns: int | Sequence[str | int] | None = None,
    plate_type: int | None = None,
    name: str | None = None,
    version: str = "0.5",
    acquisitions: int | Sequence[int | Acquisition | Mapping[str, Any]] | None = None,
    field_count: int | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    well_cache_size: int = DEFAULT_WELL_CACHE_SIZE,
    image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE,
) -> Plate:
    """Create an empty OME-Zarr HCS plate at ``url`` and return it open for writing.

    Parameters
    ----------
    url
        A local directory, a URL (``s3://bucket/plate.ome.zarr``) or an ``.ozx`` path or
        URL (staged locally, packed when the plate is closed).
    rows, columns
        Names (letters and digits) or counts (rows ``A, B, ...``, columns ``1, 2, ...``).
    plate_type
        6, 12, 24, 48, 96, 384 or 1536: the standard layout, instead of rows/columns.
    name
        The plate name (default: the last part of ``url`` without suffixes).
    version
        ``"0.5"`` (zarr v3, default) or ``"0.4"`` (zarr v2; not for ``.ozx``).
    acquisitions
        A count, or ids / ``Acquisition`` objects / dicts (``{"id": 0, "name": ...}``).
        Each gets a default name; ``maximumfieldcount`` follows the fields written.
    field_count
        The plate's declared maximum of fields per well (raised as fields are written).
    storage_options
        Options for the target filesystem.
    overwrite
        Replace whatever is at ``url``; without it an existing plate (or any content)
        there is an error.
    well_cache_size, image_cache_size
        Metadata cache bounds of the returned plate.

    Returns
    -------
    Plate
        The new plate, writable. Use it as a context manager (or call ``close()``) so
        its consolidated metadata is written (and an ``.ozx`` packed) at the end.

    Raises
    ------
    PlateWriteError
        Bad arguments, or ``url`` is not empty and ``overwrite`` is False. Nothing is
        written then.
    """
    from hcsfs.plate import Plate

    if version not in WRITE_VERSIONS:
        raise PlateWriteError(f"version must be one of {WRITE_VERSIONS}, got {version!r}")
    row_list, column_list = _layout(rows, columns, plate_type)
    acquisition_list = _acquisitions(acquisitions)
    if field_count is not None and (
        isinstance(field_count, bool) or not isinstance(field_count, int) or field_count < 1
    ):
        raise PlateWriteError(f"field_count must be a positive integer, got {field_count!r}")
    if name is not None and not isinstance(name, str):
        raise PlateWriteError(f"name must be a string, got {name!r}")
    meta = PlateMeta(
        version=version,
        rows=row_list,
        columns=column_list,
        wells=(),
        name=name if name is not None else _default_name(url),
        acquisitions=acquisition_list,
        field_count=field_count,
    )
    target = split_hcs_url(str(url))
    staged = None
    options = dict(storage_options or {})
    if is_archive_path(target):
        if version != "0.5":
            raise PlateWriteError(
                f"{url}: an .ozx archive holds OME-Zarr 0.5 (zarr v3); use version='0.5'"
            )
        if not overwrite and archive_exists(target, options):
            raise PlateWriteError(f"{url}: the archive exists; pass overwrite=True to replace it")
        from hcsfs.write.staging import StagedArchive

        staged = StagedArchive(target, options, staging_directory(target))
        fs_url, fs_options = staged.directory, None
    else:
        fs_url, fs_options = target, options or None
    fs = HCSFileSystem(
        fo=fs_url,
        target_options=fs_options,
        mode="r+",
        well_cache_size=well_cache_size,
        image_cache_size=image_cache_size,
        skip_instance_cache=True,
    )
    try:
        sync(fs.loop, _create_root, fs, meta, overwrite)
    except BaseException:
        if staged is not None:
            discard(staged.directory)
        raise
    fs.invalidate_cache()
    plate = Plate(fs)
    plate._staged = staged
    plate.meta  # noqa: B018 - reads the new root back
    return plate


async def _create_root(fs: HCSFileSystem, meta: PlateMeta, overwrite: bool) -> None:
    source = fs.source
    existing: list[str] = []
    if source.can_list:
        try:
            existing = [e["name"] for e in await source.find("")]
        except FileNotFoundError:
            existing = []
    else:
        for key in (V3_DOC, V2_ATTRS, V2_GROUP, V2_CONSOLIDATED):
            try:
                await source.size(key)
                existing.append(key)
            except FileNotFoundError:
                pass
    if existing and not overwrite:
        what = "a plate" if {V3_DOC, V2_ATTRS, V2_GROUP} & set(existing) else "data"
        raise PlateWriteError(
            f"{source.url}: holds {what} already ({len(existing)} files); "
            "pass overwrite=True to replace it"
        )
    if existing:
        await _delete_all(fs, existing)
    attributes = plate_attributes(meta, version=meta.version)
    docs = group_docs(meta.version, "", attributes)
    for key, doc in docs.items():
        data = dumps_doc(doc)
        if source.supports_conditional_write and key in (V3_DOC, V2_ATTRS):
            if not await source.put_if(key, data, None):
                raise PlateWriteError(f"{source.url}: another writer created a plate here first")
        else:
            await source.put(key, data)


async def _delete_all(fs: HCSFileSystem, keys: list[str]) -> None:
    """Delete a target's content: subtrees first, the root documents last."""
    import asyncio

    source = fs.source
    top = {key.split("/")[0] for key in keys if "/" in key}
    await asyncio.gather(*(source.delete_tree(name) for name in sorted(top)))
    roots = {V3_DOC, V2_ATTRS, V2_GROUP, V2_CONSOLIDATED}
    files = [k for k in keys if "/" not in k]
    await asyncio.gather(*(source.delete(k) for k in files if k not in roots))
    await asyncio.gather(*(source.delete(k) for k in files if k in roots))
