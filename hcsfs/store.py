"""HCSStore: the zarr face of a plate (a zarr-python 3 ``Store``).

Every call runs on the plate filesystem's own event loop - whatever loop zarr calls
from - so an S3 session is never used from a foreign loop, and the reads of one batch
(``get_partial_values``, ``_get_many``) go over in one hop and are in flight together
(S3 requests overlap; local reads run in the source's thread pool). Metadata documents
the index has already read are served from its cache with no request.

The store also works as plain storage: on an empty location, or one holding zarr
data that is not a plate, it reads, writes and lists keys like any zarr store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fsspec.asyn import sync
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from hcsfs.errors import HCSError
from hcsfs.hop import run_batched
from hcsfs.keys import join_key, unsafe_key_reason
from hcsfs.virtual import VIRTUAL_KEYS, virtual_root_document
from hcsfs.zarrmeta import METADATA_NAMES

if TYPE_CHECKING:
    from hcsfs.filesystem import HCSFileSystem

__all__ = ["HCSStore", "open_store"]

T = TypeVar("T")

#: What a read of a missing (or non-file) key raises below the store; ``get`` says None.
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class HCSStore(Store):
    """A zarr store over a plate's :class:`~hcsfs.filesystem.HCSFileSystem`.

    Parameters
    ----------
    fs
        The plate filesystem.
    path
        The node this store is rooted at (``""`` for the plate, ``"A/1"`` for a well).
    read_only
        Refuse writes. A store over a read-only filesystem (``mode="r"``, or any
        ``.ozx`` archive) is always read-only, whatever is asked for here.
    virtual_consolidated
        Serve consolidated metadata assembled by hcsfs when the plate has none, so
        ``zarr.open_group(store, use_consolidated=True)`` opens it in one round.
        Defaults to on for read-only stores, off otherwise.

    Examples
    --------
    >>> fs = HCSFileSystem(fo="/data/plate.ome.zarr")  # doctest: +SKIP
    >>> zarr.open_group(HCSStore(fs), mode="r")  # doctest: +SKIP
    >>> store = await HCSStore.open(fs=fs, path="A/1", read_only=True)  # doctest: +SKIP
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    fs: HCSFileSystem
    path: str

    def __init__(
        self,
        fs: HCSFileSystem,
        path: str = "",
        *,
        read_only: bool = True,
        virtual_consolidated: bool | None = None,
        preloaded: dict[str, concurrent.futures.Future[bytes | None]] | None = None,
    ) -> None:
        super().__init__(read_only=read_only or fs.read_only)
        #: Values being fetched already (store key -> future of the bytes, None when
        #: absent), served first with no request of their own (hcsfs.bulkread).
        #: Not pickled.
        self._preloaded = preloaded
        self.virtual_consolidated = (
            self.read_only if virtual_consolidated is None else virtual_consolidated
        )
        root = path.strip("/")
        reason = unsafe_key_reason(root)
        if reason is not None:
            raise ValueError(f"HCSStore path {path!r}: {reason}")
        self.fs = fs
        self.path = root

    # ------------------------------------------------------------ identity
    def __repr__(self) -> str:
        return f"HCSStore({self.fs.url!r}, path={self.path!r}, read_only={self.read_only})"

    def __eq__(self, other: object) -> bool:
        """Equal when over the same filesystem, at the same node, with the same mode."""
        return (
            isinstance(other, HCSStore)
            and self.fs == other.fs
            and self.path == other.path
            and self.read_only == other.read_only
        )

    def __hash__(self) -> int:
        return hash((self.fs, self.path, self.read_only))

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the filesystem (fsspec pickles it by its arguments), node and mode."""
        return {
            "fs": self.fs,
            "path": self.path,
            "read_only": self.read_only,
            "virtual_consolidated": self.virtual_consolidated,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A fresh (not yet open) store over the same filesystem."""
        Store.__init__(self, read_only=state["read_only"])
        self.fs = state["fs"]
        self.path = state["path"]
        self.virtual_consolidated = state.get("virtual_consolidated", self.read_only)
        self._preloaded = None

    def with_read_only(self, read_only: bool = False) -> HCSStore:
        # docstring inherited
        return type(self)(self.fs, self.path, read_only=read_only)

    # ------------------------------------------------------------ plumbing
    async def _on_fs_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the filesystem's loop, from whatever loop we are on."""
        fs_loop = self.fs.loop
        if asyncio.get_running_loop() is fs_loop:
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, fs_loop)
        return await asyncio.wrap_future(future)

    async def _reading(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a read: right here when the source's reads are loop-free (two thread
        switches per call saved on local plates), else on the filesystem's loop, sent
        with the other reads of this loop turn (one trip; neighbours can share a
        request, see :mod:`hcsfs.hop`)."""
        if self.fs.source.loop_free_reads:
            return await coro
        return await run_batched(coro, self.fs.loop)

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the filesystem's loop from synchronous code."""
        result: T = sync(self.fs.loop, lambda: coro)
        return result

    def _key(self, key: str, *, prefix: bool = False) -> str:
        """The filesystem path of ``key``; ValueError for keys that leave the store.

        With ``prefix`` a trailing ``/`` is allowed (``list_dir("foo/")``).
        """
        checked = key.rstrip("/") if prefix and isinstance(key, str) else key
        reason = unsafe_key_reason(checked)
        if reason is not None:
            raise ValueError(f"zarr key {key!r} is not a key inside the store: {reason}")
        return join_key(self.path, checked)

    def _relative(self, name: str) -> str:
        """A filesystem path below the store's node, as a key of the store."""
        return name[len(self.path) + 1 :] if self.path else name

    # --------------------------------------------------------------- reads
    async def _read(self, full: str, byte_range: ByteRequest | None) -> bytes | None:
        """Bytes of ``full`` (a filesystem path) in ``byte_range``; None when missing.

        Runs on the filesystem's loop.
        """
        start, end = _byte_limits(byte_range)
        is_document = byte_range is None and full.rpartition("/")[2] in METADATA_NAMES
        if is_document and await self._format_excludes(full):
            return None
        if byte_range is None and self.virtual_consolidated and full in VIRTUAL_KEYS.values():
            with contextlib.suppress(HCSError, FileNotFoundError):
                virtual = await virtual_root_document(self.fs, full)
                if virtual is not None:
                    return virtual
        try:
            if _empty_range(start, end):
                info = await self.fs._info(full)
                return b"" if info["type"] == "file" else None
            return bytes(await self.fs._cat_file(full, start=start, end=end, exact=False))
        except _MISSING:
            return None

    async def _format_excludes(self, full: str) -> bool:
        """True when the plate's format rules out this metadata key (no request made)."""
        try:
            await self.fs.index.open()
        except (HCSError, OSError):
            return False  # not a plate: plain storage, ask the source
        return self.fs.index.format_excludes(full)

    async def _read_many(
        self, requests: list[tuple[str, ByteRequest | None]]
    ) -> list[bytes | None]:
        """Many reads at once, all in flight together (runs on the filesystem's loop)."""
        return list(await asyncio.gather(*(self._read(k, r) for k, r in requests)))

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        # docstring inherited
        start, end = _byte_limits(byte_range)  # refuse a bad range before going to the loop
        if self._preloaded is not None and key in self._preloaded:
            held = await asyncio.wrap_future(self._preloaded[key])
            if held is None:
                return None
            return prototype.buffer.from_bytes(held if byte_range is None else held[start:end])
        data = await self._reading(self._read(self._key(key), byte_range))
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        # docstring inherited
        requests = [(self._key(key), byte_range) for key, byte_range in key_ranges]
        if not requests:
            return []
        for _, byte_range in requests:
            _byte_limits(byte_range)
        found = await self._reading(self._read_many(requests))
        return [None if data is None else prototype.buffer.from_bytes(data) for data in found]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        """Read many keys concurrently (zarr's default reads them one after another)."""
        requests = list(requests)
        paths = [(self._key(key), byte_range) for key, _, byte_range in requests]
        for _, byte_range in paths:
            _byte_limits(byte_range)
        found = await self._reading(self._read_many(paths)) if paths else []
        for (key, prototype, _), data in zip(requests, found, strict=True):
            yield key, None if data is None else prototype.buffer.from_bytes(data)

    async def exists(self, key: str) -> bool:
        # docstring inherited
        try:
            info = await self._on_fs_loop(self.fs._info(self._key(key)))
        except _MISSING:
            return False
        return bool(info["type"] == "file")

    async def getsize(self, key: str) -> int:
        # docstring inherited
        full = self._key(key)
        try:
            info = await self._on_fs_loop(self.fs._info(full))
        except _MISSING:
            raise FileNotFoundError(key) from None
        if info["type"] != "file":
            raise FileNotFoundError(key)
        return int(info["size"])

    async def getsize_prefix(self, prefix: str) -> int:
        # docstring inherited
        base = self._key(prefix, prefix=True)
        try:
            found = await self._on_fs_loop(self.fs._find(base, detail=True))
        except _MISSING:
            return 0
        return sum(int(info["size"]) for info in found.values() if info["type"] == "file")

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """:meth:`get` from synchronous code (zarr's ``SupportsGetSync``)."""
        return self._sync(self.get(key, prototype or default_buffer_prototype(), byte_range))

    # -------------------------------------------------------------- writes
    async def set(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(
                f"HCSStore.set(): `value` must be a Buffer, got {type(value).__name__} instead"
            )
        await self._on_fs_loop(self.fs._pipe_file(self._key(key), value.to_bytes()))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        full = self._key(key)
        try:
            await self._on_fs_loop(self.fs._pipe_file(full, value.to_bytes(), mode="create"))
        except FileExistsError:
            return

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        """Write many keys concurrently, in one hop to the filesystem's loop."""
        self._check_writable()
        items = [(self._key(key), value.to_bytes()) for key, value in values]
        if items:
            await self._on_fs_loop(self._pipe_many(items))

    async def _pipe_many(self, items: list[tuple[str, bytes]]) -> None:
        await asyncio.gather(*(self.fs._pipe_file(path, data) for path, data in items))

    async def delete(self, key: str) -> None:
        # docstring inherited
        self._check_writable()
        try:
            await self._on_fs_loop(self.fs._rm_file(self._key(key)))
        except FileNotFoundError:
            return

    async def delete_dir(self, prefix: str) -> None:
        # docstring inherited
        self._check_writable()
        base = self._key(prefix, prefix=True)
        await self._on_fs_loop(self._delete_below(base))

    async def _delete_below(self, base: str) -> None:
        """Delete every file below the node ``base`` (runs on the filesystem's loop)."""
        try:
            found = await self.fs._find(base)
        except _MISSING:
            return
        inside = f"{base}/" if base else ""
        doomed = [name for name in found if name.startswith(inside)]

        async def rm(name: str) -> None:
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: fine
                await self.fs._rm_file(name)

        await asyncio.gather(*(rm(name) for name in doomed))

    def set_sync(self, key: str, value: Buffer) -> None:
        """:meth:`set` from synchronous code (zarr's ``SupportsSetSync``)."""
        self._sync(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        """:meth:`delete` from synchronous code (zarr's ``SupportsDeleteSync``)."""
        self._sync(self.delete(key))

    # ------------------------------------------------------------- listing
    async def _files_below(self, base: str) -> list[str]:
        """Keys (relative to the store) of every file below the node ``base``."""
        try:
            names = await self._on_fs_loop(self.fs._find(base))
        except _MISSING:
            return []
        inside = f"{self.path}/" if self.path else ""
        return [self._relative(name) for name in names if name.startswith(inside)]

    async def list(self) -> AsyncIterator[str]:
        # docstring inherited
        for key in await self._files_below(self.path):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        directory = prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
        for key in await self._files_below(self._key(directory, prefix=True)):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        base = self._key(prefix, prefix=True)
        try:
            entries = await self._on_fs_loop(self.fs._ls(base, detail=True))
        except _MISSING:
            return
        for entry in entries:
            parent, _, name = entry["name"].rpartition("/")
            if name and parent == base:
                yield name


def _byte_limits(byte_range: ByteRequest | None) -> tuple[int | None, int | None]:
    """``(start, end)`` for the filesystem's ``_cat_file``; ValueError for anything else."""
    if byte_range is None:
        return None, None
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.start, byte_range.end
    if isinstance(byte_range, OffsetByteRequest):
        return byte_range.offset, None
    if isinstance(byte_range, SuffixByteRequest):
        # a suffix of 0 bytes is the empty range at the end, not the whole value
        return (-byte_range.suffix, None) if byte_range.suffix > 0 else (0, 0)
    raise ValueError(f"Unexpected byte_range, got {byte_range!r}")


def _empty_range(start: int | None, end: int | None) -> bool:
    """True when ``[start, end)`` is empty whatever the value's size."""
    return start is not None and end is not None and 0 <= end <= start


def open_store(
    url: str,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
    *,
    path: str = "",
    virtual_consolidated: bool | None = None,
) -> HCSStore:
    """An :class:`HCSStore` for the plate at ``url`` (directory, S3, ``.ozx`` ...).

    Parameters
    ----------
    url
        Where the plate is (``hcs::`` prefixes and chained URLs are accepted).
    mode
        ``"r"`` (read-only, default) or ``"r+"``/``"a"``/``"w"`` for a writable store.
    storage_options
        Options for the target filesystem.
    path
        Root the store at this node (``"A/1"`` for a well).
    virtual_consolidated
        See :class:`HCSStore` (default: on for read-only stores).
    """
    from hcsfs.filesystem import HCSFileSystem
    from hcsfs.resolve import split_hcs_url

    fs = HCSFileSystem(
        fo=split_hcs_url(url),
        target_options=storage_options or None,
        mode=mode,
        skip_instance_cache=True,
    )
    return HCSStore(fs, path, read_only=mode == "r", virtual_consolidated=virtual_consolidated)
