"""Markdown tables and the targets check, from the JSON results of one run."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

B1_COLUMNS = (
    "hcsfs",
    "raw",
    "hcsfs-store",
    "zarr",
    "ngio",
    "ngff-zarr",
    "ome-zarr-py",
    "ome-zarr-models",
)
PEERS = ("zarr", "ngio", "ngff-zarr", "ome-zarr-py", "ome-zarr-models")
READ_PEERS = ("zarr", "ngio", "ngff-zarr", "ome-zarr-py")


def _ms(latency: float) -> str:
    return f"{latency * 1000:g} ms"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("wall_s") is None or not row.get("ok"):
        note = row.get("note") or "failed"
        if row.get("wall_s") is not None:
            return f"{note} ({row['wall_s']:.2f} s, {row['total_requests']} req)"
        return note
    req = row["requests"]
    kinds = "/".join(f"{req[k]}{k[0]}" for k in ("GET", "HEAD", "LIST") if req.get(k))
    rounds = f", {row['rounds']} rounds" if row.get("rounds") else ""
    return f"{row['wall_s']:.3f} s · {row['total_requests']} ({kinds}){rounds}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return ""
    return f"{a / b:.2f}"


def _best_peer(rows: dict[str, dict[str, Any]], peers: tuple[str, ...]) -> tuple[str, float] | None:
    done = [(p, rows[p]["wall_s"]) for p in peers if p in rows and rows[p].get("ok")]
    done = [(p, w) for p, w in done if w]
    return min(done, key=lambda pw: pw[1]) if done else None


def _projected_peer(
    b1: dict[tuple[Any, ...], dict[str, dict[str, Any]]], key: tuple[Any, ...]
) -> tuple[str, float] | None:
    """The fastest peer's time for plate ``key``, projected from its per-field rate.

    Peers walk fields one after another, so their time grows with the field count;
    the rate comes from the 96-well plate of the same latency, version and
    consolidation (a capped walk gives it too: its time over the fields it did).
    """
    latency, wells, version, consolidated = key
    rows = b1.get((latency, 96, version, consolidated), {})
    rates = []
    for peer in PEERS:
        row = rows.get(peer) or {}
        if row.get("wall_s") and row.get("fields"):
            rates.append((row["wall_s"] / row["fields"], peer))
    if not rates:
        return None
    rate, peer = min(rates)
    return peer, rate * 2 * wells


def _capped_floor(rows: dict[str, dict[str, Any]], peers: tuple[str, ...]) -> float | None:
    """The shortest time a capped (stopped or killed) peer ran: a lower bound of its time."""
    floors = []
    for peer in peers:
        row = rows.get(peer)
        note = (row or {}).get("note") or ""
        if row is None or row.get("ok") or "cap" not in note:
            continue
        killed = re.search(r"killed at (\d+(?:\.\d+)?) s", note)
        floors.append(row.get("wall_s") or (float(killed.group(1)) if killed else 0.0))
    floors = [f for f in floors if f]
    return min(floors) if floors else None


def _cases(
    rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    cases: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
    for row in rows:
        cases[tuple(row[k] for k in keys)][row["tool"]] = row
    return cases


def table_b1(rows: list[dict[str, Any]]) -> str:
    """B1: one line per plate and latency; a cell per tool."""
    head = [
        "latency",
        "wells",
        "OME",
        "consolidated",
        *B1_COLUMNS,
        "hcsfs/raw",
        "best peer",
        "peer/hcsfs",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, tools in _cases(rows, ("latency", "wells", "version", "consolidated")).items():
        latency, wells, version, consolidated = key
        hcsfs_wall = tools.get("hcsfs", {}).get("wall_s")
        best = _best_peer(tools, PEERS)
        cells = [_ms(latency), str(wells), version, "yes" if consolidated else "no"]
        cells += [_cell(tools.get(t)) for t in B1_COLUMNS]
        cells.append(_ratio(hcsfs_wall, tools.get("raw", {}).get("wall_s")))
        cells += [best[0], _ratio(best[1], hcsfs_wall)] if best else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_b2(rows: list[dict[str, Any]]) -> str:
    """B2: MB/s and requests per tool, with hcsfs / tool."""
    head = ["latency", "read", "tool", "MB/s", "requests", "wall s", "hcsfs/tool (MB/s)", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (latency, scope), tools in _cases(rows, ("latency", "scope")).items():
        mbps = tools.get("hcsfs", {}).get("MBps")
        first = next(iter(tools.values()))
        label = f"{scope} ({first['chunks']} chunks, {first['expected_bytes'] / 2**20:.0f} MiB)"
        for tool, row in tools.items():
            ok = row.get("ok") and row.get("MBps")
            lines.append(
                "| "
                + " | ".join(
                    [
                        _ms(latency),
                        label,
                        tool,
                        str(row.get("MBps", "")) if ok else "",
                        str(row["total_requests"]),
                        f"{row['wall_s']:.3f}" if ok else "",
                        _ratio(mbps, row.get("MBps")) if ok else "",
                        row.get("note", ""),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def table_b3(rows: list[dict[str, Any]]) -> str:
    """B3: open and read a field of an ``.ozx`` on S3."""
    head = [
        "latency",
        "archive",
        "tool",
        "open",
        "read",
        "members read",
        "open+read s",
        "zip-s3/hcsfs",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (latency, archive), tools_rows in _b3_groups(rows).items():
        totals = {t: _b3_total(r) for t, r in tools_rows.items()}
        for tool, ops in tools_rows.items():
            ratio = _ratio(totals.get("zip-s3"), totals.get("hcsfs")) if tool == "hcsfs" else ""
            members = next(iter(ops.values())).get("members_read", "")
            lines.append(
                "| "
                + " | ".join(
                    [
                        _ms(latency),
                        archive,
                        tool,
                        _cell(ops.get("ozx_open")),
                        _cell(ops.get("ozx_read")),
                        str(members),
                        f"{totals[tool]:.3f}" if totals[tool] else "failed",
                        ratio,
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def _b3_groups(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, dict[str, Any]]]:
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in rows:
        groups[(row["latency"], row["archive"])][row["tool"]][row["op"]] = row
    return groups


def _b3_total(ops: dict[str, dict[str, Any]]) -> float | None:
    if not all(op in ops and ops[op].get("ok") for op in ("ozx_open", "ozx_read")):
        return None
    return float(ops["ozx_open"]["wall_s"] + ops["ozx_read"]["wall_s"])


def table_simple(rows: list[dict[str, Any]], reference: str, what: str) -> str:
    """B4/B5: MB/s per tool and its ratio to ``reference``."""
    ref = next((r["MBps"] for r in rows if r["tool"] == reference), None)
    head = ["tool", "MB/s", "wall s (median)", f"tool/{reference}", what]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        extra = row.get("fields") or row.get("files")
        lines.append(
            f"| {row['tool']} | {row['MBps']} | {row['wall_s']:.3f} | "
            f"{_ratio(row['MBps'], ref)} | {extra} |"
        )
    return "\n".join(lines)


def table_b6(memory: dict[str, Any]) -> str:
    """B6: one line per cache configuration and plate size."""
    head = [
        "well cache",
        "image cache",
        "plate wells",
        "fields",
        "role",
        "cached wells/images/arrays",
        "doc cache MiB",
        "peak RSS MiB",
        "RSS growth in walk MiB",
        "bound MiB",
        "holds",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    checks = {
        (c["well_cache_size"], c["image_cache_size"], c.get("plate_wells")): c
        for c in memory.get("bound_checks", [])
    }
    for run in memory.get("runs", []):
        if "filled" not in run:
            lines.append(f"| {run.get('well_cache_size')} |" + " |" * (len(head) - 2) + " error |")
            continue
        f = run["filled"]
        check = checks.get((run["well_cache_size"], run["image_cache_size"], run["wells"]), {})
        cells = [
            run["well_cache_size"],
            run["image_cache_size"],
            run["wells"],
            run["fields"],
            run.get("role", ""),
            f"{f['wells']}/{f['images']}/{f['arrays']}",
            round(f["doc_bytes"] / 2**20, 1),
            run["peak_rss_MiB"],
            run["rss_growth_MiB"],
            check.get("bound_MiB", "") if check.get("role") == "check" else "(fit)",
            check.get("holds", "") if check.get("role") == "check" else "",
        ]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------ targets
def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """Every target: what it asks, what was measured, met or not."""
    out: list[dict[str, str]] = []
    b1 = _cases(results.get("b1", []), ("latency", "wells", "version", "consolidated"))

    def add(target: str, measured: list[str], met: bool | None) -> None:
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        out.append({"target": target, "measured": "; ".join(measured), "met": verdict})

    cons = [(k, t) for k, t in b1.items() if k[3] and "hcsfs" in t]
    worst = max((t["hcsfs"]["total_requests"] for _, t in cons), default=None)
    add(
        "B1 consolidated: ≤ 2 requests, any size",
        [f"max {worst} requests over {len(cons)} plates/latencies"],
        worst is not None and worst <= 2,
    )
    measured, met = [], True
    for k, t in cons:
        best = _best_peer(t, PEERS)
        if best and t["hcsfs"].get("wall_s"):
            ratio = best[1] / t["hcsfs"]["wall_s"]
            text = f"{_ms(k[0])} {k[1]}w {k[2]}: {ratio:.1f}x vs {best[0]}"
            raw = t.get("raw", {}).get("wall_s")
            if raw:  # the floor every tool pays: a new S3 client and one GET
                text += (
                    f" (100x would be {best[1] * 10:.1f} ms; a new S3 client and the one "
                    f"raw GET take {raw:.3f} s)"
                )
            measured.append(text)
            met = met and ratio >= 100
    add(
        "B1 consolidated: ≥ 100x less wall time than the best peer",
        measured,
        met if measured else None,
    )

    plain = [(k, t) for k, t in b1.items() if not k[3] and "hcsfs" in t]
    measured, met = [], True
    for k, t in plain:
        h = t["hcsfs"]
        docs = 1 + 5 * k[1]
        gets = h["requests"].get("GET", 0)
        others = h["total_requests"] - gets
        probes = gets - docs
        measured.append(
            f"{_ms(k[0])} {k[1]}w {k[2]}: {gets} GET ({docs} docs"
            f"{f' + {probes} root probes' if probes else ''}), {others} other"
        )
        met = met and others == 0 and (probes == 0 or (k[2] == "0.4" and probes == 2))
    add("B1 plain: one GET per document, no HEAD/LIST/404 (0.4: 2 root probes)", measured, met)
    rounds = [t["hcsfs"].get("rounds") or 0 for _, t in plain]
    add(
        "B1 plain: ≤ 6 rounds",
        [f"max {max(rounds, default=0)} rounds"],
        bool(rounds) and max(rounds) <= 6,
    )
    measured, met = [], True
    for k, t in plain:
        if "raw" in t and t["hcsfs"].get("wall_s") and t["raw"].get("wall_s"):
            ratio = t["hcsfs"]["wall_s"] / t["raw"]["wall_s"]
            measured.append(f"{_ms(k[0])} {k[1]}w {k[2]}: {ratio:.2f}x")
            met = met and ratio <= 1.2
    add("B1 plain: wall ≤ 1.2x the raw limit", measured, met if measured else None)
    measured, met_or_unknown = [], True
    for k, t in plain:
        mine = t["hcsfs"].get("wall_s")
        if k[0] < 0.02 or not mine:
            continue
        best = _best_peer(t, PEERS)
        floor = _capped_floor(t, PEERS)
        projected = _projected_peer(b1, k)
        text = ""
        if best and (floor is None or best[1] <= floor):
            ratio = best[1] / mine
            text = f"{k[1]}w {k[2]}: {ratio:.1f}x vs {best[0]}"
            met_or_unknown = met_or_unknown and ratio >= 5
        elif floor is not None:
            ratio = floor / mine
            text = f"{k[1]}w {k[2]}: ≥ {ratio:.1f}x (every peer hit the {floor:.0f} s cap)"
            if ratio < 5 and not (projected and projected[1] / mine >= 5):
                met_or_unknown = None  # type: ignore[assignment]
        elif projected:
            text = f"{k[1]}w {k[2]}: peers not run"
        if projected:
            peer, seconds = projected
            text += (
                f"; projected {seconds / mine:.0f}x vs {peer} ({seconds:.0f} s at its "
                "per-field rate on 96 wells)"
            )
            if not best and floor is None:
                met_or_unknown = met_or_unknown and seconds / mine >= 5
        if text:
            measured.append(text)
    add(
        "B1 plain: ≥ 5x less wall time than the best peer at 20 ms",
        measured,
        met_or_unknown if measured else None,
    )

    b2 = _cases(results.get("b2", []), ("latency", "scope"))
    measured, met, measured_p, met_p = [], True, [], True
    for (latency, scope), t in b2.items():
        h = t.get("hcsfs", {}).get("MBps")
        r = t.get("raw", {}).get("MBps")
        if h and r:
            measured.append(f"{_ms(latency)} {scope}: {h / r:.2f}x")
            met = met and h / r >= 0.9
        slower = [p for p in READ_PEERS if t.get(p, {}).get("MBps") and h and t[p]["MBps"] > h]
        measured_p.append(
            f"{_ms(latency)} {scope}: "
            + (", ".join(f"{p} {t[p]['MBps'] / h:.2f}x hcsfs" for p in slower) or "none faster")
        )
        met_p = met_p and not slower
    add("B2 read: ≥ 0.9x raw MB/s", measured, met if measured else None)
    add("B2 read: not slower than any peer", measured_p, met_p if measured_p else None)

    groups = _b3_groups(results.get("b3", []))
    m_open, ok_open, m_read, ok_read, m_wall, ok_wall = [], True, [], True, [], True
    for (latency, archive), tools in groups.items():
        h = tools.get("hcsfs", {})
        if "ozx_open" in h:
            n = h["ozx_open"]["total_requests"]
            m_open.append(f"{_ms(latency)} {archive}: {n}")
            ok_open = ok_open and n <= 3
        if "ozx_read" in h:
            n, members = h["ozx_read"]["total_requests"], h["ozx_read"].get("members_read")
            m_read.append(f"{_ms(latency)} {archive}: {n} GET / {members} members")
            ok_read = ok_read and n <= (members or 0)  # neighbours may share a GET
        a, b = _b3_total(h), _b3_total(tools.get("zip-s3", {}))
        if a and b:
            m_wall.append(f"{_ms(latency)} {archive}: {b / a:.1f}x")
            ok_wall = ok_wall and b / a >= 5
    add("B3 .ozx on S3: open ≤ 3 GETs", m_open, ok_open if m_open else None)
    add("B3 .ozx on S3: ≤ 1 GET per member read", m_read, ok_read if m_read else None)
    add("B3 .ozx on S3: ≥ 5x less wall time than zip::s3://", m_wall, ok_wall if m_wall else None)

    for key, name, ref, goal in (
        ("b4", "B4 local .ozx: ≥ 0.9x raw", "raw", 0.9),
        ("b5", "B5 pack: ≥ 0.8x raw copy", "raw copy", 0.8),
    ):
        rows = {r["tool"]: r for r in results.get(key, [])}
        if "hcsfs" in rows and ref in rows:
            ratio = rows["hcsfs"]["MBps"] / rows[ref]["MBps"]
            add(
                name,
                [f"{ratio:.2f}x ({rows['hcsfs']['MBps']} vs {rows[ref]['MBps']} MB/s)"],
                ratio >= goal,
            )
    memory = results.get("b6", {})
    checks = [c for c in memory.get("bound_checks", []) if c.get("role") == "check"]
    if checks:
        add(
            "B6 memory bounded by cache sizes",
            [
                f"{memory.get('MiB_per_cached_well')} MiB per cached well, "
                f"{memory.get('MiB_per_cached_image')} MiB per cached image (with its array), "
                f"{memory.get('base_MiB')} MiB base (fitted on 3 cache configurations)"
            ]
            + [
                f"held-out caches {c['well_cache_size']}/{c['image_cache_size']} on "
                f"{c['plate_wells']} wells: grew {c['rss_growth_MiB']} MiB, bound from the "
                f"cache sizes {c['bound_MiB']} MiB"
                for c in checks
            ],
            all(c["holds"] for c in checks),
        )
    return out


def table_targets(rows: list[dict[str, str]]) -> str:
    """The targets table."""
    lines = ["| target | measured | met? |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['met']} |" for r in rows]
    return "\n".join(lines)


def machine_table(machine: dict[str, Any]) -> str:
    """The machine and run settings."""
    lines = ["| | |", "|---|---|"]
    for key, value in machine.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The whole results.md."""
    parts = [
        "# hcsfs benchmark results",
        "",
        machine_table(results["machine"]),
        "",
        "## Targets",
        "",
        table_targets(results["targets"]),
    ]
    sections = [
        ("B1 open: plate + every well, field and level-0 shape/dtype", "b1", table_b1),
        ("B2 read: one whole field and one whole well (level 0)", "b2", table_b2),
        ("B3 .ozx on S3: open, then read one field", "b3", table_b3),
    ]
    for title, key, fn in sections:
        if results.get(key):
            parts += ["", f"## {title}", "", fn(results[key])]
    if results.get("b4"):
        parts += [
            "",
            "## B4 local .ozx: read every level-0 field",
            "",
            table_simple(results["b4"], "raw", "fields"),
        ]
    if results.get("b5"):
        parts += [
            "",
            "## B5 pack: directory to .ozx",
            "",
            table_simple(results["b5"], "raw copy", "files"),
        ]
    if results.get("b6"):
        parts += ["", "## B6 memory: walk every well of the plate", "", table_b6(results["b6"])]
    return "\n".join(parts) + "\n"
