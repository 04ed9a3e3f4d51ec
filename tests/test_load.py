"""Load: many threads reading one plate for seconds, every byte checked; readers during writes.

32 threads read random chunks (whole, and random byte ranges of them) of the sample
plate on S3 and of its ``.ozx`` on S3 through one shared :class:`hcsfs.HCSFileSystem`,
for :data:`DURATION` seconds each. Every answer is checked against a SHA-256 of the
source file; nothing may fail; the resident memory of the process (sampled every 0.1 s;
tracemalloc would slow the in-process moto server 3x) and the index caches stay flat.
The rate is printed (run with ``-s`` to see it; ``HCSFS_LOAD_SECONDS`` lengthens the
run). The moto server runs in the test process and is the ceiling: about 200 reads/s
for hcsfs, where a raw s3fs ``cat_file`` (HEAD + GET) manages about 90.

Readers running while a writer adds fields see a well either before or after each
field is added, never in between: every field a well lists is whole and readable.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import hcsfs
from hcsfs.testing import CountingS3Server
from hcsfs.write import create_plate
from hcsfs.zarrmeta import METADATA_NAMES
from tests.conftest import BUCKET

pytestmark = pytest.mark.timeout(180)

THREADS = 32
#: Seconds of load per target (``HCSFS_LOAD_SECONDS`` for a longer local run).
DURATION = float(os.environ.get("HCSFS_LOAD_SECONDS", "5"))
WARMUP = 1.0
#: Resident memory may grow by at most this much over the measured run.
MAX_GROWTH = 64 * 2**20
#: Checked reads per second the run must at least reach (moto in-process is slow).
MIN_RATE = 20


def rss() -> int:
    """Resident set size of this process, in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def chunk_files(root: str) -> dict[str, bytes]:
    """Every chunk (non-metadata file) of the plate directory ``root``, by plate key."""
    found: dict[str, bytes] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name in METADATA_NAMES:
                continue
            full = os.path.join(dirpath, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, root).replace(os.sep, "/")] = handle.read()
    return found


@dataclass
class LoadResult:
    """What a load run did."""

    reads: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    growth: int = 0
    peak: int = 0

    @property
    def rate(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0


def run_load(
    read: Callable[[str, int | None, int | None], bytes],
    files: dict[str, bytes],
    seconds: float,
    server: CountingS3Server,
    *,
    ranged: bool = True,
) -> LoadResult:
    """``THREADS`` threads calling ``read(key, start, end)`` on random chunks, checked.

    With ``ranged`` about 30% of the reads ask for a random byte range of the chunk.
    """
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    keys = sorted(files)
    result = LoadResult()
    lock = threading.Lock()
    stop = threading.Event()
    measuring = threading.Event()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        reads = nbytes = 0
        while not stop.is_set():
            key = rng.choice(keys)
            size = len(files[key])
            part = ranged and size > 1 and rng.random() < 0.3
            start = rng.randrange(0, size - 1) if part else None
            end = rng.randrange(start + 1, size + 1) if start is not None else None
            try:
                data = read(key, start, end)
            except Exception as exc:
                with lock:
                    result.errors.append(f"{key}[{start}:{end}]: {type(exc).__name__}: {exc}")
                continue
            if start is None:
                ok = hashlib.sha256(data).hexdigest() == digests[key]
            else:
                ok = data == files[key][start:end]
            if not ok:
                with lock:
                    result.errors.append(f"{key}[{start}:{end}]: wrong bytes ({len(data)})")
            if measuring.is_set():
                reads += 1
                nbytes += len(data)
        with lock:
            result.reads += reads
            result.bytes += nbytes

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(WARMUP)  # connection pools, caches and the archive directory settle
    gc.collect()
    baseline = peak = rss()
    server.reset_counts()
    measuring.set()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.1)
        peak = max(peak, rss())
    result.seconds = time.monotonic() - started
    result.requests = len(server.snapshot())
    stop.set()
    for thread in threads:
        thread.join(30)
    gc.collect()
    result.growth = rss() - baseline
    result.peak = peak - baseline
    return result


