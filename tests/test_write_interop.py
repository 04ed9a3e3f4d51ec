"""Plates hcsfs writes are read by the peers and validate: ome-zarr-models, ngio,
ngff-zarr, ome-zarr-py, and hcsfs's own validator in strict mode.

One plate per (target, version): a directory (0.4, 0.5), S3 (0.4, 0.5) and a local
``.ozx`` (0.5): two wells, two fields each, (c, y, x) uint16 with two levels.
Peers read local directories by path, the rest through hcsfs (as in test_interop.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path
from typing import Any

import ngff_zarr as nz
import ngio
import numpy as np
import pytest
import zarr

import hcsfs
from hcsfs.check import validate_plate_tree
from hcsfs.filesystem import HCSFileSystem
from hcsfs.write import create_plate
from tests.conftest import BUCKET

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

WELLS = (("A", "1"), ("B", "3"))
FIELDS = 2
SHAPE = (2, 40, 36)
TARGETS = [("dir", "0.5"), ("dir", "0.4"), ("s3", "0.5"), ("s3", "0.4"), ("ozx", "0.5")]
REPO = Path(__file__).resolve().parents[1]


def field_pixels(well: str, field: int) -> np.ndarray:
    seed = sum(map(ord, well)) + 31 * field
    return np.random.default_rng(seed).integers(0, 60_000, size=SHAPE, dtype=np.uint16)


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory, s3: Any, s3_options: dict[str, Any]
) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """Every target's plate, written by hcsfs and closed."""
    root = tmp_path_factory.mktemp("written")
    out = {}
    for backend, version in TARGETS:
        tag = uuid.uuid4().hex[:6]
        options: dict[str, Any] = {}
        if backend == "dir":
            url = str(root / f"{version}-{tag}.ome.zarr")
        elif backend == "s3":
            url = f"s3://{BUCKET}/interop-{tag}/plate.ome.zarr"
            options = dict(s3_options)
        else:
            url = str(root / f"{tag}.ozx")
        with create_plate(
            url, rows=2, columns=3, version=version, name="hcsfs plate", storage_options=options
        ) as plate:
            for row, column in WELLS:
                for field in range(FIELDS):
                    plate.write_image(
                        row,
                        column,
                        field,
                        field_pixels(f"{row}/{column}", field),
                        axes="cyx",
                        scale=[1.0, 0.5, 0.5],
                        channel_names=["DAPI", "GFP"],
                        chunks=(1, 16, 16),
                        levels=2,
                    )
        out[(backend, version)] = (url, options)
    return out


@pytest.fixture(params=TARGETS, ids=[f"{b}-{v}" for b, v in TARGETS])
def target(request: pytest.FixtureRequest, written: Any) -> tuple[str, str, str, dict[str, Any]]:
    backend, version = request.param
    url, options = written[(backend, version)]
    return backend, version, url, options


def hcs_store(url: str, options: dict[str, Any]) -> hcsfs.HCSStore:
    fs = HCSFileSystem(fo=url, target_options=options or None, skip_instance_cache=True)
    return hcsfs.HCSStore(fs, "", read_only=True)


def test_hcsfs_strict_validation_passes(target: Any) -> None:
    _, version, url, options = target
    plate = hcsfs.open_plate(url, storage_options=options)
    assert plate.version == version
    assert validate_plate_tree(plate, strict=True) == []


def test_ome_zarr_models_validates(target: Any) -> None:
    _, version, url, options = target
    if version == "0.5":
        from ome_zarr_models.v05.hcs import HCS

        hcs = HCS.from_zarr(zarr.open_group(hcs_store(url, options), mode="r"))
        assert [w.path for w in hcs.attributes.ome.plate.wells] == ["A/1", "B/3"]
        return
    # 0.4 in a fresh interpreter, away from ngio (see test_interop.py's docstring)
    script = textwrap.dedent(
        """
        import json, sys, warnings
        warnings.simplefilter("ignore")
        import zarr
        from ome_zarr_models.v04.hcs import HCS
        import hcsfs
        from hcsfs.filesystem import HCSFileSystem
        url, options = sys.argv[1], json.loads(sys.argv[2])
        if options:
            fs = HCSFileSystem(fo=url, target_options=options, skip_instance_cache=True)
            group = zarr.open_group(hcsfs.HCSStore(fs, "", read_only=True), mode="r")
        else:
            group = zarr.open_group(url, mode="r", zarr_format=2)
        hcs = HCS.from_zarr(group)
        print(json.dumps([w.path for w in hcs.attributes.plate.wells]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url, json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["A/1", "B/3"]


def test_ngio_reads(target: Any) -> None:
    backend, _, url, options = target
    store: Any = url if backend == "dir" else hcs_store(url, options)
    plate = ngio.open_ome_zarr_plate(store, mode="r")
    assert plate.wells_paths() == ["A/1", "B/3"]
    assert plate.well_images_paths("B", "3") == ["B/3/0", "B/3/1"]
    container = plate.get_image("B", "3", "1")
    assert container.channel_labels == ["DAPI", "GFP"]
    assert container.levels == 2
    np.testing.assert_array_equal(container.get_image().get_as_numpy(), field_pixels("B/3", 1))


def test_ngff_zarr_reads(target: Any) -> None:
    backend, version, url, options = target
    if backend == "s3":
        fs = HCSFileSystem(fo=url, target_options=options, skip_instance_cache=True)
        plate = nz.from_hcs_zarr(fs.get_mapper(""))
        field = nz.from_ome_zarr(fs.get_mapper("A/1/1"))
    else:
        plate = nz.from_hcs_zarr(url)
        field = plate.get_well("A", "1").get_image(1)  # type: ignore[union-attr]
    assert plate.name == "hcsfs plate"
    assert plate.metadata.version == version
    assert [w.path for w in plate.wells] == ["A/1", "B/3"]
    assert [a.name for a in field.metadata.axes] == ["c", "y", "x"]
    assert len(field.images) == 2
    np.testing.assert_array_equal(field.images[0].data.compute(), field_pixels("A/1", 1))


@pytest.mark.parametrize("version", sorted({v for b, v in TARGETS if b == "dir"}))
def test_ome_zarr_py_reads_local_directories(written: Any, version: str) -> None:
    """ome-zarr-py's ``parse_url`` reads local directories; its S3 route is in test_interop."""
    url, _ = written[("dir", version)]
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(url))())
    spec = nodes[0].first(Plate)
    assert spec is not None
    assert spec.row_names == ["A", "B"]
    assert spec.col_names == ["1", "2", "3"]
    assert spec.well_paths == ["A/1", "B/3"]
    grid = np.asarray(nodes[0].data[0])
    assert grid.shape == (2, 40 * 2, 36 * 3)
    np.testing.assert_array_equal(grid[:, :40, :36], field_pixels("A/1", 0))
    np.testing.assert_array_equal(grid[:, 40:, 72:], field_pixels("B/3", 0))
