"""Convert OME-Zarr 0.4 (zarr v2) metadata documents to 0.5 (zarr v3) ones.

Chunks are not touched: a v3 array keeps the v2 chunk keys (``v2`` chunk key
encoding) and the v2 compressor becomes the matching v3 codec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcsfs.errors import MetadataError
from hcsfs.keys import join_key, parent_key

__all__ = [
    "axis_names",
    "v2_array_to_v3",
    "v2_attributes_to_v3",
    "v2_documents_to_v3",
    "v2_group_to_v3",
]

OME_KEYS = (
    "plate",
    "well",
    "multiscales",
    "omero",
    "labels",
    "image-label",
    "bioformats2raw.layout",
)
BLOSC_SHUFFLE = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: "shuffle"}


def v2_attributes_to_v3(attributes: dict[str, Any], *, version: str = "0.5") -> dict[str, Any]:
    """Move OME keys under ``"ome"`` with the new version; drop nested ``version`` keys."""
    ome: dict[str, Any] = {"version": version}
    rest: dict[str, Any] = {}
    for key, value in attributes.items():
        if key not in OME_KEYS:
            rest[key] = value
            continue
        if key == "multiscales" and isinstance(value, list):
            value = [
                {k: v for k, v in ms.items() if k != "version"} if isinstance(ms, dict) else ms
                for ms in value
            ]
        elif isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "version"}
        ome[key] = value
    if len(ome) > 1:
        rest["ome"] = ome
    return rest


def v2_group_to_v3(attributes: dict[str, Any] | None, *, version: str = "0.5") -> dict[str, Any]:
    """A v3 group ``zarr.json`` document from v2 group attributes."""
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": v2_attributes_to_v3(attributes or {}, version=version),
    }


def _codec_from_v2(config: dict[str, Any], *, path: str, itemsize: int) -> dict[str, Any]:
    codec_id = config.get("id")
    if codec_id == "blosc":
        return {
            "name": "blosc",
            "configuration": {
                "cname": config.get("cname", "lz4"),
                "clevel": int(config.get("clevel", 5)),
                "shuffle": BLOSC_SHUFFLE.get(int(config.get("shuffle", 1)), "shuffle"),
                "typesize": itemsize,
                "blocksize": int(config.get("blocksize", 0)),
            },
        }
    if codec_id == "zstd":
        return {
            "name": "zstd",
            "configuration": {
                "level": int(config.get("level", 0)),
                "checksum": bool(config.get("checksum", False)),
            },
        }
    if codec_id in ("gzip", "zlib"):
        if codec_id == "zlib":
            raise MetadataError(path, "zlib compression has no zarr v3 codec; cannot convert")
        return {"name": "gzip", "configuration": {"level": int(config.get("level", 5))}}
    raise MetadataError(path, f"compressor {codec_id!r} has no zarr v3 codec; cannot convert")


def v2_array_to_v3(
    zarray: dict[str, Any], attributes: dict[str, Any] | None, *, path: str, dimension_names: Any
) -> dict[str, Any]:
    """A v3 array ``zarr.json`` that reads the existing v2 chunks as they are."""
    if zarray.get("filters"):
        raise MetadataError(path, "v2 filters cannot be carried to zarr v3; cannot convert")
    try:
        dtype = np.dtype(zarray["dtype"])
    except (KeyError, TypeError) as exc:
        raise MetadataError(path, f"unsupported dtype {zarray.get('dtype')!r}") from exc
    if dtype.kind not in "biuf":
        raise MetadataError(path, f"dtype {dtype} cannot be converted to zarr v3 here")
    codecs: list[dict[str, Any]] = []
    if zarray.get("order", "C") == "F":
        codecs.append(
            {
                "name": "transpose",
                "configuration": {"order": list(range(len(zarray["shape"])))[::-1]},
            }
        )
    endian = "big" if dtype.byteorder == ">" else "little"
    codecs.append(
        {"name": "bytes", "configuration": {"endian": endian}}
        if dtype.itemsize > 1
        else {"name": "bytes"}
    )
    if zarray.get("compressor"):
        codecs.append(_codec_from_v2(zarray["compressor"], path=path, itemsize=dtype.itemsize))
    fill = zarray.get("fill_value")
    if fill is None:
        fill = 0
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(zarray["shape"]),
        "data_type": str(dtype.newbyteorder("=")),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(zarray["chunks"])}},
        "chunk_key_encoding": {
            "name": "v2",
            "configuration": {"separator": zarray.get("dimension_separator", ".")},
        },
        "fill_value": fill,
        "codecs": codecs,
        "attributes": attributes or {},
    }
    if dimension_names is not None:
        doc["dimension_names"] = list(dimension_names)
    return doc


def axis_names(image_attrs: dict[str, Any] | None) -> list[str] | None:
    """Axis names of a 0.4 image's first multiscale: its arrays' dimension names."""
    multiscales = (image_attrs or {}).get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        return None
    axes = multiscales[0].get("axes")
    if not isinstance(axes, list):
        return None
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    return [str(n) for n in names] if all(isinstance(n, str) for n in names) else None


def v2_documents_to_v3(
    parsed: dict[str, dict[str, Any]], *, where: str, version: str = "0.5"
) -> dict[str, dict[str, Any]]:
    """The ``zarr.json`` documents of a v2 plate, from its parsed ``.z*`` documents.

    ``parsed`` maps ``.zgroup/.zattrs/.zarray`` keys to their JSON; arrays get their
    image's axis names as ``dimension_names``, as OME-Zarr 0.5 requires.
    """
    docs: dict[str, dict[str, Any]] = {}
    for node in sorted({parent_key(k) for k in parsed}):
        attrs = parsed.get(join_key(node, ".zattrs"))
        zarray = parsed.get(join_key(node, ".zarray"))
        if zarray is not None:
            image_attrs = parsed.get(join_key(parent_key(node), ".zattrs"))
            docs[join_key(node, "zarr.json")] = v2_array_to_v3(
                zarray,
                attrs,
                path=f"{where}/{join_key(node, '.zarray')}",
                dimension_names=axis_names(image_attrs),
            )
        else:
            docs[join_key(node, "zarr.json")] = v2_group_to_v3(attrs, version=version)
    return docs
