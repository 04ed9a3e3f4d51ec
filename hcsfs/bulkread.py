"""Read whole selections with every stored chunk they touch in flight at once.

zarr reads an array selection a few chunks at a time (``async.concurrency``, 10 by
default): on object storage a 32-chunk field then costs four round trips where one
would do. :func:`read_selections` fetches every chunk (or shard) the selections touch
at once on the filesystem's loop, and zarr decodes each as it arrives, through a
store that hands zarr the fetched bytes, so decoding, codecs and fill values stay
zarr's. Selections that are not basic (integer/slice) or would hold more than
:data:`MAX_PRELOAD_BYTES` of chunks are read by zarr as usual.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hcsfs.keys import join_key

if TYPE_CHECKING:
    import zarr

    from hcsfs.filesystem import HCSFileSystem

__all__ = ["MAX_PRELOAD_BYTES", "chunk_keys", "read_selections"]

#: Most (decoded) chunk bytes fetched ahead for one call; larger reads go through zarr.
MAX_PRELOAD_BYTES = 1 << 30


def chunk_keys(array: zarr.Array, selection: Any) -> list[str] | None:
    """Storage keys of the chunks (shards, when sharded) a basic selection touches.

    ``None`` when the selection is not made of integers, slices (step >= 1) and at
    most one Ellipsis, or when the chunks would exceed :data:`MAX_PRELOAD_BYTES`.
    """
    bounds = _bounds(selection, array.shape)
    if bounds is None:
        return None
    outer = array.shards or array.chunks
    ranges = []
    for (start, stop), size in zip(bounds, outer, strict=True):
        if stop <= start:
            return []
        ranges.append(range(start // size, (stop - 1) // size + 1))
    count = math.prod(len(r) for r in ranges)
    if count * math.prod(outer) * array.dtype.itemsize > MAX_PRELOAD_BYTES:
        return None
    return [array.metadata.encode_chunk_key(coords) for coords in itertools.product(*ranges)]


def _bounds(selection: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """``[start, stop)`` per axis of a basic selection, or None for any other kind."""
    items = list(selection) if isinstance(selection, tuple) else [selection]
    if sum(item is Ellipsis for item in items) > 1:
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    items += [slice(None)] * (len(shape) - len(items))
    if len(items) != len(shape):
        return None
    bounds = []
    for item, size in zip(items, shape, strict=True):
        if isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step < 1:
                return None
            bounds.append((start, max(start, stop)))
        elif isinstance(item, int | np.integer) and not isinstance(item, bool):
            index = int(item) + size if int(item) < 0 else int(item)
            if not 0 <= index < size:
                return None  # out of bounds: zarr raises its own error
            bounds.append((index, index + 1))
        else:
            return None
    return bounds


def read_selections(
    fs: HCSFileSystem, requests: Sequence[tuple[str, zarr.Array, Any]]
) -> list[np.ndarray]:
    """``array[selection]`` for each ``(node, array, selection)``, chunks fetched together.

    ``node`` is the array's key in the plate; ``array`` is open on an HCSStore there.
    """
    import zarr
    from zarr.core.sync import sync as zarr_sync

    from hcsfs.store import HCSStore

    planned = [(node, array, sel, chunk_keys(array, sel)) for node, array, sel in requests]
    wanted = [join_key(node, key) for node, _, _, keys in planned if keys for key in keys]
    fetched = _start_fetches(fs, wanted)

    async def read_all() -> list[Any]:
        reads = []
        for node, array, selection, keys in planned:
            if keys is None:  # not a basic selection, or too large to hold: zarr reads it
                reads.append(array.async_array.getitem(selection))
                continue
            held = {key: fetched[join_key(node, key)] for key in keys}
            store = HCSStore(fs, node, read_only=True, preloaded=held)
            opened = await zarr.api.asynchronous.open_array(
                store=store, mode="r", zarr_format=array.metadata.zarr_format
            )
            reads.append(opened.getitem(selection))
        return list(await asyncio.gather(*reads))

    return [np.asarray(value) for value in zarr_sync(read_all())]


def _start_fetches(
    fs: HCSFileSystem, keys: list[str]
) -> dict[str, concurrent.futures.Future[bytes | None]]:
    """Start reading every key on the filesystem's loop now; a future per key.

    zarr then decodes each chunk as soon as its bytes are in, while the others are
    still arriving (fetching everything first and decoding after would not overlap).
    """

    async def one(key: str) -> bytes | None:
        try:
            return bytes(await fs._cat_file(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None  # an absent chunk: zarr fills it

    return {key: asyncio.run_coroutine_threadsafe(one(key), fs.loop) for key in keys}
