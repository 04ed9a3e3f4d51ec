"""Benchmark plates: built once from a one-well template, then put on the counting S3 server.

Writing a 1536-well plate with zarr takes minutes and uploading its ~11,000 objects
over HTTP to moto takes minutes more, so the builder

1. writes a *template* plate with :func:`hcsfs.sample.write_sample_plate` holding
   only well ``A/1`` (rows and columns of the full plate),
2. replicates that well's documents and chunks to every well of the plate (the
   plate's ``wells`` list and the consolidated metadata are rebuilt to match), and
3. stores the objects straight into moto's in-process S3 backend (the server runs in
   this process; the HTTP front that counts requests is not involved in the setup).

Consolidated and non-consolidated variants of one plate differ only in the root
documents (zarr v3: the root ``zarr.json``; zarr v2: ``.zmetadata``), so one upload
serves both: :meth:`S3Plate.set_consolidated` rewrites the root before a measurement.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from hcsfs.sample import SamplePlateSpec, write_sample_plate
from hcsfs.testing import CountingS3Server

__all__ = [
    "BUCKET",
    "DATA_SHAPE",
    "GRIDS",
    "PlateFiles",
    "S3Plate",
    "build_plate_files",
    "ensure_bucket",
    "metadata_documents",
    "put_objects",
    "write_local",
]

BUCKET = "bench"
FIELDS = 2
TINY_SHAPE = (1, 1, 1, 16, 16)
#: Level-0 shape of the data plate's fields: 2 channels of 2048 x 2048 uint16 (16 MiB).
DATA_SHAPE = (1, 2, 1, 2048, 2048)
DATA_CHUNKS = (1, 1, 1, 512, 512)

_ROW_NAMES = list(string.ascii_uppercase) + [f"A{c}" for c in string.ascii_uppercase]
#: Plate size -> (rows, columns), the standard SBS formats.
GRIDS: dict[int, tuple[int, int]] = {
    6: (2, 3),
    24: (4, 6),
    96: (8, 12),
    384: (16, 24),
    1536: (32, 48),
}

_V3_DOC = "zarr.json"
_V2_DOCS = (".zattrs", ".zgroup", ".zarray")


def grid(wells: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Row and column names of a plate with ``wells`` wells."""
    if wells not in GRIDS:
        raise ValueError(f"plate size must be one of {sorted(GRIDS)}, not {wells}")
    rows, columns = GRIDS[wells]
    return tuple(_ROW_NAMES[:rows]), tuple(str(c) for c in range(1, columns + 1))


@dataclass
class PlateFiles:
    """Every object of one plate, by plate-relative key, in both root variants."""

    wells: int
    version: str
    data: bool
    files: dict[str, bytes]
    consolidated_root: dict[str, bytes]
    plain_root: dict[str, bytes]
    well_paths: list[str] = field(default_factory=list)

    @property
    def metadata_keys(self) -> list[str]:
        """Keys of the metadata documents a plain (non-consolidated) plate holds."""
        return metadata_documents(self.files)

    def chunk_keys(self, node: str) -> list[str]:
        """Keys of the chunks of the array at ``node`` (e.g. ``A/1/0/0``)."""
        inside = f"{node}/"
        return sorted(
            k
            for k in self.files
            if k.startswith(inside)
            and k.rpartition("/")[2] not in (_V3_DOC, *_V2_DOCS)
            and "/".join(k[len(inside) :].split("/")[:1]) not in ("labels",)
        )


def metadata_documents(files: dict[str, bytes]) -> list[str]:
    """The metadata document keys among ``files`` (``zarr.json`` / ``.z*``)."""
    return [k for k in files if k.rpartition("/")[2] in (_V3_DOC, *_V2_DOCS)]


def _spec(wells: int, data: bool) -> SamplePlateSpec:
    rows, columns = grid(wells)
    return SamplePlateSpec(
        rows=rows,
        columns=columns,
        wells=("A/1",),
        fields=FIELDS,
        shape=DATA_SHAPE if data else TINY_SHAPE,
        chunks=DATA_CHUNKS if data else TINY_SHAPE,
        levels=1,
        channel_names=("DAPI", "GFP") if data else ("DAPI",),
        name=f"bench {wells}",
        label_field="",
        acquisitions=(0,),
    )


