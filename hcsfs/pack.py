"""Pack any plate into the RFC-9 recommended ``.ozx`` variant, streaming.

ZIP64, STORED, the root ``zarr.json`` first (with consolidated metadata), then the
other ``zarr.json`` documents breadth-first, then the data, in the local entries and
the central directory alike; the archive comment carries the OME-Zarr version.
Memory stays flat: a local directory is read file by file, other sources in bounded
concurrent batches, and each value is written as it arrives. The archive appears
under its final name only when whole (a local one is synced to disk while it is
written, so the final ``fsync`` waits only for the tail).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec
from fsspec.asyn import sync
from fsspec.core import split_protocol

from hcsfs.consolidated import consolidated_v3_root, encode_document
from hcsfs.convert import v2_documents_to_v3
from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.ozx import BinaryWritable, ZipStreamWriter, ome_comment, recommended_order
from hcsfs.progress import progress_bar
from hcsfs.resolve import split_hcs_url
from hcsfs.source import LocalSource
from hcsfs.zarrmeta import V2_ARRAY, V2_ATTRS, V2_CONSOLIDATED, V2_GROUP, V3_DOC, load_json

__all__ = ["PackReport", "pack"]

BATCH_BYTES = 64 * 2**20
BATCH_KEYS = 64
SYNC_BEHIND_BYTES = 16 * 2**20


@dataclass(frozen=True)
class PackReport:
    """What a pack wrote."""

    destination: str
    members: int
    data_bytes: int
    archive_bytes: int
    version: str


def pack(
    src: str,
    dst: str,
    *,
    to_version: str | None = None,
    storage_options: dict[str, Any] | None = None,
    dst_storage_options: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> PackReport:
    """Pack the plate at ``src`` (directory, S3, ``.ozx`` ...) into the archive ``dst``.

    Parameters
    ----------
    src, dst
        Source plate and destination ``.ozx`` path or URL (local or e.g. ``s3://``).
    to_version
        ``"0.5"`` converts an OME-Zarr 0.4 (zarr v2) plate's metadata while packing
        (chunks are copied as they are); without it a 0.4 plate is refused, since the
        recommended variant needs zarr v3.
    storage_options, dst_storage_options
        Filesystem options for the source and destination.
    progress
        Show a progress bar (default: only on a terminal).
    """
    fs = HCSFileSystem(
        fo=split_hcs_url(src), target_options=storage_options or None, skip_instance_cache=True
    )
    plan: _Plan = sync(fs.loop, _plan, fs, to_version)
    order = recommended_order([*plan.metadata, *plan.data_keys])
    data_order = [k for k in order if k not in plan.metadata]
    total = sum(plan.sizes[k] for k in plan.data_keys)
    bar = progress_bar(total, progress, f"pack {os.path.basename(dst.rstrip('/'))}")
    try:
        with _atomic_output(dst, dst_storage_options or {}) as out:
            writer = ZipStreamWriter(out, archive=dst)
            for key in order:
                if key in plan.metadata:
                    writer.add(key, plan.metadata[key])
            for key, value in _data_values(fs, data_order, plan.sizes):
                writer.add(key, value)
                bar.update(len(value))
            archive_bytes = writer.close(ome_comment(plan.version))
    finally:
        bar.close()
    return PackReport(dst, len(order), total, archive_bytes, plan.version)


@dataclass(frozen=True)
class _Plan:
    """What the archive will hold: encoded metadata, data keys and sizes, the version."""

    metadata: dict[str, bytes]
    data_keys: list[str]
    sizes: dict[str, int]
    version: str


async def _plan(fs: HCSFileSystem, to_version: str | None) -> _Plan:
    index = fs.index
    plate = await index.open()
    if to_version not in (None, "0.5"):
        raise ValueError(f"to_version must be '0.5' or None, got {to_version!r}")
    if index.zarr_format == 2 and to_version != "0.5":
        raise HCSError(
            f"{fs.url}: OME-Zarr {plate.version} (zarr v2) cannot be the RFC-9 recommended "
            "variant, which needs zarr v3; pass to_version='0.5' (CLI: --to-version 0.5) "
            "to convert the metadata while packing"
        )
    files = {e["name"]: e["size"] for e in await fs.source.find("")}
    if index.zarr_format == 3:
        metadata, data_keys = await _v3_documents(fs, files)
        return _Plan(metadata, data_keys, files, plate.version)
    metadata, data_keys = await _v2_to_v3_documents(fs, files)
    return _Plan(metadata, data_keys, files, "0.5")


def _data_values(
    fs: HCSFileSystem, keys: list[str], sizes: dict[str, int]
) -> Iterator[tuple[str, bytes]]:
    """Each data key with its bytes, in ``keys`` order, holding at most one batch ahead.

    A local directory is read file by file in the calling thread, like ``cp``: its
    reads are mostly page-cache copies, which thread and event-loop round trips per
    key would only slow down (3x on the B5 plate). Other sources are fetched in
    concurrent batches, the next one while the current one is written.
    """
    source = fs.source
    if isinstance(source, LocalSource):
        for key in keys:
            try:
                value = source.read_sync(key)  # confined to the plate, as get()
            except FileNotFoundError:
                raise HCSError(f"{fs.url}: {key} vanished while packing") from None
            yield key, value
        return
    for batch, values in _prefetched(fs, _batches(keys, sizes)):
        for key in batch:
            fetched = values[key]
            if fetched is None:
                raise HCSError(f"{fs.url}: {key} vanished while packing")
            yield key, fetched


def _prefetched(
    fs: HCSFileSystem, batches: Iterator[list[str]]
) -> Iterator[tuple[list[str], dict[str, bytes | None]]]:
    """Yield each batch with its values while the next batch is already being fetched."""
    pending: tuple[list[str], concurrent.futures.Future[dict[str, bytes | None]]] | None = None
    try:
        for batch in batches:
            future = asyncio.run_coroutine_threadsafe(fs.source.get_many(batch), fs.loop)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (batch, future)
        if pending is not None:
            done, pending = pending, None
            yield done[0], done[1].result()
    finally:
        if pending is not None:
            pending[1].cancel()


async def _v3_documents(
    fs: HCSFileSystem, files: dict[str, int]
) -> tuple[dict[str, bytes], list[str]]:
    doc_keys = [k for k in files if k.rpartition("/")[2] == V3_DOC]
    raw = await fs.source.get_many(doc_keys)
    docs = {k: load_json(v, path=f"{fs.url}/{k}") for k, v in raw.items() if v is not None}
    metadata = _with_consolidated(docs)
    data_keys = [k for k in files if k not in metadata]
    return metadata, data_keys


def _with_consolidated(docs: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """Encode v3 documents, with consolidated metadata of all nodes in the root one."""
    root = docs.get(V3_DOC, {"zarr_format": 3, "node_type": "group", "attributes": {}})
    encoded = {k: encode_document(v) for k, v in docs.items() if k != V3_DOC}
    encoded[V3_DOC] = encode_document(consolidated_v3_root(root, docs))
    return encoded


async def _v2_to_v3_documents(
    fs: HCSFileSystem, files: dict[str, int]
) -> tuple[dict[str, bytes], list[str]]:
    v2_names = {V2_ATTRS, V2_GROUP, V2_ARRAY, V2_CONSOLIDATED}
    doc_keys = [k for k in files if k.rpartition("/")[2] in v2_names - {V2_CONSOLIDATED}]
    raw = await fs.source.get_many(doc_keys)
    parsed = {k: load_json(v, path=f"{fs.url}/{k}") for k, v in raw.items() if v is not None}
    metadata = _with_consolidated(v2_documents_to_v3(parsed, where=fs.url))
    data_keys = [k for k in files if k.rpartition("/")[2] not in v2_names]
    return metadata, data_keys


def _batches(keys: list[str], sizes: dict[str, int]) -> Iterator[list[str]]:
    batch: list[str] = []
    nbytes = 0
    for key in keys:
        if batch and (len(batch) >= BATCH_KEYS or nbytes + sizes[key] > BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(key)
        nbytes += sizes[key]
    if batch:
        yield batch


@contextlib.contextmanager
def _atomic_output(dst: str, options: dict[str, Any]) -> Iterator[BinaryWritable]:
    """A writable stream that becomes ``dst`` only if the block finishes."""
    protocol, path = split_protocol(dst)
    if protocol in (None, "file", "local"):
        final = os.path.abspath(os.path.expanduser(path))
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(final)}.", suffix=".partial", dir=os.path.dirname(final)
        )
        try:
            os.chmod(tmp, _file_mode(final))
            with os.fdopen(fd, "wb") as handle, _SyncBehind(handle) as synced:
                yield synced
                synced.sync()
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        return
    fs, target = fsspec.core.url_to_fs(dst, **options)
    if "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        handle = fs.open(target, "wb", autocommit=False)
        try:
            yield handle
            handle.close()
            handle.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                handle.discard()
            handle.closed = True  # a discarded upload must never be flushed later
            raise
        return
    tmp_target = f"{target}.{uuid.uuid4().hex}.partial"
    try:
        with fs.open(tmp_target, "wb") as handle:
            yield handle
        fs.mv(tmp_target, target)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp_target)
        raise


#: ``fdatasync`` where the OS offers it, else ``fsync``.
_sync_data = getattr(os, "fdatasync", os.fsync)


class _SyncBehind:
    """A local file stream that syncs its bytes to disk while more are written.

    After every ``SYNC_BEHIND_BYTES`` written, a data sync of the file starts in a
    background thread (one at a time): the disk writes during the copy instead of
    only in the final :meth:`sync`, which then waits for the tail alone.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._fd = handle.fileno()
        self._unsynced = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hcsfs-sync")
        self._pending: concurrent.futures.Future[None] | None = None

    def write(self, data: bytes | memoryview, /) -> int:
        written = self._handle.write(data)
        self._unsynced += written
        if self._unsynced >= SYNC_BEHIND_BYTES and (self._pending is None or self._pending.done()):
            if self._pending is not None:
                self._pending.result()  # a failed background sync fails the pack
            self._pending = self._pool.submit(_sync_data, self._fd)
            self._unsynced = 0
        return written

    def sync(self) -> None:
        """Flush and ``fsync`` everything written, raising any background sync failure."""
        if self._pending is not None:
            self._pending.result()
        self._handle.flush()
        os.fsync(self._fd)

    def __enter__(self) -> _SyncBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # no sync may run once the file is closed


def _file_mode(path: str) -> int:
    """The mode a new archive gets: the replaced file's, else what the umask allows."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
