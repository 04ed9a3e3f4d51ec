"""Resolution pyramids: level shapes, chunking per level and 2x downsampling in y and x.

Each level halves y and x (rounding up, so an odd edge pixel is kept) and leaves the
other axes alone. ``"stride"`` keeps every second pixel (pixel ``2i`` of the level
above); ``"mean"`` averages each 2x2 block (an odd edge is averaged with itself),
rounding to the nearest integer for integer types and ``>= 0.5`` for booleans.

Coordinate transformations follow from that, with OME-Zarr's convention that a
pixel's coordinate is its centre. With level-0 scale ``s`` and translation ``t`` on an
axis, level ``k`` (factor ``f = 2**k``) has scale ``s * f`` and translation ``t`` for
``"stride"`` (level pixel ``i`` *is* level-0 pixel ``f*i``) and
``t + s * (f - 1) / 2`` for ``"mean"`` (level pixel ``i`` is the centre of level-0
pixels ``f*i .. f*i + f - 1``). This is what ngff-zarr and the spec's examples do.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import dask.array as da
import numpy as np

__all__ = [
    "DOWNSAMPLE_METHODS",
    "downsample",
    "level_chunks",
    "level_shapes",
    "level_transform",
]

DOWNSAMPLE_METHODS = ("mean", "stride")


def level_shapes(shape: Sequence[int], yx: Sequence[int], levels: int) -> list[tuple[int, ...]]:
    """Shapes of ``levels`` levels, halving (rounding up) the axes ``yx`` per level."""
    shapes = [tuple(int(n) for n in shape)]
    for _ in range(1, levels):
        prev = shapes[-1]
        shapes.append(tuple(math.ceil(n / 2) if i in yx else n for i, n in enumerate(prev)))
    return shapes


def level_chunks(
    shape: Sequence[int], chunks: Sequence[int], shards: Sequence[int] | None
) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Chunks (and shards) for a level of ``shape``: clipped to it, shards kept whole chunks."""
    inner = tuple(max(1, min(c, n)) for c, n in zip(chunks, shape, strict=True))
    if shards is None:
        return inner, None
    outer = tuple(
        min(s, math.ceil(n / c) * c) for s, n, c in zip(shards, shape, inner, strict=True)
    )
    return inner, outer


def level_transform(
    scale: Sequence[float],
    translation: Sequence[float] | None,
    yx: Sequence[int],
    level: int,
    method: str,
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """Scale and translation of ``level`` (see the module docstring for the convention)."""
    factor = 2**level
    new_scale = tuple(float(s) * factor if i in yx else float(s) for i, s in enumerate(scale))
    if translation is None and (method == "stride" or level == 0):
        return new_scale, None
    base = tuple(float(t) for t in translation) if translation is not None else (0.0,) * len(scale)
    if method == "stride":
        return new_scale, base
    shifted = tuple(
        t + float(s) * (factor - 1) / 2 if i in yx else t
        for i, (t, s) in enumerate(zip(base, scale, strict=True))
    )
    return new_scale, shifted


def _mean_block(block: np.ndarray, yx: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    shape: list[int] = []
    axes: list[int] = []
    for i, n in enumerate(block.shape):
        if i in yx:
            shape += [n // 2, 2]
            axes.append(len(shape) - 1)
        else:
            shape.append(n)
    mean = block.reshape(shape).mean(axis=tuple(axes), dtype=np.float64)
    if dtype == np.bool_:
        return mean >= 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(dtype)
    return mean.astype(dtype)


def downsample(
    array: da.Array, yx: Sequence[int], method: str, out_chunks: Sequence[int]
) -> da.Array:
    """``array`` halved in the axes ``yx`` by ``method``, chunked as ``out_chunks``.

    Lazy and block-wise: each output block needs only the input blocks under it, so a
    level streams chunk by chunk like its source.
    """
    yx = tuple(yx)
    if method == "stride":
        index = tuple(slice(None, None, 2) if i in yx else slice(None) for i in range(array.ndim))
        return array[index].rechunk(tuple(out_chunks))
    if method != "mean":
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_METHODS}, got {method!r}")
    pad = [(0, array.shape[i] % 2) if i in yx else (0, 0) for i in range(array.ndim)]
    if any(after for _, after in pad):
        array = da.pad(array, pad, mode="edge")
    in_chunks = tuple(2 * c if i in yx else c for i, c in enumerate(out_chunks))
    array = array.rechunk(in_chunks)
    out_block_chunks = tuple(
        tuple(n // 2 for n in dim) if i in yx else dim for i, dim in enumerate(array.chunks)
    )
    dtype = array.dtype
    return da.map_blocks(
        functools.partial(_mean_block, yx=yx, dtype=dtype),
        array,
        dtype=dtype,
        chunks=out_block_chunks,
        meta=np.empty((0,) * array.ndim, dtype),
    )