def _uncompress(root: str, version: str) -> None:
    """Rewrite every array of the template without a compressor (same pixels)."""
    group = zarr.open_group(root, mode="r+")
    for image_path in ("A/1/0", "A/1/1"):
        image = group[image_path]
        assert isinstance(image, zarr.Group)
        old = image["0"]
        assert isinstance(old, zarr.Array)
        pixels = old[...]
        kwargs: dict[str, Any] = {}
        if version == "0.4":
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            kwargs["dimension_names"] = list(old.metadata.dimension_names or ())
        new = image.create_array(
            "0",
            shape=old.shape,
            chunks=old.chunks,
            dtype=old.dtype,
            compressors=None,
            overwrite=True,
            **kwargs,
        )
        new[...] = pixels


def _read_tree(root: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            key = os.path.relpath(full, root).replace(os.sep, "/")
            with open(full, "rb") as handle:
                files[key] = handle.read()
    return files


def _well_refs(rows: tuple[str, ...], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"path": f"{r}/{c}", "rowIndex": i, "columnIndex": j}
        for i, r in enumerate(rows)
        for j, c in enumerate(columns)
    ]


def _set_wells(attributes: dict[str, Any], wells: list[dict[str, Any]]) -> None:
    plate = attributes["ome"]["plate"] if "ome" in attributes else attributes["plate"]
    plate["wells"] = wells


def _relocate(key: str, well: str) -> str:
    return f"{well}/{key[len('A/1/') :]}"


def _retarget_doc(value: bytes, well: str) -> bytes:
    """A well document of ``A/1`` as the same document of ``well`` (names only)."""
    return value.replace(b'"A/1/', f'"{well}/'.encode())


def build_plate_files(wells: int, version: str, *, data: bool = False) -> PlateFiles:
    """Every object of a ``wells``-well, 2-field OME-Zarr ``version`` plate.

    ``data`` plates hold 16 MiB uncompressed fields (for read throughput); the others
    hold one 16 x 16 chunk per field (for opening). Chunks are stored uncompressed in
    data plates so every reader, and the raw limit, moves exactly the same bytes.
    """
    rows, columns = grid(wells)
    refs = _well_refs(rows, columns)
    paths = [r["path"] for r in refs]
    with tempfile.TemporaryDirectory(prefix="hcsfs-bench-") as tmp:
        root = os.path.join(tmp, "template.ome.zarr")
        write_sample_plate(root, version=version, spec=_spec(wells, data), consolidated=False)
        if data:
            _uncompress(root, version)
        zarr.consolidate_metadata(root, zarr_format=2 if version == "0.4" else 3)
        template = _read_tree(root)
    files: dict[str, bytes] = {}
    for key, value in template.items():
        if key.startswith("A/1/"):
            is_doc = key.rpartition("/")[2] in (_V3_DOC, *_V2_DOCS)
            for path in paths:
                files[_relocate(key, path)] = _retarget_doc(value, path) if is_doc else value
        elif key.startswith("A/"):
            for row in rows:
                files[f"{row}/{key[2:]}"] = value
        else:
            files[key] = value
    consolidated_root, plain_root = _root_variants(files, version, refs, rows, paths)
    files.update(plain_root)
    files.pop(".zmetadata", None)
    return PlateFiles(wells, version, data, files, consolidated_root, plain_root, paths)


