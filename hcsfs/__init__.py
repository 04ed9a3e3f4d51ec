"""hcsfs: OME-Zarr high-content-screening plates anywhere, through one fsspec filesystem."""

from __future__ import annotations

from hcsfs.errors import (
    ArchiveError,
    HCSError,
    MetadataError,
    NotAPlateError,
    PlateWriteError,
    UnsupportedVersionError,
)

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "HCSError",
    "MetadataError",
    "NotAPlateError",
    "PlateWriteError",
    "UnsupportedVersionError",
    "__version__",
]
