"""hcsfs: OME-Zarr high-content-screening plates anywhere, through one fsspec filesystem."""

from __future__ import annotations

from hcsfs.copy import CopyReport, copy_plate
from hcsfs.distributed import map_wells
from hcsfs.errors import (
    ArchiveError,
    HCSError,
    MetadataError,
    NotAPlateError,
    PlateWriteError,
    UnsupportedVersionError,
)
from hcsfs.filesystem import HCSFileSystem
from hcsfs.pack import PackReport, pack
from hcsfs.plate import Image, Plate, PlateArray, Well, open_plate
from hcsfs.store import HCSStore, open_store
from hcsfs.write import consolidate, create_plate

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "CopyReport",
    "HCSError",
    "HCSFileSystem",
    "HCSStore",
    "Image",
    "MetadataError",
    "NotAPlateError",
    "PackReport",
    "Plate",
    "PlateArray",
    "PlateWriteError",
    "UnsupportedVersionError",
    "Well",
    "__version__",
    "consolidate",
    "copy_plate",
    "create_plate",
    "map_wells",
    "open_plate",
    "open_store",
    "pack",
]
