"""A sequential ZIP64 / STORED writer for RFC-9 ``.ozx`` archives.

The output is only ever appended to (it may be an S3 multipart upload stream): every
local header carries the real CRC and sizes, so no data descriptors are needed.  Only
member metadata is kept in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Protocol

from hcsfs.errors import ArchiveError
from hcsfs.ozx import records as rec
from hcsfs.ozx.crc import crc32

__all__ = ["BinaryWritable", "ZipStreamWriter", "pack_stream"]

#: 1980-01-01 00:00:00 in MS-DOS format, for reproducible archives.
DOS_TIME = 0
DOS_DATE = (0 << 9) | (1 << 5) | 1
VERSION = 45  # 4.5: ZIP64
VERSION_MADE_BY = (3 << 8) | VERSION  # UNIX host, so external attributes hold a mode
EXTERNAL_ATTR = 0o100644 << 16
LOCAL_EXTRA = struct.Struct("<2H2Q")  # ZIP64 extra: size, compressed size
CENTRAL_EXTRA = struct.Struct("<2H3Q")  # ZIP64 extra: size, compressed size, offset


class BinaryWritable(Protocol):
    """Anything with ``write(bytes)``; no ``seek``/``tell`` needed."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class ZipStreamWriter:
    """Write a ZIP64, STORED, UTF-8-named archive sequentially to ``out``.

    ``add`` members in the order they should appear (see
    :func:`hcsfs.ozx.order.recommended_order`), then ``close(comment)``.
    """

    def __init__(self, out: BinaryWritable, *, archive: str = "<stream>") -> None:
        self._out = out
        self.archive = archive
        self._offset = 0
        self._entries: list[tuple[bytes, int, int, int]] = []  # name, crc, size, offset
        self._names: set[str] = set()
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """Bytes written so far."""
        return self._offset

    @property
    def closed(self) -> bool:
        return self._closed

    def _write(self, data: bytes | memoryview) -> None:
        written = self._out.write(data)
        if isinstance(written, int) and written < len(data):
            # raw streams may take part of the buffer: write the remainder
            view = memoryview(data)[max(written, 0) :]
            while view:
                step = self._out.write(view)
                if not isinstance(step, int) or step >= len(view):
                    break
                if step <= 0:
                    raise OSError("output stream accepted no bytes")
                view = view[step:]
        self._offset += len(data)

    def add(self, name: str, data: bytes) -> None:
        """Append one STORED member (CRC and size computed before the header is written)."""
        if self._closed:
            raise ValueError("archive already closed")
        raw = name.encode("utf-8")
        rec.validate_name(raw, rec.FLAG_UTF8, self.archive)
        if name.endswith("/"):
            raise ArchiveError(self.archive, f"entry {name!r}: directory entries are not written")
        if name in self._names:
            raise ArchiveError(self.archive, f"entry {name!r}: duplicate name")
        if len(raw) > rec.U16_MAX:
            raise ArchiveError(self.archive, f"entry {name[:40]!r}...: name too long")
        view = memoryview(data).cast("B")
        size = view.nbytes
        crc = crc32(view)
        header = rec.LOCAL.pack(
            rec.LOCAL_SIG, VERSION, rec.FLAG_UTF8, rec.STORED, DOS_TIME, DOS_DATE,
            crc, rec.U32_MAX, rec.U32_MAX, len(raw), LOCAL_EXTRA.size,
        )  # fmt: skip
        extra = LOCAL_EXTRA.pack(rec.ZIP64_EXTRA_ID, LOCAL_EXTRA.size - 4, size, size)
        self._names.add(name)
        self._entries.append((raw, crc, size, self._offset))
        self._write(header + raw + extra)
        self._write(data if isinstance(data, bytes) else view)

    def close(self, comment: bytes = b"") -> int:
        """Write central directory, ZIP64 end records and end record; return total bytes."""
        if self._closed:
            raise ValueError("archive already closed")
        if len(comment) > rec.U16_MAX:
            raise ValueError("archive comment longer than 65535 bytes")
        cd_offset = self._offset
        for raw, crc, size, offset in self._entries:
            header = rec.CENTRAL.pack(
                rec.CD_SIG, VERSION_MADE_BY, VERSION, rec.FLAG_UTF8, rec.STORED,
                DOS_TIME, DOS_DATE, crc, rec.U32_MAX, rec.U32_MAX, len(raw),
                CENTRAL_EXTRA.size, 0, 0, 0, EXTERNAL_ATTR, rec.U32_MAX,
            )  # fmt: skip
            extra = CENTRAL_EXTRA.pack(
                rec.ZIP64_EXTRA_ID, CENTRAL_EXTRA.size - 4, size, size, offset
            )
            self._write(header + raw + extra)
        cd_size = self._offset - cd_offset
        count = len(self._entries)
        zip64_offset = self._offset
        small_count = min(count, rec.U16_MAX)
        zip64_end = rec.ZIP64_EOCD.pack(
            rec.ZIP64_EOCD_SIG, rec.ZIP64_EOCD.size - 12, VERSION_MADE_BY, VERSION,
            0, 0, count, count, cd_size, cd_offset,
        )  # fmt: skip
        locator = rec.ZIP64_LOCATOR.pack(rec.ZIP64_LOCATOR_SIG, 0, zip64_offset, 1)
        end = rec.EOCD.pack(
            rec.EOCD_SIG, 0, 0, small_count, small_count,
            min(cd_size, rec.U32_MAX), min(cd_offset, rec.U32_MAX), len(comment),
        )  # fmt: skip
        self._write(zip64_end + locator + end + comment)
        self._closed = True
        self._entries.clear()
        return self._offset


def pack_stream(
    items: Iterable[tuple[str, bytes]], out: BinaryWritable, *, comment: bytes = b""
) -> int:
    """Write ``items`` (in the given order) as one archive to ``out``; return bytes written."""
    writer = ZipStreamWriter(out)
    for name, data in items:
        writer.add(name, data)
    return writer.close(comment)
