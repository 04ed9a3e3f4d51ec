"""The hcsfs exception hierarchy.

Filesystem semantics use builtin ``OSError`` subclasses (``FileNotFoundError``,
``PermissionError`` ...) with the path as message. Problems with the *content* of a
plate or an archive raise one of the classes below; every message names the file
(or archive entry) and what was wrong with it.

::

    HCSError
    ├── MetadataError          bad OME / zarr metadata in one document
    │   ├── NotAPlateError     the root is not an OME-Zarr plate
    │   └── UnsupportedVersionError
    ├── ArchiveError           a damaged or unsafe .ozx / zip archive
    └── PlateWriteError        a write that was refused before anything was written
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "HCSError",
    "MetadataError",
    "NotAPlateError",
    "PlateWriteError",
    "UnsupportedVersionError",
]


class HCSError(Exception):
    """Base class of every error hcsfs raises about the content of a plate."""


class MetadataError(HCSError, ValueError):
    """A metadata document is malformed or breaks a rule of the OME-Zarr spec.

    Parameters
    ----------
    path
        The document (``"A/1/zarr.json"``, ``"plate.ozx!A/1/.zattrs"`` ...).
    message
        What was wrong, naming the field (``"well.images[2].path"``).
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.path, self.message))


class NotAPlateError(MetadataError):
    """The root group has no OME-Zarr ``plate`` metadata (an image, or not OME-Zarr)."""


class UnsupportedVersionError(MetadataError):
    """The OME-Zarr version is not one hcsfs can read."""


class ArchiveError(HCSError, ValueError):
    """A zip / ``.ozx`` archive is damaged, unsafe or not supported.

    Parameters
    ----------
    archive
        The archive's location as the user gave it.
    message
        What was wrong; names the entry when one is at fault.
    """

    def __init__(self, archive: str, message: str) -> None:
        self.archive = archive
        self.message = message
        super().__init__(f"{archive}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.archive, self.message))


class PlateWriteError(HCSError, ValueError):
    """A write was refused (bad shape, unknown well ...) before anything was written."""
