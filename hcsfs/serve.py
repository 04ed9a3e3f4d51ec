"""``hcsfs serve``: any plate (directory, S3, ``.ozx``) as a plain read-only OME-Zarr over HTTP.

Browser viewers and HTTP-only tools (zarr over fsspec's HTTP filesystem, ome-zarr-py,
vizarr, neuroglancer ...) read the served plate as if it were a static zarr folder:

- ``GET``/``HEAD`` of a plate key (``/A/1/0/0/zarr.json``, ``/A/1/0/0/c/0/0/0/0/0``)
  answer its bytes; ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` answer
  ``206`` with ``Content-Range`` (an unsatisfiable range answers ``416``; a range
  the server cannot parse, or several ranges, is ignored and the whole value sent).
- The root document (``zarr.json`` for zarr v3, ``.zmetadata`` for v2) always holds
  consolidated metadata: the plate's own when it has some, otherwise the one hcsfs
  assembles (:func:`~hcsfs.virtual.virtual_root_document`), so a viewer opens the
  whole plate with one request.
- Documents are ``application/json``, everything else ``application/octet-stream``.
- A key ending in ``/`` (``/``, ``/A/1/``) answers a JSON listing of ``fs.ls``
  (``[{"name": "A/1/0", "type": "directory", "size": 0}, ...]``, the same entries as
  ``hcsfs ls --json``); a directory asked for without the ``/`` answers ``404``, as
  an object store would, so no zarr client mistakes a group for a value.
- Missing keys answer ``404``; keys that would leave the plate (``..``, ``%2e%2e``,
  backslashes, NUL, absolute paths) answer ``400`` without touching storage;
  ``PUT``/``POST``/``DELETE``/``PATCH`` ... answer ``405``: the server is read-only.
- Every answer carries CORS headers (``Access-Control-Allow-Origin: *``, exposing
  ``Content-Range``, ``Content-Length``, ``ETag``); ``OPTIONS`` answers preflights.
  Whole-value ``GET`` answers carry an ``ETag`` (a hash of the bytes) and honour
  ``If-None-Match``.

aiohttp runs its own event loop; the plate's filesystem runs on fsspec's loop
(``fs.loop``). Each request hands its coroutine to that loop and awaits the result.

Examples
--------
>>> serve("s3://bucket/plate.ozx", port=8000)  # doctest: +SKIP
$ hcsfs serve plate.ome.zarr --port 8000
>>> with start_background("plate.ozx") as server:  # doctest: +SKIP
...     zarr.open_group(server.url, mode="r")
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web

from hcsfs.errors import HCSError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.keys import unsafe_key_reason
from hcsfs.virtual import VIRTUAL_KEYS, virtual_root_document
from hcsfs.zarrmeta import METADATA_NAMES

__all__ = [
    "BackgroundServer",
    "create_app",
    "open_filesystem",
    "parse_range",
    "serve",
    "start_background",
]

log = logging.getLogger("hcsfs.serve")
access_log = logging.getLogger("hcsfs.serve.access")

T = TypeVar("T")

ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": (
        "Content-Range, Content-Length, ETag, Accept-Ranges, Content-Type"
    ),
}
PREFLIGHT_MAX_AGE = 86400
SHUTDOWN_TIMEOUT = 5.0
READY_TIMEOUT = 30.0

FS_KEY = web.AppKey("hcsfs_fs", HCSFileSystem)


class Unsatisfiable(ValueError):
    """A ``Range`` no byte of the value satisfies (answered with 416)."""


# ------------------------------------------------------------------ pure helpers
def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` byte range a ``Range`` header asks of a ``size``-byte value.

    Parameters
    ----------
    header
        The ``Range`` header (``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``), or None.
    size
        The length of the whole value.

    Returns
    -------
    tuple of int or None
        ``(start, end)`` with ``end`` exclusive and clamped to ``size``; None when the
        whole value is to be sent: no header, a header that does not parse, another
        unit than ``bytes`` or several ranges (RFC 9110 lets a server ignore those).

    Raises
    ------
    Unsatisfiable
        When the range starts at or after the end of the value, or asks for the
        last 0 bytes.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"bytes=-{suffix} of a {size}-byte value")
        return max(size - suffix, 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable(f"bytes={start}- of a {size}-byte value")
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def request_key(raw_path: str) -> tuple[str, bool]:
    """The plate key a request path names, and whether it asks for a directory.

    ``raw_path`` is the path as sent (percent-encoded, query allowed). It is decoded
    once and must then be a safe plate-relative key; a second decoding must be safe
    too, so storage that decodes again cannot be led outside the plate either.

    Raises
    ------
    ValueError
        When the key could name anything outside the plate.
    """
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path, errors="strict")
    if not decoded.startswith("/"):
        raise ValueError("the request path is not absolute")
    key = decoded[1:]
    is_dir = key == "" or key.endswith("/")
    key = key[:-1] if key.endswith("/") else key
    for candidate in (key, unquote(key)):
        reason = unsafe_key_reason(candidate)
        if reason is not None:
            raise ValueError(f"{key!r}: {reason}")
    return key, is_dir


def content_type(key: str) -> str:
    """``application/json`` for zarr metadata documents, else ``application/octet-stream``."""
    return JSON_TYPE if key.rpartition("/")[2] in METADATA_NAMES else BINARY_TYPE


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def _head(status: int, length: int, headers: dict[str, str]) -> web.StreamResponse:
    """A HEAD answer announcing ``length`` bytes (aiohttp sends no body for HEAD)."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    return response


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


