"""How much memory the metadata caches take on a 1536-well plate (issue: bounded caches).

Builds a 1536-well x 4-field OME-Zarr 0.5 plate's metadata documents in fsspec's
memory filesystem (metadata only: the walk never reads chunks), walks every well,
field and level-0 array through ``open_plate``, and reports the Python heap held by
the plate (tracemalloc) with the default and with small caches.

Run: ``python benchmarks/cache_memory.py``
"""

from __future__ import annotations

import gc
import json
import string
import tracemalloc
from typing import Any

import fsspec

import hcsfs

ROWS = [*string.ascii_uppercase, "AA", "AB", "AC", "AD", "AE", "AF"]  # 32 rows
COLUMNS = [str(c) for c in range(1, 49)]  # 48 columns -> 1536 wells
FIELDS = 4


def _doc(attributes: dict[str, Any]) -> bytes:
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}).encode()


def build(root: str) -> str:
    """Write the metadata documents of the plate to ``memory://root``."""
    mem = fsspec.filesystem("memory")
    wells = [
        {"path": f"{r}/{c}", "rowIndex": i, "columnIndex": j}
        for i, r in enumerate(ROWS)
        for j, c in enumerate(COLUMNS)
    ]
    plate = {
        "name": "big",
        "rows": [{"name": r} for r in ROWS],
        "columns": [{"name": c} for c in COLUMNS],
        "wells": wells,
        "field_count": FIELDS,
    }
    mem.pipe_file(f"{root}/zarr.json", _doc({"ome": {"version": "0.5", "plate": plate}}))
    axes = [
        {"name": n, "type": t}
        for n, t in zip("czyx", ["channel", "space", "space", "space"], strict=True)
    ]
    array = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [4, 10, 2048, 2048],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1, 1024, 1024]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    }
    for well in wells:
        images = [{"path": str(f), "acquisition": 0} for f in range(FIELDS)]
        mem.pipe_file(
            f"{root}/{well['path']}/zarr.json",
            _doc({"ome": {"version": "0.5", "well": {"images": images}}}),
        )
        for f in range(FIELDS):
            datasets = [
                {
                    "path": str(level),
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1, 1, 2.0**level, 2.0**level]}
                    ],
                }
                for level in range(3)
            ]
            ms = {
                "multiscales": [{"axes": axes, "datasets": datasets}],
                "omero": {"channels": [{"label": f"ch{c}", "color": "FFFFFF"} for c in range(4)]},
            }
            mem.pipe_file(
                f"{root}/{well['path']}/{f}/zarr.json", _doc({"ome": {"version": "0.5", **ms}})
            )
            mem.pipe_file(f"{root}/{well['path']}/{f}/0/zarr.json", json.dumps(array).encode())
    return f"memory://{root}"


def measure(url: str, **cache: int) -> dict[str, Any]:
    """Walk the plate; return peak and retained heap (MiB) and the cache fill."""
    gc.collect()
    tracemalloc.start()
    plate = hcsfs.open_plate(url, **cache)
    count = 0
    for _, well in plate.wells.items():
        for _, image in well.images.items():
            image.shape(0)
            count += 1
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "caches": cache or "default",
        "fields": count,
        "retained_MiB": round(retained / 2**20, 1),
        "peak_MiB": round(peak / 2**20, 1),
        "filled": plate.index.memory_items(),
    }


def main() -> None:
    url = build("/bench/plate-1536.ome.zarr")
    for cache in ({}, {"well_cache_size": 50, "image_cache_size": 4}):
        print(json.dumps(measure(url, **cache)))


if __name__ == "__main__":
    main()
