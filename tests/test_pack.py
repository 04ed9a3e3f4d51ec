"""Packing plates into RFC-9 .ozx archives: any source, local or S3 destination, atomic."""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np
import pytest

import hcsfs
from hcsfs.errors import HCSError
from hcsfs.ozx import ZipStreamWriter
from hcsfs.sample import SamplePlateSpec, expected_field
from tests.conftest import BUCKET


def assert_recommended_layout(names: list[str]) -> None:
    """Root zarr.json first, then every zarr.json breadth-first, then the data."""
    assert names[0] == "zarr.json"
    docs = [n for n in names if n.endswith("zarr.json")]
    assert names[: len(docs)] == docs
    depths = [n.count("/") for n in docs]
    assert depths == sorted(depths)


@pytest.mark.parametrize("source", ["dir", "s3", "ozx_s3"])
def test_pack_from_any_source_gives_the_recommended_variant(
    plate_factory: Any, tmp_path: Any, source: str
) -> None:
    plate_on = plate_factory(source, "0.5")
    archive = str(tmp_path / "out.ozx")
    report = hcsfs.pack(plate_on.url, archive, storage_options=plate_on.storage_options)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = [i.filename for i in zf.infolist()]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert json.loads(zf.comment.rstrip(b"\0"))["ome"]["version"] == "0.5"
        root = json.loads(zf.read("zarr.json"))
    assert_recommended_layout(names)
    assert root["consolidated_metadata"]["kind"] == "inline"
    assert "A/1/0/0" in root["consolidated_metadata"]["metadata"]
    assert report.members == len(names)
    assert report.archive_bytes == os.path.getsize(archive)
    plate = hcsfs.open_plate(archive)
    np.testing.assert_array_equal(
        plate.well("A", 2).image(1).level(1)[...], expected_field(SamplePlateSpec(), "A/2", 1, 1)
    )


def test_pack_streams_to_s3_and_the_archive_reads_back(
    plate_factory: Any, s3: Any, s3_options: dict[str, Any], s3_server: Any
) -> None:
    plate_on = plate_factory("dir", "0.5")
    url = f"s3://{BUCKET}/packed/streamed.ozx"
    s3_server.reset_counts()
    hcsfs.pack(plate_on.url, url, dst_storage_options=s3_options)
    kinds = s3_server.counts()
    assert kinds["PUT"] >= 1 and kinds["LIST"] == 0
    plate = hcsfs.open_plate(url, storage_options=s3_options)
    assert sorted(plate.wells) == sorted(SamplePlateSpec().wells)
    np.testing.assert_array_equal(
        plate.well("B", 3).image(0).level(0)[...], expected_field(SamplePlateSpec(), "B/3", 0)
    )


def test_pack_refuses_a_zarr_v2_plate_without_conversion(plate_factory: Any, tmp_path: Any) -> None:
    plate_on = plate_factory("dir", "0.4")
    with pytest.raises(HCSError, match=r"zarr v2.*to_version='0.5'"):
        hcsfs.pack(plate_on.url, str(tmp_path / "x.ozx"))
    assert os.listdir(tmp_path) == []


def test_pack_converts_0_4_to_0_5_keeping_chunks(plate_factory: Any, tmp_path: Any) -> None:
    plate_on = plate_factory("dir", "0.4")
    archive = str(tmp_path / "converted.ozx")
    report = hcsfs.pack(plate_on.url, archive, to_version="0.5")
    assert report.version == "0.5"
    plate = hcsfs.open_plate(archive)
    assert plate.version == "0.5"
    image = plate.well("A", 1).image(0)
    assert image.level(0).metadata.dimension_names == ("t", "c", "z", "y", "x")
    np.testing.assert_array_equal(image.level(0)[...], expected_field(SamplePlateSpec(), "A/1", 0))
    assert plate.well("A", 1).image(0).labels == ("cells",)


class Boom(RuntimeError):
    pass


def _fail_after(monkeypatch: pytest.MonkeyPatch, members: int) -> None:
    original = ZipStreamWriter.add
    calls = {"n": 0}

    def add(self: ZipStreamWriter, name: str, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > members:
            raise Boom("interrupted")
        original(self, name, data)

    monkeypatch.setattr(ZipStreamWriter, "add", add)


def test_interrupted_pack_keeps_the_previous_local_archive(
    plate_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate_on = plate_factory("dir", "0.5")
    archive = tmp_path / "plate.ozx"
    archive.write_bytes(b"previous archive")
    _fail_after(monkeypatch, 20)
    with pytest.raises(Boom):
        hcsfs.pack(plate_on.url, str(archive))
    assert archive.read_bytes() == b"previous archive"
    assert sorted(os.listdir(tmp_path)) == ["plate.ozx"], "no partial file is left behind"


def test_interrupted_pack_to_s3_leaves_no_object_and_keeps_the_old_one(
    plate_factory: Any, s3: Any, s3_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    plate_on = plate_factory("dir", "0.5")
    url = f"s3://{BUCKET}/interrupted/plate.ozx"
    s3.pipe(url, b"previous archive")
    _fail_after(monkeypatch, 20)
    with pytest.raises(Boom):
        hcsfs.pack(plate_on.url, url, dst_storage_options=s3_options)
    s3.invalidate_cache()
    assert s3.cat(url) == b"previous archive"
    assert s3.ls(f"{BUCKET}/interrupted") == [f"{BUCKET}/interrupted/plate.ozx"]
