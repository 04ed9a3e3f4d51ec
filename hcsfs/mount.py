"""``hcsfs mount``: any plate (directory, S3, ``.ozx``) as a read-only folder, through FUSE.

The folder is served by :class:`HCSOperations` over one
:class:`~hcsfs.filesystem.HCSFileSystem`: directories come from ``fs.ls``, sizes from
``fs.info``, and every ``read(2)`` is one ranged ``fs.cat_file(path, start, end)``.
FUSE calls arrive on libfuse's threads; HCSFileSystem's synchronous methods hand
each call to fsspec's IO loop, so they are safe to call from any of them.

Needs the ``mfusepy`` package, libfuse 3 (or 2) and ``/dev/fuse``; without them
:func:`mount` raises :class:`MountUnavailableError`.

Examples
--------
>>> mount("s3://bucket/plate.ozx", "/mnt/plate")  # doctest: +SKIP
$ python -m hcsfs.mount plate.ozx /mnt/plate --storage-options '{"anon": true}'
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem

__all__ = [
    "BackgroundMount",
    "HCSOperations",
    "MountUnavailableError",
    "fuse_unavailable_reason",
    "is_mounted",
    "main",
    "mount",
    "unmount",
]

log = logging.getLogger("hcsfs.mount")

DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444
DEFAULT_CACHE_TTL = 60.0
READY_TIMEOUT = 30.0
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

F = TypeVar("F", bound=Callable[..., Any])


class MountUnavailableError(RuntimeError):
    """A plate cannot be mounted here (no FUSE, no libfuse, or a bad mountpoint)."""


# ------------------------------------------------------------------ availability
def _load_fuse() -> Any:
    """The ``mfusepy`` module, or :class:`MountUnavailableError` saying what is missing."""
    try:
        import mfusepy
    except ImportError:
        raise MountUnavailableError(
            "hcsfs mount needs the 'mfusepy' package: pip install 'hcsfs[mount]'"
        ) from None
    except OSError as exc:  # mfusepy raises OSError when it cannot find/load libfuse
        raise MountUnavailableError(
            f"hcsfs mount needs libfuse (apt-get install fuse3): {exc}"
        ) from None
    return mfusepy


def fuse_unavailable_reason() -> str | None:
    """Why FUSE cannot be used in this process (``/dev/fuse``, libfuse, mfusepy), or None."""
    if sys.platform.startswith("linux"):
        if not os.path.exists("/dev/fuse"):
            return "/dev/fuse does not exist (no FUSE in this kernel or container)"
        if not os.access("/dev/fuse", os.R_OK | os.W_OK):
            return "/dev/fuse is not readable and writable by this user"
    try:
        _load_fuse()
    except MountUnavailableError as exc:
        return str(exc)
    return None


def _check_mountpoint(mountpoint: str) -> str:
    path = os.path.abspath(os.path.expanduser(mountpoint))
    if not os.path.isdir(path):
        raise MountUnavailableError(f"mountpoint {path} is not an existing directory")
    if os.path.ismount(path):
        raise MountUnavailableError(f"mountpoint {path} is already a mount point")
    if os.listdir(path):
        raise MountUnavailableError(f"mountpoint {path} is not empty")
    return path


def is_mounted(mountpoint: str) -> bool:
    """True when ``mountpoint`` is listed in ``/proc/mounts`` (or, elsewhere, is a mount)."""
    path = os.path.realpath(os.path.abspath(mountpoint))
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 1 and _unescape_mount_path(fields[1]) == path:
                    return True
        return False
    except OSError:
        return os.path.ismount(path)


def _unescape_mount_path(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo octal
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def unmount(mountpoint: str, *, lazy: bool = False, timeout: float = 10.0) -> None:
    """Unmount a FUSE mount (``fusermount3 -u``, ``fusermount -u``, then ``umount``).

    ``lazy`` detaches it even while files are open. Raises ``OSError`` when it is
    still mounted afterwards.
    """
    path = os.path.abspath(mountpoint)
    if not is_mounted(path):
        return
    commands: list[list[str]] = []
    for tool in ("fusermount3", "fusermount"):
        exe = shutil.which(tool)
        if exe:
            commands.append([exe, "-u", *(["-z"] if lazy else []), path])
    exe = shutil.which("umount")
    if exe:
        commands.append([exe, *(["-l"] if lazy else []), path])
    errors: list[str] = []
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{command[0]}: {exc}")
            continue
        if done.returncode == 0 or not is_mounted(path):
            return
        errors.append(f"{os.path.basename(command[0])}: {done.stderr.strip()}")
    raise OSError(errno.EBUSY, f"could not unmount {path}: {'; '.join(errors) or 'no tool'}")


# ------------------------------------------------------------------ operations
def _errno_of(exc: BaseException) -> int:
    """The errno FUSE should answer for ``exc``."""
    if isinstance(exc, FileNotFoundError):
        return errno.ENOENT
    if isinstance(exc, IsADirectoryError):
        return errno.EISDIR
    if isinstance(exc, NotADirectoryError):
        return errno.ENOTDIR
    if isinstance(exc, PermissionError):
        return errno.EACCES
    if isinstance(exc, ValueError) and not isinstance(exc, HCSError):
        return errno.EINVAL  # an unsafe key (``..``): never a plate path
    return errno.EIO


def _fuse_op(func: F) -> F:
    """Run one FUSE operation, turning every failure into an ``OSError`` with an errno."""

    @functools.wraps(func)
    def wrapper(self: HCSOperations, path: str, *args: Any) -> Any:
        try:
            return func(self, path, *args)
        except Exception as exc:
            given = exc.errno if type(exc) is OSError else None  # an errno we chose (EROFS)
            code = given or _errno_of(exc)
            if code == errno.EIO:
                log.error("%s %s failed: %s: %s", func.__name__, path, type(exc).__name__, exc)
            raise OSError(code, os.strerror(code), path) from None

    return wrapper  # type: ignore[return-value]


def _erofs(*_: Any) -> Any:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


class HCSOperations:
    """FUSE operations (mfusepy's interface) serving a plate read-only.

    Attributes learnt from a directory listing are kept ``cache_ttl`` seconds, so
    ``ls -l`` or ``os.walk`` + ``stat`` costs one listing, not one request per file.
    """

    use_ns = True  # times in nanoseconds (mfusepy)

    def __init__(
        self,
        fs: HCSFileSystem,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        ready: threading.Event | None = None,
    ) -> None:
        self.fs = fs
        self.cache_ttl = cache_ttl
        self.ready = ready
        self.initialized = False
        self.started_ns = time.time_ns()
        self.uid = os.getuid() if hasattr(os, "getuid") else 0
        self.gid = os.getgid() if hasattr(os, "getgid") else 0
        self._lock = threading.Lock()
        self._infos: dict[str, tuple[float, dict[str, Any]]] = {}
        self._handles: dict[int, tuple[str, int]] = {}
        self._next_fh = 1

    # ---------------------------------------------------------- helpers
    @staticmethod
    def _key(path: str) -> str:
        return path.strip("/")

    def _remember(self, entries: list[dict[str, Any]]) -> None:
        expires = time.monotonic() + self.cache_ttl
        with self._lock:
            if len(self._infos) > 100_000:
                self._infos.clear()
            for entry in entries:
                self._infos[entry["name"]] = (expires, entry)

    def _info(self, key: str) -> dict[str, Any]:
        with self._lock:
            cached = self._infos.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        info: dict[str, Any] = self.fs.info(key)
        self._remember([{**info, "name": key}])
        return info

    def _stat(self, info: dict[str, Any]) -> dict[str, Any]:
        now = self.started_ns
        attrs: dict[str, Any] = {
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": now,
            "st_mtime": now,
            "st_ctime": now,
        }
        if info.get("type") == "directory":
            attrs.update(st_mode=DIR_MODE, st_nlink=2, st_size=0)
        else:
            size = int(info.get("size") or 0)
            attrs.update(st_mode=FILE_MODE, st_nlink=1, st_size=size, st_blocks=(size + 511) // 512)
        return attrs

    # ---------------------------------------------------------- lifecycle
    def init(self, path: str) -> None:
        """The kernel has finished the FUSE handshake: the folder is live."""
        log.info("serving %s", self.fs.url)
        self.initialized = True
        if self.ready is not None:
            self.ready.set()

    def destroy(self, path: str) -> None:
        """The filesystem is being unmounted."""
        log.info("unmounted %s", self.fs.url)

    # ---------------------------------------------------------- reading
    @_fuse_op
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        """``stat``: directories 0o555, files 0o444 with their sizes."""
        return self._stat(self._info(self._key(path)))

    @_fuse_op
    def readdir(self, path: str, fh: int) -> list[Any]:
        """The names in a directory, from ``fs.ls``."""
        key = self._key(path)
        entries: list[dict[str, Any]] = self.fs.ls(key, detail=True)
        self._remember(entries)
        names: list[Any] = [".", ".."]
        for entry in entries:
            name = entry["name"].rpartition("/")[2]
            mode = DIR_MODE if entry.get("type") == "directory" else FILE_MODE
            names.append((name, {"st_mode": mode}, 0))
        return names

    @_fuse_op
    def open(self, path: str, flags: int) -> int:
        """Open a file for reading; any write access is refused with EROFS."""
        if flags & _WRITE_FLAGS:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        key = self._key(path)
        info = self._info(key)
        if info.get("type") == "directory":
            raise IsADirectoryError(key)
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = (key, int(info.get("size") or 0))
        return fh

    @_fuse_op
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """``size`` bytes at ``offset``: one ranged ``cat_file``."""
        with self._lock:
            handle = self._handles.get(fh)
        key, length = handle if handle is not None else (self._key(path), None)
        if length is None:
            length = int(self._info(key).get("size") or 0)
        end = min(offset + size, length)
        if size <= 0 or offset >= end:
            return b""
        data: bytes = self.fs.cat_file(key, start=offset, end=end)
        return bytes(data)

    @_fuse_op
    def release(self, path: str, fh: int) -> int:
        """Forget an open file."""
        with self._lock:
            self._handles.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        """Filesystem statistics (read-only, no free space)."""
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255, "f_flag": os.ST_RDONLY}

    # ---------------------------------------------------------- refused
    chmod = chown = create = link = mkdir = mknod = removexattr = rename = rmdir = _erofs
    setxattr = symlink = truncate = unlink = utimens = write = fallocate = _erofs


# ------------------------------------------------------------------ mounting
def _open_fs(url: str, storage_options: dict[str, Any] | None) -> HCSFileSystem:
    fs = HCSFileSystem(fo=url, target_options=dict(storage_options or {}), mode="r")
    fs.ls("")  # fail now (missing plate, bad credentials) rather than inside the mount
    return fs


class BackgroundMount:
    """A plate mounted by a thread of this process (``mount(..., foreground=False)``)."""

    def __init__(self, mountpoint: str, thread: threading.Thread) -> None:
        self.mountpoint = mountpoint
        self.thread = thread
        self.error: BaseException | None = None

    def unmount(self, timeout: float = 10.0) -> None:
        """Unmount and wait for the FUSE thread to finish."""
        unmount(self.mountpoint, timeout=timeout)
        self.thread.join(timeout)
        _BACKGROUND.discard(self.mountpoint)

    def __enter__(self) -> BackgroundMount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()


# libfuse installs its own SIGTERM/SIGHUP (and SIGINT) handlers, which end the FUSE loop
# and unmount, but only over a signal left at SIG_DFL; a Python handler would never run
# while the main thread sits inside libfuse.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_BACKGROUND: set[str] = set()


@contextlib.contextmanager
def _default_stop_signals() -> Iterator[None]:
    """Leave SIGTERM/SIGHUP at SIG_DFL while a foreground mount runs, so libfuse takes them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _stop_background(signum: int, frame: Any) -> None:
    """Unmount the background mounts, then die of the signal as the process would have."""
    for path in list(_BACKGROUND):
        with contextlib.suppress(OSError):
            unmount(path, lazy=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_background_stop() -> None:
    """Make SIGTERM/SIGHUP unmount background mounts and still end the process.

    Left at SIG_DFL, libfuse would take them and only unmount, keeping the process alive.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _STOP_SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _stop_background)


def mount(
    url: str,
    mountpoint: str,
    *,
    storage_options: dict[str, Any] | None = None,
    foreground: bool = True,
    ready: threading.Event | None = None,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    allow_other: bool = False,
    debug: bool = False,
    fuse_options: dict[str, Any] | None = None,
) -> BackgroundMount | None:
    """Mount the plate at ``url`` read-only on the empty directory ``mountpoint``.

    With ``foreground=True`` (the default) this blocks until the folder is unmounted
    (``unmount``, ``fusermount3 -u``, SIGINT or SIGTERM, which unmount cleanly) and
    returns None. With ``foreground=False`` the folder is served by a daemon thread of
    this process; the call returns a :class:`BackgroundMount` once the folder is live
    (when called from the main thread, SIGTERM/SIGHUP then unmount it before the
    process ends as usual).
    ``ready`` is set once the kernel can use the folder. ``fuse_options`` are extra
    libfuse ``-o`` options (``{"attr_timeout": 60}``).

    Raises
    ------
    MountUnavailableError
        No ``/dev/fuse``, libfuse or mfusepy; the mountpoint is not an empty directory;
        or libfuse refused to mount.
    """
    reason = fuse_unavailable_reason()
    if reason is not None:
        raise MountUnavailableError(f"cannot mount {url}: {reason}")
    path = _check_mountpoint(mountpoint)
    fs = _open_fs(url, storage_options)
    options: dict[str, Any] = {
        "ro": True,
        "fsname": f"hcsfs:{url}".replace(",", "_")[:200],
        "subtype": "hcsfs",
    }
    if allow_other:
        options["allow_other"] = True
    options.update(fuse_options or {})
    if foreground:
        with _default_stop_signals():
            _serve(fs, path, ready, cache_ttl, debug, options)
        return None
    _install_background_stop()
    live = threading.Event()
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            _serve(fs, path, live, cache_ttl, debug, options)
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            live.set()

    thread = threading.Thread(target=run, name=f"hcsfs-mount:{path}", daemon=True)
    handle = BackgroundMount(path, thread)
    _BACKGROUND.add(path)
    thread.start()
    if not live.wait(READY_TIMEOUT) or "error" in box:
        _BACKGROUND.discard(path)
        error = box.get("error")
        if error is None:
            with contextlib.suppress(OSError):
                unmount(path, lazy=True)
            raise MountUnavailableError(f"{path}: the mount did not come up in {READY_TIMEOUT}s")
        raise error
    if ready is not None:
        ready.set()
    return handle


def _serve(
    fs: HCSFileSystem,
    path: str,
    ready: threading.Event | None,
    cache_ttl: float,
    debug: bool,
    options: dict[str, Any],
) -> None:
    mfusepy = _load_fuse()
    operations = HCSOperations(fs, cache_ttl=cache_ttl, ready=ready)
    version = (mfusepy.fuse_version_major, mfusepy.fuse_version_minor)
    log.info("mounting %s on %s (libfuse %d.%d)", fs.url, path, *version)
    try:
        mfusepy.FUSE(operations, path, foreground=True, debug=debug, **options)
    except RuntimeError as exc:
        if type(exc) is not RuntimeError:
            raise
        if not operations.initialized:
            raise MountUnavailableError(
                f"libfuse could not mount {path} (code {exc}); is FUSE allowed here?"
            ) from None
        # libfuse 3 reports a loop ended by SIGINT/SIGTERM as code 8; it has unmounted.
        log.debug("FUSE loop for %s ended with code %s", path, exc)


# ------------------------------------------------------------------ command line
@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="hcsfs mount: %(levelname)s %(message)s")
    yield


def main(argv: list[str] | None = None) -> int:
    """``python -m hcsfs.mount URL MOUNTPOINT [--storage-options JSON]``; returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hcsfs mount", description="Show an OME-Zarr HCS plate as a read-only folder."
    )
    parser.add_argument("url", help="plate: directory, URL or .ozx (local or remote)")
    parser.add_argument("mountpoint", help="an existing empty directory")
    parser.add_argument(
        "--storage-options", default="{}", help="JSON object of fsspec storage options"
    )
    parser.add_argument("--cache-ttl", type=float, default=DEFAULT_CACHE_TTL)
    parser.add_argument("--allow-other", action="store_true", help="let other users in")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.storage_options)
        if not isinstance(options, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        parser.error(f"--storage-options: {exc}")
    ready = threading.Event()
    with _logging(args.verbose):
        try:
            mount(
                args.url,
                args.mountpoint,
                storage_options=options,
                ready=ready,
                cache_ttl=args.cache_ttl,
                allow_other=args.allow_other,
                debug=args.debug,
            )
        except MountUnavailableError as exc:
            print(f"hcsfs mount: {exc}", file=sys.stderr)
            return 2
        except (OSError, HCSError) as exc:
            print(f"hcsfs mount: cannot open {args.url}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
