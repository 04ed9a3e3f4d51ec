"""HCSStore as zarr and dask use it: plates on every backend, concurrency, key safety.

zarr's own conformance suite runs in ``test_store_conformance.py``; this file checks
what it does not: reading the sample plate through zarr/dask on every backend, the
``hcs::`` URL path zarr takes on its own (``FsspecStore`` over HCSFileSystem), and
that reads issued together are in flight together at the S3 server.
"""

from __future__ import annotations

import asyncio
import pickle
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype

from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import expected_field
from hcsfs.store import HCSStore
from hcsfs.testing import CountingS3Server

BUCKET = "plates"
PROTO = default_buffer_prototype()


def fs_on(plate_on: Any) -> HCSFileSystem:
    return HCSFileSystem(
        fo=plate_on.url, target_options=plate_on.storage_options, skip_instance_cache=True
    )


@pytest.fixture
def s3_store(s3: Any, s3_options: dict[str, Any]) -> Iterator[HCSStore]:
    """A writable HCSStore over an empty prefix of its own on S3."""
    prefix = f"{BUCKET}/store-{uuid.uuid4().hex[:12]}"
    fs = HCSFileSystem(
        fo=f"s3://{prefix}", target_options=s3_options, mode="r+", skip_instance_cache=True
    )
    yield HCSStore(fs, read_only=False)
    if s3.exists(prefix):
        s3.rm(prefix, recursive=True)


# ------------------------------------------------------------ zarr and dask
@pytest.mark.parametrize("backend", ["dir", "memory", "s3", "ozx", "ozx_s3"])
def test_zarr_open_group_reads_fields_on_every_backend(plate_factory: Any, backend: str) -> None:
    plate_on = plate_factory(backend, "0.5")
    group = zarr.open_group(HCSStore(fs_on(plate_on)), mode="r")
    assert "plate" in group.attrs["ome"]
    for well, field_index, level in (("A/1", 0, 0), ("B/3", 1, 1)):
        array = group[f"{well}/{field_index}/{level}"]
        assert isinstance(array, zarr.Array)
        np.testing.assert_array_equal(
            array[...], expected_field(plate_on.spec, well, field_index, level)
        )


def test_zarr_open_group_reads_a_v2_plate(plate_factory: Any) -> None:
    plate_on = plate_factory("dir", "0.4")
    group = zarr.open_group(HCSStore(fs_on(plate_on)), mode="r", zarr_format=2)
    np.testing.assert_array_equal(group["A/2/1/0"][...], expected_field(plate_on.spec, "A/2", 1, 0))


def test_store_rooted_at_a_well(plate_factory: Any) -> None:
    plate_on = plate_factory("memory", "0.5")
    well = zarr.open_group(HCSStore(fs_on(plate_on), "A/2"), mode="r")
    np.testing.assert_array_equal(well["0/0"][...], expected_field(plate_on.spec, "A/2", 0, 0))
    assert sorted(well.group_keys()) == ["0", "1"]


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx_s3"])
def test_dask_from_zarr_over_an_hcsstore(plate_factory: Any, backend: str) -> None:
    plate_on = plate_factory(backend, "0.5")
    store = HCSStore(fs_on(plate_on))
    array = da.from_zarr(store, component="A/1/1/0")
    assert array.chunksize == plate_on.spec.chunks
    np.testing.assert_array_equal(array.compute(), expected_field(plate_on.spec, "A/1", 1, 0))
    assert int(array.sum().compute()) == int(expected_field(plate_on.spec, "A/1", 1, 0).sum())


@pytest.mark.parametrize("backend", ["s3", "ozx_s3"])
def test_zarr_open_group_with_an_hcs_url(plate_factory: Any, backend: str) -> None:
    """zarr builds its own FsspecStore over ``hcs::s3://...`` (asynchronous, its loop)."""
    plate_on = plate_factory(backend, "0.5")
    group = zarr.open_group(
        "hcs::" + plate_on.url, mode="r", storage_options={"s3": plate_on.storage_options}
    )
    assert "plate" in group.attrs["ome"]
    np.testing.assert_array_equal(group["B/3/0/0"][...], expected_field(plate_on.spec, "B/3", 0, 0))


@pytest.mark.parametrize("backend", ["s3", "ozx_s3"])
def test_dask_from_zarr_with_an_hcs_url(plate_factory: Any, backend: str) -> None:
    plate_on = plate_factory(backend, "0.5")
    array = da.from_zarr(
        "hcs::" + plate_on.url,
        component="A/1/0/0",
        storage_options={"s3": plate_on.storage_options},
    )
    np.testing.assert_array_equal(array.compute(), expected_field(plate_on.spec, "A/1", 0, 0))


# -------------------------------------------------------------- concurrency
async def test_reads_issued_together_overlap_at_the_s3_server(
    s3_server: CountingS3Server, s3_store: HCSStore
) -> None:
    """16 chunk reads with 0.2 s server latency each take well under 16 * 0.2 s."""
    values = {f"arr/c/{i}/0": bytes([i]) * (1000 + i) for i in range(16)}
    await s3_store._set_many((k, cpu.Buffer.from_bytes(v)) for k, v in values.items())
    await s3_store.get("arr/c/0/0", PROTO)  # warm up: session and connection exist
    latency, budget = 0.2, 16 * 0.2 / 3
    previous = s3_server.latency
    s3_server.latency = latency
    try:
        start = time.perf_counter()
        found = await s3_store.get_partial_values(PROTO, [(k, None) for k in values])
        partial_time = time.perf_counter() - start

        start = time.perf_counter()
        gathered = await asyncio.gather(*(s3_store.get(k, PROTO) for k in values))
        gather_time = time.perf_counter() - start
    finally:
        s3_server.latency = previous
    assert [b.to_bytes() if b is not None else None for b in found] == list(values.values())
    assert [b.to_bytes() if b is not None else None for b in gathered] == list(values.values())
    assert partial_time < budget, f"get_partial_values took {partial_time:.2f}s"
    assert gather_time < budget, f"gathered gets took {gather_time:.2f}s"


