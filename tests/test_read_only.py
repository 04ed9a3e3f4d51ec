"""Read-only means read-only, and no write ever lands outside the plate root.

A plate opened with ``mode="r"`` refuses every write path - filesystem, zarr store,
accessors - before any byte moves: on S3 the server sees no write request at all. The
FUSE mount answers ``EROFS`` (``tests/test_mount.py::test_writes_refused``). A writable
plate refuses keys that leave its root (``..``, symlinked directories pointing
outside), and its parent directory is byte-for-byte the same afterwards.

Covered elsewhere, not repeated here: ``write_image`` / ``remove_well`` / ``consolidate``
on a read-only directory plate (``test_write.py::test_read_only_plates_refuse_writes``),
``set`` / ``delete`` / ``delete_dir`` on an archive store
(``test_store.py::test_read_only_store_refuses_writes_like_zarr_stores``), ``create_plate``
over an existing plate on dir/memory/S3
(``test_write.py::test_create_refuses_an_existing_plate_without_overwrite``), and reads
of escaping keys (``test_bad_input.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.core.buffer import cpu

import hcsfs
from hcsfs.errors import PlateWriteError
from hcsfs.testing import CountingS3Server
from hcsfs.write import create_plate

pytestmark = pytest.mark.timeout(120)

ZARR_READ_ONLY = "store was opened in read-only mode and does not support writing"
WRITE_KINDS = frozenset({"PUT", "POST", "DELETE"})


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and symlink under ``root`` (not following links) with a content hash."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                found[rel] = f"link:{os.readlink(full)}"
            elif full.is_file():
                found[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
            else:
                found[rel] = "dir"
    return found


@pytest.fixture
def dir_plate(plate_factory: Any, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A private copy of the sample plate in ``tmp_path/parent/plate.ome.zarr``.

    Yields ``(parent, plate)``; the parent also holds a ``secret`` file and an
    ``outside`` directory, the things an escaping write would hit.
    """
    parent = tmp_path / "parent"
    plate = parent / "plate.ome.zarr"
    shutil.copytree(plate_factory("dir", "0.5").url, plate)
    (parent / "secret").write_bytes(b"secret")
    (parent / "outside").mkdir()
    (parent / "outside" / "keep").write_bytes(b"keep")
    yield parent, plate


def _refusals(fs: Any, local_file: Path) -> dict[str, Callable[[], object]]:
    """Every write the fsspec face offers, aimed at the plate's own keys."""
    return {
        "pipe_file": lambda: fs.pipe_file("A/1/new", b"x"),
        "pipe_file over a document": lambda: fs.pipe_file("zarr.json", b"{}"),
        "pipe (dict)": lambda: fs.pipe({"A/1/a": b"1", "A/1/b": b"2"}),
        "open wb": lambda: fs.open("A/1/new", "wb"),
        "open ab": lambda: fs.open("zarr.json", "ab"),
        "rm_file": lambda: fs.rm_file("zarr.json"),
        "rm recursive": lambda: fs.rm("A/1", recursive=True),
        "rm list": lambda: fs.rm(["zarr.json", "A/1/zarr.json"]),
        "mkdir": lambda: fs.mkdir("Z"),
        "makedirs": lambda: fs.makedirs("Z/1", exist_ok=True),
        "touch": lambda: fs.touch("A/1/touched"),
    }


def _copy_refusals(fs: Any, local_file: Path) -> dict[str, Callable[[], object]]:
    """Copies and moves within the plate, and files put into it from outside."""
    return {
        "mv inside": lambda: fs.mv("A/1/zarr.json", "A/1/moved.json"),
        "cp inside": lambda: fs.cp("A/1/zarr.json", "A/1/copied.json"),
        "cp recursive": lambda: fs.cp("A/1", "A/9", recursive=True),
        "put a local file into it": lambda: fs.put_file(str(local_file), "A/1/put"),
        "put a local tree into it": lambda: fs.put(str(local_file.parent), "A/9", recursive=True),
    }


