"""Carry coroutines from the caller's event loop to the filesystem's, one trip per turn.

zarr asks for chunks from its own event loop, a few at a time, while the plate's
filesystem (an s3fs session, an archive) lives on fsspec's loop. Sending each read
across on its own costs two thread switches per chunk and spreads a burst of reads
over several turns of the target loop, so reads that could share a request (the
neighbouring members of an ``.ozx``) go out one by one. :func:`run_batched` queues
every coroutine submitted during one turn of the calling loop and sends them over
together on the next turn: one trip, and they start on the target loop in the same
turn. A lone call waits one loop turn, no timer.

Hand-written: asyncio has no cross-loop batching primitive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_batched"]

T = TypeVar("T")

_Batch = list[tuple[Coroutine[Any, Any, Any], "asyncio.Future[Any]"]]
#: Pending batches by (calling loop, target loop); each is touched only from the
#: calling loop's thread, and removed when it is sent.
_pending: dict[tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop], _Batch] = {}


async def run_batched(coro: Coroutine[Any, Any, T], target: asyncio.AbstractEventLoop) -> T:
    """Await ``coro`` on ``target``, sent together with this turn's other calls."""
    loop = asyncio.get_running_loop()
    if loop is target:
        return await coro
    future: asyncio.Future[T] = loop.create_future()
    key = (loop, target)
    batch = _pending.get(key)
    if batch is None:
        batch = _pending[key] = []
        loop.call_soon(_send, key)
    batch.append((coro, future))
    return await future


def _send(key: tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]) -> None:
    loop, target = key
    batch = _pending.pop(key)

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(coro for coro, _ in batch), return_exceptions=True)

    together = run_all()
    try:
        sent = asyncio.run_coroutine_threadsafe(together, target)
    except RuntimeError as exc:  # the target loop is closed
        together.close()
        for coro, future in batch:
            coro.close()
            if not future.done():
                future.set_exception(exc)
        return

    def finished(done: concurrent.futures.Future[list[Any]]) -> None:
        loop.call_soon_threadsafe(_deliver, batch, done)

    sent.add_done_callback(finished)


def _deliver(batch: _Batch, done: concurrent.futures.Future[list[Any]]) -> None:
    try:
        results = done.result()
    except BaseException as exc:  # the whole trip failed or was cancelled
        results = [exc] * len(batch)
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # its caller gave up (cancelled) meanwhile
            continue
        if isinstance(result, asyncio.CancelledError | concurrent.futures.CancelledError):
            future.cancel()
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
