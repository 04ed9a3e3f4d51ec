"""copy_plate: any backend to a directory, an S3 prefix or an .ozx, safely and verified."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fsspec.asyn import sync

import hcsfs
import hcsfs.copy as copy_module
from hcsfs.copy import CopyReport, copy_plate
from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.ozx_source import OzxSource
from hcsfs.sample import SamplePlateSpec, expected_field
from hcsfs.source import LocalSource, Source
from hcsfs.zarrmeta import METADATA_NAMES

BUCKET = "plates"
SOURCES = [
    ("dir", "0.5"),
    ("s3", "0.5"),
    ("ozx", "0.5"),
    ("ozx_s3", "0.5"),
    ("dir", "0.4"),
    ("s3", "0.4"),
]
DESTINATIONS = ("dir", "s3", "ozx")


class Destination:
    """A destination inside a parent (directory or S3 prefix) that also holds neighbours."""

    def __init__(self, kind: str, tmp_path: Path, s3: Any, s3_options: dict[str, Any]) -> None:
        self.kind = kind
        self.s3 = s3
        tag = uuid.uuid4().hex[:8]
        name = "copy.ozx" if kind == "ozx" else "copy.ome.zarr"
        if kind == "s3":
            self.parent = f"{BUCKET}/dst-{tag}"
            self.url = f"s3://{self.parent}/{name}"
            self.options: dict[str, Any] = dict(s3_options)
            # neighbours sharing the destination's name as a prefix
            s3.pipe(f"{self.parent}/{name}.bak/zarr.json", b"{}")
            s3.pipe(f"{self.parent}/{name}2", b"neighbour")
        else:
            parent = tmp_path / f"dst-{tag}"
            (parent / f"{name}.bak").mkdir(parents=True)
            (parent / f"{name}.bak" / "zarr.json").write_bytes(b"{}")
            (parent / f"{name}2").write_bytes(b"neighbour")
            self.parent = str(parent)
            self.url = str(parent / name)
            self.options = {}
        self.before = self.parent_listing()

    def parent_listing(self) -> dict[str, int]:
        """Everything in the parent except the destination itself."""
        if self.kind == "s3":
            self.s3.invalidate_cache()
            found = self.s3.find(self.parent, detail=True)
            rel = {k[len(self.parent) + 1 :]: int(v["size"]) for k, v in found.items()}
        else:
            rel = local_listing(self.parent)
        name = self.url.rpartition("/")[2]
        return {k: v for k, v in rel.items() if k != name and not k.startswith(name + "/")}

    def listing(self) -> dict[str, int]:
        """Every file of the destination and its size."""
        if self.kind == "s3":
            self.s3.invalidate_cache()
            root = self.url[len("s3://") :]
            found = self.s3.find(root, detail=True)
            return {k[len(root) + 1 :]: int(v["size"]) for k, v in found.items()}
        return local_listing(self.url)

    def assert_nothing_outside(self) -> None:
        assert self.parent_listing() == self.before


def local_listing(root: str) -> dict[str, int]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = os.path.getsize(full)
    return out


def source_listing(url: str, options: dict[str, Any]) -> dict[str, int]:
    fs = HCSFileSystem(fo=url, target_options=options or None, skip_instance_cache=True)
    return {e["name"]: e["size"] for e in sync(fs.loop, fs.source.find, "")}


def assert_plate_matches_sample(url: str, options: dict[str, Any]) -> hcsfs.Plate:
    spec = SamplePlateSpec()
    plate = hcsfs.open_plate(url, storage_options=options or None)
    assert sorted(plate.wells) == sorted(spec.wells)
    checked = 0
    for path, well in plate.wells.items():
        for field, image in well.images.items():
            for level in (0, 1):
                np.testing.assert_array_equal(
                    image.level(level)[...], expected_field(spec, path, int(field), level)
                )
                checked += 1
    assert checked == len(spec.wells) * spec.fields * 2
    return plate


def root_documents(listing: Iterable[str]) -> list[str]:
    return [k for k in listing if "/" not in k and k in METADATA_NAMES]


@pytest.fixture
def destination(
    tmp_path: Path, s3: Any, s3_options: dict[str, Any]
) -> Callable[[str], Destination]:
    return lambda kind: Destination(kind, tmp_path, s3, s3_options)


# ------------------------------------------------------------------ every route
@pytest.mark.parametrize("dst_kind", DESTINATIONS)
@pytest.mark.parametrize(("src_kind", "version"), SOURCES, ids=[f"{b}-{v}" for b, v in SOURCES])
def test_copy_reads_back_every_field_with_the_source_files(
    plate_factory: Any, destination: Any, src_kind: str, version: str, dst_kind: str
) -> None:
    src = plate_factory(src_kind, version)
    dst = destination(dst_kind)
    to_version = "0.5" if dst_kind == "ozx" and version == "0.4" else None

    report = copy_plate(
        src.url,
        dst.url,
        storage_options=src.storage_options,
        dst_storage_options=dst.options,
        to_version=to_version,
        max_concurrency=8,
    )

    assert isinstance(report, CopyReport)
    plate = assert_plate_matches_sample(dst.url, dst.options)
    expected_version = "0.5" if src.is_archive or dst_kind == "ozx" else version
    assert plate.version == expected_version
    if dst_kind != "ozx":
        files = source_listing(src.url, src.storage_options)
        assert dst.listing() == files
        assert (report.files, report.bytes) == (len(files), sum(files.values()))
    else:
        assert os.path.getsize(dst.url) == report.bytes
    dst.assert_nothing_outside()


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("dst_kind", ["dir", "s3"])
def test_non_empty_destination_is_refused_without_overwrite(
    plate_factory: Any, destination: Any, dst_kind: str
) -> None:
    src = plate_factory("dir", "0.5")
    dst = destination(dst_kind)
    if dst_kind == "s3":
        dst.s3.pipe(f"{dst.url[len('s3://') :]}/notes.txt", b"mine")
    else:
        os.makedirs(dst.url)
        Path(dst.url, "notes.txt").write_bytes(b"mine")

    with pytest.raises(FileExistsError, match=r"copy\.ome\.zarr.*not empty.*notes\.txt"):
        copy_plate(src.url, dst.url, dst_storage_options=dst.options)

    assert dst.listing() == {"notes.txt": 4}
    dst.assert_nothing_outside()


def test_overwrite_replaces_the_copied_keys_and_deletes_nothing(
    plate_factory: Any, destination: Any
) -> None:
    dst = destination("dir")
    copy_plate(plate_factory("dir", "0.5").url, dst.url)
    Path(dst.url, "notes.txt").write_bytes(b"mine")
    Path(dst.url, "A", "1", "0", "0", "zarr.json").write_bytes(b"stale")
    with pytest.raises(FileExistsError, match=r"copy\.ome\.zarr"):
        copy_plate(plate_factory("ozx", "0.5").url, dst.url)

    ozx = plate_factory("ozx", "0.5")
    copy_plate(ozx.url, dst.url, overwrite=True)

    assert_plate_matches_sample(dst.url, {})
    expected = {**source_listing(ozx.url, {}), "notes.txt": 4}
    assert dst.listing() == expected
    dst.assert_nothing_outside()


def test_a_file_at_the_destination_is_refused_even_with_overwrite(
    plate_factory: Any, tmp_path: Path
) -> None:
    target = tmp_path / "plate.ome.zarr"
    target.write_bytes(b"a file")
    with pytest.raises(FileExistsError, match="is a file"):
        copy_plate(plate_factory("dir", "0.5").url, str(target), overwrite=True)
    assert target.read_bytes() == b"a file"


def test_copying_a_plate_into_itself_is_refused(plate_factory: Any) -> None:
    src = plate_factory("dir", "0.5").url
    with pytest.raises(ValueError, match="inside"):
        copy_plate(src, src, overwrite=True)
    with pytest.raises(ValueError, match="inside"):
        copy_plate(src, os.path.join(src, "nested"))
    with pytest.raises(ValueError, match="inside"):
        copy_plate("s3://plates/a/plate.ome.zarr", "s3://plates/a/plate.ome.zarr/copy")


def test_not_a_plate_is_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "zarr.json").write_bytes(b'{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(HCSError):
        copy_plate(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


# ------------------------------------------------------------------ versions
def test_to_version_converts_a_v2_plate_into_a_v3_directory(
    plate_factory: Any, destination: Any
) -> None:
    dst = destination("dir")
    copy_plate(
        plate_factory("s3", "0.4").url,
        dst.url,
        storage_options=plate_factory("s3", "0.4").storage_options,
        to_version="0.5",
    )

    plate = assert_plate_matches_sample(dst.url, {})
    assert (plate.version, plate.zarr_format) == ("0.5", 3)
    names = {k.rpartition("/")[2] for k in dst.listing()}
    assert "zarr.json" in names
    assert not names & {".zattrs", ".zgroup", ".zarray", ".zmetadata"}


def test_v2_plate_to_ozx_needs_to_version(plate_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(HCSError, match="to_version"):
        copy_plate(plate_factory("dir", "0.4").url, str(tmp_path / "p.ozx"))
    assert not (tmp_path / "p.ozx").exists()


def test_v3_plate_cannot_go_back_to_0_4(plate_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"converted to 0\.4"):
        copy_plate(plate_factory("dir", "0.5").url, str(tmp_path / "d"), to_version="0.4")
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ interruption
def fail_on_second_data_batch(
    monkeypatch: pytest.MonkeyPatch, source_class: type[Source]
) -> list[list[str]]:
    """Make ``source_class.get_many`` raise on its second batch of chunk keys."""
    original = source_class.get_many
    batches: list[list[str]] = []

    async def get_many(self: Source, keys: Iterable[str]) -> dict[str, bytes | None]:
        keys = list(keys)
        if any(k.rpartition("/")[2] not in METADATA_NAMES for k in keys):
            batches.append(keys)
            if len(batches) == 2:
                raise ConnectionResetError("injected: connection lost")
        return await original(self, keys)

    monkeypatch.setattr(source_class, "get_many", get_many)
    return batches


@pytest.mark.parametrize(
    ("src_kind", "dst_kind", "source_class"),
    [("dir", "dir", LocalSource), ("ozx", "s3", OzxSource), ("s3", "dir", Source)],
)
def test_interrupted_copy_leaves_no_root_document(
    plate_factory: Any,
    destination: Any,
    monkeypatch: pytest.MonkeyPatch,
    src_kind: str,
    dst_kind: str,
    source_class: type[Source],
) -> None:
    src = plate_factory(src_kind, "0.5")
    dst = destination(dst_kind)
    monkeypatch.setattr(copy_module, "ARCHIVE_BATCH_KEYS", 4)
    fail_on_second_data_batch(monkeypatch, source_class)

    with pytest.raises(ConnectionResetError) as caught:
        copy_plate(
            src.url,
            dst.url,
            storage_options=src.storage_options,
            dst_storage_options=dst.options,
            max_concurrency=4,
        )

    assert "not a plate" in "".join(getattr(caught.value, "__notes__", []))
    written = dst.listing()
    assert written, "the first batch should have been written"
    assert not root_documents(written)
    assert not any(k.endswith("zarr.json") for k in written)  # metadata goes after all data
    with pytest.raises((HCSError, FileNotFoundError)):
        hcsfs.open_plate(dst.url, storage_options=dst.options or None)
    dst.assert_nothing_outside()

    monkeypatch.undo()
    copy_plate(src.url, dst.url, storage_options=src.storage_options,
               dst_storage_options=dst.options, overwrite=True)  # fmt: skip
    assert_plate_matches_sample(dst.url, dst.options)


def test_interrupted_overwrite_removes_the_old_root_document(
    plate_factory: Any, destination: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = plate_factory("dir", "0.5")
    dst = destination("dir")
    copy_plate(src.url, dst.url)
    fail_on_second_data_batch(monkeypatch, LocalSource)

    with pytest.raises(ConnectionResetError):
        copy_plate(src.url, dst.url, overwrite=True, max_concurrency=4)

    assert not root_documents(dst.listing())
    dst.assert_nothing_outside()


def test_size_mismatch_is_reported_by_name_before_the_root_is_written(
    plate_factory: Any, destination: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = plate_factory("dir", "0.5")
    dst = destination("dir")
    victim = "B/3/1/1/c/0/1/0/0/0"
    original = LocalSource.put

    async def truncating_put(self: LocalSource, key: str, data: bytes) -> None:
        await original(self, key, data[:-1] if key == victim else data)

    monkeypatch.setattr(LocalSource, "put", truncating_put)
    with pytest.raises(HCSError, match=rf"{victim} has \d+ bytes after the copy"):
        copy_plate(src.url, dst.url)
    assert not root_documents(dst.listing())


# ------------------------------------------------------------------ bounds, progress
def test_batches_stay_within_the_byte_budget(
    plate_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = plate_factory("dir", "0.5")
    sizes = source_listing(src.url, {})
    monkeypatch.setattr(copy_module, "MAX_BYTES_IN_FLIGHT", 8_000)
    original = LocalSource.get_many
    seen: list[list[str]] = []

    async def recording(self: LocalSource, keys: Iterable[str]) -> dict[str, bytes | None]:
        keys = list(keys)
        seen.append(keys)
        return await original(self, keys)

    monkeypatch.setattr(LocalSource, "get_many", recording)
    report = copy_plate(src.url, str(tmp_path / "out"), max_concurrency=16)

    assert report.files == len(sizes)
    copied = [k for batch in seen for k in batch if k in sizes]
    assert sorted(copied) == sorted(sizes)
    for batch in seen:
        assert len(batch) <= 16
        assert len(batch) == 1 or sum(sizes.get(k, 0) for k in batch) <= 4_000


def test_progress_bar_on_request_and_quiet_otherwise(
    plate_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = plate_factory("dir", "0.5").url
    copy_plate(src, str(tmp_path / "quiet"))
    assert capsys.readouterr().err == ""
    copy_plate(src, str(tmp_path / "loud"), progress=True)
    assert "copy loud" in capsys.readouterr().err
