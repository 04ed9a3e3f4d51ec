"""Parsing OME-Zarr attributes of every version into the model."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hcsfs.errors import MetadataError, NotAPlateError, UnsupportedVersionError
from hcsfs.ome import (
    Acquisition,
    Axis,
    Channel,
    Dataset,
    LabelsMeta,
    MetadataWarning,
    WellImageRef,
    WellRef,
    decode_json,
    ome_namespace,
    parse_image,
    parse_labels,
    parse_plate,
    parse_well,
    zarr_json_attributes,
)

DOC = "plate.zarr/zarr.json"


def plate_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "p",
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
        "wells": [
            {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
            {"path": "B/3", "rowIndex": 1, "columnIndex": 2},
        ],
        "field_count": 2,
        "acquisitions": [{"id": 1, "name": "run", "maximumfieldcount": 2, "starttime": 5}],
    }
    body.update(extra)
    return body


def v2(key: str, body: Any, version: str = "0.4") -> dict[str, Any]:
    if isinstance(body, dict):
        body = {**body, "version": version}
    return {key: body}


def v3(key: str, body: Any, version: str = "0.5") -> dict[str, Any]:
    return {"ome": {"version": version, key: body}}


@pytest.mark.parametrize(
    "attrs, version",
    [
        (v2("plate", plate_body()), "0.4"),
        (v3("plate", plate_body()), "0.5"),
        (v3("plate", plate_body(), "0.6rc0"), "0.6rc0"),
        (v3("plate", plate_body(), "0.6-dev"), "0.6-dev"),
    ],
)
def test_plate_indexed_versions(attrs: dict[str, Any], version: str) -> None:
    plate = parse_plate(attrs, path=DOC)
    assert plate.version == version
    assert plate.rows == ("A", "B") and plate.columns == ("1", "2", "3")
    assert plate.wells == (WellRef("A/1", 0, 0, "A", "1"), WellRef("B/3", 1, 2, "B", "3"))
    assert plate.name == "p" and plate.field_count == 2
    assert plate.acquisitions == (Acquisition(1, "run", 2, start_time=5),)


@pytest.mark.parametrize("version", ["0.1", "0.2", "0.3"])
def test_plate_old_versions_derive_indices(version: str) -> None:
    body = plate_body(wells=[{"path": "B/2"}, {"path": "A/3"}])
    plate = parse_plate(v2("plate", body, version), path=DOC)
    assert plate.version == version
    assert plate.wells == (WellRef("B/2", 1, 1, "B", "2"), WellRef("A/3", 0, 2, "A", "3"))


def test_plate_old_version_unknown_row_name() -> None:
    body = plate_body(wells=[{"path": "C/1"}])
    with pytest.raises(MetadataError, match=r"plate\.wells\[0\]\.path.*'C'"):
        parse_plate(v2("plate", body, "0.3"), path=DOC)


def test_plate_missing_v2_version_assumes_04() -> None:
    body = plate_body()
    assert parse_plate({"plate": body}, path=DOC).version == "0.4"


def test_plate_mismatch_warns() -> None:
    body = plate_body(wells=[{"path": "B/1", "rowIndex": 0, "columnIndex": 0}])
    with pytest.warns(MetadataWarning, match="disagrees"):
        plate = parse_plate(v3("plate", body), path=DOC)
    assert plate.wells[0] == WellRef("B/1", 0, 0, "A", "1")


def test_not_a_plate() -> None:
    with pytest.raises(NotAPlateError, match=DOC):
        parse_plate({"multiscales": []}, path=DOC)
    with pytest.raises(NotAPlateError):
        parse_plate({"ome": {"version": "0.5"}}, path=DOC)


@pytest.mark.parametrize("raw", ["0.7", "1.0", "foo", "0.6x", "0.45"])
def test_unsupported_version(raw: str) -> None:
    with pytest.raises(UnsupportedVersionError, match="version"):
        parse_plate(v3("plate", plate_body(), raw), path=DOC)


def _broken(mutate: Any) -> dict[str, Any]:
    body = copy.deepcopy(plate_body())
    mutate(body)
    return v3("plate", body)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b.pop("rows"), "plate.rows"),
        (lambda b: b.update(rows="A"), "plate.rows"),
        (lambda b: b["rows"].append({"name": "A"}), "plate.rows[2].name"),
        (lambda b: b["columns"].__setitem__(0, {"name": 1}), "plate.columns[0].name"),
        (lambda b: b.update(wells=None), "plate.wells"),
        (lambda b: b["wells"][0].update(path=3), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="../A/1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="A/.."), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="/A/1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="A\\1/1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="A\x00/1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="A//1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="A1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].update(path="x/A/1"), "plate.wells[0].path"),
        (lambda b: b["wells"][0].pop("rowIndex"), "plate.wells[0].rowIndex"),
        (lambda b: b["wells"][0].update(rowIndex=2), "plate.wells[0].rowIndex"),
        (lambda b: b["wells"][0].update(columnIndex=-1), "plate.wells[0].columnIndex"),
        (lambda b: b["wells"][0].update(columnIndex=True), "plate.wells[0].columnIndex"),
        (lambda b: b["wells"][0].update(rowIndex="0"), "plate.wells[0].rowIndex"),
        (lambda b: b["wells"].append(dict(b["wells"][0])), "plate.wells[2].path"),
        (lambda b: b.update(field_count=0), "plate.field_count"),
        (lambda b: b.update(field_count=10**9), "plate.field_count"),
        (lambda b: b.update(name=["x"]), "plate.name"),
        (lambda b: b["acquisitions"][0].pop("id"), "plate.acquisitions[0].id"),
        (lambda b: b["acquisitions"][0].update(maximumfieldcount="2"), "maximumfieldcount"),
        (lambda b: b["acquisitions"][0].update(starttime=-1), "plate.acquisitions[0].starttime"),
        (lambda b: b.update(acquisitions={}), "plate.acquisitions"),
    ],
)
def test_plate_malformed(mutate: Any, field: str) -> None:
    with pytest.raises(MetadataError) as info:
        parse_plate(_broken(mutate), path=DOC)
    assert info.value.path == DOC
    assert field in info.value.message


def test_plate_size_caps() -> None:
    rows = [{"name": "A"}] * 200_000
    with pytest.raises(MetadataError, match="cap"):
        parse_plate(v3("plate", plate_body(rows=rows)), path=DOC)


@pytest.mark.parametrize("layout", ["v2", "v3"])
def test_well(layout: str) -> None:
    body = {"images": [{"path": "0", "acquisition": 1}, {"path": "f-1.x"}]}
    attrs = v2("well", body) if layout == "v2" else v3("well", body)
    well = parse_well(attrs, path="A/1/.zattrs")
    assert well.version == ("0.4" if layout == "v2" else "0.5")
    assert well.images == (WellImageRef("0", 1), WellImageRef("f-1.x"))


@pytest.mark.parametrize(
    "images, field",
    [
        ([{"path": 3}], "well.images[0].path must be a string"),
        ([{"path": "a/b"}], "well.images[0].path"),
        ([{"path": ".."}], "well.images[0].path"),
        ([{"path": ""}], "well.images[0].path"),
        ([{"path": "a\\b"}], "well.images[0].path"),
        ([{"path": "0"}, {"path": "0"}], "well.images[1].path duplicates"),
        ([{"path": "0", "acquisition": "1"}], "well.images[0].acquisition"),
        ("0", "well.images must be a list"),
    ],
)
def test_well_malformed(images: Any, field: str) -> None:
    with pytest.raises(MetadataError, match=r"A/1/zarr\.json") as info:
        parse_well(v3("well", {"images": images}), path="A/1/zarr.json")
    assert field in info.value.message


def _multiscale(**extra: Any) -> dict[str, Any]:
    ms: dict[str, Any] = {
        "name": "img",
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}]},
            {
                "path": "1",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1, 1, 1]},
                    {"type": "translation", "translation": [0, 0.25, 0.25]},
                ],
            },
        ],
    }
    ms.update(extra)
    return ms


OMERO = {
    "channels": [
        {
            "label": "DAPI",
            "color": "0000FF",
            "active": True,
            "window": {"start": 0, "end": 100, "min": 0, "max": 255},
        }
    ]
}


def test_image_05() -> None:
    attrs = {
        "ome": {"version": "0.5", "multiscales": [_multiscale(), _multiscale()], "omero": OMERO}
    }
    image = parse_image(attrs, path="A/1/0/zarr.json")
    assert image.version == "0.5"
    assert image.axis_names == ("c", "y", "x")
    assert image.axes[1] == Axis("y", "space", "micrometer")
    assert image.datasets == (
        Dataset("0", (1.0, 0.5, 0.5)),
        Dataset("1", (1.0, 1.0, 1.0), (0.0, 0.25, 0.25)),
    )
    assert image.channels == (
        Channel("DAPI", "0000FF", {"start": 0.0, "end": 100.0, "min": 0.0, "max": 255.0}, True),
    )
    assert image.channel_names == ("DAPI",)
    assert image.name == "img" and image.extra_multiscales == 1 and not image.is_label


def test_image_04_multiscale_level_transform() -> None:
    ms = _multiscale(
        version="0.4",
        coordinateTransformations=[
            {"type": "scale", "scale": [1, 2, 2]},
            {"type": "translation", "translation": [0, 10, 20]},
        ],
    )
    image = parse_image({"multiscales": [ms], "image-label": {}}, path="l/.zattrs")
    assert image.version == "0.4" and image.is_label
    assert image.datasets[0] == Dataset("0", (1.0, 1.0, 1.0), (0.0, 10.0, 20.0))
    assert image.datasets[1] == Dataset("1", (1.0, 2.0, 2.0), (0.0, 10.5, 20.5))


@pytest.mark.parametrize("version", ["0.1", "0.2"])
def test_image_implicit_axes(version: str) -> None:
    ms = {"version": version, "datasets": [{"path": "0"}, {"path": "1"}]}
    image = parse_image({"multiscales": [ms]}, path="0/.zattrs")
    assert image.axis_names == ("t", "c", "z", "y", "x")
    assert image.datasets[1] == Dataset("1", (1.0,) * 5)


def test_image_03_string_axes() -> None:
    ms = {"version": "0.3", "axes": ["c", "y", "x"], "datasets": [{"path": "0"}]}
    image = parse_image({"multiscales": [ms]}, path="0/.zattrs")
    assert image.axes == (Axis("c", "channel"), Axis("y", "space"), Axis("x", "space"))
    assert image.datasets == (Dataset("0", (1.0, 1.0, 1.0)),)


def test_image_06_coordinate_systems() -> None:
    ms = {
        "coordinateSystems": [
            {"name": "world", "axes": [{"name": "a"}, {"name": "b"}]},
            {
                "name": "physical",
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            },
        ],
        "datasets": [
            {
                "path": "s0",
                "coordinateTransformations": [
                    {
                        "type": "sequence",
                        "input": {"path": "s0"},
                        "output": {"name": "physical"},
                        "transformations": [
                            {"type": "scale", "scale": [2, 3]},
                            {"type": "translation", "translation": [1, 1]},
                        ],
                    }
                ],
            },
            {
                "path": "s1",
                "coordinateTransformations": [
                    {"type": "identity", "input": {"path": "s1"}, "output": {"name": "physical"}}
                ],
            },
        ],
    }
    image = parse_image(v3("multiscales", [ms], "0.6rc0"), path="0/zarr.json")
    assert image.version == "0.6rc0" and image.axis_names == ("y", "x")
    assert image.datasets == (Dataset("s0", (2.0, 3.0), (1.0, 1.0)), Dataset("s1", (1.0, 1.0)))


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda m: m.pop("datasets"), "multiscales[0].datasets"),
        (lambda m: m.update(datasets=[]), "multiscales[0].datasets"),
        (lambda m: m["datasets"][0].update(path=0), "multiscales[0].datasets[0].path"),
        (lambda m: m["datasets"][0].update(path="../x"), "multiscales[0].datasets[0].path"),
        (lambda m: m["datasets"][0].pop("coordinateTransformations"), "coordinateTransformations"),
        (
            lambda m: m["datasets"][0]["coordinateTransformations"][0].update(scale=[1, 2]),
            "has 2 values for 3 axes",
        ),
        (
            lambda m: m["datasets"][0]["coordinateTransformations"][0].update(scale=["a", 1, 1]),
            "scale[0] must be a number",
        ),
        (
            lambda m: m["datasets"][0]["coordinateTransformations"][0].update(
                scale=[10**400, 1, 1]
            ),
            "out of range",
        ),
        (
            lambda m: m["datasets"][0]["coordinateTransformations"][0].update(type="affine"),
            "not supported",
        ),
        (lambda m: m["axes"].append({"name": "x"}), "duplicates axis"),
        (lambda m: m["axes"][0].pop("name"), "multiscales[0].axes[0].name"),
        (lambda m: m.update(axes="cyx"), "multiscales[0].axes must be a list"),
        (lambda m: m.update(name=5), "multiscales[0].name"),
    ],
)
def test_image_malformed(mutate: Any, field: str) -> None:
    ms = _multiscale()
    mutate(ms)
    with pytest.raises(MetadataError, match=r"img/zarr\.json") as info:
        parse_image(v3("multiscales", [ms]), path="img/zarr.json")
    assert field in info.value.message


@pytest.mark.parametrize(
    "omero, field",
    [
        ([], "omero must be an object"),
        ({"channels": [{"window": {"start": "0"}}]}, "omero.channels[0].window.start"),
        ({"channels": [{"active": 1}]}, "omero.channels[0].active"),
        ({"channels": [{"color": 255}]}, "omero.channels[0].color"),
    ],
)
def test_omero_malformed(omero: Any, field: str) -> None:
    attrs = {"ome": {"version": "0.5", "multiscales": [_multiscale()], "omero": omero}}
    with pytest.raises(MetadataError) as info:
        parse_image(attrs, path="img")
    assert field in info.value.message


def test_labels() -> None:
    assert parse_labels({"labels": ["cells", "nuclei"]}, path="l") == LabelsMeta(
        None, ("cells", "nuclei")
    )
    assert parse_labels(v3("labels", ["cells"]), path="l") == LabelsMeta("0.5", ("cells",))
    for bad in (["../x"], [1], "cells", ["a", "a"]):
        with pytest.raises(MetadataError, match="labels"):
            parse_labels({"labels": bad}, path="l")


def test_namespace() -> None:
    ns, version = ome_namespace({"ome": {"version": "0.5", "plate": {}}}, path=DOC)
    assert version == "0.5" and "plate" in ns
    assert ome_namespace({"well": {"version": "0.3"}}, path=DOC)[1] == "0.3"
    assert ome_namespace({"multiscales": [{"version": "0.2"}]}, path=DOC)[1] == "0.2"
    assert ome_namespace({"x": 1}, path=DOC) == ({"x": 1}, None)
    for bad in ([], {"ome": []}, {"ome": {"version": 5}}):
        with pytest.raises(MetadataError, match=DOC):
            ome_namespace(bad, path=DOC)


def test_documents() -> None:
    doc = decode_json(b'{"zarr_format": 3, "node_type": "group", "attributes": {"a": 1}}', path=DOC)
    assert zarr_json_attributes(doc, path=DOC) == {"a": 1}
    for raw in (b"{", b"[]", b"\xff", '{"version": "0.5\n"}'):
        with pytest.raises(MetadataError, match=DOC):
            decode_json(raw, path=DOC)
    with pytest.raises(MetadataError, match="node_type"):
        zarr_json_attributes({"zarr_format": 3, "node_type": "array"}, path=DOC)


def test_non_dict_attributes() -> None:
    for parse in (parse_plate, parse_well, parse_image, parse_labels):
        with pytest.raises(MetadataError, match="attributes must be an object"):
            parse([1], path=DOC)
