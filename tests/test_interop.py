"""Interop with the other OME-Zarr tools: ngff-zarr, ome-zarr-py, ngio, ome-zarr-models, zarr.

Three directions, each checked on pixel data, not just on metadata:

* plates (and an ``.ozx``) *written by a peer* are read by hcsfs, locally and from S3;
* ``.ozx`` archives *written by hcsfs* are read by peers and by plain ZIP tools;
* peers read the sample plate *through hcsfs* (its zarr store, or its fsspec filesystem
  where a peer does not take zarr stores) on a directory, on S3 and from an ``.ozx`` on S3.

Routes that work, per peer (what the tests below pin down):

========================  ================================================================
peer                      route through hcsfs (same on dir, s3 and ozx_s3)
========================  ================================================================
ngio                      ``open_ome_zarr_plate(HCSStore(...), mode="r")``
ngff-zarr                 ``from_hcs_zarr(fs.get_mapper(""))`` for the plate and wells,
                          ``from_ome_zarr(fs.get_mapper("B/3/1"))`` for a field's pixels.
                          ngff-zarr refuses zarr store objects (``TypeError`` "Pass a path
                          instead of a zarr-python store object"), and ``HCSWell.get_image``
                          refuses every mapping except its own zip/remote stores, so the
                          field is read as an image of its own.
ome-zarr-py               ``Reader`` over a ``ZarrLocation`` built on
                          ``FsspecStore(HCSFileSystem(..., asynchronous=True))``, with a
                          small subclass whose ``create()`` keeps that store for child
                          nodes (``ZarrLocation.create`` rebuilds children from a path
                          string, which it can only turn into a local or ``http``/``s3``
                          store). ``parse_url`` takes only paths/URLs: it reads a local
                          directory natively but not an ``.ozx``, and takes no
                          ``storage_options``, so it cannot reach a custom S3 endpoint.
ome-zarr-models           ``HCS.from_zarr(zarr.open_group(HCSStore(...), mode="r"))``.
                          The 0.4 model is checked in a fresh interpreter: once ``ngio`` is
                          imported, ome-zarr-models 1.7's v0.4 ``HCS.from_zarr`` rejects
                          the 0.4 sample plate even from a plain directory without hcsfs
                          (a peer/peer conflict, not an hcsfs one).
========================  ================================================================
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ngff_zarr as nz
import ngio
import numpy as np
import pytest
import zarr
from ome_zarr.format import Format, FormatV04, FormatV05
from ome_zarr.io import ZarrLocation
from ome_zarr.reader import Plate as OmeZarrPyPlate
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata
from ome_zarr_models.v05.hcs import HCS as HCSv05
from zarr.storage import FsspecStore, ZipStore

import hcsfs
from hcsfs.filesystem import HCSFileSystem
from hcsfs.sample import SamplePlateSpec, expected_field
from tests.conftest import BUCKET, PlateOnBackend, upload_dir

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

SPEC = SamplePlateSpec()
AXES = ("t", "c", "z", "y", "x")

# --------------------------------------------------------------------------- peer plates
# A small plate every peer writes the same way: 2 wells, 2 fields, (c, y, x) uint16.
PEER_ROWS = ("A", "B")
PEER_COLUMNS = ("1", "2")
PEER_WELLS = (("A", "1"), ("B", "2"))
PEER_FIELDS = 2
PEER_SHAPE = (2, 48, 40)


def peer_pixels(row: str, column: str, field: int) -> np.ndarray:
    """The known pixels of one field of the peer plate."""
    seed = 1000 * PEER_ROWS.index(row) + 10 * int(column) + field
    rng = np.random.default_rng(seed)
    return rng.integers(0, 60_000, size=PEER_SHAPE, dtype=np.uint16)


def write_with_ngff_zarr(dst: str, version: str) -> None:
    """ngff-zarr's HCS writer: plate metadata, then one multiscales image per field.

    With a ``.ozx`` destination the writer zips the plate itself (RFC-9).
    """
    meta = nz.Plate(
        columns=[nz.PlateColumn(name=c) for c in PEER_COLUMNS],
        rows=[nz.PlateRow(name=r) for r in PEER_ROWS],
        wells=[
            nz.PlateWell(
                path=f"{r}/{c}", rowIndex=PEER_ROWS.index(r), columnIndex=PEER_COLUMNS.index(c)
            )
            for r, c in PEER_WELLS
        ],
        version=version,
        name="written by ngff-zarr",
        field_count=PEER_FIELDS,
    )
    with nz.HCSPlateWriter(dst, meta) as writer:
        for row, column in PEER_WELLS:
            for field in range(PEER_FIELDS):
                image = nz.to_ngff_image(peer_pixels(row, column, field), dims=("c", "y", "x"))
                multiscales = nz.to_multiscales(image, scale_factors=[])
                writer.write_well_image(
                    multiscales, row_name=row, column_name=column, field_index=field
                )


def write_with_ome_zarr_py(dst: str, version: str) -> None:
    """ome-zarr-py's writer: ``write_plate_metadata``/``write_well_metadata``/``write_image``."""
    fmt: Format = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.open_group(dst, mode="w", zarr_format=fmt.zarr_format)
    wells = [f"{r}/{c}" for r, c in PEER_WELLS]
    write_plate_metadata(
        root,
        list(PEER_ROWS),
        list(PEER_COLUMNS),
        wells,
        fmt=fmt,
        name="written by ome-zarr-py",
        field_count=PEER_FIELDS,
    )
    for row, column in PEER_WELLS:
        well = root.require_group(f"{row}/{column}")
        write_well_metadata(well, [{"path": str(f)} for f in range(PEER_FIELDS)], fmt=fmt)
        for field in range(PEER_FIELDS):
            write_image(
                peer_pixels(row, column, field),
                well.require_group(str(field)),
                axes="cyx",
                fmt=fmt,
                scale_factors=[],
            )


