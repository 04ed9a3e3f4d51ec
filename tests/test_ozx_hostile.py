"""Hostile archives: every crafted input raises ArchiveError quickly with bounded memory.

The mutation fuzz test runs 400 derandomized examples by default (about a second); for
a longer, randomized local run set ``HCSFS_FUZZ_EXAMPLES``, e.g.
``HCSFS_FUZZ_EXAMPLES=20000 pytest tests/test_ozx_hostile.py -k mutations`` (the
timeout scales with it). A crash it finds becomes a test of its own above.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcsfs.errors import ArchiveError
from hcsfs.ozx import OzxArchive, ome_comment, pack_stream
from hcsfs.ozx import records as rec
from hcsfs.ozx.testing import MemoryFetcher
from hcsfs.testing import fuzz_examples, fuzz_randomized, fuzz_timeout

pytestmark = pytest.mark.timeout(30)


@dataclass
class E:
    """One crafted entry; unset fields are derived from ``data``."""

    name: bytes
    data: bytes = b"payload"
    method: int = 0
    flags: int = rec.FLAG_UTF8
    size: int | None = None  # declared uncompressed size (both headers)
    csize: int | None = None  # declared compressed size (both headers)
    crc: int | None = None
    local_name: bytes | None = None
    local_method: int | None = None
    local_extra: bytes = b""
    central_extra: bytes = b""
    offset: int | None = None  # central header offset override
    disk: int = 0


@dataclass
class End:
    disk: int = 0
    cd_disk: int = 0
    entries: int | None = None
    entries_on_disk: int | None = None
    cd_size: int | None = None
    cd_offset: int | None = None
    comment: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


def craft(entries: list[E], end: End | None = None, *, plain: bytes | None = None) -> bytes:
    """Build a classic (non-ZIP64) archive byte by byte."""
    end = end or End()
    out = bytearray()
    central = bytearray()
    for e in entries:
        payload = e.data
        crc = zlib.crc32(plain if plain is not None and e.method == 8 else payload)
        crc = e.crc if e.crc is not None else crc
        size = e.size if e.size is not None else len(payload)
        csize = e.csize if e.csize is not None else len(payload)
        offset = len(out)
        lname = e.local_name if e.local_name is not None else e.name
        lmethod = e.local_method if e.local_method is not None else e.method
        out += rec.LOCAL.pack(
            rec.LOCAL_SIG, 20, e.flags, lmethod, 0, 0x21, crc, csize, size,
            len(lname), len(e.local_extra),
        ) + lname + e.local_extra + payload  # fmt: skip
        central += rec.CENTRAL.pack(
            rec.CD_SIG, 20, 20, e.flags, e.method, 0, 0x21, crc, csize, size,
            len(e.name), len(e.central_extra), 0, e.disk, 0, 0,
            offset if e.offset is None else e.offset,
        ) + e.name + e.central_extra  # fmt: skip
    cd_offset = len(out)
    out += central
    n = len(entries)
    out += rec.EOCD.pack(
        rec.EOCD_SIG, end.disk, end.cd_disk,
        n if end.entries_on_disk is None else end.entries_on_disk,
        n if end.entries is None else end.entries,
        len(central) if end.cd_size is None else end.cd_size,
        cd_offset if end.cd_offset is None else end.cd_offset,
        len(end.comment),
    ) + end.comment  # fmt: skip
    return bytes(out)


def good() -> bytes:
    out = io.BytesIO()
    items = [("zarr.json", b"{}"), ("A/zarr.json", b'{"a": 1}'), ("A/0", b"x" * 300)]
    pack_stream(items, out, comment=ome_comment("0.5"))
    return out.getvalue()


def deflated() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zarr.json", b"{}" * 50)
        zf.writestr("A/0", bytes(range(256)) * 4)
        zf.comment = b"c"
    return buf.getvalue()


async def open_and_read_all(data: bytes, **kw: int) -> None:
    archive = await OzxArchive.open(MemoryFetcher(data), archive="bad.ozx", **kw)
    for name in archive.members:
        await archive.read(name)
        await archive.read_range(name, 1, 5)
        await archive.read_range(name, -3)


async def refused(data: bytes, match: str | None = None, **kw: int) -> ArchiveError:
    """Assert the archive is refused (at open or at a read) within 10 MiB of allocations."""
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match=match) as info:
            await open_and_read_all(data, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < (10 << 20) + 4 * len(data)
    assert info.value.archive == "bad.ozx"
    return info.value


async def test_crafted_good_archive_is_accepted() -> None:
    await open_and_read_all(craft([E(b"zarr.json"), E(b"A/1/zarr.json", b"{}")]))


# ---------------------------------------------------------------- end records
@pytest.mark.parametrize("cut", [0, 1, 10, 21, 50, 100, -1, -22, -60, -80])
async def test_truncated(cut: int) -> None:
    data = good()
    await refused(data[:cut] if cut >= 0 else data[: len(data) + cut])


async def test_truncated_head_tail_not_whole() -> None:
    data = good()
    await refused(data[200:], tail_size=200)


async def test_no_end_record() -> None:
    await refused(bytes(range(256)) * 20, "no end of central directory")
    await refused(b"PK\x05\x06" + b"\x00" * 10, "too short")


async def test_cd_points_past_the_end() -> None:
    data = craft([E(b"a")], End(cd_offset=10**9))
    await refused(data)
    await refused(data, tail_size=128)


async def test_cd_larger_than_file() -> None:
    data = craft([E(b"a")], End(cd_offset=0, cd_size=10**7))
    await refused(data)
    await refused(data, tail_size=128)
    await refused(data, "extends past the end of the archive")
    await refused(data, "exceeds the limit", tail_size=128, max_central_directory=1 << 20)


@pytest.mark.parametrize(
    "end", [End(disk=1), End(cd_disk=1), End(entries_on_disk=0)], ids=["disk", "cd_disk", "count"]
)
async def test_multi_disk(end: End) -> None:
    await refused(craft([E(b"a")], end), "multi-disk")


async def test_multi_disk_entry() -> None:
    await refused(craft([E(b"a", disk=2)]), "multi-disk")


async def test_multi_disk_zip64_locator() -> None:
    data = bytearray(good())
    loc = data.rfind(rec.ZIP64_LOCATOR_SIG)
    struct.pack_into("<L", data, loc + 16, 3)  # total number of disks
    await refused(bytes(data), "multi-disk")


async def test_zip64_disagreement_and_missing_locator() -> None:
    data = bytearray(good())
    z64 = data.rfind(rec.ZIP64_EOCD_SIG)
    struct.pack_into("<Q", data, z64 + 24, 2)  # entries on disk
    await refused(bytes(data), "multi-disk")
    struct.pack_into("<2Q", data, z64 + 24, 7, 7)
    await refused(bytes(data), "disagrees")
    await refused(craft([E(b"a")], End(cd_offset=rec.U32_MAX)), "ZIP64 values without")


@pytest.mark.parametrize("count", [65535, 40000])
async def test_absurd_member_counts(count: int) -> None:
    await refused(craft([E(b"a")], End(entries=count, entries_on_disk=count)), "cannot hold")


async def test_absurd_zip64_member_count() -> None:
    data = bytearray(good())
    z64 = data.rfind(rec.ZIP64_EOCD_SIG)
    struct.pack_into("<2Q", data, z64 + 24, 2**62, 2**62)
    struct.pack_into("<2H", data, data.rfind(rec.EOCD_SIG) + 8, 0xFFFF, 0xFFFF)
    await refused(bytes(data), "exceed the limit")


async def test_member_limit() -> None:
    data = craft([E(b"a"), E(b"b"), E(b"c")])
    await refused(data, "exceed the limit", max_members=2)


# --------------------------------------------------------- central directory
async def test_overlapping_entries() -> None:
    await refused(craft([E(b"a"), E(b"b", offset=0)]), "overlaps")


async def test_member_data_overlapping_cd() -> None:
    await refused(craft([E(b"a", size=500, csize=500)]), "overlaps the central directory")


async def test_duplicate_names() -> None:
    await refused(craft([E(b"A/x"), E(b"A/x")]), "entry 'A/x': duplicate name")


@pytest.mark.parametrize(
    ("name", "flags", "match"),
    [
        (b"../x", rec.FLAG_UTF8, "'..'"),
        (b"A/../../x", rec.FLAG_UTF8, "'..'"),
        (b"/etc/passwd", rec.FLAG_UTF8, "leading '/'"),
        (b"A\\1\\zarr.json", rec.FLAG_UTF8, "backslash"),
        (b"a\x00b", rec.FLAG_UTF8, "NUL"),
        (b"A//x", rec.FLAG_UTF8, "segment ''"),
        (b"./x", rec.FLAG_UTF8, "segment '.'"),
        (b"", rec.FLAG_UTF8, "empty name"),
        (b"caf\xe9", 0, "non-ASCII name without the UTF-8 flag"),
        (b"caf\xc3\xa9", 0, "non-ASCII name without the UTF-8 flag"),
        (b"\xc3\x28", rec.FLAG_UTF8, "not valid UTF-8"),
    ],
)
async def test_bad_names(name: bytes, flags: int, match: str) -> None:
    await refused(craft([E(name, flags=flags)]), match)


async def test_ascii_name_without_utf8_flag_is_fine() -> None:
    await open_and_read_all(craft([E(b"A/zarr.json", flags=0)]))


@pytest.mark.parametrize("flags", [0x1, 0x41, 0x2000 | rec.FLAG_UTF8])
async def test_encrypted(flags: int) -> None:
    await refused(craft([E(b"secret", flags=flags)]), "entry 'secret': encrypted")


@pytest.mark.parametrize("method", [1, 12, 14, 93, 99])
async def test_unsupported_method(method: int) -> None:
    await refused(craft([E(b"a", method=method)]), f"compression method {method}")


async def test_stored_size_mismatch_and_directory_with_data() -> None:
    await refused(craft([E(b"a", csize=3, data=b"abc", size=4)]), "differing sizes")
    await refused(craft([E(b"d/", data=b"abc")]), "directory entry with data")
    await refused(craft([E(b"A", b"x"), E(b"A/b")]), "both a file and a directory")


async def test_bad_extra_fields() -> None:
    await refused(craft([E(b"a", central_extra=b"\x01\x00\x40\x00abc")]), "overruns")
    await refused(craft([E(b"a", size=rec.U32_MAX, csize=rec.U32_MAX)]), "without a ZIP64 extra")
    short = struct.pack("<2HQ", 1, 8, 7)
    await refused(
        craft([E(b"a", size=rec.U32_MAX, csize=rec.U32_MAX, central_extra=short)]), "too short"
    )


# -------------------------------------------------------------- local headers
async def test_local_name_differs() -> None:
    data = craft([E(b"A/1/zarr.json", local_name=b"A/2/zarr.json")])
    await refused(data, "entry 'A/1/zarr.json': local header name differs from central")


async def test_local_method_differs() -> None:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = raw.compress(b"hello" * 10) + raw.flush()
    data = craft([E(b"a", comp, method=8, size=50, local_method=0)], plain=b"hello" * 10)
    await refused(data, "local header method differs")


async def test_local_sizes_differ() -> None:
    data = bytearray(craft([E(b"a", b"abcdef")]))
    struct.pack_into("<L", data, 14, 0)  # local CRC
    await refused(bytes(data), "sizes/CRC differ")


async def test_local_signature_wrong() -> None:
    data = bytearray(craft([E(b"a"), E(b"b")]))
    data[0:4] = b"XXXX"
    await refused(bytes(data), "entry 'a': bad local header signature")


async def test_local_extra_overflows_into_next_record() -> None:
    data = bytearray(craft([E(b"a"), E(b"b")]))
    struct.pack_into("<H", data, 28, 100)  # local extra length of 'a'
    await refused(bytes(data), "entry 'a': local header and data overlap the next record")
    data = bytearray(craft([E(b"a")]))
    struct.pack_into("<H", data, 28, 100)
    await refused(bytes(data), "entry 'a': local header and data overlap")


async def test_local_extra_longer_than_guess_costs_one_more_fetch() -> None:
    extra = struct.pack("<2H", 0x9999, 200) + b"\x00" * 200
    data = craft([E(b"a", b"payload", local_extra=extra)])
    fetch = MemoryFetcher(data)
    archive = await OzxArchive.open(fetch, archive="ok.ozx", tail_size=128)
    fetch.reset()
    assert await archive.read("a") == b"payload"
    assert fetch.count == 2
    fetch.reset()
    assert await archive.read_range("a", 2, 4) == b"yl"
    assert fetch.count == 1


# ---------------------------------------------------------------- zip bombs
async def test_declared_size_over_the_cap() -> None:
    data = craft([E(b"big", b"\x03\x00", method=8, size=3 << 30, csize=2)], plain=b"")
    await refused(data, "exceeds the limit")
    small = craft([E(b"a", b"x" * 100)])
    await refused(small, "exceeds the limit", max_member_size=10)


async def test_inflates_past_declared_size() -> None:
    plain = b"\x00" * (50 << 20)
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = raw.compress(plain) + raw.flush()
    assert len(comp) < 100_000
    data = craft([E(b"bomb", comp, method=8, size=1000)], plain=plain)
    await refused(data, "inflates past its declared size")


async def test_deflate_corrupt_truncated_and_crc() -> None:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = raw.compress(b"hello world" * 20) + raw.flush()
    plain = b"hello world" * 20
    await refused(craft([E(b"t", comp[:5], method=8, size=len(plain))], plain=plain), "deflate")
    await refused(craft([E(b"c", b"\xff" * 20, method=8, size=len(plain))], plain=plain), "deflate")
    await refused(craft([E(b"s", comp, method=8, size=len(plain) + 5)], plain=plain), "size")
    await refused(craft([E(b"r", comp, method=8, size=len(plain), crc=1)], plain=plain), "CRC")
    await refused(craft([E(b"x", b"abc", crc=1)]), "CRC")


# ----------------------------------------------------------------- fuzzing
SEEDS = [good(), deflated()]


@pytest.mark.timeout(fuzz_timeout(30, 400))
@settings(
    max_examples=fuzz_examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not fuzz_randomized(),
)
@given(
    seed=st.sampled_from([0, 1]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 2000)),
    tail=st.sampled_from([128, 256, 1 << 20]),
)
def test_mutations_only_raise_archive_or_key_error(
    seed: int, edits: list[tuple[int, int]], cut: int | None, tail: int
) -> None:
    data = bytearray(SEEDS[seed])
    for pos, value in edits:
        data[pos % len(data)] = value
    blob = bytes(data if cut is None else data[: cut % (len(data) + 1)])

    async def run() -> None:
        with contextlib.suppress(ArchiveError, KeyError):
            await open_and_read_all(blob, tail_size=tail)

    asyncio.run(asyncio.wait_for(run(), timeout=5))
