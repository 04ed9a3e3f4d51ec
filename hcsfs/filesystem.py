"""HCSFileSystem: the fsspec face (protocol ``hcs``) of a plate, wherever it lives.

Its root is the plate root and its paths are the plate's own keys (``A/1/0/0/zarr.json``).
Groups are listed from the OME metadata, so listing works on targets that cannot
list (plain HTTP); on targets that can, their own listing is merged in so nothing
outside the OME hierarchy (``tables/`` ...) is hidden. Every byte goes through one
:class:`~hcsfs.source.Source`; every metadata answer through one
:class:`~hcsfs.index.PlateIndex`.
"""

from __future__ import annotations

import io
import os
from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import tokenize

from hcsfs.index import DEFAULT_IMAGE_CACHE_SIZE, DEFAULT_WELL_CACHE_SIZE, PlateIndex
from hcsfs.keys import join_key, normalize_key, parent_key
from hcsfs.ozx_source import OzxSource
from hcsfs.resolve import make_source, split_hcs_url
from hcsfs.source import Entry, Source
from hcsfs.tree import PlateTree
from hcsfs.zarrmeta import METADATA_NAMES

__all__ = ["HCSFileSystem"]

READ_MODES = ("r",)
WRITE_MODES = ("r+", "a", "w")


class HCSFileSystem(AsyncFileSystem):
    """An OME-Zarr HCS plate as an fsspec filesystem.

    Parameters
    ----------
    fo
        The plate: a local path, a URL (``s3://bucket/plate.ome.zarr``), a chained URL,
        or an ``.ozx`` archive path/URL.
    target_protocol, target_options
        The filesystem ``fo`` lives on and its options (as fsspec's wrapping
        filesystems take them; set by fsspec itself for ``hcs::s3://...`` URLs).
    fs
        An fsspec filesystem instance to use instead of ``target_protocol``.
    mode
        ``"r"`` (default, read-only) or ``"r+"``/``"a"`` to allow writes.
    well_cache_size, image_cache_size
        Bounds of the parsed-metadata caches (wells; images per well).

    Examples
    --------
    >>> fs = fsspec.filesystem("hcs", fo="/data/plate.ome.zarr")  # doctest: +SKIP
    >>> fs.ls("A/1")  # doctest: +SKIP
    """

    protocol = "hcs"
    root_marker = ""
    async_impl = True

    def __init__(
        self,
        fo: str = "",
        *,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fs: fsspec.AbstractFileSystem | None = None,
        mode: str = "r",
        well_cache_size: int = DEFAULT_WELL_CACHE_SIZE,
        image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in READ_MODES + WRITE_MODES:
            raise ValueError(f"mode must be one of {READ_MODES + WRITE_MODES}, got {mode!r}")
        if not fo and fs is None:
            raise ValueError("HCSFileSystem needs the plate location as fo=...")
        self.fo = split_hcs_url(str(fo))
        self.target_protocol = target_protocol
        self.target_options = dict(target_options or {})
        self.target_fs = fs
        self.mode = mode
        self.well_cache_size = well_cache_size
        self.image_cache_size = image_cache_size
        self._identity = tokenize(
            self.fo, target_protocol, self.target_options, fs, mode, well_cache_size,
            image_cache_size,
        )  # fmt: skip
        self._source: Source | None = None
        self._index: PlateIndex | None = None
        self._tree: PlateTree | None = None

    # -------------------------------------------------------------- plumbing
    def __eq__(self, other: object) -> bool:
        """Equal when they open the same plate the same way (survives pickling)."""
        return isinstance(other, HCSFileSystem) and self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    @property
    def read_only(self) -> bool:
        """True unless the filesystem was opened for writing."""
        return self.mode in READ_MODES

    @property
    def source(self) -> Source:
        """The byte source of the plate (built on first use)."""
        if self._source is None:
            self._source = make_source(
                self.fo,
                target_protocol=self.target_protocol,
                target_options=self.target_options,
                fs=self.target_fs,
                read_only=self.read_only,
                loop=self._loop if self.asynchronous else None,
                asynchronous=self.asynchronous,
            )
        return self._source

    @property
    def index(self) -> PlateIndex:
        """The metadata index of the plate (built on first use)."""
        if self._index is None:
            self._index = PlateIndex(
                self.source,
                well_cache_size=self.well_cache_size,
                image_cache_size=self.image_cache_size,
            )
        return self._index

    @property
    def tree(self) -> PlateTree:
        """The OME node tree over the index."""
        if self._tree is None:
            self._tree = PlateTree(self.index)
        return self._tree

    @property
    def url(self) -> str:
        """Where the plate lives, as a URL or path."""
        return self.source.url

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if "::" in path:
            path = path.split("::", 1)[0]
        if path.startswith("hcs://"):
            path = path[len("hcs://") :]
        elif path.startswith("hcs::"):
            path = ""
        return path.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        # docstring inherited
        return f"hcs://{name}"

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def _key(self, path: str) -> str:
        return normalize_key(self._strip_protocol(path))

    def _check_writable(self, path: str) -> None:
        if self.read_only:
            raise PermissionError(f"{path}: the plate {self.url} is open read-only (mode='r')")

    # -------------------------------------------------------------- listing
    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        key = self._key(path)
        entries = await self._list_entries(key)
        return entries if detail else [e["name"] for e in entries]

    async def _list_entries(self, key: str) -> list[Entry]:
        node = await self.tree.node(key)
        source = self.source
        merged: dict[str, Entry] = {}
        if node is not None and node.kind != "array":
            for child in node.children:
                name = join_key(key, child)
                merged[name] = {"name": name, "type": "directory", "size": 0}
            if node.kind in ("plate", "well", "image", "labels"):
                for doc in self.tree.group_docs(key):
                    size = await self._known_size(doc, allow_request=not source.can_list)
                    if size is not None:
                        merged[doc] = {"name": doc, "type": "file", "size": size}
        elif node is not None and not source.can_list:
            for doc in self.tree.array_docs(key):
                size = await self._known_size(doc, allow_request=True)
                if size is not None:
                    merged[doc] = {"name": doc, "type": "file", "size": size}
        if source.can_list:
            try:
                for entry in await source.ls(key):
                    merged[entry["name"]] = entry
            except FileNotFoundError:
                if node is None and key:
                    raise
        elif node is None:
            raise FileNotFoundError(key)
        if node is None and not merged and key:
            raise FileNotFoundError(key)  # the root always exists: empty storage lists as []
        return sorted(merged.values(), key=lambda e: e["name"])

    async def _known_size(self, key: str, *, allow_request: bool) -> int | None:
        cached = self.index.cached_doc(key)
        if cached is not None:
            return len(cached)
        known = self.index.known_keys
        if known is not None:
            return known.get(key)
        if self.index.consolidated_says_absent(key):
            return None
        if not allow_request:
            return None
        try:
            return await self.source.size(key)
        except FileNotFoundError:
            return None

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        key = self._key(path)
        if key == "" or await self.tree.node(key) is not None:
            return {"name": key, "type": "directory", "size": 0}
        size = await self._known_size(key, allow_request=False)
        if size is not None:
            return {"name": key, "type": "file", "size": size}
        if key.rpartition("/")[2] in METADATA_NAMES and self.index.consolidated_says_absent(key):
            raise FileNotFoundError(key)
        try:
            return {"name": key, "type": "file", "size": await self.source.size(key)}
        except IsADirectoryError:
            return {"name": key, "type": "directory", "size": 0}
        except FileNotFoundError:
            if self.source.can_list:
                try:
                    if await self.source.ls(key):
                        return {"name": key, "type": "directory", "size": 0}
                except FileNotFoundError:
                    pass
            raise FileNotFoundError(key) from None

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        **kwargs: Any,
    ) -> Any:
        key = self._key(path)
        detail = kwargs.pop("detail", False)
        if self.source.can_list:
            files = {e["name"]: dict(e) for e in await self.source.find(key)}
        else:
            files = {}
            async for _, _, found in self._walk(key, detail=True):
                for info in found.values():
                    files[info["name"]] = info
        if not files:
            info = await self._info(key)
            if info["type"] == "file":
                files = {key: info}
        if maxdepth is not None:
            base = len(key.split("/")) if key else 0
            files = {n: i for n, i in files.items() if len(n.split("/")) - base <= maxdepth}
        result: dict[str, dict[str, Any]] = dict(files)
        if withdirs:
            for name in list(files):
                parent = parent_key(name)
                while parent and parent != key and parent.startswith(key):
                    result.setdefault(parent, {"name": parent, "type": "directory", "size": 0})
                    parent = parent_key(parent)
        ordered = dict(sorted(result.items()))
        return ordered if detail else list(ordered)

    # -------------------------------------------------------------- reading
    async def _cat_file(
        self,
        path: str,
        start: int | None = None,
        end: int | None = None,
        exact: bool = True,
        **kwargs: Any,
    ) -> bytes:
        """Bytes of ``path``; ``exact=False`` lets metadata come from consolidated metadata.

        With ``exact=False`` (what the zarr store asks for) a metadata document the
        consolidated metadata holds is served re-encoded from it, with no request: the
        same JSON content, not the same bytes.
        """
        key = self._key(path)
        if start is None and end is None:
            cached = self.index.cached_doc(key)
            if cached is None and not exact:
                cached = self.index.consolidated_doc_bytes(key)
            if cached is not None:
                return cached
        if key.rpartition("/")[2] in METADATA_NAMES and self.index.consolidated_says_absent(key):
            raise FileNotFoundError(key)
        return await self.source.get(key, start, end)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> HCSFile:
        if "r" not in mode:
            self._check_writable(path)
        return HCSFile(self, self._key(path), mode=mode, block_size=block_size or 2**22, **kwargs)

    # -------------------------------------------------------------- writing
    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        key = self._key(path)
        self._check_writable(key)
        if mode == "create" and await self._exists(key):
            raise FileExistsError(key)
        await self.source.put(key, value)
        self._invalidate(key)

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one key to another inside the plate (read, then write)."""
        target = self._key(path2)
        self._check_writable(target)
        await self._pipe_file(target, await self._cat_file(path1))

    async def _put_file(
        self, lpath: str, rpath: str, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        """Upload a local file to a key of the plate."""
        target = self._key(rpath)
        self._check_writable(target)
        if os.path.isdir(lpath):
            return  # directories are implied by the keys below them
        with open(lpath, "rb") as handle:
            data = handle.read()
        await self._pipe_file(target, data, mode=mode)

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        """Download a key of the plate to a local file."""
        key = self._key(rpath)
        if (await self._info(key))["type"] == "directory":
            os.makedirs(lpath, exist_ok=True)
            return
        data = await self._cat_file(key)
        parent = os.path.dirname(lpath)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(lpath, "wb") as handle:
            handle.write(data)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        key = self._key(path)
        self._check_writable(key)
        await self.source.delete(key)
        self._invalidate(key)

    async def _rm(
        self, path: Any, recursive: bool = False, batch_size: int | None = None, **kwargs: Any
    ) -> None:
        paths = path if isinstance(path, list) else [path]
        for one in paths:
            self._check_writable(self._key(one))
        expanded = await self._expand_path(path, recursive=recursive)
        for one in expanded:
            info = await self._info(one)
            if info["type"] == "file":
                await self._rm_file(one)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._check_writable(self._key(path))

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._check_writable(self._key(path))

    def _invalidate(self, key: str) -> None:
        """Forget what the index and tree know that a write of ``key`` may change."""
        self.index.invalidate(key)
        if self._tree is not None:
            self._tree.invalidate(key)

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached metadata for ``path`` (or everything).

        Forgetting everything also forgets an archive's directory: it is re-read on
        next use (after the archive was re-packed in place, say).
        """
        if path is not None:
            if self._index is not None:
                self._invalidate(self._key(path))
            return
        if isinstance(self._source, OzxSource):
            self._source = None
            if self._index is not None:
                self._index.source = self.source
        if self._index is not None:
            self._index.invalidate(None)
        if self._tree is not None:
            self._tree.invalidate(None)


class HCSFile(AbstractBufferedFile):
    """A file of the plate: ranged reads through the source; writes land on close."""

    fs: HCSFileSystem

    def __init__(self, fs: HCSFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        self._parts: list[bytes] = []
        super().__init__(fs, path, mode=mode, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start=start, end=end)

    def _initiate_upload(self) -> None:
        self._parts = []

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self.buffer is not None
        self._parts.append(self.buffer.getvalue())
        if final:
            self.fs.pipe_file(self.path, b"".join(self._parts))
            self._parts = []
        return True

    def readable_bytes(self) -> io.BytesIO:
        """The whole file as an in-memory buffer."""
        return io.BytesIO(self.fs.cat_file(self.path))
