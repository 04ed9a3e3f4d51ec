"""Writing the model back to attributes: round trips and validity."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hcsfs.ome import (
    Acquisition,
    Axis,
    Channel,
    Dataset,
    ImageMeta,
    LabelsMeta,
    PlateMeta,
    WellImageRef,
    WellMeta,
    WellRef,
    image_attributes,
    is_valid,
    labels_attributes,
    parse_image,
    parse_labels,
    parse_plate,
    parse_well,
    plate_attributes,
    validate_image,
    validate_plate,
    validate_well,
    well_attributes,
)

VERSIONS = ["0.4", "0.5"]

PLATE = PlateMeta(
    version="0.4",
    rows=("A", "B"),
    columns=("1", "2", "3"),
    wells=(WellRef("A/1", 0, 0, "A", "1"), WellRef("B/3", 1, 2, "B", "3")),
    name="screen",
    acquisitions=(
        Acquisition(0, "first", 2, "desc", 1343731272000, 1343731273000),
        Acquisition(1, "second", 1),
    ),
    field_count=2,
)
MINIMAL_PLATE = PlateMeta("0.4", ("A",), ("1",), (WellRef("A/1", 0, 0, "A", "1"),))
WELL = WellMeta("0.4", (WellImageRef("0", 0), WellImageRef("1", 1), WellImageRef("2")))
IMAGE = ImageMeta(
    version="0.4",
    axes=(
        Axis("t", "time", "second"),
        Axis("c", "channel"),
        Axis("z", "space", "micrometer"),
        Axis("y", "space", "micrometer"),
        Axis("x", "space", "micrometer"),
    ),
    datasets=(
        Dataset("0", (1.0, 1.0, 0.5, 0.25, 0.25)),
        Dataset("1", (1.0, 1.0, 1.0, 0.5, 0.5), (0.0, 0.0, 0.25, 0.125, 0.125)),
    ),
    name="field",
    channels=(
        Channel("DAPI", "0000FF", {"start": 0.0, "end": 1.0, "min": 0.0, "max": 2.0}, True),
        Channel("GFP", "00FF00", {"start": 1.0, "end": 9.0, "min": 0.0, "max": 10.0}, False),
    ),
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("meta", [PLATE, MINIMAL_PLATE], ids=["full", "minimal"])
def test_plate_round_trip(meta: PlateMeta, version: str) -> None:
    attrs = json.loads(json.dumps(plate_attributes(meta, version=version)))
    assert parse_plate(attrs, path="p") == dataclasses.replace(meta, version=version)
    assert is_valid(validate_plate(attrs, path="p", strict=meta is PLATE))


@pytest.mark.parametrize("version", VERSIONS)
def test_well_round_trip(version: str) -> None:
    attrs = json.loads(json.dumps(well_attributes(WELL, version=version)))
    assert parse_well(attrs, path="w") == dataclasses.replace(WELL, version=version)
    assert is_valid(validate_well(attrs, path="w", strict=True))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("is_label", [False, True])
def test_image_round_trip(version: str, is_label: bool) -> None:
    meta = dataclasses.replace(IMAGE, is_label=is_label)
    attrs = json.loads(json.dumps(image_attributes(meta, version=version)))
    assert parse_image(attrs, path="i") == dataclasses.replace(meta, version=version)
    assert is_valid(validate_image(attrs, path="i", strict=True))


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_round_trip(version: str) -> None:
    attrs = labels_attributes(["cells", "nuclei"], version=version)
    expected = LabelsMeta("0.5" if version == "0.5" else None, ("cells", "nuclei"))
    assert parse_labels(attrs, path="labels") == expected


def test_layouts() -> None:
    v2 = plate_attributes(MINIMAL_PLATE, version="0.4")
    assert v2["plate"]["version"] == "0.4" and "ome" not in v2
    v3 = plate_attributes(MINIMAL_PLATE, version="0.5")
    assert v3["ome"]["version"] == "0.5" and "version" not in v3["ome"]["plate"]
    assert image_attributes(IMAGE, version="0.4")["multiscales"][0]["version"] == "0.4"
    assert "version" not in image_attributes(IMAGE, version="0.5")["ome"]["multiscales"][0]


def test_refuses() -> None:
    with pytest.raises(ValueError, match=r"0\.3"):
        plate_attributes(PLATE, version="0.3")
    with pytest.raises(ValueError, match="extra multiscales"):
        image_attributes(dataclasses.replace(IMAGE, extra_multiscales=1), version="0.5")
