"""HCSStore: the zarr face of a plate (a zarr-python 3 ``Store``).

Every call runs on the plate filesystem's own event loop - whatever loop zarr calls
from - so an S3 session is never used from a foreign loop and chunk reads issued
together are in flight together. Metadata documents the index has already read are
served from its cache with no request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype

from hcsfs.keys import join_key, unsafe_key_reason

if TYPE_CHECKING:
    from hcsfs.filesystem import HCSFileSystem

__all__ = ["HCSStore"]

T = TypeVar("T")


class HCSStore(Store):
    """A zarr store over a plate's :class:`~hcsfs.filesystem.HCSFileSystem`.

    Parameters
    ----------
    fs
        The plate filesystem.
    path
        The node this store is rooted at (``""`` for the plate, ``"A/1"`` for a well).
    read_only
        Refuse writes (always true for a read-only filesystem or an ``.ozx``).
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_partial_writes: bool = False  # type: ignore[assignment]
    supports_listing: bool = True

    def __init__(self, fs: HCSFileSystem, path: str = "", *, read_only: bool = True) -> None:
        super().__init__(read_only=read_only or fs.read_only)
        self.fs = fs
        self.path = path.strip("/")

    def __repr__(self) -> str:
        return f"HCSStore({self.fs.url!r}, path={self.path!r}, read_only={self.read_only})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HCSStore)
            and self.fs == other.fs
            and self.path == other.path
            and self.read_only == other.read_only
        )

    def __hash__(self) -> int:
        return hash((self.fs._fs_token, self.path, self.read_only))

    def __getstate__(self) -> dict[str, Any]:
        return {"fs": self.fs, "path": self.path, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["fs"], state["path"], read_only=state["read_only"])  # type: ignore[misc]

    def with_read_only(self, read_only: bool = False) -> HCSStore:
        # docstring inherited
        return HCSStore(self.fs, self.path, read_only=read_only)

    # ------------------------------------------------------------ plumbing
    async def _on_fs_loop(self, coro: Awaitable[T]) -> T:
        """Await ``coro`` on the filesystem's loop, from whatever loop we are on."""
        fs_loop = self.fs.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            running = None
        if running is fs_loop:
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, fs_loop)  # type: ignore[arg-type]
        return await asyncio.wrap_future(future)

    def _key(self, key: str) -> str:
        reason = unsafe_key_reason(key)
        if reason is not None:
            raise ValueError(f"{key!r}: {reason}; zarr keys must stay inside the plate")
        return join_key(self.path, key)

    # --------------------------------------------------------------- reads
    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        # docstring inherited
        full = self._key(key)
        start, end = _byte_limits(byte_range)
        try:
            data = await self._on_fs_loop(self.fs._cat_file(full, start=start, end=end))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        # docstring inherited
        return list(
            await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        # docstring inherited
        full = self._key(key)
        try:
            info = await self._on_fs_loop(self.fs._info(full))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return bool(info["type"] == "file")

    async def getsize(self, key: str) -> int:
        # docstring inherited
        full = self._key(key)
        info = await self._on_fs_loop(self.fs._info(full))
        if info["type"] != "file":
            raise FileNotFoundError(full)
        return int(info["size"])

    # -------------------------------------------------------------- writes
    async def set(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"HCSStore.set(): `value` must be a Buffer, got {type(value).__name__}")
        full = self._key(key)
        await self._on_fs_loop(self.fs._pipe_file(full, value.to_bytes()))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        # docstring inherited
        self._check_writable()
        full = self._key(key)
        try:
            await self._on_fs_loop(self.fs._rm_file(full))
        except FileNotFoundError:
            return

    async def delete_dir(self, prefix: str) -> None:
        # docstring inherited
        self._check_writable()
        prefix = prefix.rstrip("/")
        keys = [k async for k in self.list_prefix(f"{prefix}/" if prefix else "")]
        await asyncio.gather(*(self.delete(k) for k in keys))

    # ------------------------------------------------------------- listing
    async def _find_files(self, prefix: str) -> list[str]:
        base = join_key(self.path, prefix.rstrip("/"))
        try:
            names = await self._on_fs_loop(self.fs._find(base))
        except FileNotFoundError:
            return []
        strip = len(self.path) + 1 if self.path else 0
        return [name[strip:] for name in names]

    async def list(self) -> AsyncIterator[str]:
        # docstring inherited
        for key in await self._find_files(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        directory = prefix.rpartition("/")[0] if not prefix.endswith("/") else prefix
        for key in await self._find_files(directory):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        base = join_key(self.path, prefix.rstrip("/"))
        try:
            entries = await self._on_fs_loop(self.fs._ls(base, detail=True))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = entry["name"].rpartition("/")[2]
            if name:
                yield name

    async def getsize_prefix(self, prefix: str) -> int:
        # docstring inherited
        base = join_key(self.path, prefix.rstrip("/"))
        try:
            found = await self._on_fs_loop(self.fs._find(base, detail=True))
        except FileNotFoundError:
            return 0
        return sum(int(info["size"]) for info in found.values())


def _byte_limits(byte_range: ByteRequest | None) -> tuple[int | None, int | None]:
    if byte_range is None:
        return None, None
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.start, byte_range.end
    if isinstance(byte_range, OffsetByteRequest):
        return byte_range.offset, None
    if isinstance(byte_range, SuffixByteRequest):
        return -byte_range.suffix, None
    raise TypeError(f"unexpected byte request {byte_range!r}")

