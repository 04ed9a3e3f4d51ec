"""PlateIndex: what a plate contains, read with as few requests as the format allows.

The index answers every metadata question about a plate. With consolidated
metadata (zarr v3 ``consolidated_metadata`` in the root ``zarr.json``, zarr v2
``.zmetadata``) it answers from that one document. Without it, it fetches the
documents the OME-Zarr version says exist - never probing - concurrently, one
hierarchy level per round. Parsed well/image/array metadata lives in bounded LRU
caches; raw document bytes in a byte-bounded LRU, so memory does not grow with the
plate.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from typing import Any, NoReturn

from cachetools import LRUCache

from hcsfs.errors import MetadataError, NotAPlateError
from hcsfs.gcpause import collector_paused
from hcsfs.keys import join_key
from hcsfs.ome.model import ImageMeta, LabelsMeta, PlateMeta, WellMeta
from hcsfs.ome.parse import parse_image, parse_labels, parse_plate, parse_well
from hcsfs.source import Source
from hcsfs.zarrmeta import (
    METADATA_NAMES,
    V2_ATTRS,
    V2_CONSOLIDATED,
    V2_GROUP,
    V3_DOC,
    ArrayMeta,
    array_doc_key,
    attributes_doc_key,
    load_json,
    parse_array_meta,
    parse_group_attributes,
)

__all__ = ["DEFAULT_IMAGE_CACHE_SIZE", "DEFAULT_WELL_CACHE_SIZE", "PlateIndex"]

DEFAULT_WELL_CACHE_SIZE = 1536  # every standard plate (up to 1536 wells) fits
DEFAULT_IMAGE_CACHE_SIZE = 100
DEFAULT_DOC_CACHE_BYTES = 64 * 2**20


class PlateIndex:
    """The metadata of one plate, behind bounded caches.

    Parameters
    ----------
    source
        Where the plate's bytes are.
    well_cache_size
        Parsed well metadata kept at most.
    image_cache_size
        Parsed image metadata kept at most *per well* (the image and array caches
        hold ``well_cache_size * image_cache_size`` entries in all).
    doc_cache_bytes
        Raw metadata document bytes kept at most, so ``cat`` of a document the index
        already read costs no request.
    """

    def __init__(
        self,
        source: Source,
        *,
        well_cache_size: int = DEFAULT_WELL_CACHE_SIZE,
        image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE,
        doc_cache_bytes: int = DEFAULT_DOC_CACHE_BYTES,
    ) -> None:
        if well_cache_size < 1 or image_cache_size < 1:
            raise ValueError("cache sizes must be at least 1")
        self.source = source
        self.well_cache_size = well_cache_size
        self.image_cache_size = image_cache_size
        self._lock = threading.RLock()
        self._wells: LRUCache[str, WellMeta] = LRUCache(well_cache_size)
        self._images: LRUCache[str, ImageMeta] = LRUCache(well_cache_size * image_cache_size)
        self._arrays: LRUCache[str, ArrayMeta] = LRUCache(2 * well_cache_size * image_cache_size)
        self._docs: LRUCache[str, bytes] = LRUCache(doc_cache_bytes, getsizeof=len)
        self._labels: LRUCache[str, LabelsMeta | None] = LRUCache(well_cache_size)
        self.zarr_format: int = 3
        self.plate: PlateMeta | None = None
        self.root_attributes: dict[str, Any] = {}
        self.consolidated: dict[str, dict[str, Any]] | None = None
        self.known_keys: dict[str, int] | None = None
        self.virtual_root: bytes | None = None
        self.generation = 0  # bumped by every invalidation: read-ahead memos compare it
        self._open_locks: dict[int, asyncio.Lock] = {}
        self._opened = False

    # ------------------------------------------------------------------ opening
    async def open(self) -> PlateMeta:
        """Read the root: detect the zarr format, consolidated metadata and the plate.

        Concurrent callers share one read of the root.
        """
        if self._opened and self.plate is not None:
            return self.plate
        loop_id = id(asyncio.get_running_loop())
        lock = self._open_locks.setdefault(loop_id, asyncio.Lock())
        async with lock:
            if self._opened and self.plate is not None:
                return self.plate
            return await self._open()

    def format_excludes(self, key: str) -> bool:
        """True when the plate's zarr format rules out metadata document ``key``.

        A zarr v3 plate has no ``.zgroup/.zattrs/.zarray/.zmetadata``; a v2 plate no
        ``zarr.json``: answering so spares the probes zarr sends when it is not told
        the format.
        """
        if not self._opened:
            return False
        name = key.rpartition("/")[2]
        if self.zarr_format == 3:
            return name in (V2_GROUP, V2_ATTRS, ".zarray", V2_CONSOLIDATED)
        return name == V3_DOC

    async def _open(self) -> PlateMeta:
        self.known_keys = await self._known_keys()
        raw = await self._get_root_doc(V3_DOC)
        if raw is not None:
            self.zarr_format = 3
            doc = load_json(raw, path=self._where(V3_DOC))
            self._read_v3_consolidated(doc)
            attributes = parse_group_attributes(3, doc, path=self._where(V3_DOC))
            root_doc = V3_DOC
        else:
            self.zarr_format = 2
            raw_meta = await self._get_root_doc(V2_CONSOLIDATED)
            if raw_meta is not None:
                self._read_v2_consolidated(load_json(raw_meta, path=self._where(V2_CONSOLIDATED)))
                consolidated = self.consolidated or {}
                if V2_ATTRS not in consolidated:
                    raise NotAPlateError(self._where(V2_CONSOLIDATED), "no root .zattrs in it")
                attributes = consolidated[V2_ATTRS]
            else:
                raw_attrs = await self._get_root_doc(V2_ATTRS)
                if raw_attrs is None:
                    await self._refuse_missing_root()
                    raise AssertionError("unreachable")  # pragma: no cover
                attributes = load_json(raw_attrs, path=self._where(V2_ATTRS))
            root_doc = V2_ATTRS
        self.root_attributes = attributes
        _refuse_non_plate(attributes, self._where(root_doc))
        self.plate = parse_plate(attributes, path=self._where(root_doc))
        self._opened = True
        return self.plate

    async def _known_keys(self) -> dict[str, int] | None:
        return await self.source.known_sizes()

    async def _get_root_doc(self, name: str) -> bytes | None:
        if self.known_keys is not None and name not in self.known_keys:
            return None
        try:
            raw = await self.source.get(name)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None
        self._remember(name, raw)
        return raw

    async def _refuse_missing_root(self) -> NoReturn:
        """Raise the clearest error for a root with no zarr metadata at all."""
        url = self.source.url
        try:
            empty = self.source.can_list and not await self.source.ls("")
        except FileNotFoundError:
            raise FileNotFoundError(f"{url}: no such plate (the location does not exist)") from None
        except (NotImplementedError, OSError):
            empty = False
        if empty:
            raise NotAPlateError(
                url, "empty: no zarr.json, .zmetadata or .zattrs; not an OME-Zarr plate"
            )
        raise NotAPlateError(
            url, "no zarr.json, .zmetadata or .zattrs at the root: not an OME-Zarr plate"
        )

    def _read_v3_consolidated(self, doc: dict[str, Any]) -> None:
        block = doc.get("consolidated_metadata")
        if not isinstance(block, dict) or not isinstance(block.get("metadata"), dict):
            return
        docs: dict[str, dict[str, Any]] = {}
        for node, node_doc in block["metadata"].items():
            if isinstance(node, str) and isinstance(node_doc, dict):
                docs[join_key(node, V3_DOC)] = node_doc
        self.consolidated = docs

    def _read_v2_consolidated(self, doc: dict[str, Any]) -> None:
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict):
            raise MetadataError(self._where(V2_CONSOLIDATED), "'metadata' must be a JSON object")
        self.consolidated = {k: v for k, v in metadata.items() if isinstance(v, dict)}

    def _where(self, key: str) -> str:
        return f"{self.source.url.rstrip('/')}/{key}" if key else self.source.url

    @property
    def plate_meta(self) -> PlateMeta:
        """The plate metadata (the index must be open)."""
        if self.plate is None:
            raise RuntimeError("PlateIndex.open() has not been awaited")
        return self.plate

    # ------------------------------------------------------------ documents
    def _remember(self, key: str, raw: bytes) -> None:
        with self._lock:
            if len(raw) <= self._docs.maxsize:
                self._docs[key] = raw

    def cached_doc(self, key: str) -> bytes | None:
        """Raw bytes of a metadata document already read, else ``None``."""
        with self._lock:
            return self._docs.get(key)

    def consolidated_doc_bytes(self, key: str) -> bytes | None:
        """A metadata document served from consolidated metadata (no request), if known."""
        if self.consolidated is None or key in (V3_DOC, V2_CONSOLIDATED):
            return None
        doc = self.consolidated.get(key)
        if doc is None:
            return None
        return json.dumps(doc, indent=2).encode("utf-8")

    def consolidated_says_absent(self, key: str) -> bool:
        """True when consolidated metadata proves ``key`` (a metadata doc) does not exist."""
        if self.known_keys is not None:
            return key not in self.known_keys
        if self.consolidated is None:
            return False
        name = key.rpartition("/")[2]
        if name not in METADATA_NAMES or key in (V3_DOC, V2_CONSOLIDATED, V2_ATTRS, V2_GROUP):
            return False
        if self.zarr_format == 3:
            return name == V3_DOC and key not in self.consolidated
        return name in (V2_ATTRS, V2_GROUP, ".zarray") and key not in self.consolidated

    async def docs(self, keys: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Parsed JSON of many metadata documents, fetched concurrently in one round."""
        keys = list(dict.fromkeys(keys))
        result: dict[str, dict[str, Any] | None] = {}
        to_fetch: list[str] = []
        for key in keys:
            if self.consolidated is not None and key in self.consolidated:
                result[key] = self.consolidated[key]
                continue
            cached = self.cached_doc(key)
            if cached is not None:
                result[key] = load_json(cached, path=self._where(key))
            elif self.consolidated_says_absent(key):
                result[key] = None
            else:
                to_fetch.append(key)
        if to_fetch:
            fetched = await self.source.get_many(to_fetch)
            with collector_paused():
                for key, raw in fetched.items():
                    if raw is None:
                        result[key] = None
                        continue
                    self._remember(key, raw)
                    result[key] = load_json(raw, path=self._where(key))
        return result

    async def _required_docs(self, keys: list[str], what: str) -> dict[str, dict[str, Any]]:
        found = await self.docs(keys)
        missing = [k for k, v in found.items() if v is None]
        if missing:
            raise MetadataError(
                self._where(missing[0]),
                f"{what} metadata document is missing ({len(missing)} missing in all)",
            )
        return {k: v for k, v in found.items() if v is not None}

    # ------------------------------------------------------ no-I/O lookups
    def known_plate(self) -> PlateMeta | None:
        """The plate metadata when the index is open, else ``None`` (never waits)."""
        return self.plate if self._opened else None

    def known_well(self, path: str) -> WellMeta | None:
        """A well's metadata if cached or in consolidated metadata, else ``None``.

        Synchronous and free of I/O, so accessors can skip the hop to the event
        loop when the answer is already here (a cached walk is all hits).
        """
        return self._known(self._wells, path, "well")

    def known_image(self, node: str) -> ImageMeta | None:
        """An image's metadata if cached or in consolidated metadata, else ``None``."""
        return self._known(self._images, node, "image")

    def known_array(self, node: str) -> ArrayMeta | None:
        """An array's metadata if cached or in consolidated metadata, else ``None``."""
        return self._known(self._arrays, node, "array")

    def _known(self, cache: LRUCache[str, Any], node: str, kind: str) -> Any:
        with self._lock:
            meta = cache.get(node)
        if meta is not None or self.consolidated is None:
            return meta
        key = (array_doc_key if kind == "array" else attributes_doc_key)(self.zarr_format, node)
        doc = self.consolidated.get(key)
        if doc is None:
            return None
        meta = self._parse(kind, key, doc)
        with self._lock:
            cache[node] = meta
        return meta

    def _parse(self, kind: str, key: str, doc: dict[str, Any]) -> Any:
        """Parse one metadata document of ``kind`` (well, image or array)."""
        where = self._where(key)
        if kind == "array":
            return parse_array_meta(self.zarr_format, doc, path=where)
        attributes = parse_group_attributes(self.zarr_format, doc, path=where)
        return (
            parse_well(attributes, path=where)
            if kind == "well"
            else parse_image(attributes, path=where)
        )

    # ---------------------------------------------------------------- wells
    async def wells(self, paths: Iterable[str]) -> dict[str, WellMeta]:
        """Well metadata for ``paths``; the missing ones are fetched in one round."""
        paths = list(paths)
        result: dict[str, WellMeta] = {}
        missing: list[str] = []
        with self._lock:
            for path in paths:
                meta = self._wells.get(path)
                if meta is None:
                    missing.append(path)
                else:
                    result[path] = meta
        if missing:
            keys = {attributes_doc_key(self.zarr_format, p): p for p in missing}
            docs = await self._required_docs(list(keys), "well")
            with collector_paused():
                parsed = {key: self._parse("well", key, doc) for key, doc in docs.items()}
            for key, meta in parsed.items():
                result[keys[key]] = meta
                with self._lock:
                    self._wells[keys[key]] = meta
        return result

    async def well(self, path: str) -> WellMeta:
        """Metadata of one well (``"A/1"``)."""
        return (await self.wells([path]))[path]

    # --------------------------------------------------------------- images
    async def images(self, nodes: Iterable[str]) -> dict[str, ImageMeta]:
        """Image metadata for image nodes (``"A/1/0"``), missing ones in one round."""
        nodes = list(nodes)
        result: dict[str, ImageMeta] = {}
        missing: list[str] = []
        with self._lock:
            for node in nodes:
                meta = self._images.get(node)
                if meta is None:
                    missing.append(node)
                else:
                    result[node] = meta
        if missing:
            keys = {attributes_doc_key(self.zarr_format, n): n for n in missing}
            docs = await self._required_docs(list(keys), "image")
            with collector_paused():
                parsed = {key: self._parse("image", key, doc) for key, doc in docs.items()}
            for key, meta in parsed.items():
                result[keys[key]] = meta
                with self._lock:
                    self._images[keys[key]] = meta
        return result

    async def image(self, node: str) -> ImageMeta:
        """Metadata of one image group."""
        return (await self.images([node]))[node]

    # --------------------------------------------------------------- arrays
    async def arrays(self, nodes: Iterable[str]) -> dict[str, ArrayMeta]:
        """Array metadata (shape, dtype, chunks) for array nodes, missing ones in one round."""
        nodes = list(nodes)
        result: dict[str, ArrayMeta] = {}
        missing: list[str] = []
        with self._lock:
            for node in nodes:
                meta = self._arrays.get(node)
                if meta is None:
                    missing.append(node)
                else:
                    result[node] = meta
        if missing:
            keys = {array_doc_key(self.zarr_format, n): n for n in missing}
            docs = await self._required_docs(list(keys), "array")
            with collector_paused():
                parsed = {key: self._parse("array", key, doc) for key, doc in docs.items()}
            for key, meta in parsed.items():
                result[keys[key]] = meta
                with self._lock:
                    self._arrays[keys[key]] = meta
        return result

    async def array(self, node: str) -> ArrayMeta:
        """Metadata of one array."""
        return (await self.arrays([node]))[node]

    # --------------------------------------------------------------- labels
    async def labels(self, image_node: str) -> LabelsMeta | None:
        """The labels group of an image, or ``None`` when it has none (one lookup)."""
        with self._lock:
            if image_node in self._labels:
                return self._labels[image_node]
        node = join_key(image_node, "labels")
        key = attributes_doc_key(self.zarr_format, node)
        doc = (await self.docs([key]))[key]
        meta: LabelsMeta | None = None
        if doc is not None:
            attributes = parse_group_attributes(self.zarr_format, doc, path=self._where(key))
            meta = parse_labels(attributes, path=self._where(key))
        with self._lock:
            self._labels[image_node] = meta
        return meta

    # ---------------------------------------------------------- invalidation
    def invalidate(self, key: str | None = None) -> None:
        """Forget what the index knows about ``key`` (a written key), or everything."""
        with self._lock:
            self.virtual_root = None
            self.generation += 1
            if key is None:
                for cache in (self._wells, self._images, self._arrays, self._docs, self._labels):
                    cache.clear()
                self.consolidated = None
                self.known_keys = None
                self._opened = False
                return
            self._docs.pop(key, None)
            node, _, name = key.rpartition("/")
            if name in METADATA_NAMES:
                for cache in (self._wells, self._images, self._arrays, self._labels):
                    cache.pop(node, None)
                if node.endswith("/labels") or node == "labels":
                    self._labels.pop(node.rpartition("/")[0], None)
                if node == "":
                    self._opened = False
            if self.consolidated is not None:
                # a write makes consolidated metadata stale: stop trusting it
                self.consolidated = None
            if self.known_keys is not None:
                self.known_keys = None

    def memory_items(self) -> dict[str, int]:
        """How many entries each cache holds (for diagnostics and benchmarks)."""
        with self._lock:
            return {
                "wells": len(self._wells),
                "images": len(self._images),
                "arrays": len(self._arrays),
                "doc_bytes": int(self._docs.currsize),
            }


def _refuse_non_plate(attributes: dict[str, Any], where: str) -> None:
    """A clear error when the root is an OME-Zarr node, but not a plate."""
    ome = attributes.get("ome") if isinstance(attributes.get("ome"), dict) else attributes
    if not isinstance(ome, dict) or "plate" in ome:
        return
    for key, what in (
        ("well", "a well group"),
        ("multiscales", "a single image"),
        ("labels", "a labels group"),
        ("bioformats2raw.layout", "a bioformats2raw collection"),
    ):
        if key in ome:
            raise NotAPlateError(where, f"this is {what}, not an HCS plate (no 'plate' metadata)")


def dumps_doc(doc: dict[str, Any]) -> bytes:
    """Serialise a metadata document the way hcsfs writes them (see encode_document)."""
    from hcsfs.consolidated import encode_document

    return encode_document(doc)


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` awaited at once."""
    semaphore = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))
