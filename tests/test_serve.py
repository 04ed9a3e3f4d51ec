"""``hcsfs serve``: any plate as a plain read-only OME-Zarr over HTTP, read by HTTP-only tools."""

from __future__ import annotations

import http.client
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from hcsfs.sample import expected_field
from hcsfs.serve import (
    BackgroundServer,
    Unsatisfiable,
    parse_range,
    request_key,
    start_background,
)

# (backend, version): every kind of storage, and a zarr v2 plate.
SERVED = [("dir", "0.5"), ("s3", "0.5"), ("ozx", "0.5"), ("ozx_s3", "0.5"), ("dir", "0.4")]
CHUNK = "A/1/0/0/c/0/0/0/0/0"  # a v3 chunk key of the sample plate


@pytest.fixture(scope="module")
def servers(plate_factory: Any) -> Iterator[dict[tuple[str, str], tuple[Any, BackgroundServer]]]:
    """One background server per (backend, version), shared by the module."""
    started: dict[tuple[str, str], tuple[Any, BackgroundServer]] = {}
    try:
        for backend, version in SERVED:
            plate_on = plate_factory(backend, version)
            server = start_background(plate_on.url, storage_options=plate_on.storage_options)
            started[(backend, version)] = (plate_on, server)
        yield started
    finally:
        for _, server in started.values():
            server.stop()


@pytest.fixture(params=SERVED, ids=[f"{b}-{v}" for b, v in SERVED])
def served(request: pytest.FixtureRequest, servers: Any) -> tuple[Any, BackgroundServer]:
    return servers[request.param]  # type: ignore[no-any-return]


