"""hcsfs.bulkread: a selection's chunks are fetched together, then decoded by zarr."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

import hcsfs
from hcsfs import bulkread
from hcsfs.testing import CountingS3Server


def test_reading_a_field_with_more_chunks_than_zarrs_window_is_one_round(
    plate_factory: Any, s3_server: CountingS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    image = plate.well("A", 2).image(0)
    expected = np.asarray(image.level(0)[...])
    monkeypatch.setitem(zarr.config.config["async"], "concurrency", 2)  # zarr: 2 at a time
    s3_server.reset_counts()
    s3_server.latency = 0.25
    try:
        started = time.perf_counter()
        pixels = image.read()
        elapsed = time.perf_counter() - started
    finally:
        s3_server.latency = 0.0
    assert np.array_equal(pixels, expected)
    chunk_reads = [r for r in s3_server.snapshot() if "/c/" in r.key]
    assert len(chunk_reads) == 8 == len(s3_server.snapshot())
    # 8 chunks, 2 at a time, would take 4 x 0.25 s; all at once, about one
    assert elapsed < 2 * 0.25, f"8 chunk GETs took {elapsed:.2f} s: not all in flight"


@pytest.mark.parametrize(
    "selection",
    [
        ...,
        (0, slice(0, 1), 0, slice(5, 40), slice(3, 64, 3)),
        (slice(None), 1, ..., slice(-10, None)),
        (0, -1, 0, 63, 0),
        (slice(None), slice(None), slice(None), slice(30, 10)),  # empty
    ],
)
@pytest.mark.parametrize("backend", ["dir", "s3", "ozx_s3"])
def test_image_read_equals_zarr_for_basic_selections(
    plate_factory: Any, backend: str, selection: Any
) -> None:
    plate_on = plate_factory(backend)
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    image = plate.well("B", 3).image(1)
    expected = np.asarray(image.level(0)[selection])
    got = image.read(0, selection)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert np.array_equal(got, expected)


def test_a_fancy_selection_is_left_to_zarr(plate_factory: Any) -> None:
    plate_on = plate_factory("dir")
    image = hcsfs.open_plate(plate_on.url).well("A", 1).image(0)
    array = image.level(0)
    assert bulkread.chunk_keys(array, ([0], slice(None))) is None
    assert bulkread.chunk_keys(array, (slice(None, None, -1),)) is None
    rows = np.asarray(array.get_orthogonal_selection((0, [0, 1], 0, [1, 7, 60], slice(None))))
    assert rows.shape == (2, 3, 64)


def test_missing_chunks_read_as_the_fill_value(plate_factory: Any, tmp_path: Any) -> None:
    plate = hcsfs.create_plate(str(tmp_path / "p.ome.zarr"), rows=1, columns=1)
    data = np.zeros((1, 1, 1, 64, 64), dtype="uint16")
    data[..., :32, :32] = 7  # the other chunks stay at the fill value
    with plate:
        plate.write_image("A", 1, 0, data, axes="tczyx", chunks=(1, 1, 1, 32, 32), levels=1)
    image = hcsfs.open_plate(str(tmp_path / "p.ome.zarr")).well("A", 1).image(0)
    assert np.array_equal(image.read(), data)


def test_sharded_arrays_fetch_shards_and_read_inner_chunks(tmp_path: Any) -> None:
    array = zarr.create_array(
        MemoryStore(), shape=(10, 20), chunks=(2, 4), shards=(4, 8), dtype="u2"
    )
    assert bulkread.chunk_keys(array, (slice(0, 5), slice(9, 12))) == ["c/0/1", "c/1/1"]
    assert len(bulkread.chunk_keys(array, ...) or []) == 3 * 3


def test_selections_too_large_to_hold_are_left_to_zarr(monkeypatch: pytest.MonkeyPatch) -> None:
    array = zarr.create_array(MemoryStore(), shape=(100, 100), chunks=(10, 10), dtype="u8")
    assert bulkread.chunk_keys(array, ...) is not None
    monkeypatch.setattr(bulkread, "MAX_PRELOAD_BYTES", 8 * 100 * 50)
    assert bulkread.chunk_keys(array, ...) is None
    assert bulkread.chunk_keys(array, (slice(0, 40),)) is not None