def test_sync_zarr_reads_of_many_chunks_overlap_at_the_s3_server(
    s3_server: CountingS3Server, s3_store: HCSStore
) -> None:
    """zarr reading a 16-chunk array from another loop: the chunk GETs overlap."""
    data = np.arange(16 * 8, dtype="uint16").reshape(16, 8)
    array = zarr.create_array(s3_store, name="arr", shape=data.shape, chunks=(1, 8), dtype="uint16")
    array[...] = data
    reader = zarr.open_array(s3_store.with_read_only(True), path="arr", mode="r")
    previous = s3_server.latency
    s3_server.latency = 0.2
    try:
        start = time.perf_counter()
        read = reader[...]
        elapsed = time.perf_counter() - start
    finally:
        s3_server.latency = previous
    np.testing.assert_array_equal(read, data)
    assert elapsed < 16 * 0.2 / 3, f"reading 16 chunks took {elapsed:.2f}s"


# ------------------------------------------------------------ store contract
async def test_byte_requests_on_s3(s3_store: HCSStore) -> None:
    await s3_store.set("k", cpu.Buffer.from_bytes(b"0123456789"))
    await s3_store.set("empty", cpu.Buffer.from_bytes(b""))
    cases = [
        (None, b"0123456789"),
        (RangeByteRequest(2, 5), b"234"),
        (RangeByteRequest(4, 4), b""),
        (OffsetByteRequest(7), b"789"),
        (SuffixByteRequest(3), b"789"),
        (SuffixByteRequest(0), b""),
    ]
    for byte_range, expected in cases:
        got = await s3_store.get("k", PROTO, byte_range)
        assert got is not None and got.to_bytes() == expected, byte_range
    assert (await s3_store.get("empty", PROTO)).to_bytes() == b""  # type: ignore[union-attr]
    assert await s3_store.get("missing", PROTO, RangeByteRequest(0, 1)) is None
    assert await s3_store.get("missing", PROTO, SuffixByteRequest(0)) is None


async def test_keys_outside_the_store_raise_a_value_error_naming_the_key(
    plate_factory: Any,
) -> None:
    store = HCSStore(fs_on(plate_factory("dir", "0.5")), "A/1")
    for key in ("../x", "/abs", "0/../../..", ".", "a/./b"):
        with pytest.raises(ValueError, match=re.escape(repr(key))):
            await store.get(key, PROTO)
    with pytest.raises(ValueError, match=re.escape("'../B'")):
        HCSStore(store.fs, "../B")


async def test_read_only_store_refuses_writes_like_zarr_stores(plate_factory: Any) -> None:
    fs = fs_on(plate_factory("ozx", "0.5"))
    store = HCSStore(fs, read_only=False)  # the archive makes it read-only anyway
    assert store.read_only
    message = "store was opened in read-only mode and does not support writing"
    with pytest.raises(ValueError, match=message):
        await store.set("x", cpu.Buffer.from_bytes(b"1"))
    with pytest.raises(ValueError, match=message):
        await store.delete("zarr.json")
    with pytest.raises(ValueError, match=message):
        await store.delete_dir("A")


async def test_listing_a_plate_store(plate_factory: Any) -> None:
    store = HCSStore(fs_on(plate_factory("memory", "0.5")), "A/1")
    assert sorted([k async for k in store.list_dir("")]) == ["0", "1", "zarr.json"]
    keys = [k async for k in store.list_prefix("0/0/")]
    assert "0/0/zarr.json" in keys and all(k.startswith("0/0/") for k in keys)
    assert await store.exists("0/0/zarr.json")
    assert not await store.exists("0/0")
    assert await store.getsize_prefix("0/0") == sum([await store.getsize(k) for k in keys])


def test_store_pickles_and_compares(plate_factory: Any) -> None:
    store = HCSStore(fs_on(plate_factory("dir", "0.5")), "A/1")
    clone = pickle.loads(pickle.dumps(store))
    assert clone == store and hash(clone) == hash(store)
    assert clone.with_read_only(True) == store
    assert store != HCSStore(store.fs, "A/2")
    assert clone.get_sync("zarr.json") is not None


async def test_local_reads_issued_together_run_in_threads(
    plate_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each local read sleeps 0.1 s in its worker thread: 16 together take far less."""
    from hcsfs.source import LocalSource

    read = LocalSource._read

    def slow_read(self: LocalSource, key: str, start: int | None, end: int | None) -> bytes:
        time.sleep(0.1)
        return read(self, key, start, end)

    plate_on = plate_factory("dir", "0.5")
    store = HCSStore(fs_on(plate_on), "A/1/0/0")
    keys = [f"c/0/{c}/0/{y}/{x}" for c in range(2) for y in range(2) for x in range(2)] * 2
    expected = [await store.get(k, PROTO) for k in keys]
    monkeypatch.setattr(LocalSource, "_read", slow_read)
    start = time.perf_counter()
    found = await store.get_partial_values(PROTO, [(k, None) for k in keys])
    elapsed = time.perf_counter() - start
    assert all(e is not None for e in expected)
    assert [f.to_bytes() for f in found if f] == [e.to_bytes() for e in expected if e]
    assert elapsed < 16 * 0.1 / 3, f"16 local reads took {elapsed:.2f}s"
