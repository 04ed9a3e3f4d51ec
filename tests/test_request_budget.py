"""Request budgets, counted where the S3 server sees them.

Opening a 96-well x 2-field plate on S3 and enumerating every well, field and level-0
shape/dtype: at most 2 GETs with consolidated metadata; without it one GET per
metadata document (481 = plate + 96 wells + 192 images + 192 level-0 arrays), no
HEAD, no LIST, in at most 6 concurrent rounds. An .ozx on S3: open and enumerate in
at most 3 GETs, then 1 GET per member read, and range reads fetch only the range.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import zarr
import zarr.core.sync

import hcsfs
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import SamplePlateSpec, write_sample_plate
from hcsfs.source import Source
from hcsfs.store import HCSStore
from hcsfs.testing import CountingS3Server
from tests.conftest import BUCKET, upload_dir

ROWS = tuple("ABCDEFGH")
COLUMNS = tuple(str(c) for c in range(1, 13))
SPEC_96 = SamplePlateSpec(
    rows=ROWS,
    columns=COLUMNS,
    wells=tuple(f"{r}/{c}" for r in ROWS for c in COLUMNS),
    fields=2,
    shape=(1, 1, 1, 16, 16),
    chunks=(1, 1, 1, 16, 16),
    levels=1,
    channel_names=("DAPI",),
    label_field="",
)
DOCS_96 = 1 + 96 + 192 + 192


@pytest.fixture(scope="module")
def plates_96(s3: Any) -> dict[tuple[str, bool], str]:
    """96-well plates on S3: (version, consolidated) → URL; plus an .ozx."""
    urls: dict[tuple[str, bool], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version in ("0.4", "0.5"):
            for consolidated in (False, True):
                local = f"{tmp}/p-{version}-{consolidated}.ome.zarr"
                write_sample_plate(local, version=version, spec=SPEC_96, consolidated=consolidated)
                urls[(version, consolidated)] = upload_dir(
                    s3, local, f"budget/{version}-{consolidated}/plate.ome.zarr"
                )
        archive = f"{tmp}/plate.ozx"
        hcsfs.pack(urls[("0.5", False)], archive, storage_options=s3.storage_options)
        s3.put(archive, f"{BUCKET}/budget/plate.ozx")
    urls[("ozx", True)] = f"s3://{BUCKET}/budget/plate.ozx"
    return urls


class RoundCounter:
    """Counts concurrent request rounds the source is asked for."""

    def __init__(self, source: Source) -> None:
        self.rounds = 0
        self._get_many = source.get_many
        self._get = source.get
        self._depth = 0
        source.get_many = self.get_many  # type: ignore[method-assign]
        source.get = self.get  # type: ignore[method-assign]

    async def get_many(self, keys: Any) -> Any:
        self.rounds += 1
        self._depth += 1
        try:
            return await self._get_many(keys)
        finally:
            self._depth -= 1

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if self._depth == 0:
            self.rounds += 1
        return await self._get(key, start, end)


@pytest.fixture
def counted(s3_server: CountingS3Server) -> Iterator[CountingS3Server]:
    s3_server.reset_counts()
    yield s3_server


def enumerate_plate(plate: hcsfs.Plate) -> list[tuple[str, tuple[int, ...], str]]:
    """Every well, field and level-0 shape/dtype: the task the budgets are about."""
    found = []
    for path, well in plate.wells.items():
        for field, image in well.images.items():
            found.append((f"{path}/{field}", image.shape(0), image.dtype))
    return found


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_enumerating_96_wells_with_consolidated_metadata_costs_at_most_two_gets(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any, version: str
) -> None:
    plate = hcsfs.open_plate(plates_96[(version, True)], storage_options=s3_options)
    found = enumerate_plate(plate)
    assert len(found) == 192
    assert all(shape == (1, 1, 1, 16, 16) and dtype == "uint16" for _, shape, dtype in found)
    requests = counted.snapshot()
    assert [r.method for r in requests] == ["GET"] * len(requests)
    assert len(requests) <= 2, [r.key for r in requests]


def test_enumerating_96_wells_without_consolidated_metadata_v05_gets_each_document_once(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any
) -> None:
    plate = hcsfs.open_plate(plates_96[("0.5", False)], storage_options=s3_options)
    rounds = RoundCounter(plate.fs.source)
    found = enumerate_plate(plate)
    assert len(found) == 192
    requests = counted.snapshot()
    kinds = {r.kind for r in requests}
    assert kinds == {"GET"}, kinds
    keys = [r.key.split("plate.ome.zarr/", 1)[1] for r in requests]
    assert len(keys) == len(set(keys)) == DOCS_96
    assert all(k.endswith("zarr.json") for k in keys)
    assert rounds.rounds <= 6


def test_enumerating_96_wells_without_consolidated_metadata_v04_probes_only_the_root(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any
) -> None:
    plate = hcsfs.open_plate(plates_96[("0.4", False)], storage_options=s3_options)
    rounds = RoundCounter(plate.fs.source)
    found = enumerate_plate(plate)
    assert len(found) == 192
    requests = counted.snapshot()
    assert {r.kind for r in requests} == {"GET"}
    keys = [r.key.split("plate.ome.zarr/", 1)[1] for r in requests]
    # zarr.json and .zmetadata are tried once at the root to learn the layout; after
    # that every request is a document that exists (.zattrs of groups, .zarray of arrays)
    assert keys[:2] == ["zarr.json", ".zmetadata"]
    assert len(keys[2:]) == len(set(keys[2:])) == DOCS_96
    assert rounds.rounds <= 6


def test_ozx_on_s3_opens_and_enumerates_in_three_gets_then_one_per_member(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any
) -> None:
    plate = hcsfs.open_plate(plates_96[("ozx", True)], storage_options=s3_options)
    found = enumerate_plate(plate)
    assert len(found) == 192
    opening = counted.snapshot()
    assert {r.kind for r in opening} == {"GET"}
    assert all(r.range for r in opening), "every archive read is a ranged GET"
    assert len(opening) <= 3
    counted.reset_counts()
    chunk = plate.well("C", 7).image(1).level(0)[...]
    assert chunk.shape == (1, 1, 1, 16, 16)
    reads = counted.snapshot()
    assert len(reads) == 1 and reads[0].range is not None
    counted.reset_counts()
    fs = plate.fs
    key = "H/12/0/0/c/0/0/0/0/0"
    size = fs.info(key)["size"]
    assert counted.snapshot() == []
    whole = fs.cat_file(key)
    assert len(counted.snapshot()) == 1
    counted.reset_counts()
    assert fs.cat_file(key, start=size - 16) == whole[-16:]
    ranged = counted.snapshot()
    assert len(ranged) == 1
    first, last = ranged[0].range.removeprefix("bytes=").split("-")  # type: ignore[union-attr]
    assert int(last) - int(first) + 1 == 16, "a range read fetches only the range"


def walk_with_zarr(group: Any) -> int:
    """Every well's and field's metadata through zarr: the peers' way of walking a plate."""
    fields = 0
    plate = group.attrs["ome"]["plate"] if "ome" in group.attrs else group.attrs["plate"]
    for well_ref in plate["wells"]:
        well = group[well_ref["path"]]
        well_meta = well.attrs["ome"]["well"] if "ome" in well.attrs else well.attrs["well"]
        for image_ref in well_meta["images"]:
            image = well[image_ref["path"]]
            assert image[("0")].shape == (1, 1, 1, 16, 16)
            fields += 1
    return fields


