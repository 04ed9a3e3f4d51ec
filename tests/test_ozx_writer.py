"""ZipStreamWriter, recommended_order, ome_comment: interoperability and structure."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hcsfs.errors import ArchiveError
from hcsfs.ozx import (
    OzxArchive,
    ZipStreamWriter,
    ome_comment,
    pack_stream,
    parse_comment,
    recommended_order,
)
from hcsfs.ozx import records as rec
from hcsfs.ozx.testing import MemoryFetcher

ITEMS = {
    "A/1/0/c/0/0": b"chunk" * 100,
    "A/zarr.json": b'{"node_type": "group"}',
    "zarr.json": b'{"node_type": "group", "root": true}',
    "A/1/zarr.json": b"{}",
    "B/zarr.json": b"{}",
    "A/1/0/zarr.json": b'{"node_type": "array"}',
    "A/1/0/c/1/0": b"",
    "ü/zarr.json": b"{}",
}


def pack(items: dict[str, bytes] = ITEMS, comment: bytes | None = None) -> bytes:
    out = io.BytesIO()
    order = recommended_order(items)
    n = pack_stream(
        ((k, items[k]) for k in order),
        out,
        comment=ome_comment("0.5") if comment is None else comment,
    )
    assert n == len(out.getvalue())
    return out.getvalue()


def test_recommended_order() -> None:
    keys = ["b/c/0", "a/b/zarr.json", "zarr.json", "b/zarr.json", "a/zarr.json", "a/0", "z"]
    assert recommended_order(keys) == [
        "zarr.json",
        "a/zarr.json",
        "b/zarr.json",
        "a/b/zarr.json",
        "a/0",
        "b/c/0",
        "z",
    ]
    assert recommended_order([]) == []
    assert recommended_order(["x", "x/zarr.json"]) == ["x/zarr.json", "x"]
    with pytest.raises(ValueError):
        recommended_order(["a", "a"])


def test_ome_comment() -> None:
    comment = ome_comment("0.5", jsonFirst=True)
    assert comment.endswith(b"\x00") and comment.count(b"\x00") == 1
    assert json.loads(comment[:-1]) == {"ome": {"version": "0.5"}, "jsonFirst": True}
    assert parse_comment(comment) == {"ome": {"version": "0.5"}, "jsonFirst": True}
    with pytest.raises(ValueError):
        ome_comment("0.5", pad="x" * 70000)


def test_readable_by_zipfile() -> None:
    data = pack()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert [i.filename for i in zf.infolist()] == recommended_order(ITEMS)
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.flag_bits & rec.FLAG_UTF8
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert zf.read(info) == ITEMS[info.filename]
        assert zf.comment == ome_comment("0.5")


def test_readable_by_unzip(tmp_path: Path) -> None:
    if shutil.which("unzip") is None:
        pytest.skip("no unzip binary")
    path = tmp_path / "plate.ozx"
    path.write_bytes(pack())
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


async def test_readable_by_our_reader() -> None:
    data = pack()
    fetch = MemoryFetcher(data)
    archive = await OzxArchive.open(fetch, archive="w.ozx")
    assert archive.ome_version == "0.5"
    assert await archive.read_many(ITEMS) == ITEMS
    assert list(archive.members) == recommended_order(ITEMS)


def test_readable_by_zarr_zipstore(tmp_path: Path) -> None:
    import zarr
    from zarr.storage import LocalStore, ZipStore

    src = tmp_path / "src.zarr"
    root = zarr.open_group(LocalStore(str(src)), mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5"}
    well = root.create_group("A").create_group("1")
    values = np.arange(6 * 7, dtype="uint16").reshape(6, 7)
    arr = well.create_array("0", shape=values.shape, chunks=(4, 4), dtype="uint16")
    arr[:] = values
    keys = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()]
    order = recommended_order(keys)
    assert order[0] == "zarr.json"
    path = tmp_path / "plate.ozx"
    with path.open("wb") as fh:
        pack_stream(((k, (src / k).read_bytes()) for k in order), fh, comment=ome_comment("0.5"))
    store = ZipStore(str(path), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        assert group.attrs["ome"] == {"version": "0.5"}
        np.testing.assert_array_equal(group["A/1/0"][:], values)
    finally:
        store.close()


def _walk(data: bytes) -> tuple[list[tuple[str, int, bytes]], list[tuple[str, bytes]], int]:
    """Walk local entries from offset 0; return locals, central entries, CD offset."""
    locals_: list[tuple[str, int, bytes]] = []
    pos = 0
    while data[pos : pos + 4] == rec.LOCAL_SIG:
        f = rec.LOCAL.unpack_from(data, pos)
        name = data[pos + 30 : pos + 30 + f[9]].decode()
        extra = data[pos + 30 + f[9] : pos + 30 + f[9] + f[10]]
        assert f[2] & rec.FLAG_UTF8 and f[3] == rec.STORED and not f[2] & 0x8
        assert (f[4], f[5]) == (0, 0x21)  # 1980-01-01 00:00
        assert (f[7], f[8]) == (rec.U32_MAX, rec.U32_MAX)
        tag, length, usize, csize = struct.unpack("<2H2Q", extra)
        assert (tag, length, usize) == (1, 16, csize)
        locals_.append((name, pos, extra))
        pos += 30 + f[9] + f[10] + csize
    cd_offset = pos
    centrals: list[tuple[str, bytes]] = []
    while data[pos : pos + 4] == rec.CD_SIG:
        f = rec.CENTRAL.unpack_from(data, pos)
        name = data[pos + 46 : pos + 46 + f[10]].decode()
        extra = data[pos + 46 + f[10] : pos + 46 + f[10] + f[11]]
        assert f[4] == rec.STORED and f[3] & rec.FLAG_UTF8
        assert (f[8], f[9], f[16]) == (rec.U32_MAX,) * 3
        centrals.append((name, extra))
        pos += 46 + f[10] + f[11] + f[12]
    assert data[pos : pos + 4] == rec.ZIP64_EOCD_SIG
    z64 = rec.parse_zip64_end(data[pos : pos + 56], "w")
    assert (z64.entries, z64.cd_offset, z64.cd_size) == (len(centrals), cd_offset, pos - cd_offset)
    loc = rec.parse_zip64_locator(data[pos + 56 : pos + 76], "w")
    assert loc.record_offset == pos
    end = rec.find_end_record(data, "w")
    assert end.position == pos + 76
    return locals_, centrals, cd_offset


def test_structure() -> None:
    data = pack()
    locals_, centrals, _ = _walk(data)
    order = recommended_order(ITEMS)
    assert [n for n, _, _ in locals_] == order
    assert [n for n, _ in centrals] == order
    for (_, offset, _), (_, extra) in zip(locals_, centrals, strict=True):
        tag, length, usize, csize, off = struct.unpack("<2H3Q", extra)
        assert (tag, length, off) == (1, 24, offset)
        assert usize == csize
    end = rec.find_end_record(data, "w")
    assert parse_comment(end.comment) == {"ome": {"version": "0.5"}}


def test_reproducible_and_empty() -> None:
    assert pack() == pack()
    data = pack({}, comment=b"")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == []


def test_unseekable_output() -> None:
    class Sink:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, b: bytes) -> None:
            self.parts.append(bytes(b))

    sink = Sink()
    writer = ZipStreamWriter(sink)
    writer.add("zarr.json", b"{}")
    writer.add("a/b", bytearray(b"xyz"))  # type: ignore[arg-type]
    total = writer.close(b"c")
    data = b"".join(sink.parts)
    assert total == len(data) == writer.bytes_written
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("a/b") == b"xyz"


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a//b", "a\x00", "", "dir/", "./a"])
def test_bad_names_refused(name: str) -> None:
    writer = ZipStreamWriter(io.BytesIO(), archive="out.ozx")
    with pytest.raises(ArchiveError, match=r"out\.ozx"):
        writer.add(name, b"")


def test_misuse() -> None:
    writer = ZipStreamWriter(io.BytesIO())
    writer.add("a", b"")
    with pytest.raises(ArchiveError, match="duplicate"):
        writer.add("a", b"")
    with pytest.raises(ValueError):
        writer.close(b"x" * 70000)
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError):
        writer.add("b", b"")
    with pytest.raises(ValueError):
        writer.close()


def test_memory_stays_flat() -> None:
    class Counter:
        n = 0

        def write(self, b: bytes) -> None:
            self.n += len(b)

    chunk = b"\x01" * (1 << 20)
    sink = Counter()
    writer = ZipStreamWriter(sink)
    tracemalloc.start()
    try:
        for i in range(64):
            writer.add(f"A/1/0/c/{i}/0", chunk)
        writer.close(ome_comment("0.5"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.n > 64 << 20
    assert peak < 2 << 20


def test_partial_writes_are_completed() -> None:
    class Trickle:
        def __init__(self) -> None:
            self.buf = bytearray()

        def write(self, b: bytes | memoryview) -> int:
            take = bytes(b[:7])
            self.buf += take
            return len(take)

    sink = Trickle()
    pack_stream(ITEMS.items(), sink, comment=b"c")
    with zipfile.ZipFile(io.BytesIO(bytes(sink.buf))) as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in zf.namelist()} == ITEMS
