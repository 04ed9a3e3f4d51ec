"""Faults at the HTTP layer of a real (moto) S3 server: reads survive, writes stay safe.

Every fault is injected by :class:`hcsfs.testing.CountingS3Server` where the server
answers, so the whole client stack (aiohttp, botocore, s3fs, hcsfs) sees it as it would
from a real endpoint: 500 ``InternalError``, 503 ``SlowDown``, a connection dropped
without a response, a response slower than the client's read timeout, a body cut short
of its ``Content-Length``, and a body cut short with a ``Content-Length`` that agrees.

Who retries what (measured here; the options below bound the time):

* botocore retries 5xx (``config_kwargs["retries"]``), s3fs retries ``SlowDown``, dropped
  connections, read timeouts and bodies shorter than their ``Content-Length`` (5 tries,
  nested once more around whole reads);
* hcsfs (:class:`hcsfs.source.RetryPolicy`) retries what neither can see - a ranged
  body short of the range with headers that agree - and turns what is left into an
  ``OSError`` naming the key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np
import pytest
import zarr

import hcsfs
from hcsfs.errors import HCSError, PlateWriteError
from hcsfs.testing import CountingS3Server, Fault, FaultPlan
from tests.conftest import BUCKET, PlateOnBackend

pytestmark = pytest.mark.timeout(120)

READ_TIMEOUT = 0.5
#: Client options that bound a persistent fault: 3 botocore attempts, short timeouts.
FAST = {
    "config_kwargs": {
        "connect_timeout": 1,
        "read_timeout": READ_TIMEOUT,
        "retries": {"mode": "legacy", "total_max_attempts": 3},
    }
}
#: A persistent fault must surface within this many seconds (s3fs's nested retries of a
#: dropped connection alone take ~12 s: 5 x 5 tries with 0.1 * 1.7**n s sleeps).
BOUND = 20.0


def _transient(kind: str) -> dict[str, Any]:
    """Fault parameters of a transient fault of ``kind`` (fires twice, or once for delays)."""
    if kind == "delay":
        return {"kind": "delay", "delay": READ_TIMEOUT * 2.5, "times": 1}
    if kind == "error503":
        return {"kind": "slowdown", "times": 2}
    if kind == "error500":
        return {"kind": "error", "status": 500, "times": 2}
    return {"kind": kind, "times": 2}


TRANSIENT = ["error500", "error503", "reset", "truncate", "short", "delay"]
# Metadata and chunk GETs take the same path (FsspecSource.get of a whole value, or a
# range of it for "short"); between them every kind is covered, and all on .ozx members.


@pytest.fixture
def faults(s3_server: CountingS3Server) -> Iterator[CountingS3Server]:
    """The session's S3 server, with every fault plan removed after the test."""
    yield s3_server
    s3_server.clear_faults()


def _options(plate_on: PlateOnBackend) -> dict[str, Any]:
    return {**plate_on.storage_options, **FAST}


def _prefix(url: str) -> str:
    """The object key prefix of an ``s3://bucket/...`` URL."""
    return url.split("://", 1)[1].split("/", 1)[1].rstrip("/")


def _expected_level(plate_on: PlateOnBackend, image: str = "A/1/0") -> np.ndarray:
    return np.asarray(zarr.open_array(f"{plate_on.source_dir}/{image}/0", mode="r")[...])


