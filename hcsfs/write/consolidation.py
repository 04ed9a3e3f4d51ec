"""Consolidated metadata: write it for the plate's current hierarchy.

zarr v3 (OME-Zarr 0.5): an inline ``consolidated_metadata`` block in the root
``zarr.json`` holding every other node's ``zarr.json``. zarr v2 (0.4): ``.zmetadata``
holding every ``.zgroup``, ``.zattrs`` and ``.zarray``.

Writers drop consolidated metadata whenever they change the hierarchy (see
:mod:`hcsfs.write.image`), so it is only ever fresh or absent. Consolidating while
others write is safe: with a lock (directories, memory) nobody changes metadata
meanwhile; with S3 conditional writes the root is replaced only if unchanged since it
was read, and the documents are read again afterwards - if any changed in between,
the new block is dropped again and consolidation retried. A writer that changes a
document after that check drops the block itself when it updates the root.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hcsfs.errors import PlateWriteError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.pack import _with_consolidated
from hcsfs.progress import progress_bar
from hcsfs.resolve import split_hcs_url
from hcsfs.write.docs import strip_consolidated_change
from hcsfs.write.locking import DocWriter, backoff_delays
from hcsfs.zarrmeta import V2_ARRAY, V2_ATTRS, V2_CONSOLIDATED, V2_GROUP, V3_DOC, load_json

if TYPE_CHECKING:
    from hcsfs.plate import Plate

__all__ = ["consolidate", "consolidate_plate"]

#: Rounds of "consolidate, check, retry" before giving up under heavy contention.
MAX_ROUNDS = 20


DOC_BATCH = 512  # documents fetched per concurrent round (a progress step)


def consolidate(
    url: str, storage_options: dict[str, Any] | None = None, *, progress: bool | None = False
) -> None:
    """Write consolidated metadata for the plate at ``url`` (a directory or S3 ...).

    Parameters
    ----------
    url
        The plate (not an ``.ozx``: archives are consolidated when packed).
    storage_options
        Options for the target filesystem.
    progress
        Show a progress bar over the documents read (``None``: only on a terminal).
    """
    from hcsfs.plate import open_plate
    from hcsfs.resolve import is_archive_path

    if is_archive_path(split_hcs_url(str(url))):
        raise PlateWriteError(f"{url}: an .ozx archive holds consolidated metadata already")
    plate = open_plate(url, mode="r+", storage_options=storage_options)
    consolidate_plate(plate, progress=progress)


def consolidate_plate(plate: Plate, *, progress: bool | None = False) -> None:
    """Write consolidated metadata for an open, writable plate (``plate.consolidate()``)."""
    if plate.fs.read_only:
        raise PermissionError(f"{plate.url}: the plate is open read-only (mode='r')")
    plate.meta  # noqa: B018 - detects the zarr format
    fmt = plate.index.zarr_format
    plate._sync(_consolidate(plate.fs, fmt, progress))
    plate.fs.invalidate_cache()


async def _metadata_docs(
    fs: HCSFileSystem, fmt: int, progress: bool | None = False
) -> dict[str, bytes]:
    names = {V3_DOC} if fmt == 3 else {V2_GROUP, V2_ATTRS, V2_ARRAY}
    entries = await fs.source.find("")
    keys = sorted(e["name"] for e in entries if e["name"].rpartition("/")[2] in names)
    bar = progress_bar(len(keys), progress, "read metadata", unit="doc")
    found: dict[str, bytes | None] = {}
    try:
        for start in range(0, len(keys), DOC_BATCH):
            batch = await fs.source.get_many(keys[start : start + DOC_BATCH])
            found.update(batch)
            bar.update(len(batch))
    finally:
        bar.close()
    return {k: v for k, v in found.items() if v is not None}


def _block(fmt: int, raw: dict[str, bytes], url: str) -> tuple[str, dict[str, Any]]:
    docs = {k: load_json(v, path=f"{url}/{k}") for k, v in raw.items()}
    if fmt == 3:
        encoded = _with_consolidated(docs)
        return V3_DOC, load_json(encoded[V3_DOC], path=f"{url}/{V3_DOC}")
    return V2_CONSOLIDATED, {"zarr_consolidated_format": 1, "metadata": dict(sorted(docs.items()))}


async def _consolidate(fs: HCSFileSystem, fmt: int, progress: bool | None = False) -> None:
    writer = DocWriter(fs.source, fs.invalidate_cache)
    target = V3_DOC if fmt == 3 else V2_CONSOLIDATED
    delays = backoff_delays(0.01, 1.0)
    for _ in range(MAX_ROUNDS):
        async with writer.locked():
            _, token = await fs.source.get_versioned(target)
            before = await _metadata_docs(fs, fmt, progress)
            if fmt == 3 and V3_DOC not in before:
                raise PlateWriteError(f"{fs.url}: no root zarr.json; not a plate")
            key, doc = _block(fmt, before, fs.url)
            if not await writer.write(key, doc, token):
                await asyncio.sleep(next(delays))
                continue
            if writer.mechanism != "conditional":
                return
            after = await _metadata_docs(fs, fmt)
            after.pop(V3_DOC, None)  # the root: any later change to it drops the block
            if after == {k: v for k, v in before.items() if k != V3_DOC}:
                return
            # someone changed the hierarchy meanwhile: the block may be stale
            if fmt == 3:
                await writer.update(V3_DOC, strip_consolidated_change("0.5"))
            else:
                await writer.delete(V2_CONSOLIDATED)
        await asyncio.sleep(next(delays))
    raise TimeoutError(f"{fs.url}: the plate kept changing; could not consolidate its metadata")
