"""Test and benchmark helpers: a real S3 endpoint on loopback that counts what it serves.

:class:`CountingS3Server` is moto's ``ThreadedMotoServer`` with a thin WSGI layer in
front that records every request the server receives (method, key, range, kind) and
can add a fixed latency per request. Requests are counted where the server sees
them, not where the client thinks it sent them. Needs ``moto[server]`` (the ``test``
extra).

The same layer injects faults (:meth:`CountingS3Server.inject` with a
:class:`FaultPlan` of :class:`Fault` rules): HTTP 500 ``InternalError``, 503
``SlowDown`` (with S3's XML error body), a connection dropped without a response, a
response delayed past the client's read timeout, and a truncated body (the
``Content-Length`` of the whole body, fewer bytes sent). Faults happen at the HTTP
layer of a real server, so the client's whole stack (aiohttp, botocore, s3fs, hcsfs)
sees them exactly as it would see them from a real endpoint.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote
from xml.sax.saxutils import escape

__all__ = [
    "FUZZ_EXAMPLES_ENV",
    "CountingS3Server",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "S3Request",
    "fuzz_examples",
    "fuzz_randomized",
    "fuzz_timeout",
]

#: Environment variable that sets ``max_examples`` of every hcsfs fuzz test, for long
#: local runs: ``HCSFS_FUZZ_EXAMPLES=20000 pytest tests/test_ome_fuzz.py
#: tests/test_ozx_hostile.py``. Unset (CI), each test keeps its own small default.
FUZZ_EXAMPLES_ENV = "HCSFS_FUZZ_EXAMPLES"


def fuzz_examples(default: int) -> int:
    """``max_examples`` for a fuzz test: :data:`FUZZ_EXAMPLES_ENV` if set, else ``default``."""
    value = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    if not value:
        return default
    try:
        examples = int(value)
    except ValueError:
        raise ValueError(f"{FUZZ_EXAMPLES_ENV}={value!r}: expected a whole number") from None
    if examples < 1:
        raise ValueError(f"{FUZZ_EXAMPLES_ENV}={value!r}: expected at least 1")
    return examples


def fuzz_timeout(seconds: float, default: int) -> float:
    """A test timeout of ``seconds`` at ``default`` examples, scaled to :func:`fuzz_examples`."""
    return seconds * max(1.0, fuzz_examples(default) / default)


def fuzz_randomized() -> bool:
    """True for a long local run (:data:`FUZZ_EXAMPLES_ENV` set): explore new inputs.

    CI runs derandomized, so a default run is the same every time.
    """
    return bool(os.environ.get(FUZZ_EXAMPLES_ENV, "").strip())


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


FaultKind = Literal["error", "slowdown", "reset", "delay", "truncate", "short"]

#: S3 error code and message sent for each HTTP status an ``"error"`` fault returns.
_ERROR_CODES: dict[int, tuple[str, str]] = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Service is unable to handle request."),
    504: ("GatewayTimeout", "Gateway timeout."),
    403: ("AccessDenied", "Access Denied"),
}


@dataclass
class Fault:
    """One fault rule: which requests it hits, how many times, and what it does.

    Parameters
    ----------
    kind
        ``"error"``: answer ``status`` with an S3 XML error body, without passing the
        request to S3. ``"slowdown"``: answer 503 ``SlowDown`` (S3's throttling reply).
        ``"reset"``: drop the connection without any response (after S3 applied the
        request when ``after`` is true). ``"delay"``: hold the request ``delay``
        seconds, then serve it (a slow server; past the client's read timeout it is a
        timeout). ``"truncate"``: serve it with the ``Content-Length`` of the whole
        body but send only ``keep`` bytes (or the fraction ``keep`` when it is a
        float below 1), then close the connection. ``"short"``: like ``"truncate"``,
        but the headers agree with the bytes sent (``Content-Length`` of the cut body,
        no ``x-amz-checksum-*``; a broken proxy): only a client that checks the length
        against the range it asked for can tell.
    method
        Only requests with this HTTP method (``"GET"``, ``"PUT"``, ``"POST"`` ...).
    key
        ``fnmatch`` pattern on the object key (``"*"`` matches ``/`` too); the bucket is
        not part of it. ``None`` matches every request, bucket-level ones included.
    query
        Only requests whose query string contains this text (``"partNumber"``,
        ``"uploadId"``, ``"list-type"``).
    ranged
        ``True``: only requests with a ``Range`` header; ``False``: only without.
    skip
        Let this many matching requests through untouched first.
    times
        Hit this many matching requests after ``skip`` (``None``: every one after).
    """

    kind: FaultKind
    method: str | None = None
    key: str | None = "*"
    query: str | None = None
    ranged: bool | None = None
    skip: int = 0
    times: int | None = 1
    status: int = 500
    delay: float = 0.0
    keep: float = 0.5
    after: bool = False
    seen: int = field(default=0, init=False)
    hits: int = field(default=0, init=False)

    def matches(self, request: S3Request) -> bool:
        """Whether ``request`` is one this rule is about (ignoring skip/times)."""
        if self.method is not None and request.method != self.method.upper():
            return False
        if self.key is not None and not (
            request.key and fnmatch.fnmatchcase(request.key, self.key)
        ):
            return False
        if self.query is not None and self.query not in request.query:
            return False
        return self.ranged is None or (request.range is not None) == self.ranged

    def _take(self, request: S3Request) -> bool:
        """Count ``request`` if it matches; True when the fault fires on it."""
        if not self.matches(request):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``times`` times (never for ``times=None``)."""
        return self.times is not None and self.hits >= self.times


@dataclass(init=False, eq=False)
class FaultPlan:
    """Fault rules applied in order; the first that fires on a request decides.

    Every request the server receives is offered to the rules; the ones that fired are
    recorded in :attr:`fired` as ``(request, kind)``.
    """

    rules: list[Fault]
    fired: list[tuple[S3Request, str]] = field(default_factory=list)

    def __init__(self, *rules: Fault | Iterable[Fault]) -> None:
        flat: list[Fault] = []
        for rule in rules:
            flat.extend([rule] if isinstance(rule, Fault) else rule)
        self.rules = flat
        self.fired = []

    def _choose(self, request: S3Request) -> Fault | None:
        for rule in self.rules:
            if rule._take(request):
                self.fired.append((request, rule.kind))
                return rule
        return None

    @property
    def hits(self) -> int:
        """How many requests a fault was applied to."""
        return len(self.fired)

    @property
    def exhausted(self) -> bool:
        """True when every counted rule has fired all its times."""
        return all(rule.exhausted for rule in self.rules)


def _error_body(code: str, message: str, request: S3Request) -> bytes:
    resource = f"/{request.bucket}/{request.key}" if request.key else f"/{request.bucket}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>hcsfs-fault</RequestId></Error>"
    ).encode()


