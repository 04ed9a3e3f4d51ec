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
#: (well_cache_size, image_cache_size, plate wells, role); None = the hcsfs default.
#: "fit" runs measure the cost per cached well and image; "check" runs test the bound
#: those costs predict from the cache sizes alone (a held-out cache configuration, and
#: the smallest caches on a 4x smaller plate: memory must not follow the plate).
CONFIGS: tuple[tuple[int | None, int | None, int, str], ...] = (
    (50, 4, 1536, "fit"),
    (200, 100, 1536, "fit"),
    (None, None, 1536, "fit"),
    (100, 10, 1536, "check"),
    (50, 4, 384, "check"),
)
QUICK_CONFIGS: tuple[tuple[int | None, int | None, int, str], ...] = (
    (20, 2, 384, "fit"),
    (100, 4, 384, "fit"),
    (None, None, 384, "fit"),
    (50, 3, 384, "check"),
)


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


def walk(wells: int | None, images: int | None, plate_wells: int) -> dict[str, Any]:
    """Build the plate, walk it with the given cache sizes; measurements as a dict."""
    import hcsfs
    from benchmarks import cache_memory

    if plate_wells == 384:  # 16 rows x 24 columns
        cache_memory.ROWS = cache_memory.ROWS[:16]
        cache_memory.COLUMNS = cache_memory.COLUMNS[:24]
    elif plate_wells != 1536:
        raise ValueError(f"plate of {plate_wells} wells: 384 or 1536")
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
    """B6: every configuration in its own interpreter, the costs and the bound checks."""
    runs = []
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for wells, images, plate_wells, role in QUICK_CONFIGS if quick else CONFIGS:
        args = [sys.executable, str(Path(__file__).resolve()), str(wells), str(images)]
        args.append(str(plate_wells))
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        if done.returncode != 0:
            runs.append({"well_cache_size": wells, "role": role, "error": done.stderr[-500:]})
            continue
        runs.append({**json.loads(done.stdout.strip().splitlines()[-1]), "role": role})
        log(f"B6 {json.dumps(runs[-1])}")
    return {"runs": runs, **analyse(runs)}


def _capacity(run: dict[str, Any]) -> tuple[int, int]:
    """(wells, images) the caches can hold on this plate: the bound's inputs."""
    wells = min(run["well_cache_size"], run["wells"])
    images = min(run["well_cache_size"] * run["image_cache_size"], run["fields"])
    return wells, images


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Cost per cached well and image from the "fit" runs; the bound tested on the rest.

    The fit solves ``growth - document cache = base + a * wells + b * images`` over
    the fit runs (cached counts as measured). Each "check" run's bound is predicted
    from its cache sizes and the plate size only (``min(capacity, plate)``, plus the
    document cache, itself bounded at 64 MiB); it holds when the measured growth is
    within 10 % + 2 MiB of that prediction and no cache holds more than its size.
    """
    good = [r for r in runs if "filled" in r]
    fit = [r for r in good if r.get("role", "fit") == "fit"]
    if len(fit) < 3:
        return {}
    import numpy as np

    design = np.array([[1.0, r["filled"]["wells"], r["filled"]["images"]] for r in fit])
    growth = np.array([r["rss_growth_MiB"] - r["filled"]["doc_bytes"] / 2**20 for r in fit])
    base, per_well, per_image = np.linalg.lstsq(design, growth, rcond=None)[0]
    checks = []
    for run in good:
        wells, images = _capacity(run)
        doc_mib = run["filled"]["doc_bytes"] / 2**20
        bound = base + per_well * wells + per_image * images + doc_mib
        f = run["filled"]
        within = (
            f["wells"] <= run["well_cache_size"]
            and f["images"] <= run["well_cache_size"] * run["image_cache_size"]
            and f["arrays"] <= 2 * run["well_cache_size"] * run["image_cache_size"]
            and f["doc_bytes"] <= 64 * 2**20
        )
        checks.append(
            {
                "well_cache_size": run["well_cache_size"],
                "image_cache_size": run["image_cache_size"],
                "plate_wells": run["wells"],
                "role": run.get("role", "fit"),
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

    print(json.dumps(walk(_arg(sys.argv[1]), _arg(sys.argv[2]), int(sys.argv[3]))))
