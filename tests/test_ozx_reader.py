"""OzxArchive: request counts, ZIP variants, range semantics, comments."""

from __future__ import annotations

import io
import zipfile

import pytest

from hcsfs.errors import ArchiveError
from hcsfs.ozx import OzxArchive, ome_comment, pack_stream, parse_comment, recommended_order
from hcsfs.ozx.testing import MemoryFetcher

PAYLOAD = {
    "zarr.json": b'{"zarr_format": 3, "node_type": "group"}',
    "A/zarr.json": b'{"zarr_format": 3, "node_type": "group"}',
    "A/1/zarr.json": b'{"zarr_format": 3, "node_type": "group"}',
    "A/1/0/zarr.json": b'{"zarr_format": 3, "node_type": "array"}' * 3,
    "A/1/0/c/0/0": bytes(range(256)) * 40,
    "A/1/0/c/0/1": b"\x00" * 5000,
    "ünïcode/zarr.json": b"{}",
}


def zipfile_archive(
    method: int = zipfile.ZIP_STORED,
    comment: bytes = b"",
    force_zip64: bool = False,
    items: dict[str, bytes] | None = None,
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in (items or PAYLOAD).items():
            with zf.open(name, "w", force_zip64=force_zip64) as fh:
                fh.write(data)
        zf.comment = comment
    return buf.getvalue()


def writer_archive(items: dict[str, bytes] | None = None, comment: bytes = b"") -> bytes:
    items = items or PAYLOAD
    out = io.BytesIO()
    pack_stream(((k, items[k]) for k in recommended_order(items)), out, comment=comment)
    return out.getvalue()


async def opened(data: bytes, **kw: int) -> tuple[OzxArchive, MemoryFetcher]:
    fetch = MemoryFetcher(data)
    archive = await OzxArchive.open(fetch, archive="mem.ozx", **kw)
    return archive, fetch


VARIANTS = [
    pytest.param(zipfile_archive(zipfile.ZIP_STORED), id="zipfile-stored"),
    pytest.param(zipfile_archive(zipfile.ZIP_DEFLATED), id="zipfile-deflate"),
    pytest.param(
        zipfile_archive(zipfile.ZIP_DEFLATED, comment=ome_comment("0.5")), id="zipfile-comment"
    ),
    pytest.param(zipfile_archive(zipfile.ZIP_STORED, force_zip64=True), id="zipfile-zip64-stored"),
    pytest.param(
        zipfile_archive(zipfile.ZIP_DEFLATED, b"hello", force_zip64=True),
        id="zipfile-zip64-deflate",
    ),
    pytest.param(writer_archive(), id="writer"),
    pytest.param(writer_archive(comment=ome_comment("0.5")), id="writer-comment"),
]


@pytest.mark.parametrize("data", VARIANTS)
async def test_open_one_fetch_and_read_each_member_in_one(data: bytes) -> None:
    archive, fetch = await opened(data)
    assert fetch.count == 1
    assert fetch.calls[0] == (-(1 << 20), None)
    assert archive.size == len(data)
    assert set(archive.members) == set(PAYLOAD)
    for name, expected in PAYLOAD.items():
        fetch.reset()
        assert await archive.read(name) == expected
        assert fetch.count == 1, name
        assert archive.members[name].size == len(expected)


async def test_open_two_fetches_when_cd_outside_tail() -> None:
    items = {f"A/{i}/c/0": bytes([i % 256]) * 10 for i in range(60)}
    data = writer_archive(items)
    archive, fetch = await opened(data, tail_size=512)
    assert fetch.count == 2
    assert len(archive.members) == 60
    # the second read covers exactly the part of the CD that was not in the tail
    cd_offset = zipfile.ZipFile(io.BytesIO(data)).start_dir
    assert fetch.calls[1] == (cd_offset, archive.size - 512)
    assert fetch.bytes_read == len(data) - cd_offset
    fetch.reset()
    assert await archive.read("A/7/c/0") == bytes([7]) * 10
    assert fetch.count == 1


async def test_read_range_known_member_one_fetch_of_the_range_only() -> None:
    archive, fetch = await opened(writer_archive())
    name = "A/1/0/c/0/0"
    full = PAYLOAD[name]
    assert await archive.read(name) == full
    fetch.reset()
    assert await archive.read_range(name, 100, 200) == full[100:200]
    assert fetch.count == 1 and fetch.bytes_read == 100


@pytest.mark.parametrize(
    "data", [pytest.param(writer_archive(), id="writer"), VARIANTS[0], VARIANTS[3]]
)
async def test_read_range_unknown_member_speculates(data: bytes) -> None:
    archive, fetch = await opened(data)
    name = "A/1/0/c/0/0"
    full = PAYLOAD[name]
    fetch.reset()
    assert await archive.read_range(name, 1000, 1010) == full[1000:1010]
    assert fetch.count == 2  # header and range together, guess was right
    fetch.reset()
    assert await archive.read_range(name, -10) == full[-10:]
    assert fetch.count == 1 and fetch.bytes_read == 10


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (5, None), (-7, None), (-100000, None), (3, 9), (9, 3), (0, 10**9), (10**9, None)],
)
async def test_read_range_semantics(start: int, end: int | None) -> None:
    for data in (writer_archive(), zipfile_archive(zipfile.ZIP_DEFLATED)):
        archive, _ = await opened(data)
        full = PAYLOAD["A/1/0/c/0/0"]
        if start < 0:
            expected = full[start:]
        else:
            expected = full[start:end] if end is None or end >= start else b""
        assert await archive.read_range("A/1/0/c/0/0", start, end) == expected


