"""Fastest way to a plate: hcsfs side by side with the peers and the raw limit.

One command::

    python benchmarks/run.py [--latency 0,0.02] [--sizes 96,384,1536] [--quick]

starts a counting moto S3 server on 127.0.0.1 (:class:`hcsfs.testing.CountingS3Server`,
latency per request configurable), builds the plates (2 fields per well; OME-Zarr
0.4 and 0.5; with and without consolidated metadata; as directories and as
``.ozx`` on S3) and measures:

B1 open     plate + every well, field and level-0 shape/dtype: hcsfs (``open_plate``
            and ``zarr.open_group`` on ``HCSStore``) vs ngio, ngff-zarr, ome-zarr-py,
            ome-zarr-models and zarr on ``FsspecStore``, and the raw limit (s3fs
            ``_cat_file`` of the same documents, all in flight at once).
B2 read     one whole field and one whole well: MB/s and requests, vs the raw limit.
B3 .ozx S3  open + read a field: hcsfs vs zarr over ``zip::s3://``.
B4 .ozx     local read throughput: hcsfs vs zarr ``ZipStore`` vs raw file reads.
B5 pack     directory -> .ozx: ``hcsfs.pack`` vs ngff-zarr vs a raw copy.
B6 memory   RSS walking a 1536-well x 4-field plate, default and small caches.

Every tool runs in its own child process; the server counts each task's requests.
Peers are slow (thousands of requests), so they run on 96 wells only and each
measurement is capped (``--peer-cap``); a capped walk is reported as such.

Results: ``benchmarks/results/results.json`` (every number), ``results.md``
(tables, ratios, targets) and ``docs/benchmarks.md``. ``--quick``: 96 wells, small
data, one repetition, peers capped at 3 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report
from benchmarks.harness import Session
from benchmarks.local import bench_ozx_local, bench_pack
from benchmarks.memory import analyse as _analyse_memory
from benchmarks.memory import bench_memory
from benchmarks.plates import S3Plate, build_plate_files, ensure_bucket, write_local
from benchmarks.remote import (
    Config,
    bench_open,
    bench_ozx_remote,
    bench_read,
    upload_ozx,
)

ALL = {"b1", "b2", "b3", "b4", "b5", "b6"}
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs" / "benchmarks.md"
PACKAGES = (
    "hcsfs",
    "zarr",
    "s3fs",
    "fsspec",
    "moto",
    "ngio",
    "ngff-zarr",
    "ome-zarr",
    "ome-zarr-models",
    "numpy",
)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers were measured on."""
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "memory GiB": round(total_kib / 2**20, 1),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "latencies (s per request)": ", ".join(str(x) for x in args.latency),
        "sizes (wells)": ", ".join(str(x) for x in args.sizes),
        "peer cap (s)": args.peer_cap,
        "packages": versions,
        "server": "moto ThreadedMotoServer behind hcsfs.testing.CountingS3Server, 127.0.0.1",
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", default="0,0.02", help="seconds per request, comma-separated")
    parser.add_argument("--sizes", default=None, help="plate sizes in wells (96,384,1536)")
    parser.add_argument("--quick", action="store_true", help="small sizes, ~2-3 minutes")
    parser.add_argument("--peer-cap", type=float, default=None, help="seconds per peer task")
    parser.add_argument("--only", default=",".join(sorted(ALL)), help="benchmarks to run")
    parser.add_argument("--out", default=str(RESULTS), help="results directory")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument(
        "--render", action="store_true", help="only re-render the tables from results.json"
    )
    args = parser.parse_args(argv)
    args.latency = [float(x) for x in args.latency.split(",")]
    default_sizes = "96" if args.quick else "96,384,1536"
    args.sizes = [int(x) for x in (args.sizes or default_sizes).split(",")]
    if args.peer_cap is None:
        args.peer_cap = 3.0 if args.quick else 10.0
    args.only = set(args.only.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write the results."""
    args = parse(argv)
    if args.render:
        results = json.loads((Path(args.out) / "results.json").read_text())
        if results.get("b6", {}).get("runs"):
            results["b6"].update(_analyse_memory(results["b6"]["runs"]))
        results["targets"] = report.targets(results)
        write(results, Path(args.out), docs=not args.no_docs)
        return 0
    started = time.perf_counter()
    config = Config(
        latencies=args.latency,
        sizes=args.sizes,
        quick=args.quick,
        peer_cap_s=args.peer_cap,
        repeats=1 if args.quick else 3,
    )
    results: dict[str, Any] = {"machine": machine(args)}
    if "b6" in args.only:  # first, while this process is small
        results["b6"] = bench_memory(args.quick, _log)
    work = tempfile.mkdtemp(prefix="hcsfs-bench-")
    data = build_plate_files(6, "0.5", data=True)
    if args.only & {"b1", "b2", "b3"}:
        _run_remote(args, config, results, data)
    repeats = 3
    if "b4" in args.only or "b5" in args.only:
        src = write_local(data.files, os.path.join(work, "data.ome.zarr"))
        if "b4" in args.only:
            archive = os.path.join(work, "data.ozx")
            import hcsfs

            hcsfs.pack(src, archive, progress=False)
            results["b4"] = bench_ozx_local(archive, data, repeats, _log, directory=src)
        if "b5" in args.only:
            results["b5"] = bench_pack(src, work, data, repeats, _log)
    shutil.rmtree(work, ignore_errors=True)
    results["machine"]["run time (s)"] = round(time.perf_counter() - started, 1)
    previous = Path(args.out) / "results.json"
    if args.only != ALL and previous.exists():  # a partial rerun: keep the other benchmarks
        merged = json.loads(previous.read_text())
        merged["machine"].setdefault("reruns", []).append(
            {
                "only": sorted(args.only),
                **{
                    k: v
                    for k, v in results["machine"].items()
                    if k in ("date", "load average at start")
                },
            }
        )
        merged.update({k: v for k, v in results.items() if k != "machine"})
        results = merged
    results["targets"] = report.targets(results)
    write(results, Path(args.out), docs=not args.no_docs)
    _log(f"done in {results['machine']['run time (s)']} s; results in {args.out}")
    return 0


def _run_remote(
    args: argparse.Namespace, config: Config, results: dict[str, Any], data: Any
) -> None:
    """B1-B3: build the plates on the counting S3 server and measure every tool."""
    session = Session()
    try:
        ensure_bucket(session.server)
        _log(f"server at {session.server.endpoint_url}; building plates")
        plates = {}
        for size in args.sizes:
            for version in config.versions:
                files = build_plate_files(size, version)
                plates[(size, version)] = S3Plate.upload(
                    session.server, f"b1/{size}-{version}/plate.ome.zarr", files
                )
        data_plate = S3Plate.upload(session.server, "data/plate.ome.zarr", data)
        _log("plates ready")
        if "b1" in args.only:
            results["b1"] = bench_open(session, config, plates, _log)
        if "b2" in args.only:
            results["b2"] = bench_read(session, config, data_plate, _log)
        if "b3" in args.only:
            archives = {}
            for size in args.sizes:
                url = upload_ozx(session, plates[(size, "0.5")].plate, f"ozx/{size}")
                archives[f"{size} wells, tiny"] = (url, plates[(size, "0.5")].plate)
            url = upload_ozx(session, data, "ozx/data")
            archives["6 wells, 16 MiB fields"] = (url, data)
            results["b3"] = bench_ozx_remote(session, config, archives, _log)
    finally:
        session.close()


def write(results: dict[str, Any], out: Path, *, docs: bool) -> None:
    """results.json, results.md and (unless told not to) docs/benchmarks.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    tables = report.render(results)
    (out / "results.md").write_text(tables)
    if docs:
        intro = (HERE / "docs_intro.md").read_text()
        body = tables.split("\n", 1)[1]  # drop the results.md title
        DOCS.write_text(intro.rstrip() + "\n" + body)


if __name__ == "__main__":
    raise SystemExit(main())
