"""HCSStore against zarr's own store conformance suite (``zarr.testing.store.StoreTests``).

The suite starts from an *empty* store and writes arbitrary keys, so these run
HCSFileSystem as plain storage (no plate): a local directory, fsspec memory and S3
(the session's moto server) read-write, and an ``.ozx`` archive read-only. For the
archive, the suite's own back door (``set``) writes through a read-write HCSStore
into a directory and re-packs that directory into the archive; the tests that write
through the store under test are skipped, each listed in :data:`OZX_WRITE_TESTS`.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import _collect_aiterator
from zarr.testing.store import StoreTests

from hcsfs.filesystem import HCSFileSystem
from hcsfs.ozx import pack_stream
from hcsfs.store import HCSStore

BUCKET = "plates"


class _HCSStoreTests(StoreTests[HCSStore, cpu.Buffer]):
    """What every HCSStore flavour answers the same way."""

    store_cls = HCSStore
    buffer_cls = cpu.Buffer

    def test_store_repr(self, store: HCSStore) -> None:
        assert repr(store).startswith("HCSStore(")
        assert repr(store.fs.url) in repr(store)

    def test_store_supports_writes(self, store: HCSStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: HCSStore) -> None:
        assert store.supports_listing

    async def test_keys_outside_the_store_are_refused(self, store: HCSStore) -> None:
        proto = default_buffer_prototype()
        for key in ("../x", "/etc/passwd", "a/../../x", "a//b", "a\\b"):
            with pytest.raises(ValueError, match=re.escape(repr(key))):
                await store.get(key, prototype=proto)
            with pytest.raises(ValueError, match="not a key inside the store"):
                await store.exists(key)


# ---------------------------------------------------------------- read-write
class TestDirStore(_HCSStoreTests):
    """A local directory (which does not exist until the first write)."""

    @pytest.fixture
    def store_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        fs = HCSFileSystem(fo=str(tmp_path / "store"), mode="r+")
        return {"fs": fs, "path": "", "read_only": False}

    async def set(self, store: HCSStore, key: str, value: Buffer) -> None:
        path = Path(store.fs.fo, *key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value.to_bytes())

    async def get(self, store: HCSStore, key: str) -> Buffer:
        return self.buffer_cls.from_bytes(Path(store.fs.fo, *key.split("/")).read_bytes())


class TestMemoryStore(_HCSStoreTests):
    """fsspec's memory filesystem, under a root of its own per test."""

    @pytest.fixture
    def store_kwargs(self) -> Iterator[dict[str, Any]]:
        root = f"/hcsfs-conformance/{uuid.uuid4().hex}"
        fs = HCSFileSystem(fo=f"memory://{root}", mode="r+")
        yield {"fs": fs, "path": "", "read_only": False}
        memory = fsspec.filesystem("memory")
        if memory.exists(root):
            memory.rm(root, recursive=True)

    @staticmethod
    def _path(store: HCSStore, key: str) -> str:
        return f"{fsspec.filesystem('memory')._strip_protocol(store.fs.fo)}/{key}"

    async def set(self, store: HCSStore, key: str, value: Buffer) -> None:
        fsspec.filesystem("memory").pipe_file(self._path(store, key), value.to_bytes())

    async def get(self, store: HCSStore, key: str) -> Buffer:
        data = fsspec.filesystem("memory").cat_file(self._path(store, key))
        return self.buffer_cls.from_bytes(data)