async def test_read_range_negative_start_with_end_is_refused() -> None:
    archive, _ = await opened(writer_archive())
    with pytest.raises(ValueError):
        await archive.read_range("zarr.json", -3, 5)


async def test_missing_member_is_keyerror() -> None:
    archive, fetch = await opened(writer_archive())
    fetch.reset()
    for call in (
        archive.read("nope"),
        archive.read_range("nope", 0, 1),
        archive.read_many(["zarr.json", "nope"]),
        archive.read_span(["nope"]),
    ):
        with pytest.raises(KeyError, match="nope"):
            await call
    assert fetch.count == 0
    assert "nope" not in archive and "zarr.json" in archive


async def test_read_many_concurrent() -> None:
    archive, fetch = await opened(zipfile_archive(zipfile.ZIP_DEFLATED))
    fetch.reset()
    got = await archive.read_many(PAYLOAD)
    assert got == PAYLOAD
    assert fetch.count == len(PAYLOAD)


async def test_read_span_metadata_in_one_fetch() -> None:
    archive, fetch = await opened(writer_archive(comment=ome_comment("0.5")))
    metadata = [n for n in archive.members if n.endswith("zarr.json")]
    fetch.reset()
    got = await archive.read_span(metadata)
    assert got == {n: PAYLOAD[n] for n in metadata}
    assert fetch.count == 1
    # offsets were learnt: a range read of any of them is now one fetch
    fetch.reset()
    assert await archive.read_range("A/zarr.json", 0, 4) == PAYLOAD["A/zarr.json"][:4]
    assert fetch.count == 1


async def test_read_span_splits_distant_runs() -> None:
    items = [("a/zarr.json", b"1"), ("b/big", b"x" * 200_000), ("c/zarr.json", b"2")]
    out = io.BytesIO()
    pack_stream(items, out)  # deliberately not the recommended order
    archive, fetch = await opened(out.getvalue())
    fetch.reset()
    got = await archive.read_span(["c/zarr.json", "a/zarr.json"], max_gap=1000)
    assert got == {"a/zarr.json": b"1", "c/zarr.json": b"2"}
    assert fetch.count == 2 and fetch.bytes_read < 1000
    fetch.reset()
    assert await archive.read_span([]) == {}
    assert fetch.count == 0


async def test_data_descriptor_archive() -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.buf += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in PAYLOAD.items():
            zf.writestr(name, value)
    data = bytes(sink.buf)
    archive, fetch = await opened(data)
    assert await archive.read_many(PAYLOAD) == PAYLOAD
    fetch.reset()
    stored = {"x": b"abc" * 100, "y": b"def" * 100, "z": b"ghi" * 100}
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w") as zf:
        for name, value in stored.items():
            zf.writestr(name, value)
    archive, fetch = await opened(bytes(sink.buf))
    for name, value in stored.items():
        assert await archive.read_range(name, 10, 20) == value[10:20]


async def test_offset_cache_is_bounded() -> None:
    archive, fetch = await opened(writer_archive(), offset_cache_size=2)
    names = ["A/1/0/c/0/0", "A/1/0/c/0/1", "zarr.json"]
    for name in names:
        await archive.read(name)
    fetch.reset()
    await archive.read_range(names[2], 0, 1)
    assert fetch.count == 1
    fetch.reset()
    await archive.read_range(names[0], 0, 1)  # evicted: header + range again
    assert fetch.count == 2


