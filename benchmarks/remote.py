"""B1 open, B2 read and B3 remote ``.ozx``: every tool against the counting S3 server."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hcsfs
from benchmarks.harness import Measurement, Session
from benchmarks.plates import BUCKET, PlateFiles, S3Plate, put_objects, write_local

PEERS = ("zarr", "ngio", "ngff-zarr", "ome-zarr-py", "ome-zarr-models")
READ_PEERS = ("zarr", "ngio", "ngff-zarr", "ome-zarr-py")
#: The data plate's well and fields read in B2/B3.
READ_WELL = "B/2"
READ_FIELDS = ("B/2/0", "B/2/1")


@dataclass
class Config:
    """What one run measures and how long each measurement may take."""

    latencies: list[float]
    sizes: list[int]
    quick: bool = False
    versions: tuple[str, ...] = ("0.5", "0.4")
    peer_sizes: tuple[int, ...] = (96,)
    peer_cap_s: float = 10.0
    hcsfs_cap_s: float = 120.0
    store_walk_max: int = 384
    repeats: int = 3
    repeat_below_s: float = 2.0
    #: The raw limit's s3fs client: as many connections as hcsfs opens (botocore's
    #: default of 10 would serialise reads and flatter hcsfs).
    raw_options: dict[str, Any] = field(
        default_factory=lambda: {"config_kwargs": {"max_pool_connections": 64}}
    )

    def peers_at(self, latency: float, size: int, version: str, consolidated: bool) -> bool:
        """Whether peers run on this plate (they are slow: 96 wells, fewer cases at 20 ms)."""
        if size not in self.peer_sizes:
            return False
        return latency == 0 or version == "0.5"


def measure(
    session: Session,
    tool: str,
    task: dict[str, Any],
    config: Config,
    *,
    cap: float,
    label: str | None = None,
    options: dict[str, Any] | None = None,
) -> Measurement:
    """Run a task; repeat it when quick, and keep the median wall time."""
    if options is not None:
        task = {**task, "options": options}
    grace = 5.0 if tool in PEERS else 30.0
    first = session.run(tool, task, timeout=cap, label=label, grace=grace)
    walls = [first.wall_s] if first.wall_s is not None else []
    if first.ok and first.wall_s is not None and first.wall_s < config.repeat_below_s:
        # sub-second runs are dominated by one-off costs (a new S3 client): more runs
        runs = config.repeats + (2 if first.wall_s < 0.5 and config.repeats > 1 else 0)
        for _ in range(runs - 1):
            again = session.run(tool, task, timeout=cap, label=label, grace=grace)
            if again.ok and again.wall_s is not None:
                walls.append(again.wall_s)
    if len(walls) > 1:
        first.detail["walls_s"] = [round(w, 5) for w in walls]
        first.wall_s = statistics.median(walls)
    return first


def _merged(session: Session, extra: dict[str, Any]) -> dict[str, Any]:
    options = dict(session.options)
    for key, value in extra.items():
        options[key] = {**options.get(key, {}), **value} if isinstance(value, dict) else value
    return options


# ------------------------------------------------------------------------------ B1
def bench_open(
    session: Session,
    config: Config,
    plates: dict[tuple[int, str], S3Plate],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """B1: open a plate and enumerate every well, field and level-0 shape/dtype."""
    rows: list[dict[str, Any]] = []
    raw = _merged(session, config.raw_options)
    for latency in config.latencies:
        session.set_latency(latency)
        for size in config.sizes:
            for version in config.versions:
                plate = plates[(size, version)]
                for consolidated in (False, True):
                    plate.set_consolidated(consolidated)
                    case = {
                        "latency": latency,
                        "wells": size,
                        "version": version,
                        "consolidated": consolidated,
                    }
                    task = {"op": "open", "url": plate.url, "version": version}
                    results = [measure(session, "hcsfs", task, config, cap=config.hcsfs_cap_s)]
                    documents = _documents_fetched(session, plate)
                    raw_task = {"op": "cat", "url": plate.url, "keys": documents}
                    results.append(
                        measure(
                            session, "raw", raw_task, config, cap=config.hcsfs_cap_s, options=raw
                        )
                    )
                    if consolidated or size <= config.store_walk_max:
                        results.append(
                            measure(session, "hcsfs-store", task, config, cap=config.hcsfs_cap_s)
                        )
                    else:
                        results.append(_not_run("hcsfs-store", "open", "not run (time budget)"))
                    for peer in PEERS:
                        if config.peers_at(latency, size, version, consolidated):
                            results.append(
                                measure(session, peer, task, config, cap=config.peer_cap_s)
                            )
                        else:
                            results.append(_not_run(peer, "open", "not run (too slow)"))
                    for m in results:
                        rows.append({**case, **m.as_dict(), "expected_fields": 2 * size})
                    log(_line("B1", case, results))
    return rows


def _documents_fetched(session: Session, plate: S3Plate) -> list[str]:
    """The existing documents hcsfs just fetched (its probes of absent roots excluded)."""
    inside = f"{plate.prefix}/"
    present = dict(plate.plate.files)
    if plate.consolidated:
        present.update(plate.plate.consolidated_root)
    else:
        present.pop(".zmetadata", None)
    keys = []
    for request in session.last_requests:
        if request.kind == "GET" and request.key.startswith(inside):
            key = request.key[len(inside) :]
            if key in present:
                keys.append(key)
    return sorted(set(keys))


def _not_run(tool: str, op: str, note: str) -> Measurement:
    return Measurement(tool, op, False, None, note=note)


def _line(bench: str, case: dict[str, Any], results: list[Measurement]) -> str:
    parts = []
    for m in results:
        if m.wall_s is None:
            continue
        parts.append(f"{m.tool}={m.wall_s:.3f}s/{m.total_requests}r")
    head = " ".join(f"{k}={v}" for k, v in case.items())
    return f"{bench} {head}: " + " ".join(parts)


# ------------------------------------------------------------------------------ B2
def bench_read(
    session: Session, config: Config, plate: S3Plate, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """B2: read one whole field and one whole well (all level-0 chunks)."""
    rows: list[dict[str, Any]] = []
    raw = _merged(session, config.raw_options)
    scopes = {"field": list(READ_FIELDS[:1]), "well": list(READ_FIELDS)}
    for latency in config.latencies:
        session.set_latency(latency)
        for scope, nodes in scopes.items():
            case = {
                "latency": latency,
                "scope": scope,
                "nodes": nodes,
                "version": plate.plate.version,
            }
            keys = [k for node in nodes for k in plate.plate.chunk_keys(f"{node}/0")]
            nbytes = sum(len(plate.plate.files[k]) for k in keys)
            results = []
            raw_task = {"op": "cat", "url": plate.url, "keys": keys, "options": raw}
            session.run("raw", {**raw_task, "op": "prepare"}, timeout=120)
            results.append(measure(session, "raw", raw_task, config, cap=120))
            tools: list[tuple[str, str | None, dict[str, Any] | None]] = [("hcsfs", None, None)]
            tools += [(peer, None, None) for peer in READ_PEERS]
            for tool, label, options in tools:
                read_task = {"url": plate.url, "version": plate.plate.version, "nodes": nodes}
                prep = session.run(
                    tool, {**read_task, "op": "prepare", **_opt(options)}, timeout=120, label=label
                )
                if not prep.ok:
                    results.append(prep)
                    continue
                results.append(
                    measure(
                        session,
                        tool,
                        {**read_task, "op": "read"},
                        config,
                        cap=120,
                        label=label,
                        options=options,
                    )
                )
            for m in results:
                row = {**case, **m.as_dict(), "chunks": len(keys), "expected_bytes": nbytes}
                if m.wall_s:
                    row["MBps"] = round(nbytes / m.wall_s / 1e6, 1)
                rows.append(row)
            log(_line("B2", case, results))
    return rows


def _opt(options: dict[str, Any] | None) -> dict[str, Any]:
    return {} if options is None else {"options": options}


# ------------------------------------------------------------------------------ B3
def upload_ozx(session: Session, plate: PlateFiles, prefix: str) -> str:
    """Pack ``plate`` (0.5) with hcsfs into a local ``.ozx`` and put it on S3; its URL."""
    with tempfile.TemporaryDirectory(prefix="hcsfs-bench-ozx-") as work:
        src = write_local(plate.files, os.path.join(work, "plate.ome.zarr"))
        local = os.path.join(work, "plate.ozx")
        hcsfs.pack(src, local, progress=False)
        with open(local, "rb") as handle:
            put_objects(session.server, prefix, {"plate.ozx": handle.read()})
    return f"s3://{BUCKET}/{prefix}/plate.ozx"


def bench_ozx_remote(
    session: Session,
    config: Config,
    archives: dict[str, tuple[str, PlateFiles]],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """B3: open a ``.ozx`` on S3 and read one field: hcsfs vs zarr over ``zip::s3://``."""
    rows: list[dict[str, Any]] = []
    for latency in config.latencies:
        session.set_latency(latency)
        for name, (url, plate) in archives.items():
            node = READ_FIELDS[0] if plate.data else "A/1/0"
            members = len(plate.chunk_keys(f"{node}/0"))
            case = {"latency": latency, "archive": name, "node": node, "members_read": members}
            results = []
            for tool in ("hcsfs", "zip-s3"):
                results += _open_and_read(session, tool, url, node, config.repeats)
            for m in results:
                rows.append({**case, **m.as_dict()})
            log(_line("B3", case, results))
    return rows


def _open_and_read(
    session: Session, tool: str, url: str, node: str, repeats: int
) -> list[Measurement]:
    """Open the archive and read the field ``repeats`` times; the median run's pair.

    The read needs the open before it, so the two are repeated together and the
    pair whose open + read time is the median is kept (with its request counts).
    """
    pairs: list[list[Measurement]] = []
    for _ in range(max(1, repeats)):
        opened = session.run(tool, {"op": "ozx_open", "url": url, "node": node}, timeout=120)
        pair = [opened]
        if opened.ok:
            pair.append(session.run(tool, {"op": "ozx_read", "url": url}, timeout=120))
        if not all(m.ok for m in pair):
            return pair
        pairs.append(pair)
    pairs.sort(key=lambda pair: sum(m.wall_s or 0.0 for m in pair))
    chosen = pairs[len(pairs) // 2]
    for m in chosen:
        m.detail["runs"] = len(pairs)
    return chosen