def write_with_ngio(dst: str, version: str) -> None:
    """ngio: ``create_empty_plate`` with the image list, then an image into each field store."""
    images = [
        ngio.ImageInWellPath(row=r, column=c, path=str(f))
        for r, c in PEER_WELLS
        for f in range(PEER_FIELDS)
    ]
    plate = ngio.create_empty_plate(
        dst, name="written by ngio", images=images, ngff_version=version, overwrite=True
    )
    for row, column in PEER_WELLS:
        for field in range(PEER_FIELDS):
            ngio.create_ome_zarr_from_array(
                plate.get_image_store(row, column, str(field)),
                peer_pixels(row, column, field),
                pixelsize=0.5,
                axes_names=["c", "y", "x"],
                levels=1,
                ngff_version=version,
                overwrite=True,
            )


PEER_WRITERS: dict[str, Callable[[str, str], None]] = {
    "ngff-zarr": write_with_ngff_zarr,
    "ome-zarr-py": write_with_ome_zarr_py,
    "ngio": write_with_ngio,
}


def assert_hcsfs_reads_peer_plate(plate: hcsfs.Plate, version: str) -> None:
    """Rows, columns, wells and every field's level-0 pixels equal what the peer wrote."""
    assert plate.version == version
    assert plate.rows == PEER_ROWS
    # ngio zero-pads column names ("01"); every other peer keeps them as given.
    columns = plate.columns
    assert [int(c) for c in columns] == [int(c) for c in PEER_COLUMNS]
    well_paths = {f"{r}/{columns[PEER_COLUMNS.index(c)]}": (r, c) for r, c in PEER_WELLS}
    assert sorted(plate.wells) == sorted(well_paths)
    for path, (row, column) in well_paths.items():
        well = plate.wells[path]
        assert sorted(well.images) == [str(f) for f in range(PEER_FIELDS)]
        for field, image in well.images.items():
            assert image.shape(0) == PEER_SHAPE
            np.testing.assert_array_equal(image.level(0)[...], peer_pixels(row, column, int(field)))


