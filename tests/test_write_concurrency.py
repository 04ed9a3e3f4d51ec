"""Concurrent writers lose nothing; a killed writer leaves a plate that opens and lists
only complete fields.

8 writers x 4 fields into 4 wells (each well gets one field from every writer, all at
once): processes on S3 and on a directory (5 rounds each), threads sharing one plate,
dask's multiprocessing scheduler. Data is tiny so the tests are about metadata.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hcsfs
from hcsfs.check import validate_plate_tree
from hcsfs.write import LOCK_NAME, create_plate

WRITERS = 8
WELLS = (("A", "1"), ("A", "2"), ("B", "1"), ("B", "2"))
ROUNDS = 5
REPO = Path(__file__).resolve().parents[1]


def field_pixels(well: str, field: int) -> np.ndarray:
    """The known pixels of one field."""
    seed = sum(map(ord, well)) * 100 + field
    return np.random.default_rng(seed).integers(0, 255, size=(6, 5), dtype=np.uint8)


def write_fields(url: str, options: dict[str, Any], field: int, shared: Any = None) -> int:
    """One writer: field ``field`` into each of the four wells."""
    plate = shared or hcsfs.open_plate(url, mode="r+", storage_options=options)
    for row, column in WELLS:
        data = field_pixels(f"{row}/{column}", field)
        plate.write_image(row, column, field, data, axes="yx")
    return field


def warm_up(_: int) -> bool:
    """Import what a writer needs, so the timed rounds do not pay for it."""
    import dask.array  # noqa: F401
    import zarr  # noqa: F401

    import hcsfs.write  # noqa: F401

    return True


def new_plate(url: str, options: dict[str, Any], version: str = "0.5") -> None:
    create_plate(url, rows=2, columns=2, version=version, storage_options=options).close()


def check_everything_listed(url: str, options: dict[str, Any], writers: int = WRITERS) -> None:
    plate = hcsfs.open_plate(url, storage_options=options)
    assert sorted(plate.wells) == sorted(f"{r}/{c}" for r, c in WELLS)
    for path, well in plate.wells.items():
        assert sorted(well.images, key=int) == [str(f) for f in range(writers)], path
        for field, image in well.images.items():
            np.testing.assert_array_equal(image.level(0)[...], field_pixels(path, int(field)))
    assert [i for i in validate_plate_tree(plate, strict=True) if i.severity == "error"] == []


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(WRITERS, mp_context=multiprocessing.get_context("spawn")) as ex:
        assert all(ex.map(warm_up, range(WRITERS)))  # start every worker, imports done
        yield ex


def run_round(pool: ProcessPoolExecutor, url: str, options: dict[str, Any]) -> None:
    futures = [pool.submit(write_fields, url, options, f) for f in range(WRITERS)]
    assert sorted(f.result(timeout=120) for f in futures) == list(range(WRITERS))


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    """A bucket of its own: moto's LIST time grows with the objects in the bucket."""
    name = f"concurrency-{uuid.uuid4().hex[:8]}"
    s3.mkdir(name)
    return name


def test_processes_on_s3_lose_nothing(
    pool: ProcessPoolExecutor, bucket: str, s3_options: dict[str, Any]
) -> None:
    for _ in range(ROUNDS):
        url = f"s3://{bucket}/round-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
        new_plate(url, s3_options)
        run_round(pool, url, s3_options)
        check_everything_listed(url, s3_options)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_processes_on_a_directory_lose_nothing(
    pool: ProcessPoolExecutor, tmp_path: Path, version: str
) -> None:
    for i in range(ROUNDS if version == "0.5" else 2):
        url = str(tmp_path / f"round{i}.ome.zarr")
        new_plate(url, {}, version)
        run_round(pool, url, {})
        check_everything_listed(url, {})
        assert not os.path.exists(os.path.join(url, LOCK_NAME))


