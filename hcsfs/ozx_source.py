"""OzxSource: a plate inside an RFC-9 ``.ozx`` archive, read in place with ranged reads.

The archive is opened on first use (one suffix read of the tail, at most one more
for the central directory); after that every member read is one ranged read, and the
member table answers listings and sizes with no request at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import fsspec

from hcsfs.keys import join_key, normalize_key
from hcsfs.ozx import OzxArchive, RangeFetcher
from hcsfs.source import Entry, FsspecSource, Source

__all__ = ["OzxSource", "fsspec_fetcher", "local_fetcher"]


INLINE_READ_BYTES = 1 << 20


class _LocalArchive:
    """One open descriptor on a local archive, read with ``os.pread`` (no shared offset).

    Written by hand because it is four system calls: small reads run inline (they come
    from the page cache in microseconds), large ones in a thread. The descriptor pins
    the file that was opened, so an archive replaced on disk is read consistently
    until the plate is reopened.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            if os.path.isdir(self.path):
                raise FileNotFoundError(f"{self.path}: is a directory, not an .ozx archive")
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self._size = os.fstat(fd).st_size
            self._fd = fd
        return self._fd

    def read(self, start: int, end: int | None) -> bytes:
        fd = self._open()
        lo = max(0, self._size + start) if start < 0 else start
        hi = self._size if end is None or start < 0 else min(end, self._size)
        return os.pread(fd, max(0, hi - lo), lo)

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def local_fetcher(path: str) -> RangeFetcher:
    """A range fetcher over a local file."""
    archive = _LocalArchive(path)

    async def fetch(start: int, end: int | None) -> bytes:
        small = start < 0 and -start <= INLINE_READ_BYTES
        small = small or (end is not None and start >= 0 and end - start <= INLINE_READ_BYTES)
        if small:
            return archive.read(start, end)
        return await asyncio.to_thread(archive.read, start, end)

    return fetch


def fsspec_fetcher(fs: fsspec.AbstractFileSystem, path: str) -> RangeFetcher:
    """A range fetcher over a file on any fsspec filesystem (one ranged GET per call).

    Reads go through an :class:`~hcsfs.source.FsspecSource` on the archive's folder,
    so they share its concurrency limit, retry policy and error naming.
    """
    folder, _, name = path.rstrip("/").rpartition("/")
    source = FsspecSource(fs, folder, read_only=True)

    async def fetch(start: int, end: int | None) -> bytes:
        return await source.get(name, start, end)

    return fetch


class OzxSource(Source):
    """A read-only plate inside an ``.ozx`` archive."""

    can_list = True
    read_only = True

    def __init__(self, fetch: RangeFetcher, *, url: str, **archive_options: Any) -> None:
        self.url = url
        self._fetch = fetch
        self._options = archive_options
        self._archive: OzxArchive | None = None
        self._opening: dict[int, asyncio.Lock] = {}

    async def archive(self) -> OzxArchive:
        """The opened archive (opened on first call)."""
        if self._archive is None:
            lock = self._opening.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
            async with lock:
                if self._archive is None:
                    try:
                        self._archive = await OzxArchive.open(
                            self._fetch, archive=self.url, **self._options
                        )
                    except FileNotFoundError as exc:
                        raise FileNotFoundError(f"{self.url}: no such archive") from exc
        return self._archive

    async def known_sizes(self) -> dict[str, int] | None:
        # docstring inherited
        archive = await self.archive()
        return {name: m.size for name, m in archive.members.items()}

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        # docstring inherited
        key = normalize_key(key)
        archive = await self.archive()
        if key not in archive.members:
            if key in archive.directories or key == "":
                raise IsADirectoryError(key)
            raise FileNotFoundError(key)
        try:
            if start is None and end is None:
                return await archive.read(key)
            size = archive.members[key].size
            if start is not None and start < 0 and end is None:
                return await archive.read_range(key, start)
            lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
            hi = None if end is None else (max(0, size + end) if end < 0 else end)
            return await archive.read_range(key, lo, hi)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except OSError as exc:
            raise _in_entry(exc, self.url, key) from exc

    async def get_many(self, keys: Any) -> dict[str, bytes | None]:
        # docstring inherited
        keys = [normalize_key(k) for k in keys]
        archive = await self.archive()
        present = [k for k in keys if k in archive.members]
        found = await archive.read_span(present) if present else {}
        return {k: found.get(k) for k in keys}

    async def size(self, key: str) -> int:
        # docstring inherited
        key = normalize_key(key)
        archive = await self.archive()
        if key in archive.members:
            return archive.members[key].size
        if key in archive.directories or key == "":
            raise IsADirectoryError(key)
        raise FileNotFoundError(key)

    async def ls(self, prefix: str) -> list[Entry]:
        # docstring inherited
        prefix = normalize_key(prefix)
        archive = await self.archive()
        if prefix and prefix not in archive.directories:
            raise FileNotFoundError(prefix)
        base = f"{prefix}/" if prefix else ""
        entries: dict[str, Entry] = {}
        for name in archive.directories:
            if name.startswith(base) and "/" not in name[len(base) :]:
                entries[name] = {"name": name, "type": "directory", "size": 0}
        for name, member in archive.members.items():
            if name.startswith(base) and "/" not in name[len(base) :]:
                entries[name] = {"name": name, "type": "file", "size": member.size}
        return sorted(entries.values(), key=lambda e: e["name"])

    async def find(self, prefix: str) -> list[Entry]:
        # docstring inherited
        prefix = normalize_key(prefix)
        archive = await self.archive()
        base = f"{prefix}/" if prefix else ""
        return sorted(
            (
                {"name": name, "type": "file", "size": m.size}
                for name, m in archive.members.items()
                if name.startswith(base) or name == prefix
            ),
            key=lambda e: e["name"],
        )

    def member_key(self, *parts: str) -> str:
        """Join parts into a member name."""
        return join_key(*parts)


def _in_entry(exc: OSError, archive: str, key: str) -> OSError:
    """``exc`` re-raised naming the archive and the entry being read."""
    detail = exc.strerror or str(exc) or type(exc).__name__
    if archive in detail:
        detail = detail.split(": ", 1)[-1] if detail.startswith(archive) else detail
    named = OSError(exc.errno, f"{archive}: reading entry {key!r}: {detail}")
    return named