@pytest.fixture(scope="module")
def peer_plate_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """Every peer's plate, as a local directory, in OME-Zarr 0.4 and 0.5."""
    root = tmp_path_factory.mktemp("peer-plates")
    out = {}
    for writer, write in PEER_WRITERS.items():
        for version in ("0.4", "0.5"):
            dst = str(root / f"{writer}-{version}.ome.zarr")
            write(dst, version)
            out[(writer, version)] = dst
    return out


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("writer", sorted(PEER_WRITERS))
@pytest.mark.parametrize("where", ["local", "s3"])
def test_hcsfs_reads_plate_written_by_peer(
    peer_plate_dirs: dict[tuple[str, str], str],
    s3: Any,
    s3_options: dict[str, Any],
    writer: str,
    version: str,
    where: str,
) -> None:
    local = peer_plate_dirs[(writer, version)]
    if where == "local":
        plate = hcsfs.open_plate(local)
    else:
        url = upload_dir(s3, local, f"peers/{uuid.uuid4().hex[:8]}/{writer}.ome.zarr")
        plate = hcsfs.open_plate(url, storage_options=s3_options)
    assert_hcsfs_reads_peer_plate(plate, version)


# ------------------------------------------------------------- .ozx written by ngff-zarr
@pytest.fixture(scope="module")
def ngff_zarr_ozx(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("ngff-zarr-ozx") / "plate.ozx")
    write_with_ngff_zarr(path, "0.5")
    with zipfile.ZipFile(path) as archive:  # it really is ngff-zarr's RFC-9 archive
        assert archive.namelist()[0] == "zarr.json"
        assert json.loads(archive.comment.rstrip(b"\x00"))["ome"]["version"] == "0.5"
    return path


@pytest.mark.parametrize("where", ["local", "s3"])
def test_hcsfs_reads_ozx_written_by_ngff_zarr(
    ngff_zarr_ozx: str, s3: Any, s3_options: dict[str, Any], where: str
) -> None:
    if where == "local":
        plate = hcsfs.open_plate(ngff_zarr_ozx)
    else:
        key = f"{BUCKET}/peers/{uuid.uuid4().hex[:8]}/ngff-zarr.ozx"
        s3.put(ngff_zarr_ozx, key)
        plate = hcsfs.open_plate(f"s3://{key}", storage_options=s3_options)
    assert_hcsfs_reads_peer_plate(plate, "0.5")


