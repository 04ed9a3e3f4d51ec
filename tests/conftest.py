"""Shared fixtures: one S3 server per session, and one plate blueprint on every backend.

Backends: ``dir`` (a local directory), ``memory`` (fsspec memory), ``s3`` (a real moto
S3 server on 127.0.0.1 that counts requests), ``ozx`` (a local RFC-9 archive) and
``ozx_s3`` (that archive on S3). Behaviour tests run over all of them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

from hcsfs.pack import pack
from hcsfs.sample import SamplePlateSpec, write_sample_plate
from hcsfs.testing import CountingS3Server

BUCKET = "plates"
BACKENDS = ("dir", "memory", "s3", "ozx", "ozx_s3")
CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "ngff-conformance"


@dataclass
class PlateOnBackend:
    """A plate materialised on one backend."""

    backend: str
    version: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    spec: SamplePlateSpec = field(default_factory=SamplePlateSpec)
    source_dir: str = ""

    @property
    def is_archive(self) -> bool:
        return self.backend.startswith("ozx")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[CountingS3Server]:
    server = CountingS3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_options(s3_server: CountingS3Server) -> dict[str, Any]:
    return s3_server.storage_options()


@pytest.fixture(scope="session")
def s3(s3_options: dict[str, Any]) -> Any:
    fs = fsspec.filesystem("s3", **s3_options)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return fs


@pytest.fixture(scope="session")
def blueprint_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sample plate written by zarr as a local directory, per OME-Zarr version."""
    root = tmp_path_factory.mktemp("blueprints")
    out = {}
    for version in ("0.4", "0.5"):
        path = root / f"plate-{version}.ome.zarr"
        write_sample_plate(str(path), version=version)
        out[version] = str(path)
    return out


def upload_dir(s3: Any, local: str, prefix: str) -> str:
    """Copy a local directory tree to ``s3://BUCKET/prefix``; return the URL."""
    files = []
    for dirpath, _, filenames in os.walk(local):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            files.append((full, f"{BUCKET}/{prefix}/{rel}"))
    s3.put([f for f, _ in files], [t for _, t in files])
    return f"s3://{BUCKET}/{prefix}"


def copy_to_memory(local: str, root: str) -> str:
    mem = fsspec.filesystem("memory")
    for dirpath, _, filenames in os.walk(local):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            with open(full, "rb") as handle:
                mem.pipe_file(f"{root}/{rel}", handle.read())
    return f"memory://{root}"


@pytest.fixture(scope="session")
def plate_factory(
    blueprint_dirs: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    s3: Any,
    s3_options: dict[str, Any],
) -> Any:
    """``make(backend, version)`` → :class:`PlateOnBackend` (cached per session)."""
    cache: dict[tuple[str, str], PlateOnBackend] = {}
    work = tmp_path_factory.mktemp("backends")

    def make(backend: str, version: str = "0.5") -> PlateOnBackend:
        if (backend, version) in cache:
            return cache[(backend, version)]
        local = blueprint_dirs[version]
        tag = f"{version}-{uuid.uuid4().hex[:8]}"
        options: dict[str, Any] = {}
        if backend == "dir":
            url = local
        elif backend == "memory":
            url = copy_to_memory(local, f"/plates/{tag}/plate.ome.zarr")
        elif backend == "s3":
            url = upload_dir(s3, local, f"{tag}/plate.ome.zarr")
            options = s3_options
        elif backend in ("ozx", "ozx_s3"):
            archive = str(work / f"plate-{tag}.ozx")
            pack(local, archive, to_version="0.5" if version == "0.4" else None)
            if backend == "ozx":
                url = archive
            else:
                s3.put(archive, f"{BUCKET}/{tag}/plate.ozx")
                url = f"s3://{BUCKET}/{tag}/plate.ozx"
                options = s3_options
        else:
            raise ValueError(backend)
        made = PlateOnBackend(backend, version, url, options, SamplePlateSpec(), local)
        cache[(backend, version)] = made
        return made

    return make


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=("0.4", "0.5"))
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def plate_on(plate_factory: Any, backend: str, version: str) -> PlateOnBackend:
    """The sample plate on every backend, in both versions."""
    return plate_factory(backend, version)  # type: ignore[no-any-return]


class StaticHTTPServer:
    """Serves a local directory over plain HTTP on 127.0.0.1 (aiohttp: GET, HEAD, Range).

    Plain HTTP cannot list, so it is the target that proves listings come from the
    OME metadata.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.port = 0
        self._loop: Any = None
        self._thread: Any = None
        self._runner: Any = None

    def start(self) -> StaticHTTPServer:
        import asyncio
        import threading

        from aiohttp import web

        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_static("/", self.root, show_index=False, follow_symlinks=False)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        import asyncio

        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def url(self, relative: str) -> str:
        return f"http://127.0.0.1:{self.port}/{relative}"


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory, blueprint_dirs: dict[str, str]) -> str:
    """A folder served over HTTP holding the sample plates and a packed archive."""
    import shutil

    root = tmp_path_factory.mktemp("http")
    for version, local in blueprint_dirs.items():
        shutil.copytree(local, root / f"plate-{version}.ome.zarr")
    pack(blueprint_dirs["0.5"], str(root / "plate.ozx"))
    return str(root)


@pytest.fixture(scope="session")
def http_server(http_root: str) -> Iterator[StaticHTTPServer]:
    server = StaticHTTPServer(http_root).start()
    yield server
    server.stop()
