"""``plate.to_dask`` (the whole plate as one lazy array) and ``hcsfs.distributed``.

The cluster tests run a real ``LocalCluster`` with two worker *processes*: the plate
reaches them pickled (its filesystem's arguments only) and each worker reads the
pixels itself from the moto S3 server on 127.0.0.1.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hcsfs
from hcsfs.distributed import map_wells, read_well
from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import SamplePlateSpec, expected_field
from hcsfs.testing import CountingS3Server

distributed = pytest.importorskip("distributed")

MAX_PICKLE = 8 * 1024


def expected_plate(
    spec: SamplePlateSpec,
    level: int = 0,
    wells: list[str] | None = None,
    fields: list[int] | None = None,
) -> np.ndarray:
    wells = list(spec.wells) if wells is None else wells
    fields = list(range(spec.fields)) if fields is None else fields
    return np.stack([np.stack([expected_field(spec, w, f, level) for f in fields]) for w in wells])


def expected_means(spec: SamplePlateSpec, level: int = 0) -> dict[str, float]:
    data = expected_plate(spec, level)
    return {w: float(data[i].astype("float64").mean()) for i, w in enumerate(spec.wells)}


def well_mean(well: str, pixels: np.ndarray) -> tuple[float, int, tuple[int, ...]]:
    """Runs on a worker: the mean, the worker's pid and what the well looked like."""
    return float(pixels.astype("float64").mean()), os.getpid(), pixels.shape


def assert_nothing_cached_shipped(obj: Any) -> bytes:
    """``obj`` pickles small, without metadata it has read, and unpickles fresh."""
    raw = pickle.dumps(obj)
    assert len(raw) < MAX_PICKLE, len(raw)
    for marker in (b"multiscales", b"DAPI", b"consolidated_metadata", b"images"):
        assert marker not in raw, marker
    HCSFileSystem.clear_instance_cache()
    back = pickle.loads(raw)
    fs = back if isinstance(back, HCSFileSystem) else back.fs
    index = fs._index
    if index is not None:
        assert index.plate is None
        for cache in (index._wells, index._images, index._arrays, index._docs, index._labels):
            assert len(cache) == 0
    return raw


