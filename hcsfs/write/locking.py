"""How concurrent writers of one plate agree on its metadata documents.

Every change to a shared metadata document (a well's field list, the plate's well
list, the root's consolidated metadata) is a read-modify-write made safe by one of:

``"conditional"`` (S3)
    Optimistic compare-and-swap on the server: read the document with its ETag,
    change it, ``PutObject`` with ``If-Match: <etag>`` (``If-None-Match: *`` for a
    new document). A writer that lost the race gets 412 ``PreconditionFailed`` (or
    409 ``ConditionalRequestConflict``) and retries with jittered exponential
    backoff on the fresh document. No lock objects, nothing to clean up after a
    crash, works across threads, processes and machines.
``"flock"`` (local directories)
    An exclusive ``fcntl.flock`` on ``.hcsfs.lock`` in the plate directory, held for
    the read-modify-write(s) and released (and the file removed) afterwards. The
    kernel drops the lock of a killed process, so a crash never wedges the plate.
    Works across threads and processes on one machine (and on network filesystems
    whose ``flock`` is coherent).
``"process"`` (memory and other fsspec targets)
    A lock shared by the threads of this process. Writers in several processes
    to such a target are not protected (memory is per process anyway).

Waiting is polled with ``asyncio.sleep`` rather than blocking, so a writer waiting
for the lock never stalls the event loop the lock holder needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hcsfs.index import dumps_doc
from hcsfs.source import LocalSource, Source
from hcsfs.zarrmeta import load_json

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "DocWriter", "Unchanged", "backoff_delays"]

#: The lock file of a local plate (exists only while a writer holds it).
LOCK_NAME = ".hcsfs.lock"
#: Give up on a contended document after this long.
DEFAULT_TIMEOUT = 300.0

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


class Unchanged(Exception):
    """Raised by a change function to say the document needs no write."""


def backoff_delays(base: float = 0.005, cap: float = 0.5) -> Any:
    """Jittered exponential delays: ``base * 2**n`` capped at ``cap``, times 0.5-1.5."""
    attempt = 0
    while True:
        delay = min(cap, base * 2**attempt)
        yield delay * (0.5 + random.random())
        attempt += 1


def _process_lock(url: str) -> threading.Lock:
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.get(url)
        if lock is None:
            lock = _PROCESS_LOCKS[url] = threading.Lock()
        return lock


class DocWriter:
    """Read-modify-write of a plate's metadata documents, safe with concurrent writers.

    Parameters
    ----------
    source
        The plate's byte source (must be writable).
    invalidate
        Called with every key written or deleted (the filesystem's cache invalidation).
    timeout
        Seconds to keep retrying (or waiting for the lock) before giving up.
    """

    def __init__(
        self,
        source: Source,
        invalidate: Callable[[str], None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.source = source
        self.invalidate = invalidate
        self.timeout = timeout
        if source.supports_conditional_write:
            self.mechanism = "conditional"
        elif isinstance(source, LocalSource) and fcntl is not None:
            self.mechanism = "flock"
        else:
            self.mechanism = "process"
        self._held = 0  # re-entrancy depth of locked() in this task chain

    # ------------------------------------------------------------------ locking
    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the plate's metadata lock (a no-op with conditional writes).

        Re-entrant within one writer, so a caller may group several updates.
        """
        if self.mechanism == "conditional" or self._held:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        release = await self._acquire()
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            release()

    async def _acquire(self) -> Callable[[], None]:
        deadline = time.monotonic() + self.timeout
        delays = backoff_delays(0.001, 0.05)
        while True:
            release = self._try_acquire()
            if release is not None:
                return release
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.source.url}: timed out waiting for the metadata lock")
            await asyncio.sleep(next(delays))

    def _try_acquire(self) -> Callable[[], None] | None:
        if self.mechanism == "process":
            lock = _process_lock(self.source.url)
            return lock.release if lock.acquire(blocking=False) else None
        assert isinstance(self.source, LocalSource)
        os.makedirs(self.source.root, exist_ok=True)
        path = os.path.join(self.source.root, LOCK_NAME)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder before us removed the file: lock the new one
            os.close(fd)
            return None

        def release() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while still holding it: waiters re-check the inode
            os.close(fd)

        return release

    # ------------------------------------------------------------------ documents
    async def read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """The parsed document at ``key`` (fresh from storage) and its version token."""
        raw, token = await self.source.get_versioned(key)
        if raw is None:
            return None, None
        return load_json(raw, path=f"{self.source.url}/{key}"), token

    async def write(self, key: str, doc: dict[str, Any], token: str | None) -> bool:
        """Write ``doc`` if ``key`` is unchanged since ``token`` (always, under the lock)."""
        data = dumps_doc(doc)
        if self.mechanism == "conditional":
            ok = await self.source.put_if(key, data, token)
        else:
            await self.source.put(key, data)
            ok = True
        self.invalidate(key)
        return ok

    async def update(
        self,
        key: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """Apply ``change`` to the document at ``key`` atomically; return what was written.

        ``change`` gets the current document (``None`` when there is none) - a fresh copy
        on every attempt, so it may mutate it - and returns the new one, or raises
        :class:`Unchanged` when nothing needs writing (then ``None`` is returned). Any
        other exception aborts the update with nothing written.
        """
        deadline = time.monotonic() + self.timeout
        delays = backoff_delays()
        async with self.locked():
            while True:
                current, token = await self.read(key)
                try:
                    new = change(current)
                except Unchanged:
                    return None
                if await self.write(key, new, token):
                    return new
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.source.url}/{key}: too much contention, gave up")
                await asyncio.sleep(next(delays))

    async def delete(self, key: str) -> None:
        """Delete ``key`` (missing is fine)."""
        await self.source.delete(key)
        self.invalidate(key)
