"""Test and benchmark helpers: a real S3 endpoint on loopback that counts what it serves.

:class:`CountingS3Server` is moto's ``ThreadedMotoServer`` with a thin WSGI layer in
front that records every request the server receives (method, key, range, kind) and
can add a fixed latency per request. Requests are counted where the server sees
them, not where the client thinks it sent them. Needs ``moto[server]`` (the ``test``
extra).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

__all__ = ["CountingS3Server", "S3Request"]


@dataclass(frozen=True)
class S3Request:
    """One request as the S3 server saw it."""

    method: str
    bucket: str
    key: str
    query: str
    range: str | None

    @property
    def kind(self) -> str:
        """``GET``, ``HEAD``, ``LIST``, ``PUT``, ``DELETE``, ``POST`` ..."""
        if self.method == "GET" and not self.key:
            return "LIST"
        if self.method == "GET" and ("list-type" in self.query or "uploads" in self.query):
            return "LIST"
        return self.method


class _CountingApp:
    def __init__(self, app: Callable[..., Iterable[bytes]], server: CountingS3Server) -> None:
        self.app = app
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = unquote(environ.get("PATH_INFO", ""))
        bucket, _, key = path.lstrip("/").partition("/")
        request = S3Request(
            method=environ.get("REQUEST_METHOD", ""),
            bucket=bucket,
            key=key,
            query=environ.get("QUERY_STRING", ""),
            range=environ.get("HTTP_RANGE"),
        )
        self.server._record(request)
        if self.server.latency:
            time.sleep(self.server.latency)
        return self.app(environ, start_response)


class CountingS3Server:
    """A moto S3 server on 127.0.0.1 (port chosen by the OS) that counts requests.

    Examples
    --------
    >>> server = CountingS3Server(); server.start()  # doctest: +SKIP
    >>> with server.counting() as log: ...           # doctest: +SKIP
    """

    def __init__(self, *, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency = latency
        self.host = host
        self.port = port
        self.requests: list[S3Request] = []
        self._lock = threading.Lock()
        self._moto: Any = None

    def _record(self, request: S3Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> CountingS3Server:
        """Start the server thread; returns self."""
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        outer = self

        class _Server(ThreadedMotoServer):
            def _server_entry(self) -> None:
                app = _CountingApp(DomainDispatcherApplication(create_backend_app), outer)
                self._server = make_server(self._ip_address, self._port, app, True)
                self._server_ready_event.set()
                self._server.serve_forever()

        self._moto = _Server(ip_address=self.host, port=self.port, verbose=False)
        self._moto.start()
        self.host, self.port = self._moto.get_host_and_port()
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def storage_options(self) -> dict[str, Any]:
        """s3fs options that reach this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "eu-west-1"},
            "skip_instance_cache": True,
        }

    def reset_counts(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self.requests.clear()

    def snapshot(self) -> list[S3Request]:
        """The requests seen so far."""
        with self._lock:
            return list(self.requests)

    def counts(self) -> Counter[str]:
        """Requests seen so far, by kind."""
        return Counter(r.kind for r in self.snapshot())

    def reset_data(self) -> None:
        """Drop every bucket (moto's reset endpoint)."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=30):
            pass
        self.reset_counts()
