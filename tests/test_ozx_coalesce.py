"""Coalesced and copy-free member reads of ``.ozx`` archives.

Remote archives: member reads in flight together whose ranges lie close share one
ranged request (:class:`hcsfs.ozx_source.CoalescingFetcher`), never delaying a lone
read and never making more requests than reads. Local archives: a member's header is
read apart from its data, so the data is handed on without a copy. Either way every
member is still checked on its own (sizes, CRC, local header).
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
from typing import Any

import fsspec
import numpy as np
import pytest

import hcsfs
from hcsfs.errors import ArchiveError
from hcsfs.ozx import OzxArchive, pack_stream
from hcsfs.ozx.testing import MemoryFetcher
from hcsfs.ozx_source import CoalescingFetcher, OzxSource, local_fetcher
from hcsfs.sample import expected_field
from hcsfs.testing import CountingS3Server
from tests.test_ozx_hostile import E, craft

pytestmark = pytest.mark.timeout(60)

MEMBERS = {f"A/0/c/{i}": bytes([i]) * (1000 + 37 * i) for i in range(8)}


def packed(items: dict[str, bytes] = MEMBERS) -> bytes:
    out = io.BytesIO()
    pack_stream(items.items(), out)
    return out.getvalue()


def coalescing(data: bytes, **limits: int) -> tuple[CoalescingFetcher, MemoryFetcher]:
    inner = MemoryFetcher(data)
    options = {"max_gap": 1 << 20, "max_span": 16 << 20, **limits}
    return CoalescingFetcher(inner, **options), inner


async def opened(data: bytes, **limits: int) -> tuple[OzxArchive, MemoryFetcher]:
    fetch, inner = coalescing(data, **limits)
    archive = await OzxArchive.open(fetch, archive="mem.ozx")
    inner.reset()
    return archive, inner


class Failing:
    """A fetcher that answers the tail read, then fails every read with ``error``."""

    def __init__(self, data: bytes, error: Exception) -> None:
        self.inner = MemoryFetcher(data)
        self.error = error

    async def __call__(self, start: int, end: int | None) -> bytes:
        if start >= 0:
            self.inner.calls.append((start, end))
            raise self.error
        return await self.inner(start, end)


# ------------------------------------------------------------------ merging
async def test_concurrent_reads_of_adjacent_members_share_one_request() -> None:
    archive, inner = await opened(packed())
    got = await archive.read_many(MEMBERS)
    assert got == MEMBERS
    assert inner.count == 1
    start, end = inner.calls[0]
    assert end is not None and end - start < len(packed())  # the members, not the archive


async def test_reads_farther_apart_than_the_gap_are_separate_requests() -> None:
    fetch, inner = coalescing(bytes(range(256)) * 4, max_gap=50)
    got = await asyncio.gather(fetch(0, 10), fetch(10, 20), fetch(60, 70), fetch(200, 210))
    assert got == [
        bytes(range(0, 10)),
        bytes(range(10, 20)),
        bytes(range(60, 70)),
        bytes(range(200, 210)),
    ]
    assert sorted(inner.calls) == [(0, 70), (200, 210)]


async def test_merged_requests_stay_within_the_span_and_long_reads_go_alone() -> None:
    data = bytes(range(256)) * 4
    fetch, inner = coalescing(data, max_gap=100, max_span=25)
    got = await asyncio.gather(fetch(0, 10), fetch(10, 20), fetch(20, 30), fetch(100, 400))
    assert got == [data[0:10], data[10:20], data[20:30], data[100:400]]
    assert sorted(inner.calls) == [(0, 20), (20, 30), (100, 400)]


async def test_overlapping_and_repeated_ranges_each_get_their_bytes() -> None:
    data = bytes(range(200))
    fetch, inner = coalescing(data)
    got = await asyncio.gather(fetch(5, 50), fetch(5, 50), fetch(40, 60), fetch(10, 20))
    assert got == [data[5:50], data[5:50], data[40:60], data[10:20]]
    assert inner.calls == [(5, 60)]


async def test_suffix_reads_are_never_merged() -> None:
    data = bytes(range(200))
    fetch, inner = coalescing(data)
    assert await asyncio.gather(fetch(-10, None), fetch(180, 190)) == [data[-10:], data[180:190]]
    assert sorted(inner.calls, key=str) == [(-10, None), (180, 190)]


async def test_a_lone_read_goes_out_on_the_next_loop_turn_with_no_timer() -> None:
    fetch, inner = coalescing(bytes(range(100)))
    task = asyncio.get_running_loop().create_task(fetch(10, 20))
    turns = 0
    while not task.done():
        await asyncio.sleep(0)  # never advances a timer: only loop turns pass
        turns += 1
        assert turns <= 5, "a lone read waited for company"
    assert task.result() == bytes(range(10, 20))
    assert inner.calls == [(10, 20)], "a lone read asks for exactly its range"


# ------------------------------------------------------------------ errors
async def test_a_failing_merged_read_names_each_member_in_its_error() -> None:
    error = OSError(5, "connection reset")
    failing = Failing(packed(), error)
    source = OzxSource(
        CoalescingFetcher(failing, max_gap=1 << 20, max_span=16 << 20), url="mem.ozx"
    )
    await source.archive()
    failing.inner.reset()
    names = list(MEMBERS)[2:6]
    results = await asyncio.gather(*(source.get(n) for n in names), return_exceptions=True)
    assert len(failing.inner.calls) == 1, "the four reads shared one request"
    for name, result in zip(names, results, strict=True):
        assert isinstance(result, OSError)
        assert f"reading entry {name!r}" in str(result)
        assert "connection reset" in str(result)
        assert result.__cause__ is error


async def test_corruption_in_one_member_is_reported_for_that_member_only() -> None:
    data = bytearray(packed())
    victim = "A/0/c/3"
    data[data.find(MEMBERS[victim]) + 100] ^= 0xFF
    archive, inner = await opened(bytes(data))
    results = await asyncio.gather(*(archive.read(n) for n in MEMBERS), return_exceptions=True)
    assert inner.count == 1
    for name, result in zip(MEMBERS, results, strict=True):
        if name == victim:
            assert isinstance(result, ArchiveError)
            assert f"entry {victim!r}: CRC-32 mismatch" in str(result)
        else:
            assert result == MEMBERS[name]


async def test_a_merged_read_cut_short_fails_only_the_members_it_did_not_reach() -> None:
    data = packed()
    archive, _ = await opened(data)
    names = list(MEMBERS)
    cut = archive.members[names[5]].header_offset + 10

    async def truncating(start: int, end: int | None) -> bytes:
        assert end is not None
        return data[start : min(end, cut)]

    short = await OzxArchive.open(
        CoalescingFetcher(_Tail(data, truncating), max_gap=1 << 20, max_span=16 << 20),
        archive="mem.ozx",
    )
    results = await asyncio.gather(*(short.read(n) for n in names), return_exceptions=True)
    for i, (name, result) in enumerate(zip(names, results, strict=True)):
        if i < 5:
            assert result == MEMBERS[name]
        else:
            assert isinstance(result, ArchiveError), name
            assert name in str(result)


class _Tail:
    """The tail (open) from ``data``, every other read from ``reader``."""

    def __init__(self, data: bytes, reader: Any) -> None:
        self.data = data
        self.reader = reader

    async def __call__(self, start: int, end: int | None) -> bytes:
        if start < 0:
            return self.data[start:]
        return await self.reader(start, end)  # type: ignore[no-any-return]


async def test_cancelling_every_reader_cancels_the_shared_request() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(start: int, end: int | None) -> bytes:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    fetch = CoalescingFetcher(slow, max_gap=100, max_span=1000)
    readers = [asyncio.ensure_future(fetch(i * 10, i * 10 + 10)) for i in range(3)]
    await started.wait()
    readers[0].cancel()
    await asyncio.sleep(0)
    assert not cancelled.is_set(), "two readers still wait for it"
    for reader in readers[1:]:
        reader.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    assert all(r.cancelled() for r in readers)


# ------------------------------------------------------------ local archives
async def test_local_member_data_is_handed_on_without_a_copy(tmp_path: Any) -> None:
    path = tmp_path / "a.ozx"
    path.write_bytes(packed())
    returned: list[bytes] = []
    fetch = local_fetcher(str(path))

    async def recording(start: int, end: int | None) -> bytes:
        data = await fetch(start, end)
        returned.append(data)
        return data

    archive = await OzxArchive.open(recording, archive=str(path), separate_header_reads=True)
    for name, expected in MEMBERS.items():
        returned.clear()
        got = await archive.read(name)
        assert got == expected
        assert any(got is r for r in returned), "the data is the fetched object itself"
        assert len(returned) == 2  # the local header, then exactly the data
        returned.clear()
        assert await archive.read(name) == expected
        assert len(returned) == 1  # its data offset is known now
    assert await archive.read_range("A/0/c/7", 3, 9) == MEMBERS["A/0/c/7"][3:9]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (E(b"a", local_name=b"b"), "entry 'a': local header name differs"),
        (E(b"a", local_method=8), "entry 'a': local header method differs"),
        (E(b"a", crc=1), "entry 'a': CRC-32 mismatch"),
    ],
    ids=["name", "method", "crc"],
)
async def test_separate_header_reads_keep_every_member_check(entry: E, match: str) -> None:
    data = craft([entry, E(b"z")])
    archive = await OzxArchive.open(
        MemoryFetcher(data), archive="bad.ozx", separate_header_reads=True
    )
    with pytest.raises(ArchiveError, match=match):
        await archive.read("a")
    if entry.crc is None:  # a range read cannot check the CRC; the header it does check
        with pytest.raises(ArchiveError, match=match):
            await archive.read_range("a", 1, 3)
    assert await archive.read("z") == b"payload"


async def test_separate_header_reads_refuse_a_local_header_overlapping_the_next() -> None:
    data = bytearray(craft([E(b"a"), E(b"b")]))
    struct.pack_into("<H", data, 28, 100)  # local extra length of 'a'
    archive = await OzxArchive.open(
        MemoryFetcher(bytes(data)), archive="bad.ozx", separate_header_reads=True
    )
    for read in (archive.read("a"), archive.read_range("a", 0, 2)):
        with pytest.raises(ArchiveError, match="entry 'a': local header and data overlap"):
            await read


def test_a_local_archive_reads_from_any_event_loop(plate_factory: Any) -> None:
    made = plate_factory("ozx")
    source = OzxSource(local_fetcher(made.url), url=made.url)
    assert source.loop_free_reads
    key = "A/1/0/0/c/0/0/0/0/0"
    results: list[bytes] = []

    def read_in_own_loop() -> None:
        results.append(asyncio.run(source.get(key)))

    threads = [threading.Thread(target=read_in_own_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 4 and len(set(results)) == 1 and results[0]


# ---------------------------------------------------------------- S3 (moto)
def test_concurrent_member_reads_on_s3_cost_one_ranged_get(
    plate_factory: Any, s3_server: CountingS3Server
) -> None:
    made = plate_factory("ozx_s3")
    fs = fsspec.filesystem(
        "hcs", fo=made.url, target_options=made.storage_options, skip_instance_cache=True
    )
    keys = [f"A/1/0/0/c/0/{c}/0/{y}/{x}" for c in range(2) for y in range(2) for x in range(2)]
    assert fs.ls("A/1/0/0/c/0", detail=False)  # opens the archive
    s3_server.reset_counts()
    got = fs.cat(keys)
    requests = s3_server.snapshot()
    assert [r.kind for r in requests] == ["GET"] and requests[0].range is not None
    direct = hcsfs.open_plate(made.url, storage_options=made.storage_options).fs
    for key in keys:
        assert got[key] == direct.cat_file(key)


def test_a_field_read_through_zarr_on_s3_costs_at_most_one_get_per_chunk(
    plate_factory: Any, s3_server: CountingS3Server
) -> None:
    made = plate_factory("ozx_s3")
    plate = hcsfs.open_plate(made.url, storage_options=made.storage_options)
    array = plate.well("A", "1").image(0).level(0)
    chunks = int(np.prod([-(-s // c) for s, c in zip(array.shape, array.chunks, strict=True)]))
    assert chunks == 8
    s3_server.reset_counts()
    pixels = np.asarray(array[...])
    requests = s3_server.snapshot()
    np.testing.assert_array_equal(pixels, expected_field(made.spec, "A/1", 0))
    assert {r.kind for r in requests} == {"GET"}
    assert all(r.range for r in requests)
    assert 1 <= len(requests) <= chunks
