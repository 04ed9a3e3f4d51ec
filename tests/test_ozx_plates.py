"""Plates inside archives made by other zip writers: DEFLATE members, no comment, any order."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np
import pytest

import hcsfs
from hcsfs.sample import SamplePlateSpec, expected_field
from tests.conftest import BUCKET


def zip_directory(src: str, dst: str, *, compression: int, comment: bytes = b"") -> None:
    """Zip a plate directory with Python's zipfile (alphabetical order, no RFC-9 layout)."""
    with zipfile.ZipFile(dst, "w", compression=compression) as zf:
        for dirpath, _, filenames in sorted(os.walk(src)):
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                zf.write(full, os.path.relpath(full, src).replace(os.sep, "/"))
        zf.comment = comment


@pytest.mark.parametrize(
    ("compression", "comment"),
    [
        (zipfile.ZIP_DEFLATED, b""),
        (zipfile.ZIP_DEFLATED, b'{"ome": {"version": "0.5"}, "jsonFirst": false}\x00'),
        (zipfile.ZIP_STORED, b"not json at all"),
    ],
    ids=["deflate-no-comment", "deflate-extra-keys", "stored-junk-comment"],
)
@pytest.mark.parametrize("where", ["local", "s3"])
def test_plain_zip_archives_read_like_any_plate(
    plate_factory: Any,
    tmp_path: Any,
    s3: Any,
    s3_options: dict[str, Any],
    compression: int,
    comment: bytes,
    where: str,
) -> None:
    archive = str(tmp_path / "plate.ozx")
    zip_directory(
        plate_factory("dir", "0.5").url, archive, compression=compression, comment=comment
    )
    url, options = archive, {}
    if where == "s3":
        url = f"s3://{BUCKET}/plain-zip/{tmp_path.name}/plate.ozx"
        s3.put(archive, url)
        options = s3_options
    plate = hcsfs.open_plate(url, storage_options=options)
    spec = SamplePlateSpec()
    for path, well in plate.wells.items():
        for field, image in well.images.items():
            for level in range(spec.levels):
                np.testing.assert_array_equal(
                    image.level(level)[...], expected_field(spec, path, int(field), level)
                )
    assert plate.well("A", 1).image(0).labels == ("cells",)


def test_ozx_listing_matches_the_directory_it_was_made_from(
    plate_factory: Any, tmp_path: Any
) -> None:
    source = hcsfs.HCSFileSystem(fo=plate_factory("dir", "0.5").url, skip_instance_cache=True)
    archive = str(tmp_path / "plate.ozx")
    zip_directory(source.fo, archive, compression=zipfile.ZIP_DEFLATED)
    packed = hcsfs.HCSFileSystem(fo=archive, skip_instance_cache=True)
    assert packed.find("", detail=True) == source.find("", detail=True)
    assert packed.ls("A/1/0", detail=True) == source.ls("A/1/0", detail=True)
    assert packed.cat_file("B/3/1/0/zarr.json") == source.cat_file("B/3/1/0/zarr.json")
