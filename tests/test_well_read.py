"""Reading pixels: ``Image.read`` and ``Well.read`` (every field at once) on every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hcsfs
from tests.conftest import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_well_read_returns_every_field_as_each_field_reads_alone(
    plate_factory: Any, backend: str
) -> None:
    plate_on = plate_factory(backend)
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    well = plate.well("A", 1)
    fields = well.read(0)
    assert sorted(fields) == sorted(well.images)
    for name, pixels in fields.items():
        alone = np.asarray(well.image(name).level(0)[...])
        assert pixels.shape == alone.shape and pixels.dtype == alone.dtype
        assert np.array_equal(pixels, alone)
        assert pixels.any()  # the sample plate's fields are not blank


@pytest.mark.parametrize("backend", ["dir", "s3", "ozx_s3"])
def test_well_read_of_named_fields_and_a_lower_level(plate_factory: Any, backend: str) -> None:
    plate_on = plate_factory(backend)
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    well = plate.well("A", 1)
    only = well.read(1, fields=[1])
    assert list(only) == ["1"]
    assert only["1"].shape == well.image(1).shape(1)
    assert np.array_equal(only["1"], np.asarray(well.image(1).level(1)[...]))


def test_well_read_of_a_missing_field_names_it(plate_factory: Any) -> None:
    plate_on = plate_factory("dir")
    well = hcsfs.open_plate(plate_on.url).well("A", 1)
    with pytest.raises(KeyError, match="no field '7' in well A/1"):
        well.read(0, fields=[7])


@pytest.mark.parametrize("backend", ["dir", "s3"])
def test_image_read_takes_a_selection(plate_factory: Any, backend: str) -> None:
    plate_on = plate_factory(backend)
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    image = plate.well("A", 1).image(0)
    whole = image.read(0)
    assert whole.shape == image.shape(0)
    part = image.read(0, (slice(None), slice(0, 1), slice(None), slice(3, 9), slice(0, 5)))
    assert np.array_equal(part, whole[:, 0:1, :, 3:9, 0:5])
