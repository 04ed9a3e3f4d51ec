"""``.ozx`` archives as write targets: write into a staging directory, pack on close.

An archive cannot be changed in place, so a writable ``.ozx`` plate is a plate in a
local staging directory (next to a local archive, so it is on the same disk; in the
temporary directory for a remote one). ``create_plate("p.ozx")`` starts it empty;
``open_plate("p.ozx", mode="a")`` unpacks the archive into it. Closing the plate packs
the staging directory into the RFC-9 recommended variant with :func:`hcsfs.pack`,
which replaces the archive atomically, then removes the staging directory. Until then
the old archive is untouched: a crash, or an exception in the ``with`` block (which
abandons the staged changes), loses nothing that was in it.

One process owns a staged plate; others may write into it (threads, or processes
on the same machine given the pickled plate, which points at the staging directory),
but only the owner packs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from fsspec.asyn import sync
from fsspec.core import split_protocol

from hcsfs.errors import PlateWriteError
from hcsfs.filesystem import HCSFileSystem
from hcsfs.keys import normalize_key
from hcsfs.zarrmeta import V3_DOC, load_json

__all__ = ["StagedArchive", "archive_exists", "stage_archive"]

BATCH = 64


@dataclass
class StagedArchive:
    """A writable ``.ozx`` plate being staged in a local directory."""

    archive: str
    storage_options: dict[str, Any]
    directory: str

    def finish(self, *, abort: bool) -> None:
        """Pack the staging directory into the archive (unless ``abort``), then remove it."""
        from hcsfs.pack import pack

        try:
            if not abort:
                pack(self.directory, self.archive, dst_storage_options=self.storage_options)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _is_local(url: str) -> bool:
    return split_protocol(url)[0] in (None, "file", "local") and "::" not in url


def staging_directory(archive: str) -> str:
    """A new, empty staging directory for ``archive``."""
    if _is_local(archive):
        final = os.path.abspath(os.path.expanduser(split_protocol(archive)[1]))
        parent = os.path.dirname(final) or "."
        os.makedirs(parent, exist_ok=True)
        path = os.path.join(
            parent, f".{os.path.basename(final)}.hcsfs-staging-{uuid.uuid4().hex[:8]}"
        )
        os.makedirs(path)
        return path
    return tempfile.mkdtemp(prefix="hcsfs-staging-")


def archive_exists(archive: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the archive file exists."""
    import fsspec

    if _is_local(archive):
        return os.path.exists(os.path.abspath(os.path.expanduser(split_protocol(archive)[1])))
    fs, path = fsspec.core.url_to_fs(archive, **(storage_options or {}))
    return bool(fs.exists(path))


def stage_archive(archive: str, storage_options: dict[str, Any] | None) -> StagedArchive:
    """Unpack ``archive`` into a new staging directory (consolidated metadata dropped)."""
    if not archive_exists(archive, storage_options):
        raise FileNotFoundError(f"{archive}: no such archive")
    directory = staging_directory(archive)
    try:
        source_fs = HCSFileSystem(
            fo=archive, target_options=storage_options or None, skip_instance_cache=True
        )
        sync(source_fs.loop, _unpack, source_fs, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return StagedArchive(archive, dict(storage_options or {}), directory)


async def _unpack(fs: HCSFileSystem, directory: str) -> None:
    version = (await fs.index.open()).version
    if version != "0.5":
        raise PlateWriteError(f"{fs.url}: hcsfs writes .ozx plates of OME-Zarr 0.5, not {version}")
    keys = [e["name"] for e in await fs.source.find("")]
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        values = await fs.source.get_many(batch)
        for key, value in values.items():
            if value is None:
                raise PlateWriteError(f"{fs.url}: member {key} vanished while unpacking")
            if key == V3_DOC:
                root = load_json(value, path=f"{fs.url}/{key}")
                root.pop("consolidated_metadata", None)
                from hcsfs.index import dumps_doc

                value = dumps_doc(root)
            _write_file(directory, key, value)


def _write_file(directory: str, key: str, value: bytes) -> None:
    key = normalize_key(key)  # archive member names were checked when read; check again
    path = os.path.join(directory, *key.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(value)


def discard(directory: str) -> None:
    """Remove a staging directory (used when creating the plate fails)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)
