"""Parsing of the fixed ZIP records (APPNOTE 6.3.x) as pure functions on bytes.

Everything here is strict: an archive that an RFC-9 ``.ozx`` reader should not trust
raises :class:`hcsfs.errors.ArchiveError` naming the archive and, when one is at fault,
the entry.  Offsets in the returned records are *absolute* archive offsets as written
in the records; callers map them onto the bytes they hold.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hcsfs.errors import ArchiveError

__all__ = [
    "CD_SIG",
    "EOCD_SIG",
    "LOCAL_SIG",
    "ZIP64_EOCD_SIG",
    "ZIP64_LOCATOR_SIG",
    "CentralEntry",
    "EndRecord",
    "LocalHeader",
    "Zip64End",
    "Zip64Locator",
    "check_layout",
    "find_end_record",
    "parse_central_directory",
    "parse_local_header",
    "parse_zip64_end",
    "parse_zip64_locator",
    "validate_name",
]

LOCAL_SIG = b"PK\x03\x04"
CD_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"

EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes
LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes
EXTRA_HEADER = struct.Struct("<2H")

ZIP64_EXTRA_ID = 0x0001
U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF

FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_HEADERS = 0x2000

STORED = 0
DEFLATED = 8
SUPPORTED_METHODS = frozenset({STORED, DEFLATED})


@dataclass(frozen=True, slots=True)
class EndRecord:
    """The classic end of central directory record, ``position`` relative to the buffer."""

    position: int
    disk: int
    cd_disk: int
    entries_on_disk: int
    entries: int
    cd_size: int
    cd_offset: int
    comment: bytes


@dataclass(frozen=True, slots=True)
class Zip64Locator:
    """The ZIP64 end of central directory locator."""

    disk: int
    record_offset: int
    total_disks: int


@dataclass(frozen=True, slots=True)
class Zip64End:
    """The ZIP64 end of central directory record (fixed part)."""

    record_size: int
    disk: int
    cd_disk: int
    entries_on_disk: int
    entries: int
    cd_size: int
    cd_offset: int

    @property
    def total_length(self) -> int:
        """Length of the whole record including signature and size field."""
        return 12 + self.record_size


@dataclass(frozen=True, slots=True)
class CentralEntry:
    """One central directory file header, ZIP64 values already applied."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc32: int
    compressed_size: int
    size: int
    header_offset: int
    extra_length: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(frozen=True, slots=True)
class LocalHeader:
    """A local file header; ``compressed_size``/``size`` are None when unknown (bit 3)."""

    raw_name: bytes
    flags: int
    method: int
    crc32: int
    compressed_size: int | None
    size: int | None
    extra_length: int

    @property
    def length(self) -> int:
        """Bytes from the signature to the first byte of member data."""
        return LOCAL.size + len(self.raw_name) + self.extra_length


def _entry(name: str) -> str:
    return f"entry {name!r}: "


def validate_name(raw: bytes, flags: int, archive: str) -> str:
    """Decode and check an entry name; RFC-9 wants UTF-8 names, relative and clean."""
    shown = raw.decode("utf-8", "backslashreplace")
    if flags & FLAG_UTF8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError(archive, _entry(shown) + "name is not valid UTF-8") from None
    elif raw.isascii():
        name = raw.decode("ascii")
    else:
        raise ArchiveError(
            archive, _entry(shown) + "non-ASCII name without the UTF-8 flag (bit 11)"
        )
    if not name:
        raise ArchiveError(archive, "entry with an empty name")
    if "\x00" in name:
        raise ArchiveError(archive, _entry(shown) + "name contains NUL")
    if "\\" in name:
        raise ArchiveError(archive, _entry(name) + "name contains a backslash")
    if name.startswith("/"):
        raise ArchiveError(archive, _entry(name) + "absolute name (leading '/')")
    body = name[:-1] if name.endswith("/") else name
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            raise ArchiveError(archive, _entry(name) + f"invalid path segment {segment!r}")
    return name