async def test_directories_and_explicit_directory_entries() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("zarr.json", b"{}")
        zf.writestr(zipfile.ZipInfo("A/"), b"")
        zf.writestr(zipfile.ZipInfo("B/empty/"), b"")
        zf.writestr("A/1/0/zarr.json", b"{}")
    archive, _ = await opened(buf.getvalue())
    assert set(archive.members) == {"zarr.json", "A/1/0/zarr.json"}
    assert archive.directories == {"A", "A/1", "A/1/0", "B", "B/empty"}
    assert len(archive) == 2


@pytest.mark.parametrize(
    ("comment", "expected", "version"),
    [
        (ome_comment("0.5"), {"ome": {"version": "0.5"}}, "0.5"),
        (b'{"ome": {"version": "0.5"}, "jsonFirst": true}\x00', None, "0.5"),
        (b'{"ome": {"version": "0.6"}}', {"ome": {"version": "0.6"}}, "0.6"),
        (b"", None, None),
        (b"not json\x00", None, None),
        (b"[1, 2]\x00", None, None),
        (b"\xff\xfe\x00", None, None),
        (b'{"ome": {"version": 5}}\x00', {"ome": {"version": 5}}, None),
        (b'{"ome": "0.5"}', {"ome": "0.5"}, None),
        (b"[" * 100000, None, None),
    ],
)
async def test_comment_json(comment: bytes, expected: object, version: str | None) -> None:
    data = zipfile_archive(comment=comment[:65535])
    archive, _ = await opened(data)
    assert archive.comment == comment[:65535]
    if expected is not None:
        assert archive.comment_json == expected
    assert archive.ome_version == version


def test_parse_comment_extra_keys() -> None:
    assert parse_comment(ome_comment("0.5", jsonFirst=True)) == {
        "ome": {"version": "0.5"},
        "jsonFirst": True,
    }


async def test_zip64_long_comment_pushes_record_out_of_tail() -> None:
    comment = ome_comment("0.5", note="x" * 200)
    data = writer_archive(comment=comment)
    archive, fetch = await opened(data, tail_size=300)
    assert fetch.count == 3  # tail, ZIP64 record outside it, CD
    assert archive.ome_version == "0.5"
    assert archive.size == len(data)
    assert await archive.read("zarr.json") == PAYLOAD["zarr.json"]


async def test_comment_longer_than_tail_is_clear_error() -> None:
    data = writer_archive(comment=b"x" * 5000)
    with pytest.raises(ArchiveError, match="end of central directory"):
        await opened(data, tail_size=1000)


async def test_tail_size_minimum() -> None:
    with pytest.raises(ValueError):
        await opened(writer_archive(), tail_size=10)


async def test_prefixed_archive_refused() -> None:
    data = b"#!/bin/sh stub\n" * 10 + writer_archive()
    with pytest.raises(ArchiveError, match="prepended"):
        await opened(data)
    # when the tail is not the whole file the prefix shows up at the first read that
    # depends on an absolute offset: the CD head (small tail) or a member
    with pytest.raises(ArchiveError, match="central directory entry #0: bad signature"):
        await opened(data, tail_size=512)
    small = b"#!/bin/sh stub\n" * 10 + writer_archive({"zarr.json": b"{}"})
    archive, _ = await opened(small, tail_size=len(small) - 200)
    with pytest.raises(ArchiveError, match="bad local header signature"):
        await archive.read("zarr.json")


async def test_empty_archive() -> None:
    for data in (writer_archive({"x": b""}), zipfile_archive(items={})):
        archive, fetch = await opened(data)
        assert fetch.count == 1
    archive, _ = await opened(writer_archive({"x": b""}))
    assert await archive.read("x") == b""
    assert await archive.read_range("x", 0, 10) == b""


async def test_read_zarr_json_and_layout_flag() -> None:
    archive, fetch = await opened(writer_archive(comment=ome_comment("0.5")))
    assert archive.zarr_json_first
    fetch.reset()
    got = await archive.read_zarr_json()
    assert got == {k: v for k, v in PAYLOAD.items() if k.endswith("zarr.json")}
    assert fetch.count == 1
    archive, _ = await opened(zipfile_archive())  # insertion order: chunks between
    assert not archive.zarr_json_first
    out = io.BytesIO()
    pack_stream([("a/zarr.json", b"{}"), ("zarr.json", b"{}")], out)
    archive, _ = await opened(out.getvalue())
    assert not archive.zarr_json_first  # root is not first


async def test_members_is_read_only() -> None:
    archive, _ = await opened(writer_archive())
    with pytest.raises(TypeError):
        archive.members["x"] = archive.members["zarr.json"]  # type: ignore[index]