# ------------------------------------------------------------------ the application
async def _on_fs_loop(fs: HCSFileSystem, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the filesystem's loop, from the server's loop."""
    fs_loop = fs.loop
    if asyncio.get_running_loop() is fs_loop:
        return await coro
    future = asyncio.run_coroutine_threadsafe(coro, fs_loop)
    return await asyncio.wrap_future(future)


async def _virtual(fs: HCSFileSystem, key: str) -> bytes | None:
    """The assembled consolidated root document for ``key``, or None (runs on fs.loop).

    Raises FileNotFoundError, with no request, for a metadata document the plate's
    zarr format rules out (the ``.zgroup`` ... probes zarr sends to a v3 plate).
    """
    if key.rpartition("/")[2] not in METADATA_NAMES:
        return None
    try:
        await fs.index.open()
    except (HCSError, OSError):
        return None  # not a plate (plain zarr, empty storage): serve what is there
    if fs.index.format_excludes(key):
        raise FileNotFoundError(key)
    if key not in VIRTUAL_KEYS.values():
        return None
    try:
        return await virtual_root_document(fs, key)
    except (HCSError, FileNotFoundError):
        return None  # not a plate (plain zarr, empty storage): serve what is there


async def _whole(fs: HCSFileSystem, key: str) -> bytes:
    """All bytes of ``key`` (runs on fs.loop): one GET, no size probe."""
    virtual = await _virtual(fs, key)
    if virtual is not None:
        return virtual
    return bytes(await fs._cat_file(key))


async def _size(fs: HCSFileSystem, key: str) -> int:
    """The size of the value at ``key`` (runs on fs.loop); FileNotFoundError for a group."""
    virtual = await _virtual(fs, key)
    if virtual is not None:
        return len(virtual)
    info = await fs._info(key)
    if info["type"] != "file":
        raise FileNotFoundError(key)
    return int(info["size"])


async def _part(fs: HCSFileSystem, key: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``key`` (runs on fs.loop)."""
    virtual = await _virtual(fs, key)
    if virtual is not None:
        return virtual[start:end]
    return bytes(await fs._cat_file(key, start=start, end=end))


async def _is_directory(fs: HCSFileSystem, key: str) -> bool:
    """True when ``key`` names a group or folder of the plate (runs on fs.loop)."""
    try:
        info = await fs._info(key)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return bool(info["type"] == "directory")


async def _listing(fs: HCSFileSystem, key: str) -> bytes:
    """The JSON listing of the directory ``key`` (runs on fs.loop)."""
    if key and not await _is_directory(fs, key):
        raise FileNotFoundError(key)
    entries = await fs._ls(key, detail=True)
    return json.dumps(entries, indent=1).encode()


async def _answer(request: web.Request, fs: HCSFileSystem) -> web.StreamResponse:
    """Answer one GET or HEAD."""
    key, is_dir = request_key(request.raw_path)
    head = request.method == "HEAD"
    if is_dir:
        body = await _on_fs_loop(fs, _listing(fs, key))
        if head:
            return _head(200, len(body), {"Content-Type": JSON_TYPE})
        return web.Response(body=body, content_type=JSON_TYPE)
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type(key)}
    range_header = request.headers.get("Range")
    if head or range_header:
        size = await _on_fs_loop(fs, _size(fs, key))
        try:
            span = parse_range(range_header, size)
        except Unsatisfiable:
            return _error(416, f"range not satisfiable: {range_header} of {key} ({size} bytes)",
                          **{"Content-Range": f"bytes */{size}"})  # fmt: skip
        if head:
            if span is None:
                return _head(200, size, headers)
            headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
            return _head(206, span[1] - span[0], headers)
        if span is not None:
            start, end = span
            data = await _on_fs_loop(fs, _part(fs, key, start, end))
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size}"
            return web.Response(status=206, body=data, headers=headers)
    data = await _on_fs_loop(fs, _whole(fs, key))
    etag = _etag(data)
    headers["ETag"] = etag
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers={"ETag": etag, "Accept-Ranges": "bytes"})
    return web.Response(body=data, headers=headers)


