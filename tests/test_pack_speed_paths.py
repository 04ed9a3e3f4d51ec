"""pack's fast paths: direct reads of a local plate, and syncing the archive while writing."""

from __future__ import annotations

import importlib
import os
import shutil
import zipfile
from typing import Any

import pytest

import hcsfs
from hcsfs.errors import HCSError
from hcsfs.source import LocalSource

pack_module = importlib.import_module("hcsfs.pack")  # the package's ``pack`` is the function


def test_local_and_batched_reads_give_the_same_archive(plate_factory: Any, tmp_path: Any) -> None:
    from_dir = tmp_path / "dir.ozx"
    from_memory = tmp_path / "memory.ozx"
    hcsfs.pack(plate_factory("dir", "0.5").url, str(from_dir))
    hcsfs.pack(plate_factory("memory", "0.5").url, str(from_memory))  # concurrent batches
    assert from_dir.read_bytes() == from_memory.read_bytes()


def test_a_local_plate_is_packed_without_a_round_trip_per_key(
    plate_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []
    original = LocalSource.get_many

    async def get_many(self: LocalSource, keys: Any) -> dict[str, bytes | None]:
        keys = list(keys)
        fetched.extend(keys)
        return await original(self, keys)

    monkeypatch.setattr(LocalSource, "get_many", get_many)
    archive = tmp_path / "out.ozx"
    hcsfs.pack(plate_factory("dir", "0.5").url, str(archive))
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        data = [n for n in zf.namelist() if not n.endswith("zarr.json")]
    assert data, "the plate has chunks"
    assert all(k.endswith("zarr.json") for k in fetched), "only documents go through get_many"


def test_a_file_vanishing_from_a_local_plate_fails_the_pack(
    plate_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = tmp_path / "plate.ome.zarr"
    shutil.copytree(plate_factory("dir", "0.5").url, plate)
    chunk = next(
        os.path.join(d, f) for d, _, files in os.walk(plate) for f in files if f != "zarr.json"
    )
    original = pack_module._plan

    async def plan_then_delete(*args: Any) -> Any:
        planned = await original(*args)
        os.remove(chunk)
        return planned

    monkeypatch.setattr(pack_module, "_plan", plan_then_delete)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(HCSError, match="vanished while packing"):
        hcsfs.pack(str(plate), str(out / "plate.ozx"))
    assert os.listdir(out) == [], "no archive and no partial file"


def test_a_local_archive_is_synced_while_it_is_written(
    plate_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []

    def record(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        os.fsync(fd)

    monkeypatch.setattr(pack_module, "SYNC_BEHIND_BYTES", 1024)
    monkeypatch.setattr(pack_module, "_sync_data", record)
    archive = tmp_path / "out.ozx"
    report = hcsfs.pack(plate_factory("dir", "0.5").url, str(archive))
    # at least one sync ran in the background before the archive was whole (how many
    # depends on how fast the disk syncs against how fast the pack writes)
    assert len(synced) >= 1
    assert synced == sorted(synced) and synced[0] < report.archive_bytes
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None


def test_a_failed_background_sync_fails_the_pack_and_keeps_the_old_archive(
    plate_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pack_module, "SYNC_BEHIND_BYTES", 1024)
    monkeypatch.setattr(pack_module, "_sync_data", broken)
    archive = tmp_path / "plate.ozx"
    archive.write_bytes(b"previous archive")
    with pytest.raises(OSError, match="Input/output error"):
        hcsfs.pack(plate_factory("dir", "0.5").url, str(archive))
    assert archive.read_bytes() == b"previous archive"
    assert os.listdir(tmp_path) == ["plate.ozx"], "no partial file is left behind"