class TestS3Store(_HCSStoreTests):
    """S3 (the session's moto server), under a prefix of its own per test."""

    @pytest.fixture
    def store_kwargs(self, s3: Any, s3_options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        prefix = f"{BUCKET}/conformance-{uuid.uuid4().hex[:12]}"
        fs = HCSFileSystem(fo=f"s3://{prefix}", target_options=s3_options, mode="r+")
        self.s3 = s3  # the back door: the session's own s3fs, not the store's
        yield {"fs": fs, "path": "", "read_only": False}
        if s3.exists(prefix):
            s3.rm(prefix, recursive=True)

    async def set(self, store: HCSStore, key: str, value: Buffer) -> None:
        await asyncio.to_thread(self.s3.pipe_file, f"{store.fs.fo}/{key}", value.to_bytes())

    async def get(self, store: HCSStore, key: str) -> Buffer:
        data = await asyncio.to_thread(self.s3.cat_file, f"{store.fs.fo}/{key}")
        return self.buffer_cls.from_bytes(data)


# ----------------------------------------------------------------- read-only
#: The suite's tests that write through the store under test, skipped on ``.ozx``
#: (an archive is read-only; a store over it is read-only whatever is asked for).
#: Keys are test names; a parametrised id (``name[param]``) skips that case only.
OZX_WRITE_TESTS: dict[str, str] = {
    "test_store_read_only": "asserts the store is writable; an .ozx store is read-only",
    "test_store_open_read_only[False]": "opens the store writable; .ozx is read-only",
    "test_serializable_store": "writes through the unpickled store",
    "test_with_read_only_store": "writes through with_read_only(False); .ozx is read-only",
    "test_set": "writes through the store",
    "test_set_not_open": "writes through the store",
    "test_set_many": "writes through the store (_set_many)",
    "test_set_if_not_exists": "writes through the store (set_if_not_exists)",
    "test_getsize_prefix": "sets its keys up through the store (_set_many)",
    "test_exists": "sets its key up through the store (set)",
    "test_delete": "deletes through the store",
    "test_delete_dir": "deletes through the store",
    "test_delete_nonexistent_key_does_not_raise": "deletes through the store",
    "test_clear": "deletes through the store (clear)",
    "test_list": "sets its keys up through the store (_set_many)",
    "test_list_prefix": "sets its keys up through the store (_set_many)",
    "test_list_empty_path": "sets its keys up through the store (_set_many)",
    "test_list_dir": "sets its keys up through the store (_set_many)",
    "test_set_sync": "writes through the store (set_sync)",
    "test_delete_sync": "writes and deletes through the store (set_sync, delete_sync)",
    "test_delete_sync_missing": "deletes through the store (delete_sync)",
    # zarr >= 3.2 adds sync/async parity tests, which set their keys through the store:
    "test_sync_async_set_get_parity": "writes through the store (set and set_sync)",
    "test_delete_sync_visible_to_async_get": "writes and deletes through the store",
    "test_get_sync_byte_range_parity": "sets its key up through the store (set)",
}


class TestOzxStore(_HCSStoreTests):
    """A local ``.ozx`` archive, read-only; the back door re-packs it from a directory."""

    @pytest.fixture(autouse=True)
    def _skip_write_tests(self, request: pytest.FixtureRequest) -> None:
        reason = OZX_WRITE_TESTS.get(request.node.name) or OZX_WRITE_TESTS.get(
            request.node.originalname
        )
        if reason is not None:
            pytest.skip(f".ozx is read-only: {reason}")

    @pytest.fixture
    def store_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        archive = tmp_path / "store.ozx"
        _pack_dir(_content_dir(str(archive)), str(archive))
        return {"fs": HCSFileSystem(fo=str(archive)), "path": "", "read_only": True}

    async def set(self, store: HCSStore, key: str, value: Buffer) -> None:
        archive = store.fs.fo
        writer = HCSStore(HCSFileSystem(fo=_content_dir(archive), mode="r+"), read_only=False)
        await writer.set(key, value)
        await asyncio.to_thread(_pack_dir, _content_dir(archive), archive)
        store.fs.invalidate_cache()  # the archive was re-packed in place

    async def get(self, store: HCSStore, key: str) -> Buffer:
        with zipfile.ZipFile(store.fs.fo) as archive:
            return self.buffer_cls.from_bytes(archive.read(key))

    def test_store_is_read_only(self, store: HCSStore) -> None:
        assert store.read_only
        assert store.with_read_only(False).read_only  # cannot be made writable

    async def test_listing_read_only(self, store: HCSStore) -> None:
        """list / list_prefix / list_dir / getsize_prefix / exists over the archive."""
        data = {
            "zarr.json": b"{}",
            "foo/zarr.json": b"bar",
            "foo/c/0": b"\x01\x02",
            "foo/c/1": b"\x03",
            "foo-bar/zarr.json": b"baz",
        }
        for key, value in data.items():
            await self.set(store, key, self.buffer_cls.from_bytes(value))
        assert sorted(await _collect_aiterator(store.list())) == sorted(data)
        assert sorted(await _collect_aiterator(store.list_prefix("foo/"))) == [
            "foo/c/0",
            "foo/c/1",
            "foo/zarr.json",
        ]
        assert sorted(await _collect_aiterator(store.list_prefix("foo"))) == sorted(
            k for k in data if k.startswith("foo")
        )
        assert sorted(await _collect_aiterator(store.list_dir(""))) == [
            "foo",
            "foo-bar",
            "zarr.json",
        ]
        assert sorted(await _collect_aiterator(store.list_dir("foo/"))) == ["c", "zarr.json"]
        assert await store.getsize_prefix("foo") == 6
        assert await store.exists("foo/c/0")
        assert not await store.exists("foo/c")
        assert not await store.exists("foo/c/2")
        assert not await store.is_empty("foo")
        assert await store.is_empty("fo")
        with pytest.raises(ValueError, match="read-only"):
            await store.set("x", self.buffer_cls.from_bytes(b"1"))
        with pytest.raises(ValueError, match="read-only"):
            await store.delete_dir("foo")


def _content_dir(archive: str) -> str:
    """The directory an archive of these tests is packed from."""
    return f"{archive}.content"


def _pack_dir(src: str, archive: str) -> None:
    """Pack every file below ``src`` (any keys, not only a plate) into ``archive``."""
    items: list[tuple[str, bytes]] = []
    for dirpath, _, filenames in os.walk(src):
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            key = os.path.relpath(full, src).replace(os.sep, "/")
            items.append((key, Path(full).read_bytes()))
    items.sort(key=lambda item: (item[0] != "zarr.json", item[0]))
    tmp = f"{archive}.tmp"
    with open(tmp, "wb") as out:
        pack_stream(items, out)
    os.replace(tmp, archive)
