"""Random access to a ZIP / RFC-9 ``.ozx`` archive through an async range fetcher.

The archive size is not known up front: :meth:`OzxArchive.open` makes one suffix read
of the tail, derives every absolute position from the end records and, only when the
central directory is not inside that tail, one more read for it.  Member reads then
cost one request each (local header and data together), or, with
``separate_header_reads`` for local files, a small header read and then exactly the
data, which is handed on without being copied out of a larger buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hcsfs.errors import ArchiveError
from hcsfs.ozx import records as rec
from hcsfs.ozx.crc import crc32

__all__ = ["OzxArchive", "RangeFetcher", "ZipMember", "parse_comment"]

RangeFetcher = Callable[[int, int | None], Awaitable[bytes]]
"""``fetch(start, end)`` -> bytes ``[start, end)``; ``fetch(-n, None)`` -> last n bytes."""

#: The default local extra length slack when guessing where member data starts.
EXTRA_SLACK = 64
#: Smallest tail that always holds EOCD + ZIP64 locator + ZIP64 record (no comment).
MIN_TAIL_SIZE = 128


@dataclass(frozen=True, slots=True)
class ZipMember:
    """A file entry of the archive (directory entries are not members)."""

    name: str
    header_offset: int
    compressed_size: int
    size: int
    method: int
    crc32: int
    extra_length: int
    name_length: int
    flags: int = 0


def parse_comment(comment: bytes) -> dict[str, Any] | None:
    """Parse an RFC-9 archive comment (null-terminated UTF-8 JSON object); None if not one."""
    text = comment.split(b"\x00", 1)[0].strip()
    if not text:
        return None
    try:
        value = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_zarr_json(name: str) -> bool:
    return name == "zarr.json" or name.endswith("/zarr.json")


def _implied_dirs(name: str) -> list[str]:
    parts = name.rstrip("/").split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class OzxArchive:
    """An opened archive: the parsed central directory plus the fetcher to read members."""

    def __init__(
        self,
        fetch: RangeFetcher,
        *,
        archive: str,
        size: int,
        comment: bytes,
        entries: list[rec.CentralEntry],
        limits: dict[str, int],
        max_member_size: int,
        offset_cache_size: int,
        separate_header_reads: bool = False,
    ) -> None:
        self._fetch = fetch
        self._separate_header_reads = separate_header_reads
        self.archive = archive
        self._size = size
        self._comment = comment
        self._comment_json = parse_comment(comment)
        self._limits = limits
        self.max_member_size = max_member_size
        self._offsets: OrderedDict[str, int] = OrderedDict()
        self._trailer = 0  # bytes between a member's data and the next record, as last seen
        self._offset_cache_size = max(1, offset_cache_size)
        members: dict[str, ZipMember] = {}
        dirs: set[str] = set()
        for e in entries:
            if e.is_dir:
                dirs.add(e.name[:-1])
                dirs.update(_implied_dirs(e.name))
                continue
            members[e.name] = ZipMember(
                e.name, e.header_offset, e.compressed_size, e.size, e.method,
                e.crc32, e.extra_length, len(e.raw_name), e.flags,
            )  # fmt: skip
            dirs.update(_implied_dirs(e.name))
        for clash in dirs.intersection(members):
            raise ArchiveError(archive, f"entry {clash!r}: is both a file and a directory")
        self._members = members
        self._dirs = frozenset(dirs)

    # ------------------------------------------------------------------ open
    @classmethod
    async def open(
        cls,
        fetch: RangeFetcher,
        *,
        archive: str,
        tail_size: int = 1 << 20,
        max_members: int = 1_000_000,
        max_central_directory: int = 256 << 20,
        max_member_size: int = 2 << 30,
        offset_cache_size: int = 65536,
        separate_header_reads: bool = False,
    ) -> OzxArchive:
        """Open an archive with one suffix read (plus one read if the CD is not in the tail).

        A ZIP64 record that does not fit the tail (only with a comment nearly as long as
        ``tail_size``) costs one extra small read. ``separate_header_reads`` trades one
        request per member for no copy of its data: right when a request is a system
        call on a local file, wrong over a network.
        """
        if tail_size < MIN_TAIL_SIZE:
            raise ValueError(f"tail_size must be at least {MIN_TAIL_SIZE}")
        tail = await fetch(-tail_size, None)
        whole = len(tail) < tail_size
        end = rec.find_end_record(tail, archive)
        count, cd_size, cd_offset, tail_start = await cls._locate(fetch, tail, end, whole, archive)
        if cd_size > max_central_directory:
            raise ArchiveError(archive, f"central directory of {cd_size} bytes exceeds the limit")
        if count > max_members:
            raise ArchiveError(archive, f"{count} entries exceed the limit of {max_members}")
        if count * rec.CENTRAL.size > cd_size:
            raise ArchiveError(
                archive, f"central directory of {cd_size} bytes cannot hold {count} entries"
            )
        if whole and cd_offset + cd_size > len(tail):
            raise ArchiveError(archive, "central directory extends past the end of the archive")
        if tail_start != 0 and (whole or tail_start < 0):
            raise ArchiveError(
                archive,
                f"end records are {abs(tail_start)} bytes off the file's start: prepended "
                "data (self-extractor stub, not supported) or a corrupt central directory "
                "offset/size",
            )
        size = tail_start + len(tail)
        cd = await cls._central_directory(fetch, tail, tail_start, cd_offset, cd_size, archive)
        entries = rec.parse_central_directory(cd, count, archive, max_members=max_members)
        limits = rec.check_layout([e for e in entries if not e.is_dir], cd_offset, archive)
        return cls(
            fetch,
            archive=archive,
            size=size,
            comment=end.comment,
            entries=entries,
            limits=limits,
            max_member_size=max_member_size,
            offset_cache_size=offset_cache_size,
            separate_header_reads=separate_header_reads,
        )

    @classmethod
    async def _locate(
        cls, fetch: RangeFetcher, tail: bytes, end: rec.EndRecord, whole: bool, archive: str
    ) -> tuple[int, int, int, int]:
        """Entry count, CD size, CD offset and the tail's absolute offset, from end records."""
        loc_pos = end.position - rec.ZIP64_LOCATOR.size
        if loc_pos < 0 or tail[loc_pos : loc_pos + 4] != rec.ZIP64_LOCATOR_SIG:
            if rec.U32_MAX in (end.cd_size, end.cd_offset):
                raise ArchiveError(archive, "ZIP64 values without a ZIP64 locator")
            tail_start = end.cd_offset + end.cd_size - end.position
            return end.entries, end.cd_size, end.cd_offset, tail_start
        locator = rec.parse_zip64_locator(tail[loc_pos : end.position], archive)
        z64, tail_start = await cls._zip64_end(fetch, tail, loc_pos, locator, whole, archive)
        for classic, value, marker in (
            (end.entries, z64.entries, rec.U16_MAX),
            (end.cd_size, z64.cd_size, rec.U32_MAX),
            (end.cd_offset, z64.cd_offset, rec.U32_MAX),
        ):
            if classic not in (marker, value):
                raise ArchiveError(archive, "end record disagrees with the ZIP64 end record")
        if z64.cd_offset + z64.cd_size != locator.record_offset:
            raise ArchiveError(archive, "central directory does not end at the ZIP64 end record")
        return z64.entries, z64.cd_size, z64.cd_offset, tail_start

    @staticmethod
    async def _zip64_end(
        fetch: RangeFetcher,
        tail: bytes,
        loc_pos: int,
        loc: rec.Zip64Locator,
        whole: bool,
        archive: str,
    ) -> tuple[rec.Zip64End, int]:
        """Find the ZIP64 end record ending at the locator; return it and the tail's offset."""
        pos = tail.rfind(rec.ZIP64_EOCD_SIG, 0, loc_pos - rec.ZIP64_EOCD.size + 4)
        while pos >= 0:
            (record_size,) = struct.unpack_from("<Q", tail, pos + 4)
            if pos + 12 + record_size == loc_pos:
                z64 = rec.parse_zip64_end(tail[pos:loc_pos], archive)
                return z64, loc.record_offset - pos
            pos = tail.rfind(rec.ZIP64_EOCD_SIG, 0, pos + 3) if pos > 0 else -1
        if whole:
            raise ArchiveError(archive, "ZIP64 end of central directory record not found")
        # Only when a long comment pushed the record out of the tail: one small read.
        start = loc.record_offset
        z64 = rec.parse_zip64_end(await fetch(start, start + rec.ZIP64_EOCD.size), archive)
        return z64, start + z64.total_length - loc_pos

    @staticmethod
    async def _central_directory(
        fetch: RangeFetcher,
        tail: bytes,
        tail_start: int,
        cd_offset: int,
        cd_size: int,
        archive: str,
    ) -> bytes:
        """The central directory bytes: from the tail, or the missing head in one read."""
        cd_end = cd_offset + cd_size
        if cd_end - tail_start > len(tail):
            raise ArchiveError(archive, "central directory points past the end of the archive")
        if cd_offset >= tail_start:
            return tail[cd_offset - tail_start : cd_end - tail_start]
        head_end = min(tail_start, cd_end)
        head = await fetch(cd_offset, head_end)
        if len(head) != head_end - cd_offset:
            raise ArchiveError(archive, "central directory larger than the archive")
        return head + tail[: max(0, cd_end - tail_start)]

    # ------------------------------------------------------------ properties
    @property
    def members(self) -> Mapping[str, ZipMember]:
        """File entries by name in central directory order (read-only; no directories)."""
        return MappingProxyType(self._members)

    @property
    def directories(self) -> frozenset[str]:
        """Every directory path, explicit or implied by a member name (root excluded)."""
        return self._dirs

    @property
    def size(self) -> int:
        """The archive's size in bytes as derived from its end records."""
        return self._size

    @property
    def comment(self) -> bytes:
        """The raw archive comment."""
        return self._comment

    @property
    def comment_json(self) -> dict[str, Any] | None:
        """The RFC-9 comment JSON object, or None when absent or unparsable."""
        return self._comment_json

    @property
    def ome_version(self) -> str | None:
        """``comment_json["ome"]["version"]`` when it is a string, else None."""
        ome = (self._comment_json or {}).get("ome")
        version = ome.get("version") if isinstance(ome, dict) else None
        return version if isinstance(version, str) else None

    @property
    def zarr_json_first(self) -> bool:
        """True when the root ``zarr.json`` and then every other ``zarr.json`` come first.

        That is RFC-9's recommended layout; :meth:`read_zarr_json` is then one read.
        """
        by_offset = sorted(self._members.values(), key=lambda m: m.header_offset)
        flags = [_is_zarr_json(m.name) for m in by_offset]
        return (
            bool(by_offset)
            and by_offset[0].name == "zarr.json"
            and flags == sorted(flags, reverse=True)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    def member(self, name: str) -> ZipMember:
        """The member called ``name``; KeyError when there is none."""
        try:
            return self._members[name]
        except KeyError:
            raise KeyError(name) from None

    # --------------------------------------------------------------- helpers
    async def _get(self, start: int, end: int, what: str) -> bytes:
        if end <= start:
            return b""
        data = await self._fetch(start, end)
        if len(data) != end - start:
            raise ArchiveError(self.archive, f"entry {what!r}: archive truncated (short read)")
        return data

    def _remember(self, name: str, offset: int) -> None:
        self._offsets[name] = offset
        self._offsets.move_to_end(name)
        while len(self._offsets) > self._offset_cache_size:
            self._offsets.popitem(last=False)

    def _known_offset(self, name: str) -> int | None:
        offset = self._offsets.get(name)
        if offset is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread's read
                self._offsets.move_to_end(name)
        return offset

    def _verify_local(self, m: ZipMember, header: bytes) -> int:
        """Check a complete local header against the central one; return the data offset."""
        label = f"entry {m.name!r}: "
        local = rec.parse_local_header(header, self.archive, m.name)
        if local.raw_name.decode("utf-8", "replace") != m.name:
            raise ArchiveError(
                self.archive, label + "local header name differs from central directory"
            )
        if local.method != m.method:
            raise ArchiveError(
                self.archive, label + "local header method differs from central directory"
            )
        if local.size is not None and (
            (local.size, local.compressed_size, local.crc32) != (m.size, m.compressed_size, m.crc32)
        ):
            raise ArchiveError(
                self.archive, label + "local header sizes/CRC differ from central directory"
            )
        data_offset = m.header_offset + local.length
        if data_offset + m.compressed_size > self._limits[m.name]:
            raise ArchiveError(self.archive, label + "data overlaps the next record")
        self._remember(m.name, data_offset)
        self._trailer = self._limits[m.name] - data_offset - m.compressed_size
        return data_offset

    def _guess_data_offset(self, m: ZipMember) -> int:
        """Where member data most likely starts, before its local header was seen.

        Writers put members back to back, so data usually ends where the next record
        starts (less a trailer such as a data descriptor, learnt from earlier members);
        otherwise assume the local extra field is as long as the central one.
        """
        fixed = m.header_offset + rec.LOCAL.size + m.name_length
        contiguous = self._limits[m.name] - self._trailer - m.compressed_size
        if 0 <= contiguous - fixed <= rec.U16_MAX:
            return contiguous
        return fixed + m.extra_length

    def _guess_end(self, m: ZipMember) -> int:
        """End of a read covering header and data, assuming local extra <= central + slack."""
        guess = m.header_offset + rec.LOCAL.size + m.name_length + m.extra_length + EXTRA_SLACK
        return min(guess + m.compressed_size, self._limits[m.name])

    async def _data_offset(self, m: ZipMember) -> int:
        """Read and verify the local header on its own; return where the data starts."""
        fixed = m.header_offset + rec.LOCAL.size + m.name_length
        end = min(fixed + m.extra_length + EXTRA_SLACK, self._limits[m.name])
        head = await self._get(m.header_offset, end, m.name)
        return self._verify_local(m, (await self._local_header(m, head))[0])

    async def _member_from(self, m: ZipMember, buf: bytes, buf_start: int) -> bytes:
        """Verify the local header found in ``buf`` and return the member's decoded data.

        ``buf`` starts at archive offset ``buf_start``; what it lacks is fetched.
        """
        rel = m.header_offset - buf_start
        header, rest = await self._local_header(m, buf[rel:], with_data=True)
        data_offset = self._verify_local(m, header)
        have = rest[: m.compressed_size]
        missing_from = data_offset + len(have)
        have += await self._get(missing_from, data_offset + m.compressed_size, m.name)
        return self._decode(m, have)

    async def _local_header(
        self, m: ZipMember, head: bytes, *, with_data: bool = False
    ) -> tuple[bytes, bytes]:
        """Complete the local header whose first bytes are ``head``; return it and what follows.

        When it must be completed, one read fetches the rest of it (and with ``with_data``
        the member data too).
        """
        if len(head) < rec.LOCAL.size:
            head += await self._get(
                m.header_offset + len(head), m.header_offset + rec.LOCAL.size, m.name
            )
        if head[:4] != rec.LOCAL_SIG:
            raise ArchiveError(self.archive, f"entry {m.name!r}: bad local header signature")
        fixed = rec.LOCAL.unpack_from(head)
        length = rec.LOCAL.size + fixed[9] + fixed[10]
        if m.header_offset + length + m.compressed_size > self._limits[m.name]:
            raise ArchiveError(
                self.archive,
                f"entry {m.name!r}: local header and data overlap the next record",
            )
        if len(head) < length:
            end = length + (m.compressed_size if with_data else 0)
            head += await self._get(m.header_offset + len(head), m.header_offset + end, m.name)
        return head[:length], head[length:]

    def _decode(self, m: ZipMember, raw: bytes) -> bytes:
        label = f"entry {m.name!r}: "
        if m.method == rec.DEFLATED:
            inflater = zlib.decompressobj(-15)
            try:
                data = inflater.decompress(raw, m.size + 1)
            except zlib.error as exc:
                raise ArchiveError(self.archive, label + f"corrupt deflate data ({exc})") from None
            if len(data) > m.size:
                raise ArchiveError(
                    self.archive, label + "inflates past its declared size (zip bomb?)"
                )
            if not inflater.eof:
                raise ArchiveError(self.archive, label + "truncated deflate stream")
        else:
            data = raw
        if len(data) != m.size:
            raise ArchiveError(self.archive, label + "size differs from central directory")
        if crc32(data) != m.crc32:
            raise ArchiveError(self.archive, label + "CRC-32 mismatch")
        return data

    def _check_size(self, m: ZipMember) -> None:
        if m.size > self.max_member_size:
            raise ArchiveError(
                self.archive,
                f"entry {m.name!r}: declared size {m.size} exceeds the limit "
                f"of {self.max_member_size} bytes",
            )

    # ----------------------------------------------------------------- reads
    async def read(self, name: str) -> bytes:
        """The whole (inflated, CRC-checked) member in one request; KeyError if missing."""
        m = self.member(name)
        self._check_size(m)
        offset = self._known_offset(name)
        if offset is None and self._separate_header_reads:
            offset = await self._data_offset(m)
        if offset is not None:
            raw = await self._get(offset, offset + m.compressed_size, name)
            return self._decode(m, raw)
        buf = await self._get(m.header_offset, self._guess_end(m), name)
        return await self._member_from(m, buf, m.header_offset)

    async def read_range(self, name: str, start: int, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of a member; negative ``start`` with no end = suffix."""
        m = self.member(name)
        if start < 0:
            if end is not None:
                raise ValueError("a negative start (suffix) takes no end")
            lo, hi = max(m.size + start, 0), m.size
        else:
            lo = min(start, m.size)
            hi = m.size if end is None else max(lo, min(end, m.size))
        if m.method != rec.STORED:
            return (await self.read(name))[lo:hi]
        offset = self._known_offset(name)
        if offset is None and self._separate_header_reads and lo < hi:
            offset = await self._data_offset(m)
        if offset is not None:
            return await self._get(offset + lo, offset + hi, name)
        if lo == hi:
            return b""
        guess = self._guess_data_offset(m)
        header_len = max(guess - m.header_offset, rec.LOCAL.size + m.name_length)
        header_read = self._get(m.header_offset, m.header_offset + header_len, name)
        data: bytes | None = None
        if guess + m.size <= self._limits[m.name]:
            # Speculate that the local extra field is as long as the central one.
            header, data = await asyncio.gather(
                header_read, self._get(guess + lo, guess + hi, name)
            )
        else:
            header = await header_read
        offset = self._verify_local(m, (await self._local_header(m, header))[0])
        if data is None or offset != guess:
            data = await self._get(offset + lo, offset + hi, name)
        return data

    async def read_many(self, names: Iterable[str]) -> dict[str, bytes]:
        """Read several members concurrently (one request each)."""
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            self.member(name)
        values = await asyncio.gather(*(self.read(n) for n in wanted))
        return dict(zip(wanted, values, strict=True))

    async def read_span(self, names: Iterable[str], *, max_gap: int = 1 << 16) -> dict[str, bytes]:
        """Read members lying close together with one request per contiguous run.

        Members are sorted by offset and merged into runs while the gap between them
        is at most ``max_gap`` bytes, so the contiguous ``zarr.json`` block an RFC-9
        packer writes first arrives in a single read.
        """
        chosen = sorted(
            (self.member(n) for n in dict.fromkeys(names)), key=lambda m: m.header_offset
        )
        for m in chosen:
            self._check_size(m)
        runs: list[list[ZipMember]] = []
        for m in chosen:
            if runs and m.header_offset - self._guess_end(runs[-1][-1]) <= max_gap:
                runs[-1].append(m)
            else:
                runs.append([m])

        async def run(group: list[ZipMember]) -> list[tuple[str, bytes]]:
            start = group[0].header_offset
            buf = await self._get(start, max(self._guess_end(m) for m in group), group[0].name)
            return [(m.name, await self._member_from(m, buf, start)) for m in group]

        results = await asyncio.gather(*(run(g) for g in runs))
        return {name: data for group in results for name, data in group}

    async def read_zarr_json(self) -> dict[str, bytes]:
        """Every ``zarr.json`` member, with as few reads as :meth:`read_span` allows."""
        return await self.read_span(n for n in self._members if _is_zarr_json(n))
