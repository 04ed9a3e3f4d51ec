"""zarr v2 / v3 metadata documents: which keys hold them and what the index needs from them.

Pure functions, no I/O: the index fetches the bytes and hands them here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcsfs.errors import MetadataError
from hcsfs.gcpause import collector_paused
from hcsfs.keys import join_key

__all__ = [
    "MAX_METADATA_BYTES",
    "V2_ARRAY",
    "V2_ATTRS",
    "V2_CONSOLIDATED",
    "V2_GROUP",
    "V3_DOC",
    "ArrayMeta",
    "array_doc_key",
    "attributes_doc_key",
    "load_json",
    "parse_array_meta",
    "parse_group_attributes",
]

V3_DOC = "zarr.json"
V2_GROUP = ".zgroup"
V2_ATTRS = ".zattrs"
V2_ARRAY = ".zarray"
V2_CONSOLIDATED = ".zmetadata"
METADATA_NAMES = frozenset({V3_DOC, V2_GROUP, V2_ATTRS, V2_ARRAY, V2_CONSOLIDATED})


@dataclass(frozen=True)
class ArrayMeta:
    """What the index keeps of an array: enough to describe it without opening zarr."""

    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    zarr_format: int
    nbytes: int


def attributes_doc_key(zarr_format: int, node: str) -> str:
    """The key of the document holding ``node``'s attributes."""
    return join_key(node, V3_DOC if zarr_format == 3 else V2_ATTRS)


def array_doc_key(zarr_format: int, node: str) -> str:
    """The key of the document describing the array at ``node``."""
    return join_key(node, V3_DOC if zarr_format == 3 else V2_ARRAY)


MAX_METADATA_BYTES = 256 * 2**20
MAX_JSON_OBJECTS = 2_000_000
#: Documents above this size are parsed with the cyclic collector paused (hcsfs.gcpause).
LARGE_DOCUMENT_BYTES = 1 << 20


def load_json(raw: bytes, *, path: str) -> dict[str, Any]:
    """Decode one JSON object, naming ``path`` in the error when it is not one.

    Documents over :data:`MAX_METADATA_BYTES`, or with more than
    :data:`MAX_JSON_OBJECTS` objects (counted on the raw bytes, before any is built),
    are refused: a hostile document cannot make the parser allocate without bound.
    """
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(
            path, f"document is {len(raw)} bytes, more than the cap of {MAX_METADATA_BYTES}"
        )
    if raw.count(b"{") > MAX_JSON_OBJECTS:
        raise MetadataError(path, f"document holds more than {MAX_JSON_OBJECTS} JSON objects")
    try:
        if len(raw) > LARGE_DOCUMENT_BYTES:
            with collector_paused():
                doc = json.loads(raw.decode("utf-8"))
        else:
            doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MetadataError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MetadataError(
            path, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise MetadataError(path, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. integers longer than Python's digit limit
        raise MetadataError(path, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MetadataError(path, f"expected a JSON object, got {type(doc).__name__}")
    return doc


def parse_group_attributes(zarr_format: int, doc: dict[str, Any], *, path: str) -> dict[str, Any]:
    """The attributes of a group from its v3 ``zarr.json`` or v2 ``.zattrs`` document."""
    if zarr_format == 2:
        return doc
    if doc.get("node_type") not in ("group", None):
        raise MetadataError(path, f"expected a group, found node_type {doc.get('node_type')!r}")
    attributes = doc.get("attributes", {})
    if not isinstance(attributes, dict):
        raise MetadataError(path, "attributes must be a JSON object")
    return attributes


def _int_tuple(value: Any, *, path: str, field: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise MetadataError(path, f"{field} must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _dtype_name(value: Any, *, path: str) -> str:
    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str):
        raise MetadataError(path, f"unsupported data type {value!r}")
    canonical, structured, error = _checked_dtype(name)
    if error is not None:
        raise MetadataError(path, f"unsupported data type {value!r}: {error}")
    if structured:
        raise MetadataError(path, f"unsupported structured data type {value!r}")
    return canonical


@functools.lru_cache(maxsize=256)
def _checked_dtype(name: str) -> tuple[str, bool, str | None]:
    """(numpy's name for data type ``name``, structured?, numpy's objection or None).

    Cached: a plate has a handful of data types and thousands of arrays.
    """
    try:
        dtype = np.dtype(name)
    except TypeError:
        return name, False, None  # a zarr extension type numpy does not know: kept by name
    except (ValueError, SyntaxError) as exc:
        return name, False, str(exc)
    return str(dtype), dtype.fields is not None or dtype.subdtype is not None, None


def parse_array_meta(zarr_format: int, doc: dict[str, Any], *, path: str) -> ArrayMeta:
    """Shape, dtype, chunks (and shards) from a v3 ``zarr.json`` or v2 ``.zarray``."""
    if zarr_format == 3:
        if doc.get("node_type") != "array":
            raise MetadataError(
                path, f"expected an array, found node_type {doc.get('node_type')!r}"
            )
        shape = _int_tuple(doc.get("shape"), path=path, field="shape")
        grid = doc.get("chunk_grid")
        config = grid.get("configuration") if isinstance(grid, dict) else None
        if not isinstance(config, dict):
            raise MetadataError(path, "chunk_grid.configuration is missing")
        chunks = _int_tuple(config.get("chunk_shape"), path=path, field="chunk_shape")
        shards: tuple[int, ...] | None = None
        codecs = doc.get("codecs") or []
        first = codecs[0] if isinstance(codecs, list) and codecs else None
        if isinstance(first, dict) and first.get("name") == "sharding_indexed":
            sharding = first.get("configuration")
            if not isinstance(sharding, dict):
                raise MetadataError(path, "codecs[0].configuration must be a JSON object")
            inner = sharding.get("chunk_shape")
            shards, chunks = chunks, _int_tuple(inner, path=path, field="inner chunk_shape")
        dtype = _dtype_name(doc.get("data_type"), path=path)
    else:
        shape = _int_tuple(doc.get("shape"), path=path, field="shape")
        chunks = _int_tuple(doc.get("chunks"), path=path, field="chunks")
        shards = None
        dtype = _dtype_name(doc.get("dtype"), path=path)
    if len(chunks) != len(shape):
        raise MetadataError(path, f"chunk shape {chunks} does not match array shape {shape}")
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 0
    nbytes = int(np.prod(shape, dtype=object)) * itemsize if shape else itemsize
    return ArrayMeta(shape, dtype, chunks, shards, zarr_format, nbytes)