def test_read_only_filesystem_refuses_every_write(
    dir_plate: tuple[Path, Path], tmp_path: Path
) -> None:
    parent, root = dir_plate
    local_file = tmp_path / "local"
    local_file.write_bytes(b"local")
    plate = hcsfs.open_plate(str(root))
    before = tree_digest(parent)
    for what, attempt in _refusals(plate.fs, local_file).items():
        with pytest.raises(PermissionError, match="read-only") as caught:
            attempt()
        assert "mode='r'" in str(caught.value) or "read-only" in str(caught.value), what
    assert tree_digest(parent) == before


def test_read_only_filesystem_refuses_copies_and_moves_into_it(
    dir_plate: tuple[Path, Path], tmp_path: Path
) -> None:
    """``cp``/``mv``/``put`` into a read-only plate: PermissionError, like every write.

    Bug (reported): ``HCSFileSystem`` has no ``_cp_file``/``_put_file``, so these raise
    fsspec's bare ``NotImplementedError`` (no message, no path) whatever the mode.
    """
    parent, root = dir_plate
    local = tmp_path / "local"
    local.mkdir()
    (local / "file").write_bytes(b"local")
    plate = hcsfs.open_plate(str(root))
    before = tree_digest(parent)
    failures = []
    for what, attempt in _copy_refusals(plate.fs, local / "file").items():
        try:
            attempt()
        except PermissionError as exc:
            assert "read-only" in str(exc), what
        except Exception as exc:
            failures.append(f"{what}: {type(exc).__name__}({exc})")
        else:
            failures.append(f"{what}: no error")
    assert tree_digest(parent) == before
    assert not failures, "not refused with PermissionError: " + "; ".join(failures)


def test_read_only_plate_on_s3_sends_no_write_request(
    plate_factory: Any, s3_server: CountingS3Server, tmp_path: Path
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, storage_options=plate_on.storage_options)
    local_file = tmp_path / "local"
    local_file.write_bytes(b"local")
    store = plate.store
    s3_server.reset_counts()
    for what, attempt in _refusals(plate.fs, local_file).items():
        with pytest.raises(PermissionError):
            attempt()
        assert not _writes(s3_server), what
    for what, store_attempt in _store_refusals(store).items():
        with pytest.raises(ValueError, match=ZARR_READ_ONLY):
            store_attempt()
        assert not _writes(s3_server), what
    for what, accessor_attempt in _accessor_refusals(plate).items():
        with pytest.raises(PermissionError, match="read-only"):
            accessor_attempt()
        assert not _writes(s3_server), what


def _writes(server: CountingS3Server) -> list[Any]:
    return [r for r in server.snapshot() if r.kind in WRITE_KINDS]


def _store_refusals(store: Any) -> dict[str, Callable[[], object]]:
    buffer = cpu.Buffer.from_bytes(b"{}")
    return {
        "set": lambda: store._sync(store.set("A/1/new", buffer)),
        "set over a document": lambda: store._sync(store.set("zarr.json", buffer)),
        "set_if_not_exists": lambda: store._sync(store.set_if_not_exists("A/1/new", buffer)),
        "delete": lambda: store._sync(store.delete("zarr.json")),
        "delete_dir": lambda: store._sync(store.delete_dir("A")),
        "set_sync": lambda: store.set_sync("A/1/new", buffer),
        "delete_sync": lambda: store.delete_sync("zarr.json"),
    }


def _accessor_refusals(plate: hcsfs.Plate) -> dict[str, Callable[[], object]]:
    well = plate.well("A", 1)
    pixels = np.zeros((1, 2, 1, 8, 8), dtype="uint16")
    return {
        "write_image": lambda: plate.write_image("B", 2, 0, pixels, acquisition=0),
        "well.write_image": lambda: well.write_image(7, pixels, acquisition=0),
        "remove_image": lambda: well.remove_image(0),
        "remove_well": lambda: plate.remove_well("A", 1),
        "consolidate": lambda: plate.consolidate(),
    }