# ---------------------------------------------------------------------- transient reads
@pytest.mark.parametrize("kind", ["error503", "reset", "truncate", "short"])
def test_metadata_get_survives_a_transient_fault(
    plate_factory: Any, faults: CountingS3Server, kind: str
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    key = "A/1/zarr.json"
    with open(f"{plate_on.source_dir}/{key}", "rb") as handle:
        expected = handle.read()
    spec = _transient(kind)
    ranged = kind == "short"  # a lying Content-Length is only visible against a range
    with faults.inject(
        Fault(method="GET", key=f"{_prefix(plate_on.url)}/{key}", ranged=ranged or None, **spec)
    ) as plan:
        got = plate.fs.cat_file(key, start=0, end=len(expected)) if ranged else None
        if not ranged:
            got = plate.fs.cat_file(key)  # exact: a GET, not consolidated metadata
    assert got == expected
    assert plan.hits == spec["times"], plan.fired


@pytest.mark.parametrize("kind", ["error500", "reset", "truncate", "short", "delay"])
def test_chunk_gets_survive_a_transient_fault(
    plate_factory: Any, faults: CountingS3Server, kind: str
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    image = plate.well("A", 1).image(0)
    image.array_meta(0)  # metadata now; only chunk GETs below
    chunks = f"{_prefix(plate_on.url)}/A/1/0/0/c/*"
    spec = _transient(kind)
    if kind == "short":
        # zarr reads whole chunks; cut one short through a ranged read of it instead
        key = "A/1/0/0/c/0/0/0/0/0"
        with open(f"{plate_on.source_dir}/{key}", "rb") as handle:
            expected = handle.read()
        with faults.inject(Fault(method="GET", key=chunks, ranged=True, **spec)) as plan:
            assert plate.fs.cat_file(key, start=0, end=len(expected)) == expected
    else:
        with faults.inject(Fault(method="GET", key=chunks, **spec)) as plan:
            np.testing.assert_array_equal(image.level(0)[...], _expected_level(plate_on))
    assert plan.hits == spec["times"], plan.fired


@pytest.mark.parametrize("kind", [k for k in TRANSIENT if k != "short"])
def test_ozx_member_gets_survive_a_transient_fault(
    plate_factory: Any, faults: CountingS3Server, kind: str
) -> None:
    plate_on = plate_factory("ozx_s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    image = plate.well("A", 1).image(0)
    image.array_meta(0)  # the archive's directory and metadata are read: members only now
    spec = _transient(kind)
    with faults.inject(Fault(method="GET", key=_prefix(plate_on.url), ranged=True, **spec)) as plan:
        np.testing.assert_array_equal(image.level(0)[...], _expected_level(plate_on))
    assert plan.hits == spec["times"], plan.fired


# ---------------------------------------------------------------------- persistent reads
def _assert_named_failure(exc: BaseException, *names: str) -> None:
    assert isinstance(exc, OSError | HCSError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert any(name in text for name in names), f"{text!r} names none of {names}"


@pytest.mark.parametrize("kind", ["error500", "truncate", "short"])
def test_persistent_fault_on_a_document_fails_fast_naming_the_key(
    plate_factory: Any, faults: CountingS3Server, kind: str
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    key = "A/1/zarr.json"
    spec = {**_transient(kind), "times": None}
    ranged = kind == "short"
    started = time.monotonic()
    with (
        faults.inject(
            Fault(method="GET", key=f"{_prefix(plate_on.url)}/{key}", ranged=ranged or None, **spec)
        ),
        pytest.raises(Exception) as caught,
    ):
        plate.fs.cat_file(key, start=0, end=100) if ranged else plate.fs.cat_file(key)
    assert time.monotonic() - started < BOUND
    _assert_named_failure(caught.value, key)


def test_persistent_fault_on_chunks_fails_fast_naming_the_key(
    plate_factory: Any, faults: CountingS3Server
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    image = plate.well("A", 1).image(0)
    image.array_meta(0)
    started = time.monotonic()
    with (
        faults.inject(Fault("error", method="GET", key="*/A/1/0/0/c/*", times=None)),
        pytest.raises(Exception) as caught,
    ):
        image.level(0)[...]
    assert time.monotonic() - started < BOUND
    _assert_named_failure(caught.value, "A/1/0/0/c/")


def test_persistent_fault_on_ozx_members_fails_fast_naming_the_archive(
    plate_factory: Any, faults: CountingS3Server
) -> None:
    """A member read that keeps failing names the archive (and ideally the member).

    Bug (reported): ``hcsfs.ozx_source.fsspec_fetcher`` passes s3fs's error through
    as it is - ``OSError(121, 'We encountered an internal error. Please try again.')``
    - naming neither the archive nor the member (``FsspecSource.get`` names the key).
    """
    plate_on = plate_factory("ozx_s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=_options(plate_on))
    image = plate.well("A", 1).image(0)
    image.array_meta(0)
    started = time.monotonic()
    with (
        faults.inject(Fault("error", method="GET", key=_prefix(plate_on.url), times=None)),
        pytest.raises(Exception) as caught,
    ):
        image.level(0)[...]
    assert time.monotonic() - started < BOUND
    _assert_named_failure(caught.value, "plate.ozx")


# ---------------------------------------------------------------------- writes
@pytest.fixture
def s3_plate(s3: Any, s3_options: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A new 1 x 2 plate on S3 with field 0 of A/1 written; yields its URL and options."""
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
    options = {**s3_options, **FAST}
    plate = hcsfs.create_plate(url, rows=1, columns=2, storage_options=options)
    plate.write_image("A", 1, 0, _pixels(0), axes="cyx", chunks=(1, 16, 16))
    yield url, options


def _pixels(seed: int) -> np.ndarray:
    return (np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32) + seed * 1000).astype(
        np.uint16
    )


def _fields(url: str, options: dict[str, Any], well: tuple[str, int] = ("A", 1)) -> list[str]:
    """Fields of ``well`` as a fresh reader sees them; each one must be readable."""
    plate = hcsfs.open_plate(url, storage_options=options)
    fields = list(plate.well(*well).images)
    for name in fields:
        plate.well(*well).image(name).level(0)[...]
    return fields


def test_failed_chunk_put_leaves_the_field_unlisted_and_a_retry_completes_it(
    s3_plate: tuple[str, dict[str, Any]], faults: CountingS3Server
) -> None:
    url, options = s3_plate
    plate = hcsfs.open_plate(url, mode="r+", storage_options=options)
    chunks = f"{_prefix(url)}/A/1/1/0/c/*"
    with (
        faults.inject(Fault("error", method="PUT", key=chunks, skip=3, times=None)) as plan,
        pytest.raises(OSError),
    ):
        plate.write_image("A", 1, 1, _pixels(1), axes="cyx", chunks=(1, 16, 16))
    assert plan.hits > 0
    assert _fields(url, options) == ["0"], "a field whose chunks failed must not be listed"

    image = plate.write_image("A", 1, 1, _pixels(1), axes="cyx", chunks=(1, 16, 16))
    np.testing.assert_array_equal(image.level(0)[...], _pixels(1))
    assert _fields(url, options) == ["0", "1"]


@pytest.mark.parametrize(
    ("what", "fault"),
    [
        ("chunk 503", Fault("slowdown", method="PUT", key="A/2/0/0/c/*", times=2)),
        ("chunk reset after apply", Fault("reset", method="PUT", key="A/2/0/0/c/*", after=True)),
        (
            "well doc reset after apply",
            Fault("reset", method="PUT", key="A/2/zarr.json", after=True),
        ),
        ("plate doc 500", Fault("error", method="PUT", key="zarr.json", times=2)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_transient_write_faults_are_survived(
    s3_plate: tuple[str, dict[str, Any]], faults: CountingS3Server, what: str, fault: Fault
) -> None:
    url, options = s3_plate
    plate = hcsfs.open_plate(url, mode="r+", storage_options=options)
    fault.key = f"{_prefix(url)}/{fault.key}"  # the rules name keys inside the plate
    with faults.inject(fault) as plan:
        plate.write_image("A", 2, 0, _pixels(2), axes="cyx", chunks=(1, 16, 16))
    assert plan.hits > 0, what
    assert _fields(url, options, ("A", 2)) == ["0"], "listed exactly once"
    reader = hcsfs.open_plate(url, storage_options=options)
    np.testing.assert_array_equal(reader.well("A", 2).image(0).level(0)[...], _pixels(2))
    assert {w.path for w in reader.meta.wells} == {"A/1", "A/2"}


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_creating_a_plate_survives_a_lost_response_to_its_conditional_put(
    faults: CountingS3Server, version: str
) -> None:
    """The root document is PUT with If-None-Match; the server applies it and the
    connection drops, botocore retries, and the retry's condition fails against our
    own write. That must read as success, not as "another writer was first"."""
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
    options = {**faults.storage_options(), **FAST}
    root = "zarr.json" if version == "0.5" else ".zattrs"
    with faults.inject(
        Fault("reset", method="PUT", key=f"{_prefix(url)}/{root}", after=True)
    ) as plan:
        plate = hcsfs.create_plate(url, rows=1, columns=2, version=version, storage_options=options)
    assert plan.hits == 1
    plate.write_image("A", 1, 0, _pixels(0), axes="cyx", chunks=(1, 16, 16))
    plate.close()
    reader = hcsfs.open_plate(url, storage_options=options)
    assert reader.version == version and list(reader.well("A", 1).images) == ["0"]


def test_a_plate_another_writer_created_is_still_refused(faults: CountingS3Server) -> None:
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/plate.ome.zarr"
    options = {**faults.storage_options(), **FAST}
    hcsfs.create_plate(url, rows=1, columns=2, name="first", storage_options=options).close()
    with pytest.raises(PlateWriteError, match="holds a plate already"):
        hcsfs.create_plate(url, rows=1, columns=2, name="second", storage_options=options)
    assert hcsfs.open_plate(url, storage_options=options).name == "first"


def test_interrupted_pack_to_s3_keeps_the_previous_archive(
    plate_factory: Any, s3: Any, faults: CountingS3Server
) -> None:
    plate_on = plate_factory("dir", "0.5")
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/plate.ozx"
    s3.pipe(url, b"previous archive")
    options = {**faults.storage_options(), **FAST}
    key = _prefix(url)
    with (
        faults.inject(
            FaultPlan(
                Fault("error", method="PUT", key=key, times=None),
                Fault("error", method="POST", key=key, times=None),
            )
        ) as plan,
        pytest.raises(OSError),
    ):
        hcsfs.pack(plate_on.url, url, dst_storage_options=options)
    assert plan.hits > 0
    s3.invalidate_cache()
    assert s3.cat(url) == b"previous archive"


def test_interrupted_copy_to_s3_is_not_a_plate_and_a_retry_completes_it(
    plate_factory: Any, faults: CountingS3Server
) -> None:
    plate_on = plate_factory("dir", "0.5")
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/copy.ome.zarr"
    options = {**faults.storage_options(), **FAST}
    with (
        faults.inject(Fault("error", method="PUT", key="*/B/3/*", times=None)) as plan,
        pytest.raises(OSError, match="B/3/"),
    ):
        hcsfs.copy_plate(plate_on.url, url, dst_storage_options=options, max_concurrency=4)
    assert plan.hits > 0
    fs = fsspec.filesystem("s3", **options)
    assert not fs.exists(f"{url}/zarr.json"), "no root document: the copy is not a plate"
    with pytest.raises((HCSError, FileNotFoundError)):
        hcsfs.open_plate(url, storage_options=options)

    hcsfs.copy_plate(plate_on.url, url, dst_storage_options=options, overwrite=True)
    copied = hcsfs.open_plate(url, storage_options=options)
    np.testing.assert_array_equal(
        copied.well("A", 1).image(0).level(0)[...], _expected_level(plate_on)
    )


def test_interrupted_ozx_write_on_s3_keeps_the_previous_archive(
    plate_factory: Any, s3: Any, faults: CountingS3Server
) -> None:
    plate_on = plate_factory("dir", "0.5")
    url = f"s3://{BUCKET}/faults-{uuid.uuid4().hex[:8]}/plate.ozx"
    options = {**faults.storage_options(), **FAST}
    hcsfs.pack(plate_on.url, url, dst_storage_options=options)
    before = s3.cat(url)

    plate = hcsfs.open_plate(url, mode="a", storage_options=options)
    plate.write_image("A", 2, 5, _pixels(5)[None, :, None], acquisition=0)
    key = _prefix(url)
    with (
        faults.inject(
            FaultPlan(
                Fault("error", method="PUT", key=key, times=None),
                Fault("error", method="POST", key=key, times=None),
            )
        ) as plan,
        pytest.raises(OSError),
    ):
        plate.close()
    assert plan.hits > 0
    s3.invalidate_cache()
    assert s3.cat(url) == before
    reader = hcsfs.open_plate(url, storage_options=options)
    assert "5" not in reader.well("A", 2).images
