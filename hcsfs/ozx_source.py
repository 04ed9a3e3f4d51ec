"""OzxSource: a plate inside an RFC-9 ``.ozx`` archive, read in place with ranged reads.

The archive is opened on first use (one suffix read of the tail, at most one more
for the central directory); after that every member read is at most one ranged read
(reads of neighbouring members that are in flight together share one), and the
member table answers listings and sizes with no request at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any

import fsspec

from hcsfs.keys import join_key, normalize_key
from hcsfs.ozx import OzxArchive, RangeFetcher
from hcsfs.source import Entry, FsspecSource, Source

__all__ = ["CoalescingFetcher", "OzxSource", "fsspec_fetcher", "local_fetcher"]


INLINE_READ_BYTES = 1 << 20
#: Reads of a remote archive this close together share a request (object_store's choice).
REMOTE_MERGE_GAP = 1 << 20
#: ...as long as the shared request stays this small.
REMOTE_MERGE_SPAN = 16 << 20


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
        self._opening = threading.Lock()  # reads may come from several loops' threads

    def _open(self) -> int:
        if self._fd is None:
            with self._opening:
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


class _LocalFetcher:
    """A range fetcher over a local file: small reads inline, large ones in a thread."""

    #: A request is one system call here, so :class:`OzxSource` has the archive read a
    #: member's header apart from its data rather than copy the data out of a buffer.
    requests_are_cheap = True
    #: Reads are ``os.pread`` inline or in the default thread pool: any loop may await them.
    loop_free = True

    def __init__(self, path: str) -> None:
        self._file = _LocalArchive(path)

    async def __call__(self, start: int, end: int | None) -> bytes:
        if end is not None and start >= 0 and end - start <= INLINE_READ_BYTES:
            return self._file.read(start, end)
        if end is None and -INLINE_READ_BYTES <= start < 0:
            return self._file.read(start, end)
        return await asyncio.to_thread(self._file.read, start, end)


def local_fetcher(path: str) -> RangeFetcher:
    """A range fetcher over a local file."""
    return _LocalFetcher(path)


def fsspec_fetcher(fs: fsspec.AbstractFileSystem, path: str) -> RangeFetcher:
    """A range fetcher over a file on any fsspec filesystem (at most one ranged GET per call).

    Reads go through an :class:`~hcsfs.source.FsspecSource` on the archive's folder,
    so they share its concurrency limit, retry policy and error naming; reads of
    nearby ranges in flight together share one GET (:class:`CoalescingFetcher`).
    """
    folder, _, name = path.rstrip("/").rpartition("/")
    source = FsspecSource(fs, folder, read_only=True)

    async def fetch(start: int, end: int | None) -> bytes:
        return await source.get(name, start, end)

    return CoalescingFetcher(fetch, max_gap=REMOTE_MERGE_GAP, max_span=REMOTE_MERGE_SPAN)


@dataclass(eq=False, slots=True)
class _Wanted:
    """One read waiting in a :class:`CoalescingFetcher`."""

    start: int
    end: int
    done: asyncio.Future[bytes]
    request: _Request | None = None


@dataclass(eq=False, slots=True)
class _Request:
    """One request serving several reads."""

    wanted: list[_Wanted]
    task: asyncio.Task[None] | None = None


class CoalescingFetcher:
    """A range fetcher that serves concurrent reads of nearby ranges with one request.

    Reads asked for while the event loop runs one turn wait until its next turn
    (``call_soon``, no timer, so a lone read goes out at once); then they are sorted
    and merged while the gap between neighbours is at most ``max_gap`` bytes and the
    merged range at most ``max_span`` bytes. Each read gets exactly its bytes, or the
    shared request's error; there are never more requests than reads. Written by
    hand because zarr asks for one chunk per coroutine, never for a list of ranges
    (which is what ``fsspec.utils.merge_offset_ranges`` merges).

    Parameters
    ----------
    fetch
        The fetcher that makes the requests.
    max_gap
        Largest gap, in bytes, between two ranges that one request still covers.
    max_span
        Largest merged request in bytes; a longer read always goes out alone.
    """

    def __init__(self, fetch: RangeFetcher, *, max_gap: int, max_span: int) -> None:
        self._fetch = fetch
        self.max_gap = max_gap
        self.max_span = max_span
        self._pending: dict[asyncio.AbstractEventLoop, list[_Wanted]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, start: int, end: int | None) -> bytes:
        if start < 0 or end is None or end - start >= self.max_span:
            return await self._fetch(start, end)
        loop = asyncio.get_running_loop()
        wanted = _Wanted(start, end, loop.create_future())
        batch = self._pending.get(loop)
        if batch is None:
            batch = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        batch.append(wanted)
        try:
            return await wanted.done
        except asyncio.CancelledError:
            request = wanted.request
            if request and request.task and all(w.done.cancelled() for w in request.wanted):
                request.task.cancel()  # nobody waits for it any more
            raise

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Merge the reads asked for during the last turn and start their requests."""
        waiting = [w for w in self._pending.pop(loop) if not w.done.done()]
        waiting.sort(key=lambda w: w.start)
        group: list[_Wanted] = []
        end = 0
        for wanted in waiting:
            if group and (
                wanted.start - end > self.max_gap
                or max(end, wanted.end) - group[0].start > self.max_span
            ):
                self._start(loop, _Request(group))
                group = []
            end = max(end, wanted.end) if group else wanted.end
            group.append(wanted)
        if group:
            self._start(loop, _Request(group))

    def _start(self, loop: asyncio.AbstractEventLoop, request: _Request) -> None:
        for wanted in request.wanted:
            wanted.request = request
        request.task = task = loop.create_task(self._serve(request.wanted))
        self._running.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._running.discard)

    async def _serve(self, group: list[_Wanted]) -> None:
        """One request for the whole group; each read gets its slice, or the error."""
        start = group[0].start
        end = max(w.end for w in group)
        try:
            data = await self._fetch(start, end)
        except asyncio.CancelledError:
            for wanted in group:
                wanted.done.cancel()
            raise
        except Exception as exc:
            for wanted in group:
                if not wanted.done.done():
                    wanted.done.set_exception(exc)
            return
        for wanted in group:
            if not wanted.done.done():
                lo, hi = wanted.start - start, wanted.end - start
                wanted.done.set_result(data if (lo, hi) == (0, len(data)) else data[lo:hi])


class OzxSource(Source):
    """A read-only plate inside an ``.ozx`` archive.

    The fetcher may carry two hints, both set by :func:`local_fetcher`:
    ``requests_are_cheap`` (the archive reads a member's local header apart from its
    data, so the data is never copied) and ``loop_free`` (its reads may be awaited on
    any event loop, so the zarr store reads without hopping to fsspec's loop).
    """

    can_list = True
    read_only = True

    def __init__(self, fetch: RangeFetcher, *, url: str, **archive_options: Any) -> None:
        self.url = url
        self._fetch = fetch
        self._options = archive_options
        self.loop_free_reads = bool(getattr(fetch, "loop_free", False))
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
                            self._fetch, archive=self.url, **self._archive_options()
                        )
                    except FileNotFoundError as exc:
                        raise FileNotFoundError(f"{self.url}: no such archive") from exc
        return self._archive

    def _archive_options(self) -> dict[str, Any]:
        cheap = bool(getattr(self._fetch, "requests_are_cheap", False))
        return {"separate_header_reads": cheap, **self._options}

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