def _root_variants(
    files: dict[str, bytes],
    version: str,
    refs: list[dict[str, Any]],
    rows: tuple[str, ...],
    paths: list[str],
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(consolidated root documents, plain root documents) of the full plate."""

    def expand(entries: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in entries.items():
            if key == "A/1" or key.startswith("A/1/"):
                text = json.dumps(value)
                for path in paths:
                    rel = path + key[len("A/1") :]
                    out[rel] = json.loads(text.replace('"A/1/', f'"{path}/'))
            elif key == "A" or key.startswith("A/"):
                for row in rows:
                    out[row + key[1:]] = value
            else:
                out[key] = value
        return out

    if version == "0.4":
        attrs = json.loads(files[".zattrs"])
        _set_wells(attrs, refs)
        meta = json.loads(files[".zmetadata"])
        entries = expand(meta["metadata"])
        entries[".zattrs"] = attrs
        meta["metadata"] = dict(sorted(entries.items()))
        zattrs = json.dumps(attrs, indent=2).encode()
        return (
            {".zattrs": zattrs, ".zmetadata": json.dumps(meta).encode()},
            {".zattrs": zattrs},
        )
    doc = json.loads(files[_V3_DOC])
    _set_wells(doc["attributes"], refs)
    consolidated = doc.get("consolidated_metadata") or {}
    consolidated["metadata"] = dict(sorted(expand(consolidated.get("metadata", {})).items()))
    plain = {k: v for k, v in doc.items() if k != "consolidated_metadata"}
    return (
        {_V3_DOC: json.dumps({**doc, "consolidated_metadata": consolidated}).encode()},
        {_V3_DOC: json.dumps(plain).encode()},
    )


def write_local(files: dict[str, bytes], root: str) -> str:
    """Write ``files`` as a directory tree at ``root``; return ``root``."""
    for key, value in files.items():
        full = os.path.join(root, *key.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(value)
    return root


# ----------------------------------------------------------------------------- S3
def _moto_backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"]


def ensure_bucket(server: CountingS3Server) -> None:
    """Create the benchmark bucket (over HTTP, so the client sees it exist)."""
    import fsspec

    fs = fsspec.filesystem("s3", **server.storage_options())
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)


def put_objects(server: CountingS3Server, prefix: str, files: dict[str, bytes]) -> None:
    """Store ``files`` under ``s3://BUCKET/prefix/`` (in-process; HTTP as a fallback)."""
    try:
        backend = _moto_backend()
        for key, value in files.items():
            backend.put_object(BUCKET, f"{prefix}/{key}", value)
        return
    except (ImportError, KeyError, AttributeError):
        pass
    import fsspec

    fs = fsspec.filesystem("s3", **server.storage_options())
    fs.pipe({f"{BUCKET}/{prefix}/{k}": v for k, v in files.items()})


def delete_object(server: CountingS3Server, key: str) -> None:
    """Delete ``s3://BUCKET/key`` (in-process; HTTP as a fallback)."""
    try:
        _moto_backend().delete_object(BUCKET, key)
        return
    except (ImportError, KeyError, AttributeError):
        pass
    import fsspec

    fsspec.filesystem("s3", **server.storage_options()).rm_file(f"{BUCKET}/{key}")


@dataclass
class S3Plate:
    """A benchmark plate stored under ``s3://BUCKET/prefix``."""

    server: CountingS3Server
    prefix: str
    plate: PlateFiles
    consolidated: bool = False

    @property
    def url(self) -> str:
        """``s3://bench/prefix``."""
        return f"s3://{BUCKET}/{self.prefix}"

    @property
    def path(self) -> str:
        """``bench/prefix`` (s3fs path)."""
        return f"{BUCKET}/{self.prefix}"

    @classmethod
    def upload(cls, server: CountingS3Server, prefix: str, plate: PlateFiles) -> S3Plate:
        """Store every object of ``plate`` under ``prefix`` (not consolidated)."""
        put_objects(server, prefix, plate.files)
        return cls(server, prefix, plate)

    def set_consolidated(self, consolidated: bool) -> None:
        """Make the plate (not) carry consolidated metadata by rewriting its root."""
        if consolidated == self.consolidated:
            return
        root = self.plate.consolidated_root if consolidated else self.plate.plain_root
        put_objects(self.server, self.prefix, root)
        if not consolidated and self.plate.version == "0.4":
            delete_object(self.server, f"{self.prefix}/.zmetadata")
        self.consolidated = consolidated


def expected_chunk_bytes(plate: PlateFiles, node: str) -> int:
    """Bytes of all chunks of the array at ``node``."""
    return sum(len(plate.files[k]) for k in plate.chunk_keys(node))


def pixels_checksum(array: np.ndarray) -> int:
    """A cheap checksum to compare what different readers returned."""
    return int(np.asarray(array, dtype=np.uint64).sum() % (2**61 - 1))