def find_end_record(buf: bytes, archive: str) -> EndRecord:
    """Find the classic EOCD in ``buf`` (the archive's tail); its comment must end ``buf``."""
    if len(buf) < EOCD.size:
        raise ArchiveError(archive, f"too short to be a zip archive ({len(buf)} bytes)")
    lowest = max(0, len(buf) - EOCD.size - U16_MAX)
    pos = buf.rfind(EOCD_SIG, lowest, len(buf) - EOCD.size + 4)
    while pos >= 0:
        fields = EOCD.unpack_from(buf, pos)
        if pos + EOCD.size + fields[7] == len(buf):
            comment = bytes(buf[pos + EOCD.size :])
            record = EndRecord(
                pos, fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], comment
            )
            if record.disk != 0 or record.cd_disk != 0:
                raise ArchiveError(archive, "multi-disk archives are not supported")
            if record.entries_on_disk != record.entries:
                raise ArchiveError(archive, "multi-disk archives are not supported")
            return record
        pos = buf.rfind(EOCD_SIG, lowest, pos + 3) if pos > lowest else -1
    raise ArchiveError(archive, "no end of central directory record (not a zip archive?)")


def parse_zip64_locator(buf: bytes, archive: str) -> Zip64Locator:
    """Parse a 20-byte ZIP64 locator."""
    if len(buf) < ZIP64_LOCATOR.size or buf[:4] != ZIP64_LOCATOR_SIG:
        raise ArchiveError(archive, "bad ZIP64 end of central directory locator")
    _, disk, offset, total = ZIP64_LOCATOR.unpack_from(buf)
    if disk != 0 or total > 1:
        raise ArchiveError(archive, "multi-disk archives are not supported")
    return Zip64Locator(disk, offset, total)


def parse_zip64_end(buf: bytes, archive: str) -> Zip64End:
    """Parse the fixed 56-byte part of a ZIP64 end of central directory record."""
    if len(buf) < ZIP64_EOCD.size or buf[:4] != ZIP64_EOCD_SIG:
        raise ArchiveError(archive, "bad ZIP64 end of central directory record signature")
    fields = ZIP64_EOCD.unpack_from(buf)
    rec = Zip64End(fields[1], *fields[4:10])
    if rec.record_size < ZIP64_EOCD.size - 12:
        raise ArchiveError(archive, "ZIP64 end of central directory record too short")
    if rec.disk != 0 or rec.cd_disk != 0 or rec.entries_on_disk != rec.entries:
        raise ArchiveError(archive, "multi-disk archives are not supported")
    return rec


def _zip64_values(extra: bytes, need: list[str], label: str, archive: str) -> dict[str, int]:
    """Read the 0x0001 extra field values for the fields listed in ``need`` (in order)."""
    found: dict[str, int] = {}
    pos = 0
    seen = False
    while pos + 4 <= len(extra):
        tag, length = EXTRA_HEADER.unpack_from(extra, pos)
        body_start = pos + 4
        if body_start + length > len(extra):
            raise ArchiveError(archive, label + "extra field overruns its block")
        if tag == ZIP64_EXTRA_ID and not seen:
            seen = True
            if length < 8 * len(need):
                raise ArchiveError(archive, label + "ZIP64 extra field too short")
            for i, key in enumerate(need):
                (found[key],) = struct.unpack_from("<Q", extra, body_start + 8 * i)
        pos = body_start + length
    if need and not seen:
        raise ArchiveError(archive, label + "ZIP64 marker without a ZIP64 extra field")
    return found


def _check_flags(flags: int, method: int, label: str, archive: str) -> None:
    if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS):
        raise ArchiveError(archive, label + "encrypted entries are not supported")
    if method not in SUPPORTED_METHODS:
        raise ArchiveError(
            archive, label + f"compression method {method} not supported (only 0 and 8)"
        )


