"""The same plate behaves the same on every backend: dir, memory, S3, .ozx, .ozx on S3."""

from __future__ import annotations

import pickle
from typing import Any

import fsspec
import numpy as np
import pytest

import hcsfs
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import expected_field


def open_on(plate_on: Any) -> hcsfs.Plate:
    return hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)


def fs_on(plate_on: Any) -> HCSFileSystem:
    return HCSFileSystem(
        fo=plate_on.url, target_options=plate_on.storage_options, skip_instance_cache=True
    )


def test_open_plate_reads_plate_metadata(plate_on: Any) -> None:
    plate = open_on(plate_on)
    spec = plate_on.spec
    assert plate.name == spec.name
    assert plate.version == ("0.5" if plate_on.is_archive else plate_on.version)
    assert plate.rows == spec.rows
    assert plate.columns == spec.columns
    assert sorted(plate.wells) == sorted(spec.wells)
    assert [a.id for a in plate.acquisitions] == list(spec.acquisitions)
    assert plate.field_count == spec.fields


def test_walking_the_plate_returns_every_field_with_its_pixels(plate_on: Any) -> None:
    plate = open_on(plate_on)
    spec = plate_on.spec
    seen = []
    for path, well in plate.wells.items():
        assert list(well.images) == [str(f) for f in range(spec.fields)]
        for field, image in well.images.items():
            assert image.axis_names == ("t", "c", "z", "y", "x")
            assert image.channel_names == spec.channel_names
            assert image.levels == spec.levels
            assert image.shape(0) == spec.shape
            assert image.dtype == spec.dtype
            assert image.scale(0) == (1.0, 1.0, 1.0, 0.5, 0.5)
            assert image.scale(1) == (1.0, 1.0, 1.0, 1.0, 1.0)
            for level in range(spec.levels):
                data = image.level(level)[...]
                np.testing.assert_array_equal(data, expected_field(spec, path, int(field), level))
            seen.append(image.path)
    assert len(seen) == len(spec.wells) * spec.fields


def test_well_lookup_by_row_and_column_accepts_int_or_str(plate_on: Any) -> None:
    plate = open_on(plate_on)
    assert plate.well("A", 1).path == "A/1"
    assert plate.well("B", "3").path == "B/3"
    assert plate.well("A", 1).image(1).acquisition == 1


def test_missing_well_and_field_raise_keyerror_naming_what_exists(plate_on: Any) -> None:
    plate = open_on(plate_on)
    with pytest.raises(KeyError, match=r"no well 'H/12'.*A/1"):
        plate.well("H", 12)
    with pytest.raises(KeyError, match=r"no field '7' in well A/1; fields: 0, 1"):
        plate.well("A", 1).image(7)


def test_labels_are_listed_for_the_labelled_field_only(plate_on: Any) -> None:
    plate = open_on(plate_on)
    assert plate.well("A", 1).image(0).labels == ("cells",)
    assert plate.well("A", 2).image(0).labels == ()


def test_to_dask_is_lazy_and_equal(plate_on: Any) -> None:
    plate = open_on(plate_on)
    image = plate.well("B", 3).image(1)
    lazy = image.to_dask(0)
    assert lazy.shape == plate_on.spec.shape
    np.testing.assert_array_equal(lazy.compute(), expected_field(plate_on.spec, "B/3", 1))


def test_filesystem_lists_groups_from_metadata(plate_on: Any) -> None:
    fs = fs_on(plate_on)
    doc = "zarr.json" if plate_on.is_archive or plate_on.version == "0.5" else ".zattrs"
    root = fs.ls("", detail=False)
    assert {"A", "B", doc} <= set(root)
    assert set(fs.ls("A", detail=False)) >= {"A/1", "A/2"}
    assert set(fs.ls("A/1", detail=False)) >= {"A/1/0", "A/1/1", f"A/1/{doc}"}
    assert set(fs.ls("A/1/0", detail=False)) >= {"A/1/0/0", "A/1/0/1", "A/1/0/labels"}
    assert fs.isdir("A/1/0/0")
    assert fs.isfile(f"A/1/{doc}")
    assert not fs.exists("A/9")
    with pytest.raises(FileNotFoundError):
        fs.ls("Z/1")


def test_cat_file_reads_ranges_and_many_paths(plate_on: Any) -> None:
    fs = fs_on(plate_on)
    doc = "zarr.json" if plate_on.is_archive or plate_on.version == "0.5" else ".zattrs"
    whole = fs.cat_file(f"A/1/{doc}")
    assert b"images" in whole
    assert fs.cat_file(f"A/1/{doc}", start=2, end=9) == whole[2:9]
    assert fs.cat_file(f"A/1/{doc}", start=-5) == whole[-5:]
    many = fs.cat([f"A/1/{doc}", f"A/2/{doc}", f"B/3/{doc}"])
    assert set(many) == {f"A/1/{doc}", f"A/2/{doc}", f"B/3/{doc}"}
    assert many[f"A/1/{doc}"] == whole
    with fs.open(f"A/1/{doc}", "rb") as handle:
        assert handle.read() == whole
    assert fs.info(f"A/1/{doc}")["size"] == len(whole)


def test_find_walk_and_du_cover_every_file(plate_on: Any) -> None:
    fs = fs_on(plate_on)
    found = fs.find("", detail=True)
    assert all(info["type"] == "file" for info in found.values())
    walked = {f"{root}/{name}".strip("/") for root, _, files in fs.walk("") for name in files}
    assert walked == set(found)
    assert fs.du("") == sum(info["size"] for info in found.values())
    chunks = [
        name
        for name in found
        if name.startswith("A/1/0/0/") and "json" not in name and "/.z" not in name
    ]
    assert len(chunks) == 8  # 2 channels x 2 x 2 chunks of 32 px


def test_filesystem_pickles_and_compares_equal() -> None:
    fs = HCSFileSystem(fo="/nonexistent/plate.ome.zarr", skip_instance_cache=True)
    clone = pickle.loads(pickle.dumps(fs))
    assert clone == fs
    assert clone.fo == fs.fo


def test_opened_filesystem_pickles_without_cached_state(plate_on: Any) -> None:
    fs = fs_on(plate_on)
    fs.ls("A/1")
    payload = pickle.dumps(fs)
    clone = pickle.loads(payload)
    assert clone == fs
    assert clone.ls("A/1", detail=False) == fs.ls("A/1", detail=False)
    assert len(payload) < 4096


@pytest.mark.parametrize("remote", ["s3", "ozx_s3"])
def test_chained_urls_reach_the_plate(plate_factory: Any, remote: str, version: str) -> None:
    plate_on = plate_factory(remote, version)
    protocol_free = plate_on.url.removeprefix("s3://")
    doc = "zarr.json" if plate_on.is_archive or plate_on.version == "0.5" else ".zattrs"
    with fsspec.open(
        f"hcs://A/1/{doc}::s3://{protocol_free}", "rb", s3=plate_on.storage_options
    ) as handle:
        assert b"images" in handle.read()
    fs, path = fsspec.core.url_to_fs(f"hcs::s3://{protocol_free}", s3=plate_on.storage_options)
    assert isinstance(fs, HCSFileSystem)
    assert path == ""
    assert "A" in fs.ls("", detail=False)