def _drop_connection(environ: dict[str, Any]) -> None:
    """Shut the request's socket down with no response (RST when the handler closes it)."""
    sock = environ.get("werkzeug.socket")
    if sock is None:  # pragma: no cover - another WSGI server
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)


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
        fault = self.server._fault_for(request)
        if fault is None:
            return self.app(environ, start_response)
        return self._apply(fault, request, environ, start_response)

    def _apply(
        self,
        fault: Fault,
        request: S3Request,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        if fault.kind == "delay":
            self.server._sleep(fault.delay)
            return self.app(environ, start_response)
        if fault.kind in ("error", "slowdown"):
            _drain(environ)
            status = 503 if fault.kind == "slowdown" else fault.status
            if fault.kind == "slowdown":
                code, message = "SlowDown", "Please reduce your request rate."
            else:
                code, message = _ERROR_CODES.get(status, ("InternalError", "Injected fault."))
            body = _error_body(code, message, request)
            start_response(
                f"{status} {code}",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if fault.kind == "reset":
            if fault.after:
                for _ in self._served(environ):
                    pass
            else:
                _drain(environ)
            _drop_connection(environ)
            raise ConnectionAbortedError(f"injected connection reset: {request.key}")
        if fault.kind in ("truncate", "short"):
            line, headers, body = self._served(environ)
            if not body:
                start_response(line, headers)
                return [body]
            kept = int(len(body) * fault.keep) if fault.keep < 1 else int(fault.keep)
            kept = max(0, min(kept, len(body) - 1))
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            if fault.kind == "short":
                headers = [(k, v) for k, v in headers if not k.lower().startswith("x-amz-checksum")]
            declared = len(body) if fault.kind == "truncate" else kept
            start_response(line, [*headers, ("Content-Length", str(declared))])
            return [body[:kept]]
        raise ValueError(f"unknown fault kind {fault.kind!r}")  # pragma: no cover

    def _served(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status, headers and whole body of the request as S3 answers it."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda data: None

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], body


def _drain(environ: dict[str, Any]) -> None:
    """Read the request body so a client still sending it sees the response, not EPIPE."""
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH")
    if stream is None or not length:
        return
    with contextlib.suppress(OSError, ValueError):
        remaining = int(length)
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)


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
        self._plans: list[FaultPlan] = []
        self._wake = threading.Event()

    def _record(self, request: S3Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _fault_for(self, request: S3Request) -> Fault | None:
        with self._lock:
            for plan in self._plans:
                fault = plan._choose(request)
                if fault is not None:
                    return fault
        return None

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when faults are cleared or the server stops."""
        self._wake.wait(seconds)

    @contextlib.contextmanager
    def _injected(self, plan: FaultPlan) -> Iterator[FaultPlan]:
        try:
            yield plan
        finally:
            self.remove(plan)

    def inject(self, plan: FaultPlan | Fault) -> contextlib.AbstractContextManager[FaultPlan]:
        """Apply ``plan`` to the requests from now on; returns a context manager.

        The plan is active as soon as this returns; leaving the ``with`` block (or
        :meth:`remove` / :meth:`clear_faults`) takes it out again.

        Examples
        --------
        >>> with server.inject(FaultPlan(Fault("slowdown", method="GET", times=2))) as plan:
        ...     fs.cat_file("bucket/key")  # doctest: +SKIP
        >>> plan.hits  # doctest: +SKIP
        2
        """
        if isinstance(plan, Fault):
            plan = FaultPlan(plan)
        with self._lock:
            self._wake.clear()
            self._plans.append(plan)
        return self._injected(plan)

    def remove(self, plan: FaultPlan) -> None:
        """Stop applying ``plan`` (requests held by its delays are released)."""
        with self._lock:
            if plan in self._plans:
                self._plans.remove(plan)
            if not self._plans:
                self._wake.set()

    def clear_faults(self) -> None:
        """Stop applying every fault plan."""
        with self._lock:
            self._plans.clear()
            self._wake.set()

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
        self.clear_faults()
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