def _preflight(request: web.Request) -> web.Response:
    asked = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": asked or "Range, If-None-Match",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
            "Allow": ", ".join(ALLOWED_METHODS),
        },
    )


async def _handle(request: web.Request) -> web.StreamResponse:
    fs = request.app[FS_KEY]
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method not in ALLOWED_METHODS:
        return _error(
            405,
            f"hcsfs serve is read-only: {request.method} is not allowed "
            f"(allowed: {', '.join(ALLOWED_METHODS)})",
            Allow=", ".join(ALLOWED_METHODS),
        )
    try:
        return await _answer(request, fs)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _error(404, f"not found: {request.path}")
    except UnicodeDecodeError:
        return _error(400, "bad request: the path is not UTF-8")
    except PermissionError as exc:
        return _error(403, f"forbidden: {request.path}: {exc}")
    except (HCSError, OSError) as exc:
        log.warning("%s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
        return _error(502, f"cannot read {request.path}: {type(exc).__name__}: {exc}")
    except ValueError as exc:  # an unsafe key: never read anything
        return _error(400, f"bad key: {exc}")


@web.middleware
async def _cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Add the CORS headers to every answer, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    response.headers.update(CORS_HEADERS)
    return response


def create_app(fs: HCSFileSystem) -> web.Application:
    """The aiohttp application serving the plate of ``fs`` read-only (see the module doc).

    Parameters
    ----------
    fs
        The plate; its coroutines run on ``fs.loop``, whatever loop runs the app.

    Returns
    -------
    aiohttp.web.Application
        One catch-all route; run it with ``aiohttp.web.run_app`` or an ``AppRunner``.
    """
    app = web.Application(middlewares=[_cors])
    app[FS_KEY] = fs
    app.router.add_route("*", "/{key:.*}", _handle)
    return app


# ------------------------------------------------------------------ running it
def open_filesystem(
    url: str | HCSFileSystem, storage_options: dict[str, Any] | None = None
) -> HCSFileSystem:
    """A read-only :class:`HCSFileSystem` for ``url``, checked to be readable now.

    Parameters
    ----------
    url
        The plate (directory, URL, ``.ozx``), or a filesystem to use as it is.
    storage_options
        Options for the target filesystem (ignored when ``url`` is a filesystem).

    Raises
    ------
    OSError
        When the plate cannot be reached (missing, bad credentials ...).
    """
    if isinstance(url, HCSFileSystem):
        return url
    fs = HCSFileSystem(
        fo=url, target_options=dict(storage_options or {}), mode="r", skip_instance_cache=True
    )
    fs.ls("")  # fail now (missing plate, bad credentials), not on the first request
    return fs


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


async def _run(
    fs: HCSFileSystem,
    host: str,
    port: int,
    started: Callable[[str], None],
    stop: asyncio.Event,
) -> None:
    """Serve until ``stop`` is set; ``started(base_url)`` once the socket listens."""
    runner = web.AppRunner(create_app(fs), access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        addresses = runner.addresses  # (host, port, ...) of each listening socket
        bound = int(addresses[0][1]) if addresses else port
        started(_base_url(host, bound))
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(
    url: str | HCSFileSystem,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    storage_options: dict[str, Any] | None = None,
    ready: threading.Event | Callable[[str], None] | None = None,
) -> None:
    """Serve the plate at ``url`` over HTTP until SIGINT or SIGTERM, then shut down cleanly.

    Prints the base URL once the server listens.

    Parameters
    ----------
    url
        The plate: directory, URL (``s3://...``), ``.ozx`` (local or remote), or an
        :class:`HCSFileSystem`.
    host, port
        Where to listen (``port=0``: any free port; the printed URL names it).
    storage_options
        Options for the target filesystem.
    ready
        Set (an event) or called with the base URL (a callable) once the server listens.
    """
    fs = open_filesystem(url, storage_options)

    def started(base: str) -> None:
        print(f"serving {fs.url} at {base} (read-only; Ctrl-C to stop)", flush=True)
        if isinstance(ready, threading.Event):
            ready.set()
        elif ready is not None:
            ready(base)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
        try:
            await _run(fs, host, port, started, stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("stopped", file=sys.stderr, flush=True)


class BackgroundServer:
    """A plate served by a daemon thread of this process (see :func:`start_background`).

    Attributes
    ----------
    url
        The base URL, ending in ``/`` (``http://127.0.0.1:PORT/``).
    fs
        The filesystem being served.
    """

    def __init__(self, fs: HCSFileSystem) -> None:
        self.fs = fs
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to finish (idempotent)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Any:
        """Unpack as ``base_url, stop = start_background(...)``."""
        return iter((self.url, self.stop))


def start_background(
    url: str | HCSFileSystem,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> BackgroundServer:
    """Serve the plate at ``url`` from a daemon thread; return once it listens.

    Parameters
    ----------
    url
        The plate (directory, URL, ``.ozx``) or an :class:`HCSFileSystem`.
    host, port
        Where to listen (``port=0``, the default: any free port).
    storage_options
        Options for the target filesystem.

    Returns
    -------
    BackgroundServer
        ``.url`` is the base URL; ``.stop()`` (or leaving its ``with`` block) stops
        it. It also unpacks as ``base_url, stop``.

    Examples
    --------
    >>> with start_background("plate.ozx") as server:  # doctest: +SKIP
    ...     urllib.request.urlopen(server.url + "zarr.json").read()
    """
    fs = open_filesystem(url, storage_options)
    server = BackgroundServer(fs)
    listening = threading.Event()
    box: dict[str, BaseException] = {}

    def started(base: str) -> None:
        server.url = base
        listening.set()

    def run() -> None:
        loop = asyncio.new_event_loop()
        server._loop = loop
        server._stop = asyncio.Event()
        try:
            loop.run_until_complete(_run(fs, host, port, started, server._stop))
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            listening.set()
        finally:
            loop.close()

    server._thread = threading.Thread(target=run, name=f"hcsfs-serve:{fs.url}", daemon=True)
    server._thread.start()
    if not listening.wait(READY_TIMEOUT):
        server.stop()
        raise RuntimeError(f"hcsfs serve did not start in {READY_TIMEOUT}s")
    if "error" in box:
        raise box["error"]
    log.info("serving %s at %s", fs.url, server.url)
    return server
