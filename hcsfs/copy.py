"""Copy a plate between directories, object stores (any fsspec URL) and ``.ozx`` archives.

A copy to a name ending in ``.ozx`` is a :func:`hcsfs.pack`. Any other destination is a
directory or prefix that receives every file of the source plate (an ``.ozx`` source is
unpacked), fetched in bounded concurrent batches, so memory stays flat whatever the
plate's size. Order is what keeps an interrupted copy safe: chunks first, then the
metadata documents deepest first, and the root document(s) last, after the sizes of
everything else have been checked against the source. A destination without its root
document is not a plate, so a copy that stops half-way can never be mistaken for a
complete one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fsspec.asyn import sync
from fsspec.core import split_protocol

from hcsfs.convert import v2_documents_to_v3
from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.keys import parent_key
from hcsfs.ozx_source import OzxSource
from hcsfs.progress import ProgressBar, progress_bar
from hcsfs.resolve import make_source, split_hcs_url
from hcsfs.source import Source
from hcsfs.zarrmeta import (
    METADATA_NAMES,
    V2_ARRAY,
    V2_ATTRS,
    V2_CONSOLIDATED,
    V2_GROUP,
    V3_DOC,
    load_json,
)

__all__ = ["CopyReport", "copy_plate"]

#: Bytes held in memory at once: one batch being read plus one being written.
MAX_BYTES_IN_FLIGHT = 64 * 2**20
#: Keys per batch read from an archive; its reads are coalesced into few ranged
#: requests, so a batch's request count does not grow with its key count.
ARCHIVE_BATCH_KEYS = 1024
#: Root documents in the order they are written; the last one makes the plate a plate.
ROOT_ORDER = (V2_GROUP, V2_ARRAY, V2_CONSOLIDATED, V2_ATTRS, V3_DOC)
V2_DOCS = frozenset({V2_GROUP, V2_ATTRS, V2_ARRAY, V2_CONSOLIDATED})


@dataclass(frozen=True)
class CopyReport:
    """What a copy wrote.

    Attributes
    ----------
    destination
        The destination as a URL or absolute path.
    files
        Files (or, for an ``.ozx`` destination, archive members) written.
    bytes
        Bytes written: the sum of the files' sizes, or the archive's size.
    """

    destination: str
    files: int
    bytes: int


def copy_plate(
    src: str,
    dst: str,
    *,
    storage_options: dict[str, Any] | None = None,
    dst_storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    to_version: str | None = None,
    progress: bool | None = None,
    max_concurrency: int = 32,
) -> CopyReport:
    """Copy the plate at ``src`` to ``dst``: directory, object store or ``.ozx``.

    Every file of the source plate is copied as it is (an ``.ozx`` source is unpacked).
    Chunks go first, in batches of bounded size (at most 64 MiB held in memory) with at
    most ``max_concurrency`` reads and writes in flight; then the metadata documents,
    deepest first; then, once the destination's sizes have been checked against the
    source's, the root metadata document(s). A copy that fails or is interrupted
    therefore never leaves a root document behind: the partial destination is not a
    plate, and running the copy again with ``overwrite=True`` completes it.

    Parameters
    ----------
    src
        The source plate: a local directory, a URL (``s3://bucket/plate.ome.zarr``) or
        an ``.ozx`` archive (local or remote).
    dst
        The destination. A name ending in ``.ozx`` is packed with :func:`hcsfs.pack`
        (which replaces an existing archive atomically); anything else is a local
        directory or a prefix on any fsspec filesystem (``s3://bucket/copy.ome.zarr``).
    storage_options, dst_storage_options
        Filesystem options for the source and the destination.
    overwrite
        Copy into a destination that already holds files. Only the keys being copied
        are replaced; nothing is ever deleted, so files in ``dst`` that the source does
        not have are left where they are, and nothing outside ``dst`` is touched. The
        root documents being replaced are removed before the copy starts and written
        again last, so an interrupted overwrite is not a plate either.
        Without ``overwrite`` a non-empty destination is refused before anything is
        written.
    to_version
        ``None`` keeps the plate's OME-Zarr version. ``"0.5"`` converts the metadata of
        a 0.4 (zarr v2) plate to 0.5 (zarr v3) while copying; chunks are copied as they
        are. Packing a 0.4 plate into an ``.ozx`` needs ``"0.5"``.
    progress
        Show a progress bar on stderr (default: only when stderr is a terminal).
    max_concurrency
        Most reads, and most writes, in flight at once.

    Returns
    -------
    CopyReport
        The destination, the number of files written and their total size.

    Raises
    ------
    FileExistsError
        ``dst`` already holds files and ``overwrite`` is false, or ``dst`` is a file.
    ValueError
        ``dst`` is ``src`` or lies inside it (or the reverse), or ``to_version`` is not
        supported.
    hcsfs.HCSError
        The source is not a plate, a file vanished from it during the copy, or a file's
        size at the destination differs from the source's (the message names the file).

    Examples
    --------
    >>> copy_plate("s3://bucket/plate.ozx", "/data/plate.ome.zarr")  # doctest: +SKIP
    CopyReport(destination='/data/plate.ome.zarr', files=93, bytes=140477)
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    dst = split_hcs_url(str(dst))
    if dst.rstrip("/").lower().endswith(".ozx"):
        from hcsfs.pack import pack

        packed = pack(
            src,
            dst,
            to_version=to_version,
            storage_options=storage_options,
            dst_storage_options=dst_storage_options,
            progress=progress,
        )
        return CopyReport(packed.destination, packed.members, packed.archive_bytes)
    if dst.rstrip("/").lower().endswith(".zip"):
        raise ValueError(f"{dst}: hcsfs writes plate archives as .ozx; name the archive *.ozx")
    if to_version not in (None, "0.4", "0.5"):
        raise ValueError(f"to_version must be '0.4', '0.5' or None, got {to_version!r}")
    _refuse_nested(str(src), dst)
    fs = HCSFileSystem(
        fo=split_hcs_url(str(src)),
        target_options=storage_options or None,
        skip_instance_cache=True,
    )
    target = make_source(dst, target_options=dst_storage_options or None, read_only=False)
    report: CopyReport = sync(
        fs.loop, _copy, fs, target, overwrite, to_version, progress, max_concurrency
    )
    return report


def _refuse_nested(src: str, dst: str) -> None:
    """Refuse copying a plate onto itself, into itself, or around itself."""
    src_protocol, src_path = split_protocol(split_hcs_url(src))
    dst_protocol, dst_path = split_protocol(dst)
    local = (None, "file", "local")
    if src_protocol in local and dst_protocol in local:
        a = os.path.realpath(os.path.expanduser(src_path))
        b = os.path.realpath(os.path.expanduser(dst_path))
        sep = os.sep
    elif src_protocol == dst_protocol and "::" not in src + dst:
        a, b, sep = src_path.strip("/"), dst_path.strip("/"), "/"
    else:
        return
    if a == b or b.startswith(a + sep) or a.startswith(b + sep):
        raise ValueError(f"cannot copy {src} to {dst}: one lies inside the other")


async def _copy(
    fs: HCSFileSystem,
    target: Source,
    overwrite: bool,
    to_version: str | None,
    progress: bool | None,
    max_concurrency: int,
) -> CopyReport:
    source = fs.source
    index = fs.index
    plate = await index.open()  # refuses anything that is not a plate, before any write
    if to_version == "0.4" and index.zarr_format == 3:
        raise ValueError(
            f"{fs.url}: OME-Zarr {plate.version} cannot be converted to 0.4; "
            "copy it without to_version"
        )
    files = {e["name"]: e["size"] for e in await source.find("")}
    await _check_destination(target, overwrite)

    generated: dict[str, bytes] = {}
    if index.zarr_format == 2 and to_version == "0.5":
        generated = await _v2_to_v3_documents(source, files, where=fs.url)
        copied = {k: n for k, n in files.items() if k.rpartition("/")[2] not in V2_DOCS}
    else:
        copied = dict(files)
    expected = {**copied, **{k: len(v) for k, v in generated.items()}}

    data = sorted(k for k in copied if not _is_metadata(k))
    waves = _metadata_waves([k for k in expected if _is_metadata(k)])
    root_docs = waves.pop() if waves and not parent_key(waves[-1][0]) else []

    if overwrite:
        # The root documents about to be replaced go first, so that an interrupted
        # overwrite does not leave the old plate's root over a mix of old and new files.
        for key in root_docs:
            await target.delete(key)
    copier = _Copier(source, target, copied, generated, max_concurrency, progress)
    copier.open_bar(sum(expected.values()), f"copy {_basename(target.url)}")
    try:
        await copier.copy(data, batch_keys=_batch_keys(source, max_concurrency))
        for wave in waves:
            await copier.copy(wave, batch_keys=_batch_keys(source, max_concurrency))
        await _verify(target, {k: n for k, n in expected.items() if k not in root_docs})
        for key in root_docs:  # one at a time, in ROOT_ORDER
            await copier.copy([key], batch_keys=1)
        await _verify_keys(target, {k: expected[k] for k in root_docs})
    except BaseException as exc:
        if not copier.root_started:
            exc.add_note(
                f"copy to {target.url} stopped after {copier.files} of {len(expected)} files; "
                "no root metadata document was written, so the destination is not a plate. "
                "Copy again with overwrite=True to complete it."
            )
        raise
    finally:
        copier.close_bar()
    return CopyReport(target.url, copier.files, copier.bytes)


async def _check_destination(target: Source, overwrite: bool) -> None:
    """Refuse a destination that is a file, or holds files when not overwriting."""
    url = target.url
    if isinstance(target, OzxSource):
        raise ValueError(f"{url}: an archive destination must end in .ozx")
    if os.path.isabs(url) and os.path.exists(url) and not os.path.isdir(url):
        raise FileExistsError(f"{url}: the destination exists and is a file, not a directory")
    try:
        present = await target.find("")
    except FileNotFoundError:
        return
    if any(e["name"] == "" for e in present):
        raise FileExistsError(f"{url}: the destination exists and is a file, not a directory")
    if present and not overwrite:
        sample = ", ".join(e["name"] for e in present[:3])
        raise FileExistsError(
            f"{url}: the destination is not empty ({len(present)} files, e.g. {sample}); "
            "pass overwrite=True (CLI: --overwrite) to replace the files being copied"
        )


class _Copier:
    """Moves keys from one source to another in bounded, pipelined batches."""

    def __init__(
        self,
        source: Source,
        target: Source,
        sizes: dict[str, int],
        generated: dict[str, bytes],
        max_concurrency: int,
        progress: bool | None,
    ) -> None:
        self.source = source
        self.target = target
        self.sizes = sizes
        self.generated = generated
        self.writes = asyncio.Semaphore(max_concurrency)
        self.progress = progress
        self.bar: ProgressBar = progress_bar(0, False, "")
        self.files = 0
        self.bytes = 0
        self.root_started = False

    def open_bar(self, total: int, desc: str) -> None:
        self.bar = progress_bar(total, self.progress, desc)

    def close_bar(self) -> None:
        self.bar.close()

    async def copy(self, keys: list[str], *, batch_keys: int) -> None:
        """Copy ``keys``: batch n+1 is read while batch n is written."""
        writing: asyncio.Task[None] | None = None
        try:
            for batch in _batches(keys, self.sizes, MAX_BYTES_IN_FLIGHT // 2, batch_keys):
                values = await self._read(batch)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._write(values))
            if writing is not None:
                await writing
                writing = None
        finally:
            if writing is not None and not writing.done():
                # let the batch being written finish, so nothing is written after we return
                with contextlib.suppress(BaseException):
                    await writing

    async def _read(self, batch: list[str]) -> dict[str, bytes]:
        wanted = [k for k in batch if k not in self.generated]
        values = await self.source.get_many(wanted) if wanted else {}
        out: dict[str, bytes] = {}
        for key in batch:
            value = self.generated[key] if key in self.generated else values.get(key)
            if value is None:
                raise HCSError(f"{self.source.url}: {key} vanished while copying")
            out[key] = value
        return out

    async def _write(self, values: dict[str, bytes]) -> None:
        async def one(key: str, value: bytes) -> None:
            async with self.writes:
                if not parent_key(key) and key.rpartition("/")[2] in METADATA_NAMES:
                    self.root_started = True
                await self.target.put(key, value)
            self.files += 1
            self.bytes += len(value)
            self.bar.update(len(value))

        await asyncio.gather(*(one(k, v) for k, v in values.items()))


async def _verify(target: Source, expected: dict[str, int]) -> None:
    """Check, from one listing of the destination, that every key has its size."""
    listed = {e["name"]: e["size"] for e in await target.find("")}
    for key in sorted(expected):
        if key not in listed:
            raise HCSError(f"{target.url}: {key} is missing after the copy")
        if listed[key] != expected[key]:
            raise HCSError(
                f"{target.url}: {key} has {listed[key]} bytes after the copy, "
                f"the source has {expected[key]}"
            )


async def _verify_keys(target: Source, expected: dict[str, int]) -> None:
    """Check the size of a few keys, one request each."""
    for key, size in expected.items():
        try:
            found = await target.size(key)
        except FileNotFoundError:
            raise HCSError(f"{target.url}: {key} is missing after the copy") from None
        if found != size:
            raise HCSError(
                f"{target.url}: {key} has {found} bytes after the copy, the source has {size}"
            )


def _is_metadata(key: str) -> bool:
    return key.rpartition("/")[2] in METADATA_NAMES


def _depth(key: str) -> int:
    return key.count("/")


def _metadata_waves(keys: list[str]) -> list[list[str]]:
    """Metadata keys grouped by depth, deepest first; root documents in ``ROOT_ORDER``."""
    by_depth: dict[int, list[str]] = {}
    for key in keys:
        by_depth.setdefault(_depth(key), []).append(key)
    waves = [sorted(by_depth[d]) for d in sorted(by_depth, reverse=True)]
    if waves and _depth(waves[-1][0]) == 0:
        waves[-1].sort(key=lambda k: ROOT_ORDER.index(k) if k in ROOT_ORDER else -1)
    return waves


def _batch_keys(source: Source, max_concurrency: int) -> int:
    return ARCHIVE_BATCH_KEYS if isinstance(source, OzxSource) else max_concurrency


def _batches(
    keys: list[str], sizes: dict[str, int], max_bytes: int, max_keys: int
) -> Iterator[list[str]]:
    """Consecutive runs of ``keys`` of at most ``max_keys`` keys and ``max_bytes`` bytes.

    A single key larger than ``max_bytes`` makes a batch of its own.
    """
    batch: list[str] = []
    nbytes = 0
    for key in keys:
        size = sizes.get(key, 0)
        if batch and (len(batch) >= max_keys or nbytes + size > max_bytes):
            yield batch
            batch, nbytes = [], 0
        batch.append(key)
        nbytes += size
    if batch:
        yield batch


async def _v2_to_v3_documents(
    source: Source, files: dict[str, int], *, where: str
) -> dict[str, bytes]:
    """The zarr v3 ``zarr.json`` documents equivalent to a v2 plate's documents."""
    doc_keys = [k for k in files if k.rpartition("/")[2] in V2_DOCS - {V2_CONSOLIDATED}]
    raw = await source.get_many(doc_keys)
    parsed = {k: load_json(v, path=f"{where}/{k}") for k, v in raw.items() if v is not None}
    return {
        key: json.dumps(doc, indent=2).encode("utf-8")
        for key, doc in v2_documents_to_v3(parsed, where=where).items()
    }


def _basename(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2] or url
