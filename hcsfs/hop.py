"""Carry coroutines from the caller's event loop to the filesystem's, one trip per turn.

zarr asks for chunks from its own event loop, a few at a time, while the plate's
filesystem (an s3fs session, an archive) lives on fsspec's loop. Sending each read
across on its own spreads a burst of reads over several turns of the target loop, so
reads that could share a request (the neighbouring members of an ``.ozx``) go out one
by one. :func:`run_batched` queues every coroutine submitted during one turn of the
calling loop and starts them together on the target loop, in one turn; each result
comes back on its own as soon as it is ready, so a slow read never holds back a fast
one (zarr refills its window of reads per finished read). A lone call waits one loop
turn, no timer. Cancelling a caller cancels its coroutine.

Hand-written: asyncio has no cross-loop batching primitive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_batched"]

T = TypeVar("T")


class _Call:
    """One coroutine on its way to the target loop, and the future its caller awaits."""

    __slots__ = ("cancelled", "coro", "future", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any], future: asyncio.Future[Any]) -> None:
        self.coro = coro
        self.future = future
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """Runs on the target loop: stop the coroutine, started or not."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


_Key = tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]
#: Pending batches by (calling loop, target loop); each is touched only from the
#: calling loop's thread, and removed when it is sent.
_pending: dict[_Key, list[_Call]] = {}


async def run_batched(coro: Coroutine[Any, Any, T], target: asyncio.AbstractEventLoop) -> T:
    """Await ``coro`` on ``target``, started together with this turn's other calls."""
    loop = asyncio.get_running_loop()
    if loop is target:
        return await coro
    call = _Call(coro, loop.create_future())
    key = (loop, target)
    batch = _pending.get(key)
    if batch is None:
        batch = _pending[key] = []
        loop.call_soon(_send, key)
    batch.append(call)
    try:
        result: T = await call.future
    except asyncio.CancelledError:
        if not target.is_closed():
            target.call_soon_threadsafe(call.cancel)
        raise
    return result


def _send(key: _Key) -> None:
    loop, target = key
    batch = _pending.pop(key)
    try:
        target.call_soon_threadsafe(_start, loop, batch)
    except RuntimeError as exc:  # the target loop is closed
        for call in batch:
            call.coro.close()
            if not call.future.done():
                call.future.set_exception(exc)


def _start(loop: asyncio.AbstractEventLoop, batch: list[_Call]) -> None:
    """Runs on the target loop: start every call of the batch in this turn."""
    for call in batch:
        if call.cancelled:
            call.coro.close()
            continue
        call.task = asyncio.ensure_future(call.coro)
        call.task.add_done_callback(functools.partial(_finished, loop, call))


def _finished(loop: asyncio.AbstractEventLoop, call: _Call, task: asyncio.Task[Any]) -> None:
    """Runs on the target loop: hand the outcome back to the caller's loop."""
    with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody to tell
        loop.call_soon_threadsafe(_settle, call.future, task)


def _settle(future: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    """Runs on the caller's loop: resolve its future as the task ended."""
    if future.done():  # its caller gave up meanwhile
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        future.set_result(task.result())