def request(
    server: BackgroundServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent exactly as given, not normalised)."""
    host, _, port = server.url[len("http://") :].rstrip("/").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def open_over_http(server: BackgroundServer) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_group(server.url, mode="r")


def chunk_key(version: str) -> str:
    return CHUNK if version == "0.5" else "A/1/0/0/0/0/0/0/0"


# ------------------------------------------------------------------ readers over HTTP
def test_zarr_over_fsspec_http_reads_every_well(served: Any) -> None:
    plate_on, server = served
    group = open_over_http(server)
    attrs = group.attrs.asdict()
    assert attrs.get("ome", attrs)["plate"]["name"] == plate_on.spec.name
    for well in plate_on.spec.wells:
        for level in range(plate_on.spec.levels):
            data = np.asarray(group[f"{well}/1/{level}"][...])
            np.testing.assert_array_equal(data, expected_field(plate_on.spec, well, 1, level))
    label = group["A/1/0/labels/cells/0"]
    assert label.shape[-2:] == plate_on.spec.shape[-2:]


def test_ome_zarr_py_reads_the_plate_from_the_url(served: Any) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    plate_on, server = served
    spec = plate_on.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        location = parse_url(server.url)
        assert location is not None
        nodes = list(Reader(location)())
        plate = nodes[0].first(Plate)
        assert plate is not None
        assert plate.row_names == list(spec.rows)
        assert plate.col_names == list(spec.columns)
        assert plate.well_paths == sorted(spec.wells)
        grid = np.asarray(nodes[0].data[0])
        height, width = spec.shape[-2:]
        for path in spec.wells:
            row, column = path.split("/")
            y, x = spec.rows.index(row) * height, spec.columns.index(column) * width
            np.testing.assert_array_equal(
                grid[..., y : y + height, x : x + width], expected_field(spec, path, 0)
            )
        field = np.asarray(location.create("B/3/1").load("0"))
    np.testing.assert_array_equal(field, expected_field(spec, "B/3", 1))


# ------------------------------------------------------------------ consolidated metadata
def test_the_root_document_holds_consolidated_metadata(served: Any) -> None:
    plate_on, server = served
    if plate_on.version == "0.5" or plate_on.is_archive:
        status, headers, body = request(server, "GET", "/zarr.json")
        assert status == 200 and headers["Content-Type"] == "application/json"
        nodes = json.loads(body)["consolidated_metadata"]["metadata"]
        assert {"A/1", "A/1/0/0", "B/3/1/1", "A/1/0/labels/cells/0"} <= set(nodes)
    else:
        status, headers, body = request(server, "GET", "/.zmetadata")
        assert status == 200 and headers["Content-Type"] == "application/json"
        nodes = json.loads(body)["metadata"]
        assert {"A/1/.zattrs", "A/1/0/0/.zarray", "B/3/1/1/.zarray"} <= set(nodes)


def test_a_warmed_root_costs_no_upstream_request_and_a_read_only_chunk_gets(
    servers: Any, s3_server: Any
) -> None:
    plate_on, server = servers[("s3", "0.5")]
    assert request(server, "GET", "/zarr.json")[0] == 200  # assembles it (warms the index)
    s3_server.reset_counts()
    status, _, body = request(server, "GET", "/zarr.json")
    assert status == 200 and "consolidated_metadata" in json.loads(body)
    assert s3_server.snapshot() == []  # served from what the first request assembled
    group = open_over_http(server)  # one request: everything below comes from the root
    assert s3_server.snapshot() == []
    data = np.asarray(group["B/3/0/0"][...])
    np.testing.assert_array_equal(data, expected_field(plate_on.spec, "B/3", 0))
    seen = s3_server.snapshot()
    assert {r.kind for r in seen} == {"GET"}  # chunks only: no HEAD, no LIST
    assert all("/B/3/0/0/c/" in "/" + r.key for r in seen)
    assert len(seen) == 8  # 1 x 2 x 1 x 2 x 2 chunks of 32 x 32


# ------------------------------------------------------------------ HTTP semantics
def test_get_and_head_agree_with_the_plate_bytes(served: Any) -> None:
    plate_on, server = served
    key = chunk_key(plate_on.version if not plate_on.is_archive else "0.5")
    status, headers, body = request(server, "GET", "/" + key)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Accept-Ranges"] == "bytes"
    assert int(headers["Content-Length"]) == len(body) > 0
    if not plate_on.is_archive:
        with open(os.path.join(plate_on.source_dir, key), "rb") as handle:
            assert body == handle.read()
    status, head_headers, head_body = request(server, "HEAD", "/" + key)
    assert status == 200 and head_body == b""
    assert head_headers["Content-Length"] == str(len(body))
    doc = "A/1/0/0/" + (
        "zarr.json" if plate_on.version == "0.5" or plate_on.is_archive else ".zarray"
    )
    status, headers, body = request(server, "GET", "/" + doc)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)
    assert request(server, "HEAD", "/" + doc)[1]["Content-Length"] == str(len(body))


def test_byte_ranges(served: Any) -> None:
    plate_on, server = served
    key = "/" + chunk_key(plate_on.version if not plate_on.is_archive else "0.5")
    whole = request(server, "GET", key)[2]
    size = len(whole)
    for header, start, end in [
        ("bytes=0-9", 0, 10),
        ("bytes=5-", 5, size),
        ("bytes=-7", size - 7, size),
        (f"bytes=10-{size + 100}", 10, size),  # an end past the value is clamped
        (f"bytes=-{size + 100}", 0, size),
    ]:
        status, headers, body = request(server, "GET", key, {"Range": header})
        assert status == 206, header
        assert body == whole[start:end], header
        assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert headers["Content-Length"] == str(end - start)
    status, headers, body = request(server, "HEAD", key, {"Range": "bytes=0-9"})
    assert (status, headers["Content-Length"], body) == (206, "10", b"")
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        status, headers, _ = request(server, "GET", key, {"Range": header})
        assert status == 416, header
        assert headers["Content-Range"] == f"bytes */{size}"
    for header in ("bytes=9-3", "items=0-1", "bytes=0-1,4-5", "bytes=x-y"):  # ignored
        status, _, body = request(server, "GET", key, {"Range": header})
        assert (status, body) == (200, whole), header


def test_the_root_document_is_served_in_ranges_too(servers: Any) -> None:
    _, server = servers[("s3", "0.5")]
    whole = request(server, "GET", "/zarr.json")[2]
    status, headers, body = request(server, "GET", "/zarr.json", {"Range": "bytes=-20"})
    assert status == 206 and body == whole[-20:]
    assert headers["Content-Range"] == f"bytes {len(whole) - 20}-{len(whole) - 1}/{len(whole)}"
    assert request(server, "HEAD", "/zarr.json")[1]["Content-Length"] == str(len(whole))


def test_etag_and_if_none_match(servers: Any) -> None:
    _, server = servers[("dir", "0.5")]
    status, headers, _ = request(server, "GET", "/zarr.json")
    etag = headers["ETag"]
    status, headers, body = request(server, "GET", "/zarr.json", {"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)


def test_missing_keys_and_directories(served: Any) -> None:
    plate_on, server = served
    for path in ("/nope", "/A/1/0/0/c/9/9/9/9/9", "/Z/9/zarr.json", "/A/1"):
        status, headers, _ = request(server, "GET", path)
        assert status == 404, path
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert request(server, "HEAD", "/nope")[0] == 404
    status, headers, body = request(server, "GET", "/A/1/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    names = {e["name"]: e["type"] for e in json.loads(body)}
    assert names["A/1/0"] == names["A/1/1"] == "directory"
    status, _, body = request(server, "GET", "/")
    assert status == 200 and {"A", "B"} <= {e["name"] for e in json.loads(body)}
    assert request(server, "GET", "/Z/")[0] == 404
    if plate_on.version == "0.5" or plate_on.is_archive:
        assert request(server, "GET", "/.zmetadata")[0] == 404  # no v2 documents in a v3 plate


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_writes_are_refused(servers: Any, method: str) -> None:
    plate_on, server = servers[("dir", "0.5")]
    root = Path(plate_on.url) / "zarr.json"
    before = root.read_bytes()
    status, headers, body = request(server, method, "/zarr.json", {"Content-Length": "0"})
    assert status == 405
    assert b"read-only" in body
    assert headers["Allow"] == "GET, HEAD, OPTIONS"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert root.read_bytes() == before


def test_cors_headers_and_preflight(served: Any) -> None:
    _, server = served
    status, headers, _ = request(server, "GET", "/", {"Origin": "http://viewer.example"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Content-Range", "Content-Length", "ETag"} <= exposed
    status, headers, body = request(
        server,
        "OPTIONS",
        "/zarr.json",
        {
            "Origin": "http://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert status == 204 and body == b""
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "range" in headers["Access-Control-Allow-Headers"].lower()


def test_keys_that_leave_the_plate_are_refused(servers: Any, tmp_path: Any) -> None:
    plate_on, server = servers[("dir", "0.5")]
    secret = os.path.join(os.path.dirname(plate_on.url), "secret.txt")
    with open(secret, "w") as handle:
        handle.write("TOP SECRET")
    name = os.path.basename(plate_on.url)
    attempts = [
        "/../secret.txt",
        "/A/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/A/%2e%2e/%2e%2e/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/A\\..\\..\\secret.txt",
        f"/../{name}/zarr.json",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/A/1/%00",
        "/./zarr.json",
        "/../",
    ]
    for path in attempts:
        for method in ("GET", "HEAD"):
            status, _, body = request(server, method, path)
            assert status in (400, 404), (path, status)
            assert b"TOP SECRET" not in body and b"root:" not in body, path


def test_parse_range_and_request_key_units() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-3", 2) == (0, 2)
    assert parse_range(" bytes = 8- ", 10) == (8, 10)
    assert parse_range("bytes=-", 10) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-1", 0)
    assert request_key("/A/1/zarr.json?x=1") == ("A/1/zarr.json", False)
    assert request_key("/A/1/") == ("A/1", True)
    assert request_key("/") == ("", True)
    assert request_key("/A%2F1/zarr.json") == ("A/1/zarr.json", False)
    for bad in ("/%2e%2e/x", "/A/%252e%252e/x", "/a\\b", "//x", "/A//1", "/A/./1"):
        with pytest.raises(ValueError):
            request_key(bad)


def test_background_server_unpacks_and_stops(plate_factory: Any) -> None:
    base_url, stop = start_background(plate_factory("ozx", "0.5").url)
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert zarr.open_group(base_url, mode="r").attrs["ome"]["version"] == "0.5"
    finally:
        stop()
    stop()  # idempotent
    with pytest.raises(OSError):
        import urllib.request

        urllib.request.urlopen(base_url + "zarr.json", timeout=5)
