"""Accessors answer from the index without a trip to the event loop when they can.

Every trip from the caller's thread to fsspec's loop costs ~0.1 ms; a 1536-well walk
asks tens of thousands of questions, so cached answers must not take that trip.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import hcsfs
from tests.conftest import BACKENDS


def _walk(plate: hcsfs.Plate) -> list[tuple[str, tuple[int, ...], str]]:
    return [
        (image.path, image.shape(0), image.dtype)
        for _, well in plate.wells.items()
        for _, image in well.images.items()
    ]


def _count_hops(plate: hcsfs.Plate, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hops = [0]
    real = plate._sync

    def counting(coro: Any) -> Any:
        hops[0] += 1
        return real(coro)

    monkeypatch.setattr(plate, "_sync", counting)
    return hops


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_walk_makes_no_loop_trip(
    plate_factory: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate_on = plate_factory(backend)
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    first = _walk(plate)
    hops = _count_hops(plate, monkeypatch)
    again = _walk(plate)
    assert again == first
    assert len(first) == 6  # 3 wells x 2 fields
    assert hops[0] == 0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_consolidated_walk_trips_once_per_level(
    plate_factory: Any, version: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "plate.ome.zarr"
    shutil.copytree(plate_factory("dir", version).url, root)
    hcsfs.consolidate(str(root))
    plate = hcsfs.open_plate(str(root))
    assert plate.meta is not None  # opened: the root (and its consolidated block) read
    assert plate.index.consolidated is not None
    hops = _count_hops(plate, monkeypatch)
    shapes = _walk(plate)
    assert len(shapes) == 6
    # one read-ahead per level of the window (wells, images, arrays), answered from
    # the consolidated block; every other question is answered without a trip
    assert hops[0] <= 3


def test_known_lookups_parse_from_consolidated_metadata(plate_factory: Any, tmp_path: Path) -> None:
    root = tmp_path / "plate.ome.zarr"
    shutil.copytree(plate_factory("dir", "0.5").url, root)
    hcsfs.consolidate(str(root))
    plate = hcsfs.open_plate(str(root))
    plate.meta  # noqa: B018 - open the index
    index = plate.index
    assert index.consolidated is not None
    well_path = plate.meta.wells[0].path
    well = index.known_well(well_path)
    assert well is not None and [img.path for img in well.images] == ["0", "1"]
    image = index.known_image(f"{well_path}/0")
    assert image is not None and image.datasets
    array = index.known_array(f"{well_path}/0/{image.datasets[0].path}")
    assert array is not None and array.shape == plate.well(*well_path.split("/")).image(0).shape(0)
    assert index.known_well("Z/99") is None