def test_read_only_store_and_accessors_refuse_writes(dir_plate: tuple[Path, Path]) -> None:
    parent, root = dir_plate
    plate = hcsfs.open_plate(str(root))
    before = tree_digest(parent)
    for store in (plate.store, plate.well("A", 1).store, plate.well("A", 1).image(0).store):
        assert store.read_only
        for what, attempt in _store_refusals(store).items():
            with pytest.raises(ValueError, match=ZARR_READ_ONLY):
                attempt()
            assert tree_digest(parent) == before, what
    for what, accessor_attempt in _accessor_refusals(plate).items():
        with pytest.raises(PermissionError, match="read-only"):
            accessor_attempt()
        assert tree_digest(parent) == before, what


def test_zarr_arrays_and_groups_of_a_read_only_plate_refuse_writes(
    dir_plate: tuple[Path, Path],
) -> None:
    parent, root = dir_plate
    plate = hcsfs.open_plate(str(root))
    before = tree_digest(parent)
    array = plate.well("A", 1).image(0).level(0)
    with pytest.raises(ValueError, match=ZARR_READ_ONLY):
        array[...] = 0
    group = plate.zarr
    with pytest.raises(ValueError, match=ZARR_READ_ONLY):
        group.create_group("new")
    with pytest.raises(ValueError, match=ZARR_READ_ONLY):
        group.attrs["x"] = 1
    with pytest.raises((ValueError, PermissionError)):
        zarr.open_group(plate.store, mode="w")
    assert tree_digest(parent) == before


def test_plate_opened_read_only_stays_read_only_after_a_writable_handle_writes(
    dir_plate: tuple[Path, Path],
) -> None:
    """Another handle writing does not make the read-only one writable."""
    _, root = dir_plate
    reader = hcsfs.open_plate(str(root))
    writer = hcsfs.open_plate(str(root), mode="r+")
    writer.write_image("B", 2, 0, np.ones((1, 2, 1, 8, 8), "uint16"), acquisition=0)
    writer.close()
    reader.fs.invalidate_cache()
    assert "B/2" in reader.wells
    with pytest.raises(PermissionError):
        reader.remove_well("B", 2)


# ---------------------------------------------------------------- outside the root
ESCAPING_KEYS = ["../secret", "../outside/keep", "A/../../secret", "A/1/../../../x", "..\\x"]


def _escaping_writes(plate: hcsfs.Plate, key: str) -> dict[str, Callable[[], object]]:
    """Every way to write or delete ``key`` on a writable plate."""
    fs = plate.fs
    store = hcsfs.HCSStore(fs, read_only=False)
    buffer = cpu.Buffer.from_bytes(b"pwned")
    return {
        "pipe_file": lambda: fs.pipe_file(key, b"pwned"),
        "open wb": lambda: fs.open(key, "wb").close(),
        "source.put": lambda: plate._sync(fs.source.put(key, b"x")),
        "store.set": lambda: store._sync(store.set(key, buffer)),
        "rm_file": lambda: fs.rm_file(key),
        "rm recursive": lambda: fs.rm(key, recursive=True),
        "source.delete": lambda: plate._sync(fs.source.delete(key)),
        "source.delete_tree": lambda: plate._sync(fs.source.delete_tree(key)),
        "store.delete": lambda: store._sync(store.delete(key)),
        "store.delete_dir": lambda: store._sync(store.delete_dir(key)),
    }


def test_writes_with_escaping_keys_are_refused(dir_plate: tuple[Path, Path]) -> None:
    parent, root = dir_plate
    plate = hcsfs.open_plate(str(root), mode="r+")
    before = tree_digest(parent)
    for key in ESCAPING_KEYS:
        for what, attempt in _escaping_writes(plate, key).items():
            with pytest.raises((ValueError, PermissionError)):
                attempt()
            assert tree_digest(parent) == before, f"{what}({key!r}) changed the parent"


def test_absolute_keys_write_inside_the_plate(dir_plate: tuple[Path, Path]) -> None:
    """A leading ``/`` is the plate root, not the filesystem root."""
    parent, root = dir_plate
    plate = hcsfs.open_plate(str(root), mode="r+")
    target = parent / "secret"
    plate.fs.pipe_file(str(target), b"inside")
    assert target.read_bytes() == b"secret"
    inside = root / str(target).lstrip("/")
    assert inside.read_bytes() == b"inside"