@pytest.mark.parametrize("backend", ["s3", "ozx_s3"])
def test_32_threads_read_random_chunks_for_seconds(
    plate_factory: Any, s3_server: CountingS3Server, backend: str
) -> None:
    plate_on = plate_factory(backend, "0.5")
    files = chunk_files(plate_on.source_dir)
    assert len(files) >= 40
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    fs = plate.fs

    def read(key: str, start: int | None, end: int | None) -> bytes:
        return bytes(fs.cat_file(key, start=start, end=end))

    result = run_load(read, files, DURATION, s3_server)
    print(
        f"\n{backend}: {result.reads} checked reads in {result.seconds:.1f} s "
        f"= {result.rate:.0f} reads/s, {result.requests / result.seconds:.0f} requests/s "
        f"at the server, {result.bytes / result.seconds / 2**20:.1f} MiB/s, "
        f"{len(result.errors)} errors, RSS {result.growth / 2**20:+.1f} MiB "
        f"(peak {result.peak / 2**20:+.1f} MiB) with {THREADS} threads"
    )
    assert not result.errors, result.errors[:5]
    assert result.rate > MIN_RATE
    assert result.growth < MAX_GROWTH
    items = plate.index.memory_items()
    assert items["wells"] <= plate.index.well_cache_size
    assert items["doc_bytes"] <= 64 * 2**20


def test_zarr_reads_of_whole_levels_under_load(
    plate_factory: Any, s3_server: CountingS3Server
) -> None:
    """The zarr face under the same load: 32 threads reading whole levels, checked."""
    import zarr

    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    arrays = {}
    for well in plate.wells.values():
        for name, image in well.images.items():
            for level in range(image.levels):
                key = f"{well.path}/{name}/{level}"
                arrays[key] = image.level(level)
    expected = {
        key: np.asarray(zarr.open_array(f"{plate_on.source_dir}/{key}", mode="r")[...])
        for key in arrays
    }

    def read(key: str, start: int | None, end: int | None) -> bytes:
        data = np.asarray(arrays[key][...])
        if not np.array_equal(data, expected[key]):
            raise AssertionError(f"{key}: wrong pixels")
        return expected[key].tobytes()

    files = {k: v.tobytes() for k, v in expected.items()}
    result = run_load(read, files, min(DURATION, 2.0), s3_server, ranged=False)
    print(
        f"\nzarr levels on s3: {result.reads} checked level reads in {result.seconds:.1f} s "
        f"= {result.rate:.0f} levels/s, {result.requests / result.seconds:.0f} requests/s, "
        f"{len(result.errors)} errors, RSS {result.growth / 2**20:+.1f} MiB"
    )
    assert not result.errors, result.errors[:5]
    assert result.growth < MAX_GROWTH


# ---------------------------------------------------------------- readers during writes
FIELDS = 4


def field_pixels(index: int) -> np.ndarray:
    """The pixels of field ``index``: distinct per field, so a mix-up shows."""
    base = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(1, 2, 1, 32, 32)
    return (base + index * 3001).astype(np.uint16)


@pytest.mark.parametrize("backend", ["s3", "dir"])
def test_readers_see_whole_fields_while_a_writer_adds_them(
    backend: str, s3_options: dict[str, Any], s3: Any, tmp_path: Any
) -> None:
    if backend == "s3":
        url = f"s3://{BUCKET}/load-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
        options: dict[str, Any] = dict(s3_options)
    else:
        url, options = str(tmp_path / "plate.ome.zarr"), {}
    with create_plate(url, rows=1, columns=2, storage_options=options or None) as plate:
        plate.write_image("A", 1, 0, field_pixels(0), chunks=(1, 1, 1, 16, 16))

    done = threading.Event()
    errors: list[str] = []
    seen: list[int] = []

    def writer() -> None:
        try:
            target = hcsfs.open_plate(url, mode="r+", storage_options=options or None)
            for index in range(1, FIELDS):
                target.write_image("A", 1, index, field_pixels(index), chunks=(1, 1, 1, 16, 16))
            target.close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"writer: {type(exc).__name__}: {exc}")
        finally:
            done.set()

    def reader(number: int) -> None:
        last = 0
        while True:
            finished = done.is_set()
            try:
                plate = hcsfs.open_plate(url, storage_options=options or None)
                well = plate.well("A", 1)
                listed = sorted(int(name) for name in well.images)
                if listed != list(range(len(listed))):
                    errors.append(f"reader {number}: fields {listed} are not a prefix")
                if len(listed) < last:
                    errors.append(f"reader {number}: fields went back from {last} to {listed}")
                last = max(last, len(listed))
                for index in listed:
                    pixels = well.image(index).level(0)[...]
                    if not np.array_equal(pixels, field_pixels(index)):
                        errors.append(f"reader {number}: field {index} has wrong pixels")
                seen.append(len(listed))
            except Exception as exc:
                errors.append(f"reader {number}: {type(exc).__name__}: {exc}")
            if finished:
                return

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
    assert max(seen) == FIELDS, "the readers saw the last state"
    assert len(set(seen)) > 1, f"the readers saw earlier states too: {sorted(set(seen))}"