@pytest.mark.parametrize("backend", ["dir", "memory", "s3"])
def test_threads_sharing_one_plate_lose_nothing(
    backend: str, tmp_path: Path, bucket: str, s3_options: dict[str, Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    url, options = {
        "dir": (str(tmp_path / "plate.ome.zarr"), {}),
        "memory": (f"memory://threads/{tag}/plate.ome.zarr", {}),
        "s3": (f"s3://{bucket}/threads-{tag}/plate.ome.zarr", s3_options),
    }[backend]
    new_plate(url, options)
    shared = hcsfs.open_plate(url, mode="r+", storage_options=options)
    with ThreadPoolExecutor(WRITERS) as ex:
        done = list(ex.map(lambda f: write_fields(url, options, f, shared), range(WRITERS)))
    assert sorted(done) == list(range(WRITERS))
    check_everything_listed(url, options)


def test_dask_multiprocessing_scheduler_writes_fields(
    bucket: str, s3_options: dict[str, Any]
) -> None:
    import dask

    url = f"s3://{bucket}/dask-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
    new_plate(url, s3_options)
    tasks = [dask.delayed(write_fields)(url, s3_options, f) for f in range(4)]
    done = dask.compute(*tasks, scheduler="processes", num_workers=4)
    assert sorted(done) == [0, 1, 2, 3]
    check_everything_listed(url, s3_options, writers=4)


# ------------------------------------------------------------------------- crashes
CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time, json
    import dask.array as da
    import numpy as np
    import hcsfs

    url, options, slow = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
    plate = hcsfs.open_plate(url, mode="r+", storage_options=options)

    def crawl(block):
        time.sleep(slow)
        return block

    for field in range(1000):
        data = da.ones((64, 64), dtype="uint8", chunks=(8, 8)).map_blocks(crawl) * (field % 250)
        print("writing", field, flush=True)
        plate.write_image("A", "1", field, data, axes="yx", chunks=(8, 8), levels=2)
        print("wrote", field, flush=True)
    """
)


def kill_mid_write(url: str, options: dict[str, Any], *, after: int, slow: float) -> int:
    """Start a writer, SIGKILL it while it writes field ``after``; return fields it finished."""
    import json

    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, url, json.dumps(options), str(slow)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    wrote = 0
    for line in proc.stdout:
        if line.startswith("wrote"):
            wrote += 1
        if line.strip() == f"writing {after}":
            time.sleep(0.3)  # well inside the chunk writes of that field
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return wrote


def check_only_complete_fields(url: str, options: dict[str, Any], finished: int) -> None:
    plate = hcsfs.open_plate(url, storage_options=options)
    fields = list(plate.well("A", 1).images)
    assert sorted(fields, key=int)[:finished] == [str(f) for f in range(finished)]
    assert len(fields) in (finished, finished + 1)  # the killed one only if it was committed
    for field in fields:
        image = plate.well("A", 1).image(field)
        expected = np.full((64, 64), int(field) % 250, dtype="uint8")
        np.testing.assert_array_equal(image.level(0)[...], expected)
        assert image.level(1).shape == (32, 32)
    assert [i for i in validate_plate_tree(plate, strict=True) if i.severity == "error"] == []


@pytest.mark.parametrize("backend", ["dir", "s3"])
def test_a_writer_killed_mid_write_leaves_only_complete_fields(
    backend: str, tmp_path: Path, bucket: str, s3_options: dict[str, Any]
) -> None:
    if backend == "dir":
        url, options = str(tmp_path / "plate.ome.zarr"), {}
    else:
        url, options = f"s3://{bucket}/crash-{uuid.uuid4().hex[:8]}/plate.ome.zarr", s3_options
    new_plate(url, options)
    finished = kill_mid_write(url, options, after=2, slow=0.02)
    assert finished == 2
    check_only_complete_fields(url, options, finished)
    # the plate keeps working: the next writer writes over the debris of the killed one
    plate = hcsfs.open_plate(url, mode="r+", storage_options=options)
    plate.write_image("A", 1, 2, np.full((64, 64), 2, "uint8"), axes="yx", levels=2)
    plate.close()
    check_only_complete_fields(url, options, 3)