def test_zarr_walk_through_hcsstore_costs_no_more_than_open_plate(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any
) -> None:
    fs = HCSFileSystem(
        fo=plates_96[("0.5", False)], target_options=s3_options, skip_instance_cache=True
    )
    group = zarr.open_group(
        HCSStore(fs, virtual_consolidated=False), mode="r", use_consolidated=False
    )
    assert walk_with_zarr(group) == 192
    requests = counted.snapshot()
    assert {r.kind for r in requests} == {"GET"}
    assert len(requests) <= DOCS_96, len(requests)


def test_virtual_consolidated_metadata_opens_the_plate_in_one_listing_and_one_round(
    plates_96: dict[tuple[str, bool], str], s3_options: dict[str, Any], counted: Any
) -> None:
    fs = HCSFileSystem(
        fo=plates_96[("0.5", False)], target_options=s3_options, skip_instance_cache=True
    )
    rounds = RoundCounter(fs.source)
    group = zarr.open_group(HCSStore(fs), mode="r", use_consolidated=True)
    assert group.metadata.consolidated_metadata is not None
    opening = counted.snapshot()
    kinds = Counter(r.kind for r in opening)
    assert kinds["LIST"] == 1 and kinds["HEAD"] == 0
    # plate + 8 row groups + 96 wells + 192 fields + 192 arrays, each fetched once
    assert kinds["GET"] == DOCS_96 + len(ROWS)
    assert rounds.rounds <= 3
    counted.reset_counts()
    assert walk_with_zarr(group) == 192
    assert counted.snapshot() == [], "walking the plate makes no request per well"


def test_whole_field_read_is_one_get_per_chunk_in_flight_together(
    plate_factory: Any, s3_server: CountingS3Server
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    array = plate.well("A", 2).image(0).level(0)
    s3_server.reset_counts()
    s3_server.latency = 0.25
    try:
        started = time.perf_counter()
        data = array[...]
        elapsed = time.perf_counter() - started
    finally:
        s3_server.latency = 0.0
    assert data.shape == (1, 2, 1, 64, 64)
    chunk_reads = [r for r in s3_server.snapshot() if "/c/" in r.key]
    assert len(chunk_reads) == 8 == len(s3_server.snapshot())
    assert elapsed < 8 * 0.25 / 2, f"8 chunk GETs took {elapsed:.2f} s: not overlapping"


def test_a_write_drops_virtual_consolidated_metadata(plate_factory: Any, tmp_path: Any) -> None:
    import shutil

    shutil.copytree(plate_factory("dir", "0.5").url, tmp_path / "plate")
    fs = HCSFileSystem(fo=str(tmp_path / "plate"), mode="r+", skip_instance_cache=True)
    reader = HCSStore(fs, virtual_consolidated=True)
    before = json.loads(zarr.core.sync.sync(reader._read("zarr.json", None)))
    assert "A/1/0/0" in before["consolidated_metadata"]["metadata"]
    writable = HCSStore(fs, read_only=False)
    root = zarr.open_group(writable, mode="r+", use_consolidated=False)
    root.create_group("extra")
    after = json.loads(zarr.core.sync.sync(reader._read("zarr.json", None)))
    assert "extra" in after["consolidated_metadata"]["metadata"]