def test_symlinked_directories_pointing_outside_are_not_written_through(
    dir_plate: tuple[Path, Path],
) -> None:
    parent, root = dir_plate
    (root / "A" / "1" / "escape").symlink_to(parent / "outside", target_is_directory=True)
    (root / "A" / "escape.json").symlink_to(parent / "secret")
    plate = hcsfs.open_plate(str(root), mode="r+")
    fs = plate.fs
    before = tree_digest(parent / "outside"), (parent / "secret").read_bytes()
    for attempt in (
        lambda: fs.pipe_file("A/1/escape/new", b"pwned"),
        lambda: fs.pipe_file("A/1/escape/keep", b"pwned"),
        lambda: fs.pipe_file("A/escape.json", b"pwned"),
        lambda: fs.rm_file("A/1/escape/keep"),
        lambda: fs.rm_file("A/escape.json"),
        lambda: plate._sync(fs.source.delete_tree("A/1/escape")),
    ):
        with pytest.raises(PermissionError, match="outside"):
            attempt()
    assert (tree_digest(parent / "outside"), (parent / "secret").read_bytes()) == before

    # removing the well (a tree holding the link) removes the link, never its target
    plate.remove_well("A", 1)
    assert (tree_digest(parent / "outside"), (parent / "secret").read_bytes()) == before
    assert not (root / "A" / "1").exists()


def test_escaping_keys_on_s3_never_reach_the_server(
    plate_factory: Any, s3_server: CountingS3Server
) -> None:
    plate_on = plate_factory("s3", "0.5")
    plate = hcsfs.open_plate(plate_on.url, mode="r+", storage_options=plate_on.storage_options)
    s3_server.reset_counts()
    for key in ESCAPING_KEYS:
        with pytest.raises((ValueError, PermissionError)):
            plate.fs.pipe_file(key, b"pwned")
        with pytest.raises((ValueError, PermissionError, FileNotFoundError)):
            plate.fs.rm_file(key)
    assert not _writes(s3_server)


# ---------------------------------------------------------------- create over a plate
def test_create_plate_refuses_an_existing_archive_without_overwrite(
    plate_factory: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "plate.ozx"
    shutil.copy(plate_factory("ozx", "0.5").url, archive)
    before = tree_digest(tmp_path)
    with pytest.raises(PlateWriteError, match="overwrite=True"):
        create_plate(str(archive), rows=1, columns=1)
    assert tree_digest(tmp_path) == before, "no staging directory is left behind either"
    with create_plate(str(archive), rows=1, columns=1, overwrite=True) as plate:
        assert len(plate.wells) == 0
    assert len(hcsfs.open_plate(str(archive)).wells) == 0


def test_create_plate_refuses_a_directory_holding_other_data(tmp_path: Path) -> None:
    target = tmp_path / "plate.ome.zarr"
    target.mkdir()
    (target / "notes.txt").write_bytes(b"mine")
    with pytest.raises(PlateWriteError, match="overwrite=True"):
        create_plate(str(target), rows=1, columns=1)
    assert sorted(os.listdir(target)) == ["notes.txt"]


def test_serve_answers_writes_with_405(dir_plate: tuple[Path, Path]) -> None:
    """``hcsfs serve`` is read-only over HTTP: every write method is 405, nothing changes."""
    import urllib.error
    import urllib.request

    from hcsfs.serve import start_background

    parent, root = dir_plate
    before = tree_digest(parent)
    with start_background(str(root)) as server:
        base = server.url.rstrip("/")
        for method in ("PUT", "POST", "DELETE", "PATCH"):
            for key in ("zarr.json", "A/1/zarr.json", "A/1/new", "A/1/"):
                request = urllib.request.Request(f"{base}/{key}", data=b"pwned", method=method)
                with pytest.raises(urllib.error.HTTPError) as caught:
                    urllib.request.urlopen(request, timeout=10)
                assert caught.value.code == 405, (method, key)
        with urllib.request.urlopen(f"{base}/zarr.json", timeout=10) as response:
            assert response.status == 200
    assert tree_digest(parent) == before