def parse_central_directory(
    buf: bytes, count: int, archive: str, *, max_members: int
) -> list[CentralEntry]:
    """Parse ``count`` central directory headers that must fill ``buf`` exactly."""
    if count > max_members:
        raise ArchiveError(archive, f"{count} entries exceed the limit of {max_members}")
    if count * CENTRAL.size > len(buf):
        raise ArchiveError(
            archive, f"central directory of {len(buf)} bytes cannot hold {count} entries"
        )
    entries: list[CentralEntry] = []
    names: set[str] = set()
    pos = 0
    for index in range(count):
        if pos + CENTRAL.size > len(buf) or buf[pos : pos + 4] != CD_SIG:
            raise ArchiveError(archive, f"central directory entry #{index}: bad signature")
        f = CENTRAL.unpack_from(buf, pos)
        flags, method, crc = f[3], f[4], f[7]
        csize, usize, name_len, extra_len, comment_len, disk, offset = (
            f[8], f[9], f[10], f[11], f[12], f[13], f[16],
        )  # fmt: skip
        end = pos + CENTRAL.size + name_len + extra_len + comment_len
        if end > len(buf):
            raise ArchiveError(archive, f"central directory entry #{index}: truncated")
        raw = bytes(buf[pos + CENTRAL.size : pos + CENTRAL.size + name_len])
        name = validate_name(raw, flags, archive)
        label = _entry(name)
        extra = bytes(
            buf[pos + CENTRAL.size + name_len : pos + CENTRAL.size + name_len + extra_len]
        )
        need = [
            key
            for key, value, marker in (
                ("size", usize, U32_MAX),
                ("csize", csize, U32_MAX),
                ("offset", offset, U32_MAX),
                ("disk", disk, U16_MAX),
            )
            if value == marker
        ]
        z64 = _zip64_values(extra, need, label, archive)
        usize, csize = z64.get("size", usize), z64.get("csize", csize)
        offset, disk = z64.get("offset", offset), z64.get("disk", disk)
        if disk != 0:
            raise ArchiveError(archive, label + "multi-disk archives are not supported")
        _check_flags(flags, method, label, archive)
        if method == STORED and csize != usize:
            raise ArchiveError(archive, label + "stored entry with differing sizes")
        if name.endswith("/") and usize:
            raise ArchiveError(archive, label + "directory entry with data")
        if name in names:
            raise ArchiveError(archive, label + "duplicate name")
        names.add(name)
        entries.append(CentralEntry(name, raw, flags, method, crc, csize, usize, offset, extra_len))
        pos = end
    if pos != len(buf):
        raise ArchiveError(
            archive, f"central directory size mismatch ({len(buf) - pos} bytes unaccounted for)"
        )
    return entries


def check_layout(entries: list[CentralEntry], cd_offset: int, archive: str) -> dict[str, int]:
    """Refuse overlapping members; return for each entry the offset it must end before.

    The local extra field length is unknown here, so each member is given its minimal
    extent (header + name + data); the reader re-checks with the real one.
    """
    limits: dict[str, int] = {}
    ordered = sorted(entries, key=lambda e: e.header_offset)
    for i, entry in enumerate(ordered):
        limit = ordered[i + 1].header_offset if i + 1 < len(ordered) else cd_offset
        minimal_end = entry.header_offset + LOCAL.size + len(entry.raw_name)
        minimal_end += entry.compressed_size
        if minimal_end > limit:
            last = i + 1 == len(ordered)
            what = "the central directory" if last else f"entry {ordered[i + 1].name!r}"

            raise ArchiveError(archive, _entry(entry.name) + f"data overlaps {what}")
        limits[entry.name] = limit
    return limits


def parse_local_header(buf: bytes, archive: str, name: str) -> LocalHeader:
    """Parse a complete local file header (fixed part, name and extra field)."""
    label = _entry(name)
    if len(buf) < LOCAL.size or buf[:4] != LOCAL_SIG:
        raise ArchiveError(archive, label + "bad local header signature")
    _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = LOCAL.unpack_from(buf)
    if len(buf) < LOCAL.size + name_len + extra_len:
        raise ArchiveError(archive, label + "truncated local header")
    raw = bytes(buf[LOCAL.size : LOCAL.size + name_len])
    extra = bytes(buf[LOCAL.size + name_len : LOCAL.size + name_len + extra_len])
    _check_flags(flags, method, label, archive)
    sizes: tuple[int | None, int | None] = (csize, usize)
    if flags & FLAG_DATA_DESCRIPTOR:
        sizes = (None, None)
    elif csize == U32_MAX or usize == U32_MAX:
        # A local ZIP64 extra field always carries both sizes (APPNOTE 4.5.3).
        z64 = _zip64_values(extra, ["size", "csize"], label, archive)
        sizes = (z64["csize"], z64["size"])
    return LocalHeader(raw, flags, method, crc, sizes[0], sizes[1], extra_len)
