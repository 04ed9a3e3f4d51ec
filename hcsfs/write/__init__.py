"""Write OME-Zarr HCS plates anywhere hcsfs reads them: create, add fields, consolidate.

* :func:`create_plate` - a new, empty plate (directory, S3, memory, ``.ozx``);
* :func:`write_image` (``plate.write_image``) - one field with its pyramid, streamed
  through dask, listed in its well and the well in the plate;
* :func:`remove_image` / :func:`remove_well` - the inverse, metadata first;
* :func:`consolidate` (``plate.consolidate()``) - consolidated metadata of the
  current hierarchy; writers drop it whenever they change the hierarchy, and a
  writable plate consolidates when closed;
* :func:`close_plate` - what ``plate.close()`` does for a writable plate.

Concurrent writers (threads, processes, dask workers, machines) may add fields to the
same wells at once and lose nothing: see :mod:`hcsfs.write.locking` for how each
target serialises its metadata updates, and :mod:`hcsfs.write.image` for the write
order that keeps a crash from ever leaving metadata that points at missing data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hcsfs.write.consolidation import consolidate, consolidate_plate
from hcsfs.write.create import PLATE_TYPES, create_plate
from hcsfs.write.image import remove_image, remove_well, write_image
from hcsfs.write.locking import LOCK_NAME

if TYPE_CHECKING:
    from hcsfs.plate import Plate

__all__ = [
    "LOCK_NAME",
    "PLATE_TYPES",
    "close_plate",
    "consolidate",
    "consolidate_plate",
    "create_plate",
    "open_staged_plate",
    "remove_image",
    "remove_well",
    "write_image",
]


def close_plate(plate: Plate, *, abort: bool = False) -> None:
    """Finish a plate: consolidate (writable) or pack (staged ``.ozx``); idempotent.

    Parameters
    ----------
    plate
        The plate.
    abort
        The ``with`` block raised: a staged ``.ozx`` is abandoned (the archive stays as
        it was); a directory or S3 plate is still consolidated (its writes are done).
    """
    if getattr(plate, "_closed", False):
        return
    staged = getattr(plate, "_staged", None)
    try:
        if staged is not None:
            staged.finish(abort=abort)
        elif not plate.fs.read_only:
            consolidate_plate(plate)
    finally:
        if staged is not None or not plate.fs.read_only:
            plate._closed = True
        plate.fs.invalidate_cache()


def open_staged_plate(
    url: str,
    *,
    mode: str,
    storage_options: dict[str, Any] | None = None,
    **fs_options: Any,
) -> Plate:
    """Open an ``.ozx`` archive for writing: unpack it into a staging directory.

    The returned plate writes there; closing it packs the archive (see
    :mod:`hcsfs.write.staging`).
    """
    from hcsfs.filesystem import HCSFileSystem
    from hcsfs.plate import Plate
    from hcsfs.write.staging import discard, stage_archive

    staged = stage_archive(url, storage_options)
    try:
        fs = HCSFileSystem(fo=staged.directory, mode=mode, skip_instance_cache=True, **fs_options)
        plate = Plate(fs)
        plate._staged = staged
        plate.meta  # noqa: B018
    except BaseException:
        discard(staged.directory)
        raise
    return plate
