"""``hcsfs mount``: real FUSE mounts of a plate (dir, .ozx, .ozx on S3) in a subprocess.

The mount tests skip only when ``/dev/fuse``, libfuse or mfusepy are absent; the
operation-level tests (errno mapping, ranged reads) run everywhere.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from hcsfs.errors import ArchiveError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.mount import (
    HCSOperations,
    MountUnavailableError,
    fuse_unavailable_reason,
    is_mounted,
    main,
    mount,
    unmount,
)
from hcsfs.sample import expected_field

FUSE_REASON = fuse_unavailable_reason()
needs_fuse = pytest.mark.skipif(FUSE_REASON is not None, reason=f"no FUSE: {FUSE_REASON}")
pytestmark = pytest.mark.timeout(60)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
MOUNTED = [("dir", "0.5"), ("dir", "0.4"), ("s3", "0.5"), ("ozx", "0.5"), ("ozx_s3", "0.5")]


class Mounted:
    """A plate mounted by ``python -m hcsfs.mount`` in a subprocess."""

    def __init__(self, plate: Any, mountpoint: Path, log: Path) -> None:
        self.plate = plate
        self.mountpoint = mountpoint
        self.log = log
        command = [sys.executable, "-m", "hcsfs.mount", plate.url, str(mountpoint)]
        command += ["--storage-options", json.dumps(plate.storage_options)]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_live()

    def _wait_live(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mount exited with {self.proc.returncode}: {self.output()}")
            if is_mounted(str(self.mountpoint)):
                os.listdir(self.mountpoint)  # blocks until the FUSE handshake is done
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"mount did not come up in {START_TIMEOUT}s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the mount process; clean up by force if it does not go."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        else:
            code = self.proc.returncode
        if is_mounted(str(self.mountpoint)):
            unmount(str(self.mountpoint), lazy=True)
        return code


def _touch(path: str, mode: str = "rb") -> None:
    """Open ``path`` (reading a byte when only reading) and close it."""
    with open(path, mode) as handle:
        if mode == "rb":
            handle.read(1)


def _fs(plate: Any) -> HCSFileSystem:
    return HCSFileSystem(fo=plate.url, target_options=plate.storage_options, mode="r")


@pytest.fixture(scope="module", params=MOUNTED, ids=lambda p: f"{p[0]}-{p[1]}")
def mounted(
    request: pytest.FixtureRequest, plate_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mounted]:
    if FUSE_REASON is not None:
        pytest.skip(f"no FUSE: {FUSE_REASON}")
    backend, version = request.param
    plate = plate_factory(backend, version)
    work = tmp_path_factory.mktemp(f"mount-{backend}")
    (work / "mnt").mkdir()
    handle = Mounted(plate, work / "mnt", work / "mount.log")
    yield handle
    handle.stop()


# ------------------------------------------------------------------ through the mount
def test_tree_equals_find(mounted: Mounted) -> None:
    fs = _fs(mounted.plate)
    root = str(mounted.mountpoint)
    files, dirs = set(), set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if rel == "." else f"{rel}/"
        dirs.update(prefix + d for d in dirnames)
        files.update(prefix + f for f in filenames)
    assert files == set(fs.find(""))
    found = fs.find("", withdirs=True, detail=True)
    assert dirs == {name for name, info in found.items() if info["type"] == "directory"}
    assert sorted(os.listdir(root)) == sorted(p.rpartition("/")[2] for p in fs.ls("", detail=False))


def test_stat_and_bytes_equal(mounted: Mounted) -> None:
    fs = _fs(mounted.plate)
    found = fs.find("", detail=True)
    assert found
    root_mode = os.stat(mounted.mountpoint).st_mode
    assert oct(root_mode & 0o777) == oct(0o555)

    def check(item: tuple[str, dict[str, Any]]) -> None:
        name, info = item
        path = os.path.join(mounted.mountpoint, *name.split("/"))
        st = os.stat(path)
        assert st.st_size == info["size"], name
        assert st.st_mode & 0o777 == 0o444, name
        with open(path, "rb") as handle:
            assert handle.read() == fs.cat_file(name), name

    # concurrently, from many threads, as readers of a mount do
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, found.items()))


def test_ranged_reads(mounted: Mounted) -> None:
    fs = _fs(mounted.plate)
    sizes = fs.find("", detail=True)
    name = max(sizes, key=lambda n: sizes[n]["size"])  # the root metadata document
    whole = fs.cat_file(name)
    path = os.path.join(mounted.mountpoint, name)
    with open(path, "rb", buffering=0) as handle:
        for offset, size in [(0, 10), (100, 333), (len(whole) - 5, 50), (len(whole) + 10, 10)]:
            handle.seek(offset)
            assert handle.read(size) == whole[offset : offset + size]
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 7, 3) == whole[3:10]
    finally:
        os.close(fd)


def test_zarr_reads_fields(mounted: Mounted) -> None:
    spec = mounted.plate.spec
    group = zarr.open_group(str(mounted.mountpoint), mode="r")
    for well, field, level in [("A/1", 0, 0), ("B/3", 1, 1)]:
        data = group[f"{well}/{field}/{level}"][...]
        np.testing.assert_array_equal(data, expected_field(spec, well, field, level))


def test_writes_refused(mounted: Mounted) -> None:
    root = str(mounted.mountpoint)
    existing = os.path.join(root, min(_fs(mounted.plate).find(""), key=len))  # a root document
    assert os.path.isfile(existing)
    attempts = [
        lambda: _touch(os.path.join(root, "new.txt"), "wb"),
        lambda: _touch(existing, "r+b"),
        lambda: _touch(existing, "ab"),
        lambda: os.truncate(existing, 0),
        lambda: os.mkdir(os.path.join(root, "newdir")),
        lambda: os.unlink(existing),
        lambda: os.rmdir(os.path.join(root, "A")),
        lambda: os.rename(existing, os.path.join(root, "moved.json")),
        lambda: os.chmod(existing, 0o666),
        lambda: os.symlink(existing, os.path.join(root, "link")),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno in (errno.EROFS, errno.EPERM, errno.EACCES), attempt
    assert sorted(os.listdir(root)) == sorted(
        p.rpartition("/")[2] for p in _fs(mounted.plate).ls("", detail=False)
    )


def test_missing_paths(mounted: Mounted) -> None:
    root = str(mounted.mountpoint)
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(root, "Z", "9"))
    with pytest.raises(FileNotFoundError):
        _touch(os.path.join(root, "A", "1", "nope.json"))
    with pytest.raises(IsADirectoryError):
        _touch(os.path.join(root, "A"))


# ------------------------------------------------------------------ lifecycle
@needs_fuse
@pytest.mark.parametrize(
    ("backend", "sig"),
    [("dir", signal.SIGTERM), ("dir", signal.SIGINT), ("ozx", signal.SIGTERM),
     ("ozx_s3", signal.SIGTERM)],
    ids=["dir-SIGTERM", "dir-SIGINT", "ozx-SIGTERM", "ozx_s3-SIGTERM"],
)  # fmt: skip
def test_signal_unmounts_cleanly(
    plate_factory: Any, tmp_path: Path, backend: str, sig: int
) -> None:
    (tmp_path / "mnt").mkdir()
    handle = Mounted(plate_factory(backend), tmp_path / "mnt", tmp_path / "mount.log")
    try:
        assert sorted(os.listdir(handle.mountpoint)) == ["A", "B", "zarr.json"]
        started = time.monotonic()
        handle.proc.send_signal(sig)
        code = handle.proc.wait(STOP_TIMEOUT)
        assert time.monotonic() - started < STOP_TIMEOUT
        assert code == 0, handle.output()
        assert not is_mounted(str(handle.mountpoint))
        assert os.listdir(handle.mountpoint) == []
    finally:
        handle.stop(signal.SIGKILL)


@needs_fuse
def test_background_mount_in_process(plate_factory: Any, tmp_path: Path) -> None:
    plate = plate_factory("ozx_s3")
    ready = threading.Event()
    mp = tmp_path / "mnt"
    mp.mkdir()
    handle = mount(
        plate.url, str(mp), storage_options=plate.storage_options, foreground=False, ready=ready
    )
    assert handle is not None
    try:
        assert ready.is_set() and is_mounted(str(mp))
        data = zarr.open_group(str(mp), mode="r")["A/2/1/0"][...]
        np.testing.assert_array_equal(data, expected_field(plate.spec, "A/2", 1, 0))
    finally:
        handle.unmount()
    assert not handle.thread.is_alive()
    assert not is_mounted(str(mp))


@needs_fuse
def test_background_mount_ends_with_its_process(plate_factory: Any, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    script = (
        "import sys, time\n"
        "from hcsfs.mount import mount\n"
        "mount(sys.argv[1], sys.argv[2], foreground=False)\n"
        "print('live', flush=True)\n"
        "time.sleep(60)\n"
    )
    command = [sys.executable, "-c", script, plate_factory("dir").url, str(mp)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = iter(proc.stdout.readline, "")  # libfuse 3.14 may print a warning first
        assert any(line == "live\n" for line in lines)
        assert is_mounted(str(mp)) and "zarr.json" in os.listdir(mp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT) == -signal.SIGTERM
        assert not is_mounted(str(mp))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        if is_mounted(str(mp)):
            unmount(str(mp), lazy=True)


@needs_fuse
def test_bad_mountpoints_and_plates(plate_factory: Any, tmp_path: Path) -> None:
    plate = plate_factory("dir")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(MountUnavailableError, match="not empty"):
        mount(plate.url, str(full))
    with pytest.raises(MountUnavailableError, match="not an existing directory"):
        mount(plate.url, str(tmp_path / "missing"))
    assert main([plate.url, str(full)]) == 2
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "no-such-plate.ozx"), str(tmp_path / "empty")]) == 1
    assert not is_mounted(str(tmp_path / "empty"))


def test_unavailable_fuse_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mfusepy", None)  # import fails as if not installed
    reason = fuse_unavailable_reason()
    assert reason is not None
    assert "mfusepy" in reason or "/dev/fuse" in reason
    with pytest.raises(MountUnavailableError, match="cannot mount"):
        mount(str(tmp_path), str(tmp_path))


# ------------------------------------------------------------------ operations, no FUSE
class _RecordingFS:
    """Just enough of HCSFileSystem for HCSOperations, recording ranged reads."""

    url = "memory://stub"

    def __init__(self, files: dict[str, bytes], fail: BaseException | None = None) -> None:
        self.files = files
        self.fail = fail
        self.reads: list[tuple[str, int | None, int | None]] = []

    def info(self, key: str) -> dict[str, Any]:
        if key in self.files:
            return {"name": key, "type": "file", "size": len(self.files[key])}
        if key == "" or any(k.startswith(f"{key}/") for k in self.files):
            return {"name": key, "type": "directory", "size": 0}
        raise FileNotFoundError(key)

    def ls(self, key: str, detail: bool = True) -> list[dict[str, Any]]:
        base = f"{key}/" if key else ""
        names = {k[len(base) :].split("/")[0] for k in self.files if k.startswith(base)}
        return [self.info(base + n) for n in sorted(names)]

    def cat_file(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self.reads.append((key, start, end))
        if self.fail is not None:
            raise self.fail
        return self.files[key][start:end]


def _ops(fs: _RecordingFS) -> HCSOperations:
    return HCSOperations(fs, cache_ttl=60)  # type: ignore[arg-type]


def test_operations_read_is_ranged() -> None:
    fs = _RecordingFS({"A/big": bytes(range(256)) * 4096})
    ops = _ops(fs)
    fh = ops.open("/A/big", os.O_RDONLY)
    assert ops.read("/A/big", 100, 5000, fh) == fs.files["A/big"][5000:5100]
    assert ops.read("/A/big", 4096, len(fs.files["A/big"]) - 10, fh)[-1:] == b"\xff"
    assert ops.read("/A/big", 10, 10**9, fh) == b""
    assert fs.reads == [("A/big", 5000, 5100), ("A/big", 1048566, 1048576)]
    ops.release("/A/big", fh)


def test_operations_attrs_and_listing() -> None:
    fs = _RecordingFS({"zarr.json": b"{}", "A/1/zarr.json": b"{...}"})
    ops = _ops(fs)
    root = ops.getattr("/")
    assert root["st_mode"] == 0o040555
    names = ops.readdir("/", 0)
    assert [n if isinstance(n, str) else n[0] for n in names] == [".", "..", "A", "zarr.json"]
    attrs = ops.getattr("/A/1/zarr.json")
    assert attrs["st_mode"] == 0o100444 and attrs["st_size"] == 5


def test_operations_errno_mapping(caplog: pytest.LogCaptureFixture) -> None:
    ops = _ops(_RecordingFS({"A/x": b"abc"}))
    with pytest.raises(OSError) as info:
        ops.getattr("/nope")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(OSError) as info:
        ops.open("/A", os.O_RDONLY)
    assert info.value.errno == errno.EISDIR
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
        with pytest.raises(OSError) as info:
            ops.open("/A/x", flags)
        assert info.value.errno == errno.EROFS
    for refused in (ops.write, ops.mkdir, ops.unlink, ops.rename, ops.truncate, ops.create):
        with pytest.raises(OSError) as info:
            refused("/A/x", 0)
        assert info.value.errno == errno.EROFS

    broken = _ops(_RecordingFS({"A/x": b"abc"}, fail=ArchiveError("plate.ozx", "bad entry")))
    fh = broken.open("/A/x", os.O_RDONLY)
    with caplog.at_level(logging.ERROR, logger="hcsfs.mount"), pytest.raises(OSError) as info:
        broken.read("/A/x", 3, 0, fh)
    assert info.value.errno == errno.EIO
    assert "bad entry" in caplog.text and "A/x" in caplog.text
