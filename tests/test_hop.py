"""hcsfs.hop.run_batched: the calls of one loop turn cross to the target loop together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hcsfs import hop


@pytest.fixture
def target() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own thread, like fsspec's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _count_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches started on the target loop (one per trip)."""
    trips = [0]
    real = hop._start

    def counting(loop: asyncio.AbstractEventLoop, batch: list[Any]) -> None:
        trips[0] += 1
        real(loop, batch)

    monkeypatch.setattr(hop, "_start", counting)
    return trips


def test_calls_of_one_turn_make_one_trip_and_run_on_the_target(
    target: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _count_trips(monkeypatch)

    async def where(i: int) -> tuple[int, bool]:
        return i, asyncio.get_running_loop() is target

    async def main() -> list[tuple[int, bool]]:
        return await asyncio.gather(*(hop.run_batched(where(i), target) for i in range(10)))

    assert asyncio.run(main()) == [(i, True) for i in range(10)]
    assert trips[0] == 1


def test_calls_of_later_turns_make_their_own_trips(
    target: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _count_trips(monkeypatch)

    async def value(i: int) -> int:
        return i

    async def main() -> list[int]:
        return [await hop.run_batched(value(i), target) for i in range(3)]

    assert asyncio.run(main()) == [0, 1, 2]
    assert trips[0] == 3


def test_each_caller_gets_its_own_error(target: asyncio.AbstractEventLoop) -> None:
    async def maybe_fail(i: int) -> int:
        if i % 2:
            raise FileNotFoundError(f"key {i}")
        return i

    async def main() -> list[Any]:
        calls = (hop.run_batched(maybe_fail(i), target) for i in range(4))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], FileNotFoundError) and str(results[1]) == "key 1"
    assert isinstance(results[3], FileNotFoundError) and str(results[3]) == "key 3"


def test_a_cancelled_caller_leaves_the_others_their_results(
    target: asyncio.AbstractEventLoop,
) -> None:
    async def slow(i: int) -> int:
        await asyncio.sleep(0.05)
        return i

    async def main() -> tuple[bool, int]:
        doomed = asyncio.ensure_future(hop.run_batched(slow(0), target))
        kept = asyncio.ensure_future(hop.run_batched(slow(1), target))
        await asyncio.sleep(0.01)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return doomed.cancelled(), await kept

    assert asyncio.run(main()) == (True, 1)


def test_on_the_target_loop_itself_the_call_is_awaited_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trips = _count_trips(monkeypatch)

    async def main() -> int:
        async def one() -> int:
            return 1

        return await hop.run_batched(one(), asyncio.get_running_loop())

    assert asyncio.run(main()) == 1
    assert trips[0] == 0


def test_a_fast_call_is_answered_before_a_slow_one_of_its_batch_ends(
    target: asyncio.AbstractEventLoop,
) -> None:
    async def after(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async def main() -> list[float]:
        finished: list[float] = []

        async def call(seconds: float) -> None:
            finished.append(await hop.run_batched(after(seconds), target))

        await asyncio.gather(call(0.5), call(0.0))
        return finished

    assert asyncio.run(main()) == [0.0, 0.5]


def test_cancelling_a_caller_cancels_its_coroutine(target: asyncio.AbstractEventLoop) -> None:
    started = threading.Event()
    stopped = threading.Event()

    async def endless() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    async def main() -> None:
        waiting = asyncio.ensure_future(hop.run_batched(endless(), target))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    assert stopped.wait(5)


def test_a_closed_target_loop_fails_every_caller() -> None:
    closed = asyncio.new_event_loop()
    closed.close()

    async def one() -> int:
        return 1

    async def main() -> list[Any]:
        calls = (hop.run_batched(one(), closed) for _ in range(2))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
