"""Plates over plain HTTP, which cannot list: every listing comes from the OME metadata."""

from __future__ import annotations

from typing import Any

import fsspec
import numpy as np
import pytest

import hcsfs
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import SamplePlateSpec, expected_field


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_over_plain_http_walks_and_reads_every_field(http_server: Any, version: str) -> None:
    plate = hcsfs.open_plate(http_server.url(f"plate-{version}.ome.zarr"))
    spec = SamplePlateSpec()
    assert sorted(plate.wells) == sorted(spec.wells)
    for path, well in plate.wells.items():
        for field, image in well.images.items():
            np.testing.assert_array_equal(
                image.level(0)[...], expected_field(spec, path, int(field))
            )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_listing_over_http_comes_from_metadata(http_server: Any, version: str) -> None:
    fs = HCSFileSystem(fo=http_server.url(f"plate-{version}.ome.zarr"), skip_instance_cache=True)
    doc = "zarr.json" if version == "0.5" else ".zattrs"
    assert fs.source.can_list is False
    assert {"A", "B", doc} <= set(fs.ls("", detail=False))
    assert fs.ls("A", detail=False) == ["A/1", "A/2"]
    assert set(fs.ls("A/1", detail=False)) >= {"A/1/0", "A/1/1", f"A/1/{doc}"}
    assert set(fs.ls("A/1/0", detail=False)) >= {"A/1/0/0", "A/1/0/1", "A/1/0/labels"}
    assert "A/1/0/labels/cells" in fs.ls("A/1/0/labels", detail=False)
    assert fs.info(f"A/1/{doc}")["size"] == len(fs.cat_file(f"A/1/{doc}"))
    found = fs.find("")
    assert f"B/3/1/{doc}" in found
    with pytest.raises(FileNotFoundError):
        fs.ls("C")


def test_ozx_over_http_opens_with_ranged_reads(http_server: Any) -> None:
    url = http_server.url("plate.ozx")
    fs, path = fsspec.core.url_to_fs(f"hcs::{url}")
    assert isinstance(fs, HCSFileSystem) and path == ""
    assert "A" in fs.ls("", detail=False)
    plate = hcsfs.open_plate(f"hcs::{url}")
    spec = SamplePlateSpec()
    np.testing.assert_array_equal(
        plate.well("B", 3).image(1).level(1)[...], expected_field(spec, "B/3", 1, 1)
    )