# --------------------------------------------------------------- to_dask, local
@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("level", [0, 1])
def test_to_dask_whole_plate(plate_factory: Any, version: str, level: int) -> None:
    made = plate_factory("dir", version)
    plate = hcsfs.open_plate(made.url)
    data = plate.to_dask(level)
    spec = made.spec
    shape = spec.shape[:-2] + tuple(s // 2**level for s in spec.shape[-2:])
    assert data.shape == (len(spec.wells), spec.fields, *shape)
    assert data.dtype == np.dtype(spec.dtype)
    assert data.chunksize[:2] == (1, 1)
    np.testing.assert_array_equal(data.compute(), expected_plate(spec, level))


def test_to_dask_selection_and_index(plate_factory: Any) -> None:
    made = plate_factory("dir", "0.5")
    plate = hcsfs.open_plate(made.url)
    array, wells, fields, dims = plate.to_dask(
        0, fields=[1, "0"], wells=["B/3", "A/1"], with_index=True
    )
    assert wells == ["B/3", "A/1"]
    assert fields == ["1", "0"]
    assert dims == ("well", "field", "t", "c", "z", "y", "x")
    np.testing.assert_array_equal(
        array.compute(), expected_plate(made.spec, 0, ["B/3", "A/1"], [1, 0])
    )
    assert plate.to_dask(-1).shape[-2:] == (32, 32)  # negative levels count from the coarsest
    np.testing.assert_array_equal(
        read_well(plate, "A/2", 1), expected_plate(made.spec, 1, ["A/2"])[0]
    )


def test_to_dask_reads_metadata_only(
    plate_factory: Any, s3_server: CountingS3Server, s3_options: dict[str, Any]
) -> None:
    made = plate_factory("s3", "0.5")
    s3_server.reset_counts()
    plate = hcsfs.open_plate(made.url, storage_options=s3_options)
    data = plate.to_dask(1)
    seen = s3_server.snapshot()
    assert {r.kind for r in seen} == {"GET"}
    assert all(r.key.endswith("zarr.json") for r in seen), [r.key for r in seen]
    # root + 3 wells + 6 images + 6 arrays, each level in one round
    assert len(seen) == 1 + 3 + 6 + 6
    s3_server.reset_counts()
    plate.to_dask(1)  # built again: from the caches
    assert s3_server.snapshot() == []
    data[0, 0].compute()  # chunks of A/1/0 level 1 only; its zarr.json came from the cache
    prefix = made.url.removeprefix("s3://").split("/", 1)[1] + "/A/1/0/1/c/"
    keys = [r.key for r in s3_server.snapshot()]
    assert len(keys) == 2 and all(key.startswith(prefix) for key in keys), keys


def test_to_dask_errors(plate_factory: Any) -> None:
    plate = hcsfs.open_plate(plate_factory("dir", "0.5").url)
    with pytest.raises(KeyError, match="Z/9"):
        plate.to_dask(wells=["Z/9"])
    with pytest.raises(KeyError, match="fields 7 missing from A/1, A/2, B/3"):
        plate.to_dask(fields=[7])
    with pytest.raises(HCSError, match="no level 2 in A/1/0"):
        plate.to_dask(2)
    with pytest.raises(ValueError, match="no wells selected"):
        plate.to_dask(wells=[])
    with pytest.raises(TypeError, match="list of well paths"):
        plate.to_dask(wells="A/1")  # a str is a Sequence[str]: refused at runtime


def test_declared_but_absent_wells_are_skipped_by_default(
    plate_factory: Any, tmp_path: Path
) -> None:
    made = plate_factory("dir", "0.5")
    copy = tmp_path / "plate.ome.zarr"
    shutil.copytree(made.url, copy)
    shutil.rmtree(copy / "A" / "2")
    plate = hcsfs.open_plate(str(copy))
    array, wells, _, _ = plate.to_dask(1, with_index=True)
    assert wells == ["A/1", "B/3"]
    np.testing.assert_array_equal(array.compute(), expected_plate(made.spec, 1, wells))
    assert list(map_wells(plate, lambda well, px: px.shape, level=1)) == ["A/1", "B/3"]
    with pytest.raises(hcsfs.MetadataError, match="A/2"):
        plate.to_dask(1, wells=["A/2"])  # asked for by name: an error, not a skip


@pytest.fixture
def odd_plate(tmp_path: Path) -> str:
    """A/1 and A/2 with fields 0, 1 of (2, 64, 64); A/2/1 is (2, 32, 32); B/1 has field 0."""
    url = str(tmp_path / "odd.ome.zarr")
    plate = hcsfs.create_plate(url, rows=2, columns=2)
    rng = np.random.default_rng(0)
    for row, column, field, shape in [
        ("A", 1, 0, (2, 64, 64)),
        ("A", 1, 1, (2, 64, 64)),
        ("A", 2, 0, (2, 64, 64)),
        ("A", 2, 1, (2, 32, 32)),
        ("B", 1, 0, (2, 64, 64)),
    ]:
        data = rng.integers(0, 100, size=shape, dtype=np.uint16)
        plate.write_image(row, column, field, data, axes="cyx", chunks=(1, 32, 32))
    plate.close()
    return url


def test_to_dask_odd_shape_names_the_field(odd_plate: str) -> None:
    plate = hcsfs.open_plate(odd_plate)
    with pytest.raises(HCSError) as info:
        plate.to_dask(wells=["A/1", "A/2"])
    message = str(info.value)
    assert "A/2/1 has shape (2, 32, 32)" in message
    assert "most fields have (2, 64, 64)" in message
    assert "A/1/" not in message
    # wells listing different fields: named, and fields= is the way out
    with pytest.raises(HCSError, match=r"B/1 has fields \['0'\]; most wells have \['0', '1'\]"):
        plate.to_dask()
    assert plate.to_dask(fields=[0]).shape == (3, 1, 2, 64, 64)
    with pytest.raises(KeyError, match="fields 1 missing from B/1"):
        plate.to_dask(fields=[0, 1])
    # map_wells takes each well's own fields: wells may differ, fields within one may not
    shapes = map_wells(plate, lambda well, px: px.shape, wells=["A/1", "B/1"])
    assert shapes == {"A/1": (2, 2, 64, 64), "B/1": (1, 2, 64, 64)}


# --------------------------------------------------------------- pickling
@pytest.mark.parametrize("backend", ["dir", "s3", "ozx_s3"])
def test_pickles_small_without_cached_metadata(
    plate_factory: Any, backend: str, s3_options: dict[str, Any]
) -> None:
    made = plate_factory(backend, "0.5")
    plate = hcsfs.open_plate(made.url, storage_options=made.storage_options or None)
    data = plate.to_dask(0)  # everything's metadata is now cached
    assert len(plate.index._arrays) == 6
    for obj in (plate, plate.fs, plate.store, plate.well("A", 1).store):
        assert_nothing_cached_shipped(obj)
    back = pickle.loads(pickle.dumps(plate))
    assert back.fs == plate.fs and back.url == plate.url
    assert back.fs.read_only and back.fs.well_cache_size == plate.fs.well_cache_size
    graph = pickle.dumps(data)
    assert b"multiscales" not in graph and len(graph) < 4 * MAX_PICKLE


# --------------------------------------------------------------- on a cluster
@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.mark.parametrize("backend", ["s3", "ozx_s3"])
def test_cluster_mean_per_well(plate_factory: Any, client: Any, backend: str) -> None:
    made = plate_factory(backend, "0.5")
    plate = hcsfs.open_plate(made.url, storage_options=made.storage_options)
    expected = expected_means(made.spec, 0)

    data = plate.to_dask(0)
    means = client.compute(data.mean(axis=tuple(range(1, data.ndim)))).result()
    np.testing.assert_allclose(means, [expected[w] for w in made.spec.wells])

    results = map_wells(plate, well_mean, client=client)
    assert list(results) == list(made.spec.wells)
    for well, (mean, pid, shape) in results.items():
        assert mean == pytest.approx(expected[well])
        assert pid != os.getpid()  # computed in a worker process
        assert shape == (made.spec.fields, *made.spec.shape)


def test_cluster_map_wells_selection_and_errors(plate_factory: Any, client: Any) -> None:
    made = plate_factory("s3", "0.4")
    plate = hcsfs.open_plate(made.url, storage_options=made.storage_options)
    results = map_wells(
        plate, lambda well, px: px.shape, client=client, level=1, fields=[1], wells=["B/3"]
    )
    assert results == {"B/3": (1, 1, 2, 1, 32, 32)}

    def boom(well: str, pixels: np.ndarray) -> None:
        raise RuntimeError(f"bad {well}")

    with pytest.raises(RuntimeError, match="bad A/1") as info:
        map_wells(plate, boom, client=client, wells=["A/1"])
    assert any("well A/1" in note for note in getattr(info.value, "__notes__", []))


def test_map_wells_without_client_uses_the_default_scheduler(plate_factory: Any) -> None:
    import dask

    made = plate_factory("ozx", "0.5")
    plate = hcsfs.open_plate(made.url)
    with dask.config.set(scheduler="threads"):  # not the module's cluster client
        results = map_wells(plate, lambda well, px: float(px.astype("float64").mean()), level=1)
    expected = expected_means(made.spec, 1)
    assert results == pytest.approx(expected)
