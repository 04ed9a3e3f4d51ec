"""Writing plates: create, write fields with pyramids, remove, consolidate, .ozx targets.

Runs on a local directory, in memory and on S3 (moto), in OME-Zarr 0.4 and 0.5.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import fsspec
import numpy as np
import pytest
import zarr

import hcsfs
from hcsfs.check import validate_plate_tree
from hcsfs.errors import PlateWriteError
from hcsfs.write import PLATE_TYPES, consolidate, create_plate
from hcsfs.write.pyramid import level_transform
from tests.conftest import BUCKET

WRITE_BACKENDS = ("dir", "memory", "s3")


@pytest.fixture(params=WRITE_BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path: Any, s3_options: dict[str, Any], s3: Any
) -> tuple[str, dict[str, Any]]:
    """A fresh, empty plate location on each backend, and its storage options."""
    tag = uuid.uuid4().hex[:8]
    if request.param == "dir":
        return str(tmp_path / tag / "plate.ome.zarr"), {}
    if request.param == "memory":
        return f"memory://write/{tag}/plate.ome.zarr", {}
    return f"s3://{BUCKET}/write-{tag}/plate.ome.zarr", dict(s3_options)


def pixels(shape: tuple[int, ...], seed: int = 0, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(dtype)


def listing(url: str, options: dict[str, Any]) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url, **options)
    if not fs.exists(path):
        return []
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()
    return sorted(fs.find(path))


# ------------------------------------------------------------------------- create
def test_create_plate_writes_an_empty_plate(
    target: tuple[str, dict[str, Any]], version: str
) -> None:
    url, options = target
    plate = create_plate(
        url, rows=["A", "B"], columns=[1, 2, 3], version=version, storage_options=options
    )
    assert plate.version == version
    assert plate.rows == ("A", "B")
    assert plate.columns == ("1", "2", "3")
    assert plate.name == "plate"
    assert len(plate.wells) == 0
    reopened = hcsfs.open_plate(url, storage_options=options)
    assert reopened.rows == ("A", "B") and reopened.zarr_format == (2 if version == "0.4" else 3)


@pytest.mark.parametrize("plate_type", sorted(PLATE_TYPES))
def test_plate_types_give_standard_layouts(tmp_path: Any, plate_type: int) -> None:
    plate = create_plate(str(tmp_path / "p.zarr"), plate_type=plate_type)
    n_rows, n_columns = PLATE_TYPES[plate_type]
    assert len(plate.rows) * len(plate.columns) == plate_type
    assert (len(plate.rows), len(plate.columns)) == (n_rows, n_columns)
    assert plate.rows[0] == "A" and plate.columns[-1] == str(n_columns)
    if plate_type == 1536:
        assert plate.rows[-1] == "AF"


def test_create_refuses_an_existing_plate_without_overwrite(
    target: tuple[str, dict[str, Any]],
) -> None:
    url, options = target
    with create_plate(url, rows=2, columns=2, storage_options=options) as plate:
        plate.write_image("A", "1", 0, pixels((8, 8)), axes="yx")
    before = listing(url, options)
    with pytest.raises(PlateWriteError, match="overwrite=True"):
        create_plate(url, rows=3, columns=3, storage_options=options)
    assert listing(url, options) == before
    plate = create_plate(url, rows=3, columns=3, storage_options=options, overwrite=True)
    assert len(plate.rows) == 3 and len(plate.wells) == 0
    assert not any("/A/1/" in key for key in listing(url, options))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": ["A", "A"], "columns": 2}, "unique"),
        ({"rows": ["A-1"], "columns": 2}, "letters and digits"),
        ({"rows": 2, "columns": 0}, "at least 1"),
        ({"plate_type": 100}, "plate_type"),
        ({"rows": 2}, "give rows and columns"),
        ({"plate_type": 96, "rows": 4}, "8 rows x 12 columns"),
        ({"rows": 2, "columns": 2, "version": "0.3"}, "version"),
        ({"rows": 2, "columns": 2, "acquisitions": [0, 0]}, "unique"),
        ({"rows": 2, "columns": 2, "field_count": 0}, "field_count"),
    ],
)
def test_create_refuses_bad_layouts_before_writing(
    tmp_path: Any, kwargs: dict[str, Any], message: str
) -> None:
    url = str(tmp_path / "bad.zarr")
    with pytest.raises(PlateWriteError, match=message):
        create_plate(url, **kwargs)
    assert not os.path.exists(url)


# ------------------------------------------------------------------------- write_image
def test_write_image_round_trips_pixels_and_metadata(
    target: tuple[str, dict[str, Any]], version: str
) -> None:
    url, options = target
    data = pixels((1, 2, 3, 40, 50))
    with create_plate(
        url, rows=2, columns=3, version=version, storage_options=options, acquisitions=[7]
    ) as plate:
        image = plate.write_image(
            "B",
            2,
            0,
            data,
            scale=[1, 1, 2.0, 0.5, 0.25],
            channel_names=["DAPI", "GFP"],
            chunks=(1, 1, 1, 16, 16),
            levels=3,
        )
        assert image.path == "B/2/0"
        assert image.levels == 3
    plate = hcsfs.open_plate(url, storage_options=options)
    assert list(plate.wells) == ["B/2"]
    well = plate.well("B", 2)
    assert list(well.images) == ["0"]
    assert well.meta.images[0].acquisition == 7
    image = well.image(0)
    assert image.axis_names == ("t", "c", "z", "y", "x")
    assert image.channel_names == ("DAPI", "GFP")
    assert image.shape(0) == (1, 2, 3, 40, 50)
    assert image.shape(1) == (1, 2, 3, 20, 25)
    assert image.shape(2) == (1, 2, 3, 10, 13)
    assert image.array_meta(0).chunks == (1, 1, 1, 16, 16)
    assert image.scale(0) == (1.0, 1.0, 2.0, 0.5, 0.25)
    assert image.scale(2) == (1.0, 1.0, 2.0, 2.0, 1.0)
    assert image.translation(1) == (0.0, 0.0, 0.0, 0.25, 0.125)
    np.testing.assert_array_equal(image.level(0)[...], data)
    assert plate.acquisitions[0].maximum_field_count == 1
    assert validate_plate_tree(plate, strict=True) == []


def test_pyramid_levels_are_2x2_means_or_strides(tmp_path: Any) -> None:
    data = pixels((3, 9, 11), dtype="uint8")
    with create_plate(str(tmp_path / "p.zarr"), rows=1, columns=2) as plate:
        mean = plate.write_image("A", 1, 0, data, axes="zyx", levels=3, chunks=(1, 4, 4))
        stride = plate.write_image("A", 2, 0, data, axes="zyx", levels=3, downsample="stride")
        level1 = mean.level(1)[...]
        padded = np.pad(data.astype(float), ((0, 0), (0, 1), (0, 1)), mode="edge")
        expected = padded.reshape(3, 5, 2, 6, 2).mean(axis=(2, 4))
        np.testing.assert_array_equal(level1, np.rint(expected).astype("uint8"))
        assert mean.shape(2) == (3, 3, 3)
        np.testing.assert_array_equal(stride.level(1)[...], data[:, ::2, ::2])
        np.testing.assert_array_equal(stride.level(2)[...], data[:, ::4, ::4])
        assert stride.translation(2) is None
        assert mean.translation(2) == (0.0, 1.5, 1.5)


def test_level_transform_convention() -> None:
    scale, translation = level_transform((1.0, 0.5, 0.5), (0.0, 10.0, 20.0), (1, 2), 2, "mean")
    assert scale == (1.0, 2.0, 2.0)
    assert translation == (0.0, 10.75, 20.75)
    assert level_transform((1.0, 0.5, 0.5), None, (1, 2), 2, "stride") == ((1.0, 2.0, 2.0), None)


def test_dask_and_zarr_data_stream_chunk_by_chunk(tmp_path: Any) -> None:
    source = zarr.create_array(
        str(tmp_path / "src.zarr"), shape=(2, 64, 96), chunks=(1, 32, 32), dtype="float32"
    )
    source[...] = np.random.default_rng(1).random((2, 64, 96), dtype="float32")
    lazy = da.from_array(source[...], chunks=(1, 16, 16)) * 2
    with create_plate(str(tmp_path / "p.zarr"), rows=1, columns=1) as plate:
        from_zarr = plate.write_image("A", 1, 0, source, axes="cyx", levels=2)
        from_dask = plate.write_image("A", 1, 1, lazy, axes="cyx", chunks=(1, 32, 64))
        np.testing.assert_array_equal(from_zarr.level(0)[...], source[...])
        np.testing.assert_allclose(from_dask.level(0)[...], source[...] * 2)
        assert from_dask.array_meta(0).chunks == (1, 32, 64)


def test_sharded_fields_in_0_5(tmp_path: Any) -> None:
    data = pixels((2, 64, 64))
    with create_plate(str(tmp_path / "p.zarr"), rows=1, columns=1) as plate:
        image = plate.write_image(
            "A", 1, 0, data, axes="cyx", chunks=(1, 16, 16), shards=(1, 32, 64), levels=3
        )
        meta = image.array_meta(0)
        assert meta.shards == (1, 32, 64) and meta.chunks == (1, 16, 16)
        assert image.array_meta(2).shards == (1, 16, 16)
        np.testing.assert_array_equal(image.level(0)[...], data)
        assert validate_plate_tree(plate, strict=True) == []


def test_overwrite_replaces_a_field(target: tuple[str, dict[str, Any]], version: str) -> None:
    url, options = target
    with create_plate(url, rows=1, columns=1, version=version, storage_options=options) as plate:
        plate.write_image("A", 1, 0, pixels((32, 32), 1), axes="yx", levels=3)
        with pytest.raises(PlateWriteError, match="overwrite=True"):
            plate.write_image("A", 1, 0, pixels((16, 16), 2), axes="yx")
        image = plate.write_image("A", 1, 0, pixels((16, 16), 2), axes="yx", overwrite=True)
        assert image.levels == 1
        np.testing.assert_array_equal(image.level(0)[...], pixels((16, 16), 2))
    assert not any("/A/1/0/2/" in key for key in listing(url, options))


# ------------------------------------------------------------------------- bad input
@pytest.fixture
def small_plate(tmp_path: Any) -> Iterator[hcsfs.Plate]:
    plate = create_plate(str(tmp_path / "p.zarr"), rows=2, columns=2, acquisitions=[0, 1])
    plate.write_image("A", 1, 0, pixels((8, 8)), axes="yx", acquisition=0)
    yield plate


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("C", 1, 0, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0}, "no row 'C'"),
        (("A", 3, 0, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0}, "no column '3'"),
        (("A", 1, 0, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0}, "exists"),
        (("A", 1, 1, np.zeros((8, 8))), {"acquisition": 0}, "2 dimensions"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "xy", "acquisition": 0}, "order"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yq", "acquisition": 0}, "tczyx"),
        (("A", 1, 1, np.zeros((8, 8), "complex64")), {"axes": "yx", "acquisition": 0}, "type"),
        (("A", 1, 1, np.zeros((8, 8), "U1")), {"axes": "yx", "acquisition": 0}, "type"),
        (("A", 1, 1, np.zeros((0, 8))), {"axes": "yx", "acquisition": 0}, "empty"),
        (("A", 1, 1, [[1, 2]]), {"axes": "yx", "acquisition": 0}, "numpy, dask or zarr"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx"}, "acquisition"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx", "acquisition": 5}, "no acquisition 5"),
        (("A", 1, "f-1", np.zeros((8, 8))), {"axes": "yx", "acquisition": 0}, "alphanumeric"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0, "levels": 0}, "levels"),
        (("A", 1, 1, np.zeros((2, 2))), {"axes": "yx", "acquisition": 0, "levels": 4}, "too many"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0, "scale": [1]}, "1 values"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0, "scale": [1, 0]}, "posit"),
        (("A", 1, 1, np.zeros((8, 8))), {"axes": "yx", "acquisition": 0, "chunks": (4,)}, "chunks"),
        (
            ("A", 1, 1, np.zeros((8, 8))),
            {"axes": "yx", "acquisition": 0, "chunks": (4, 4), "shards": (6, 8)},
            "multiples",
        ),
        (
            ("A", 1, 1, np.zeros((2, 8, 8))),
            {"axes": "cyx", "acquisition": 0, "channel_names": ["a"]},
            "channel_names",
        ),
        (
            ("A", 1, 1, np.zeros((8, 8))),
            {"axes": "yx", "acquisition": 0, "downsample": "max"},
            "downsample",
        ),
    ],
)
def test_bad_writes_are_refused_before_anything_is_written(
    small_plate: hcsfs.Plate, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    before = listing(small_plate.url, {})
    with pytest.raises(PlateWriteError, match=message):
        small_plate.write_image(*args, **kwargs)
    assert listing(small_plate.url, {}) == before


def test_sharding_needs_0_5(tmp_path: Any) -> None:
    plate = create_plate(str(tmp_path / "p.zarr"), rows=1, columns=1, version="0.4")
    with pytest.raises(PlateWriteError, match="sharding"):
        plate.write_image("A", 1, 0, np.zeros((8, 8)), axes="yx", chunks=(4, 4), shards=(8, 8))


def test_read_only_plates_refuse_writes(small_plate: hcsfs.Plate) -> None:
    small_plate.close()
    plate = hcsfs.open_plate(small_plate.url)
    before = listing(plate.url, {})
    with pytest.raises(PermissionError, match="read-only"):
        plate.write_image("B", 2, 0, np.zeros((8, 8)), axes="yx", acquisition=0)
    with pytest.raises(PermissionError):
        plate.remove_well("A", 1)
    with pytest.raises(PermissionError):
        plate.consolidate()
    assert listing(plate.url, {}) == before


def test_closed_plates_refuse_writes(small_plate: hcsfs.Plate) -> None:
    small_plate.close()
    with pytest.raises(PlateWriteError, match="closed"):
        small_plate.write_image("B", 2, 0, np.zeros((8, 8)), axes="yx", acquisition=0)


def test_mixed_versions_are_refused(tmp_path: Any) -> None:
    url = str(tmp_path / "p.zarr")
    with create_plate(url, rows=1, columns=2) as plate:
        plate.write_image("A", 1, 0, np.zeros((8, 8), "uint8"), axes="yx")
    well_doc = tmp_path / "p.zarr" / "A" / "1" / "zarr.json"
    doc = json.loads(well_doc.read_text())
    doc["attributes"]["ome"]["version"] = "0.4"
    well_doc.write_text(json.dumps(doc))
    plate = hcsfs.open_plate(url, mode="r+")
    before = listing(url, {})
    with pytest.raises(PlateWriteError, match="mix OME-Zarr versions"):
        plate.write_image("A", 1, 1, np.zeros((8, 8), "uint8"), axes="yx")
    assert listing(url, {}) == before


# ------------------------------------------------------------------------- removing
def test_remove_image_and_remove_well_keep_metadata_consistent(
    target: tuple[str, dict[str, Any]], version: str
) -> None:
    url, options = target
    with create_plate(url, rows=2, columns=2, version=version, storage_options=options) as plate:
        for field in range(3):
            plate.write_image("A", 1, field, pixels((8, 8), field), axes="yx")
        plate.write_image("B", 2, 0, pixels((8, 8)), axes="yx")
        well = plate.well("A", 1)
        well.remove_image(1)
        assert list(plate.well("A", 1).images) == ["0", "2"]
        with pytest.raises(KeyError):
            well.remove_image(1)
        plate.well("B", 2).remove_image(0)  # the last field: the well goes too
        assert list(plate.wells) == ["A/1"]
        plate.remove_well("A", 1)
        assert list(plate.wells) == []
        with pytest.raises(KeyError):
            plate.remove_well("A", 1)
    keys = listing(url, options)
    assert not any("/A/1/" in k or "/B/2/" in k for k in keys)


# ------------------------------------------------------------------------- consolidation
def root_doc(url: str, options: dict[str, Any], version: str) -> dict[str, Any]:
    fs, path = fsspec.core.url_to_fs(url, **options)
    name = "zarr.json" if version == "0.5" else ".zmetadata"
    if not fs.exists(f"{path}/{name}"):
        return {}
    return json.loads(fs.cat_file(f"{path}/{name}"))


def consolidated_nodes(url: str, options: dict[str, Any], version: str) -> set[str] | None:
    doc = root_doc(url, options, version)
    if version == "0.5":
        block = doc.get("consolidated_metadata")
        return None if not block else set(block["metadata"])
    if not doc:
        return None
    return {k.rpartition("/")[0] for k in doc["metadata"]}


def test_closed_plates_have_fresh_consolidated_metadata_and_writes_drop_it(
    target: tuple[str, dict[str, Any]], version: str
) -> None:
    url, options = target
    with create_plate(url, rows=2, columns=2, version=version, storage_options=options) as plate:
        plate.write_image("A", 1, 0, pixels((8, 8)), axes="yx")
    nodes = consolidated_nodes(url, options, version)
    assert nodes is not None and {"A/1", "A/1/0", "A/1/0/0"} <= nodes
    reader = hcsfs.open_plate(url, storage_options=options)
    assert reader.index.consolidated is not None
    writer = hcsfs.open_plate(url, mode="r+", storage_options=options)
    writer.write_image("A", 1, 1, pixels((8, 8)), axes="yx")
    assert consolidated_nodes(url, options, version) is None  # dropped by the write
    fresh = hcsfs.open_plate(url, storage_options=options)
    assert list(fresh.well("A", 1).images) == ["0", "1"]
    writer.consolidate()
    assert "A/1/1" in (consolidated_nodes(url, options, version) or set())
    fresh = hcsfs.open_plate(url, storage_options=options)
    assert fresh.index.consolidated is not None
    assert list(fresh.well("A", 1).images) == ["0", "1"]
    writer.remove_well("A", 1)
    assert consolidated_nodes(url, options, version) is None
    consolidate(url, storage_options=options)
    assert "A/1" not in (consolidated_nodes(url, options, version) or {"A/1"})


def test_zarr_reads_consolidated_metadata_hcsfs_wrote(tmp_path: Any, version: str) -> None:
    url = str(tmp_path / "p.zarr")
    with create_plate(url, rows=1, columns=1, version=version) as plate:
        plate.write_image("A", 1, 0, pixels((8, 8)), axes="yx")
    group = zarr.open_consolidated(url, zarr_format=2 if version == "0.4" else 3)
    assert group["A/1/0/0"].shape == (8, 8)


# ------------------------------------------------------------------------- .ozx targets
def test_ozx_create_and_append(tmp_path: Any) -> None:
    archive = str(tmp_path / "plate.ozx")
    with create_plate(archive, rows=2, columns=2) as plate:
        plate.write_image("A", 1, 0, pixels((16, 16), 1), axes="yx", levels=2)
    assert [p.name for p in tmp_path.iterdir()] == ["plate.ozx"]  # staging removed
    first = Path(archive).read_bytes()
    plate = hcsfs.open_plate(archive)
    assert list(plate.wells) == ["A/1"] and plate.index.consolidated is not None
    with hcsfs.open_plate(archive, mode="a") as plate:
        plate.write_image("A", 1, 1, pixels((16, 16), 2), axes="yx")
        plate.write_image("A", 1, 0, pixels((16, 16), 3), axes="yx", overwrite=True)
        plate.write_image("B", 2, 0, pixels((16, 16), 4), axes="yx")
        assert Path(archive).read_bytes() == first  # untouched until the plate is closed
    plate = hcsfs.open_plate(archive)
    assert sorted(plate.wells) == ["A/1", "B/2"]
    np.testing.assert_array_equal(plate.well("A", 1).image(0).level(0)[...], pixels((16, 16), 3))
    assert plate.well("A", 1).image(0).levels == 1
    assert validate_plate_tree(plate, strict=True) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.ozx"]


def test_ozx_failed_session_keeps_the_old_archive(tmp_path: Any) -> None:
    archive = str(tmp_path / "plate.ozx")
    with create_plate(archive, rows=1, columns=2) as plate:
        plate.write_image("A", 1, 0, pixels((8, 8)), axes="yx")
    before = Path(archive).read_bytes()
    with pytest.raises(RuntimeError), hcsfs.open_plate(archive, mode="a") as plate:
        plate.write_image("A", 2, 0, pixels((8, 8)), axes="yx")
        raise RuntimeError("crash mid-way")
    assert Path(archive).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.ozx"]
    with pytest.raises(PlateWriteError, match="overwrite=True"):
        create_plate(archive, rows=1, columns=1)
    with pytest.raises(PlateWriteError, match=r"0\.5"):
        create_plate(str(tmp_path / "v4.ozx"), rows=1, columns=1, version="0.4")


def test_ozx_on_s3_as_a_write_target(s3: Any, s3_options: dict[str, Any]) -> None:
    archive = f"s3://{BUCKET}/write-{uuid.uuid4().hex[:8]}/plate.ozx"
    with create_plate(archive, rows=1, columns=2, storage_options=s3_options) as plate:
        plate.write_image("A", 1, 0, pixels((8, 8)), axes="yx")
    with hcsfs.open_plate(archive, mode="a", storage_options=s3_options) as plate:
        plate.write_image("A", 2, 0, pixels((8, 8), 5), axes="yx")
    plate = hcsfs.open_plate(archive, storage_options=s3_options)
    assert sorted(plate.wells) == ["A/1", "A/2"]
    np.testing.assert_array_equal(plate.well("A", 2).image(0).level(0)[...], pixels((8, 8), 5))
