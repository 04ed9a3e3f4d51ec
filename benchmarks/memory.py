"""B6 memory: peak and current RSS walking a 1536-well x 4-field plate.

Each configuration runs in a fresh interpreter (``python benchmarks/memory.py WELLS
IMAGES``) so RSS peaks do not mix. The plate's metadata documents are built in
fsspec's memory filesystem by :func:`benchmarks.cache_memory.build` (metadata only:
the walk never reads chunks); the walk touches every well, field and level-0 array
through ``open_plate``. Reported: peak RSS (``VmHWM``, else ``ru_maxrss``) before and
after the walk, the growth of the current RSS over the walk (``/proc/self/statm``,
after ``gc.collect()``) and what the caches hold. tracemalloc is not used: it slows
the default-cache walk of this plate to minutes.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
#: (well_cache_size, image_cache_size); None means the hcsfs defaults.
CONFIGS: tuple[tuple[int | None, int | None], ...] = ((50, 4), (200, 100), (None, None))


def _maxrss_mib() -> float:
    """Peak RSS of this process: ``VmHWM`` (``ru_maxrss`` keeps the pre-exec peak of a
    child forked from a large parent, so it is only the fallback)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def walk(wells: int | None, images: int | None, quick: bool = False) -> dict[str, Any]:
    """Build the plate, walk it with the given cache sizes; measurements as a dict."""
    import hcsfs
    from benchmarks import cache_memory

    if quick:  # a 384-well plate: 16 rows x 24 columns
        cache_memory.ROWS = cache_memory.ROWS[:16]
        cache_memory.COLUMNS = cache_memory.COLUMNS[:24]
    url = cache_memory.build(f"/bench-{os.getpid()}/plate.ome.zarr")
    cache: dict[str, int] = {}
    if wells is not None:
        cache["well_cache_size"] = wells
    if images is not None:
        cache["image_cache_size"] = images
    gc.collect()
    rss_before = _maxrss_mib()
    current_before = _current_rss_mib()
    plate = hcsfs.open_plate(url, **cache)  # type: ignore[arg-type]
    fields = 0
    for _, well in plate.wells.items():
        for _, image in well.images.items():
            image.shape(0)
            fields += 1
    gc.collect()
    return {
        "well_cache_size": plate.index.well_cache_size,
        "image_cache_size": plate.index.image_cache_size,
        "fields": fields,
        "rss_before_walk_MiB": round(rss_before, 1),
        "peak_rss_MiB": round(_maxrss_mib(), 1),
        "wells": len(plate.wells),
        "rss_growth_MiB": round(_current_rss_mib() - current_before, 1),
        "filled": plate.index.memory_items(),
    }


def bench_memory(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """B6: every configuration in its own interpreter, plus the per-well cost."""
    configs = (CONFIGS[0], CONFIGS[2]) if quick else CONFIGS
    runs = []
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for wells, images in configs:
        args = [sys.executable, str(Path(__file__).resolve()), str(wells), str(images), str(quick)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        if done.returncode != 0:
            runs.append({"well_cache_size": wells, "error": done.stderr[-500:]})
            continue
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        log(f"B6 {json.dumps(runs[-1])}")
    return {"runs": runs, **_per_well(runs)}


def _per_well(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS cost per cached well and per cached image, and the bound check per run.

    Fits ``rss_growth = base + a * wells_cached + b * images_cached`` (exactly, from
    three runs; with two runs, one slope per image). The bound holds when every cache
    holds at most its capacity (wells <= well cache, images <= well cache x image
    cache, arrays <= 2 x that, document bytes <= 64 MiB) and the growth is within
    what the fit predicts for a full cache.
    """
    good = [r for r in runs if "filled" in r]
    if len(good) < 2:
        return {}
    import numpy as np

    wells = np.array([r["filled"]["wells"] for r in good], dtype=float)
    images = np.array([r["filled"]["images"] for r in good], dtype=float)
    growth = np.array([r["rss_growth_MiB"] for r in good], dtype=float)
    if len(good) >= 3:
        design = np.column_stack([np.ones_like(wells), wells, images])
        base, per_well, per_image = np.linalg.lstsq(design, growth, rcond=None)[0]
    else:
        design = np.column_stack([np.ones_like(images), images])
        base, per_image = np.linalg.lstsq(design, growth, rcond=None)[0]
        per_well = 0.0
    checks = []
    for run in good:
        w, i = run["well_cache_size"], run["image_cache_size"]
        f = run["filled"]
        capacity_images = min(w * i, run["fields"])
        bound = base + per_well * min(w, run["wells"]) + per_image * capacity_images
        within = (
            f["wells"] <= w
            and f["images"] <= w * i
            and f["arrays"] <= 2 * w * i
            and f["doc_bytes"] <= 64 * 2**20
        )
        checks.append(
            {
                "well_cache_size": w,
                "image_cache_size": i,
                "wells_cached": f["wells"],
                "images_cached": f["images"],
                "rss_growth_MiB": run["rss_growth_MiB"],
                "bound_MiB": round(float(bound), 1),
                "holds": bool(within and run["rss_growth_MiB"] <= bound * 1.1 + 2.0),
            }
        )
    return {
        "MiB_per_cached_well": round(float(per_well), 4),
        "MiB_per_cached_image": round(float(per_image), 4),
        "base_MiB": round(float(base), 2),
        "bound_checks": checks,
    }


if __name__ == "__main__":

    def _arg(value: str) -> int | None:
        return None if value == "None" else int(value)

    print(json.dumps(walk(_arg(sys.argv[1]), _arg(sys.argv[2]), sys.argv[3:] == ["True"])))