# ------------------------------------------------------------------ .ozx written by hcsfs
@pytest.fixture(scope="module", params=["0.5", "0.4"], ids=["from-0.5", "from-0.4"])
def hcsfs_ozx(
    request: pytest.FixtureRequest, plate_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """``hcsfs.pack`` of the sample plate: a 0.5 plate as is, a 0.4 plate converted to 0.5."""
    source: PlateOnBackend = plate_factory("dir", request.param)
    dst = str(tmp_path_factory.mktemp("hcsfs-ozx") / "plate.ozx")
    hcsfs.pack(source.url, dst, to_version="0.5" if request.param == "0.4" else None)
    return dst


def test_ngff_zarr_reads_ozx_packed_by_hcsfs(hcsfs_ozx: str) -> None:
    plate = nz.from_hcs_zarr(hcsfs_ozx)
    assert [r.name for r in plate.rows] == list(SPEC.rows)
    assert [c.name for c in plate.columns] == list(SPEC.columns)
    assert [w.path for w in plate.wells] == list(SPEC.wells)
    for path in SPEC.wells:
        well = plate.get_well(*path.split("/"))
        assert well is not None
        assert [i.path for i in well.images] == [str(f) for f in range(SPEC.fields)]
        for field in range(SPEC.fields):
            multiscales = well.get_image(field)
            assert multiscales is not None
            assert len(multiscales.images) == SPEC.levels
            for level, image in enumerate(multiscales.images):
                np.testing.assert_array_equal(
                    image.data.compute(), expected_field(SPEC, path, field, level)
                )


def test_zarr_zipstore_reads_ozx_packed_by_hcsfs(hcsfs_ozx: str) -> None:
    store = ZipStore(hcsfs_ozx, mode="r")
    try:
        root = zarr.open_group(store, mode="r")
        assert root.metadata.zarr_format == 3
        consolidated = root.metadata.consolidated_metadata
        assert consolidated is not None
        assert "A/1/0/0" in consolidated.flattened_metadata
        ome = root.attrs["ome"]
        assert ome["version"] == "0.5"
        assert [w["path"] for w in ome["plate"]["wells"]] == list(SPEC.wells)
        for path in SPEC.wells:
            for field in range(SPEC.fields):
                for level in range(SPEC.levels):
                    array = root[f"{path}/{field}/{level}"]
                    assert isinstance(array, zarr.Array)
                    # OME-Zarr 0.5: every multiscales array names its axes.
                    assert array.metadata.dimension_names == AXES
                    np.testing.assert_array_equal(
                        array[...], expected_field(SPEC, path, field, level)
                    )
        cells = root[f"{SPEC.label_field}/labels/cells/0"]
        assert isinstance(cells, zarr.Array)
        assert cells.metadata.dimension_names == AXES
    finally:
        store.close()


def test_zipfile_finds_ozx_packed_by_hcsfs_sound_and_in_rfc9_order(hcsfs_ozx: str) -> None:
    with zipfile.ZipFile(hcsfs_ozx) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        names = [i.filename for i in infos]
        comment = json.loads(archive.comment.rstrip(b"\x00").decode())
    assert comment["ome"]["version"] == "0.5"
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert not any(n.endswith("/") for n in names)  # no directory entries
    # RFC-9 recommended order: the root zarr.json, then every other zarr.json
    # breadth-first, then everything else.
    assert names[0] == "zarr.json"
    docs = [n for n in names if n.rsplit("/", 1)[-1] == "zarr.json"]
    assert names[: len(docs)] == docs
    depths = [n.count("/") for n in docs]
    assert depths == sorted(depths)
    chunks = names[len(docs) :]
    # 2 channels x 2 x 2 chunks of 32 px in A/1/0 level 0 (a packed 0.4 plate keeps
    # its v2 chunk keys, a 0.5 plate has "c/..." keys).
    assert len([n for n in chunks if n.startswith("A/1/0/0/")]) == 8


def test_unzip_tests_ozx_packed_by_hcsfs(hcsfs_ozx: str) -> None:
    unzip = shutil.which("unzip")
    if unzip is None:
        pytest.skip("the unzip tool is not installed")
    done = subprocess.run([unzip, "-t", hcsfs_ozx], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors detected" in done.stdout


# ------------------------------------------------------------- peers reading through hcsfs
PEER_BACKENDS = ("dir", "s3", "ozx_s3")


@pytest.fixture(params=PEER_BACKENDS)
def peer_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["0.5", "0.4"])
def sample(request: pytest.FixtureRequest, plate_factory: Any, peer_backend: str) -> PlateOnBackend:
    """The sample plate on ``peer_backend`` (on ``ozx_s3`` a 0.4 plate is packed as 0.5)."""
    return plate_factory(peer_backend, request.param)  # type: ignore[no-any-return]


def stored_version(sample: PlateOnBackend) -> str:
    return "0.5" if sample.is_archive else sample.version


def plate_fs(sample: PlateOnBackend, **kwargs: Any) -> HCSFileSystem:
    return HCSFileSystem(
        fo=sample.url, target_options=sample.storage_options, skip_instance_cache=True, **kwargs
    )


def plate_store(sample: PlateOnBackend) -> hcsfs.HCSStore:
    return hcsfs.HCSStore(plate_fs(sample), "", read_only=True)


def test_ngio_reads_plate_through_hcs_store(sample: PlateOnBackend) -> None:
    plate = ngio.open_ome_zarr_plate(plate_store(sample), mode="r")
    assert plate.rows == list(SPEC.rows)
    assert plate.columns == list(SPEC.columns)
    assert plate.wells_paths() == list(SPEC.wells)
    assert plate.well_images_paths("A", "1") == ["A/1/0", "A/1/1"]
    assert plate.get_well("A", "1").get_image_acquisition_id("1") == 1
    container = plate.get_image("B", "3", "1")
    assert container.channel_labels == list(SPEC.channel_names)
    assert container.levels == SPEC.levels
    image = container.get_image()
    assert image.shape == SPEC.shape
    np.testing.assert_array_equal(image.get_as_numpy(), expected_field(SPEC, "B/3", 1))
    low = container.get_image(path="1")
    np.testing.assert_array_equal(low.get_as_numpy(), expected_field(SPEC, "B/3", 1, level=1))


def test_ngff_zarr_reads_plate_through_hcs_filesystem(sample: PlateOnBackend) -> None:
    fs = plate_fs(sample)
    plate = nz.from_hcs_zarr(fs.get_mapper(""))
    assert plate.name == SPEC.name
    assert plate.metadata.version == stored_version(sample)
    assert [w.path for w in plate.wells] == list(SPEC.wells)
    well = plate.get_well("A", "1")
    assert well is not None
    assert [(i.path, i.acquisition) for i in well.images] == [("0", 0), ("1", 1)]
    # HCSWell.get_image only takes ngff-zarr's own store kinds: read the field itself.
    field = nz.from_ome_zarr(fs.get_mapper("B/3/1"))
    assert [a.name for a in field.metadata.axes] == ["t", "c", "z", "y", "x"]
    assert len(field.images) == SPEC.levels
    for level, image in enumerate(field.images):
        np.testing.assert_array_equal(image.data.compute(), expected_field(SPEC, "B/3", 1, level))


class HCSLocation(ZarrLocation):
    """A ``ZarrLocation`` whose child nodes stay on the same (hcsfs) filesystem."""

    def create(self, path: str) -> HCSLocation:
        store = self.store
        sub = f"{store.path}/{path}".strip("/")
        return HCSLocation(FsspecStore(store.fs, path=sub, read_only=True), fmt=self.fmt)


def test_ome_zarr_py_reader_reads_plate_through_hcs_filesystem(sample: PlateOnBackend) -> None:
    fmt: Format = FormatV05() if stored_version(sample) == "0.5" else FormatV04()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = FsspecStore(plate_fs(sample, asynchronous=True), path="", read_only=True)
    location = HCSLocation(store, fmt=fmt)
    assert location.exists()
    nodes = list(Reader(location)())
    plate_spec = nodes[0].first(OmeZarrPyPlate)
    assert plate_spec is not None
    assert plate_spec.row_names == list(SPEC.rows)
    assert plate_spec.col_names == list(SPEC.columns)
    assert plate_spec.well_paths == sorted(SPEC.wells)
    # Level 0 of the reader's plate view stitches field 0 of each well into a grid.
    grid = np.asarray(nodes[0].data[0])
    height, width = SPEC.shape[-2:]
    assert grid.shape == (*SPEC.shape[:-2], height * len(SPEC.rows), width * len(SPEC.columns))
    for path in SPEC.wells:
        row, column = path.split("/")
        y = SPEC.rows.index(row) * height
        x = SPEC.columns.index(column) * width
        np.testing.assert_array_equal(
            grid[..., y : y + height, x : x + width], expected_field(SPEC, path, 0)
        )
    empty = SPEC.columns.index("3") * width  # A/3 is no well: the reader fills it with 0
    assert not grid[..., :height, empty : empty + width].any()
    # A single field, through the same route.
    np.testing.assert_array_equal(
        np.asarray(location.create("B/3/1").load("0")), expected_field(SPEC, "B/3", 1)
    )


def test_ome_zarr_models_validates_plate_through_hcs_store(sample: PlateOnBackend) -> None:
    if stored_version(sample) == "0.5":
        hcs = HCSv05.from_zarr(zarr.open_group(plate_store(sample), mode="r"))
        assert len(hcs.attributes.ome.plate.wells) == 3
        assert [w.path for w in hcs.attributes.ome.plate.wells] == list(SPEC.wells)
        assert sorted(hcs.members or {}) == sorted(SPEC.rows)
        return
    # 0.4: in a fresh interpreter, away from ngio (see the module docstring).
    script = textwrap.dedent(
        """
        import json, sys, warnings
        warnings.simplefilter("ignore")
        import zarr
        from ome_zarr_models.v04.hcs import HCS
        import hcsfs
        from hcsfs.filesystem import HCSFileSystem
        url, options = sys.argv[1], json.loads(sys.argv[2])
        fs = HCSFileSystem(fo=url, target_options=options, skip_instance_cache=True)
        hcs = HCS.from_zarr(zarr.open_group(hcsfs.HCSStore(fs, "", read_only=True), mode="r"))
        print(json.dumps([w.path for w in hcs.attributes.plate.wells]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, sample.url, json.dumps(sample.storage_options)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wells = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(wells) == 3
    assert wells == list(SPEC.wells)


# ------------------------------------------------------------------------------- example
def test_open_with_peers_example_runs() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "open_with_peers.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ngio wells: ['A/1', 'A/2', 'B/3']" in done.stdout
    assert "ngff-zarr wells: ['A/1', 'A/2', 'B/3']" in done.stdout
    assert "pixels equal: True" in done.stdout
