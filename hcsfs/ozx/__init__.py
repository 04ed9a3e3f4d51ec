"""The ZIP layer of RFC-9 single-file OME-Zarr (``.ozx``) archives.

Reading goes through :class:`OzxArchive` over an async range fetcher (fewest range
requests, strict checks, :class:`hcsfs.errors.ArchiveError` on any format problem);
writing through :class:`ZipStreamWriter` (sequential ZIP64, STORED).
"""

from __future__ import annotations

from hcsfs.ozx.order import ome_comment, recommended_order
from hcsfs.ozx.reader import OzxArchive, RangeFetcher, ZipMember, parse_comment
from hcsfs.ozx.writer import BinaryWritable, ZipStreamWriter, pack_stream

__all__ = [
    "BinaryWritable",
    "OzxArchive",
    "RangeFetcher",
    "ZipMember",
    "ZipStreamWriter",
    "ome_comment",
    "pack_stream",
    "parse_comment",
    "recommended_order",
]
