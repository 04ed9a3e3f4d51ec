"""The benchmark's verdicts: the B6 bound check and the targets table judge correctly.

The benchmark itself takes minutes against a moto server, so it is not run here;
these tests feed its analysis known numbers and check the verdicts it draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.memory import analyse

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "results.json"


def _run(
    wells: int, images: int, plate: int, growth: float, role: str, cached: tuple[int, int]
) -> dict[str, Any]:
    return {
        "well_cache_size": wells,
        "image_cache_size": images,
        "wells": plate,
        "fields": 4 * plate,
        "rss_growth_MiB": growth,
        "role": role,
        "filled": {
            "wells": cached[0],
            "images": cached[1],
            "arrays": cached[1],
            "doc_bytes": 2**20,  # 1 MiB of raw documents in every run
        },
    }


def _synthetic(check_growth: float) -> list[dict[str, Any]]:
    """Runs whose growth is exactly 1 + 1 (docs) + 0.02/well + 0.004/image MiB."""

    def growth(w: int, i: int) -> float:
        return 2.0 + 0.02 * w + 0.004 * i

    return [
        _run(50, 4, 1536, growth(50, 200), "fit", (50, 200)),
        _run(200, 100, 1536, growth(200, 6144), "fit", (200, 6144)),
        _run(1536, 100, 1536, growth(1536, 6144), "fit", (1536, 6144)),
        _run(100, 10, 1536, check_growth, "check", (100, 1000)),
    ]


def test_b6_fit_recovers_the_costs_per_cached_item() -> None:
    result = analyse(_synthetic(check_growth=2.0 + 0.02 * 100 + 0.004 * 1000))
    assert abs(result["MiB_per_cached_well"] - 0.02) < 1e-6
    assert abs(result["MiB_per_cached_image"] - 0.004) < 1e-6
    assert abs(result["base_MiB"] - 1.0) < 1e-6
    check = [c for c in result["bound_checks"] if c["role"] == "check"]
    assert len(check) == 1 and check[0]["holds"] is True
    assert check[0]["bound_MiB"] == 8.0  # 1 + 1 + 0.02*100 + 0.004*1000


def test_b6_growth_beyond_the_cache_bound_fails_the_check() -> None:
    result = analyse(_synthetic(check_growth=30.0))  # far above the 8 MiB bound
    check = [c for c in result["bound_checks"] if c["role"] == "check"]
    assert check[0]["holds"] is False


def test_b6_a_cache_holding_more_than_its_size_fails_the_check() -> None:
    runs = _synthetic(check_growth=8.0)
    runs[-1]["filled"]["wells"] = 150  # a 100-well cache holding 150 wells
    check = [c for c in analyse(runs)["bound_checks"] if c["role"] == "check"]
    assert check[0]["holds"] is False


def test_b6_needs_three_fit_runs() -> None:
    assert analyse(_synthetic(8.0)[1:]) == {}


def test_committed_results_render_every_section_and_target() -> None:
    results = json.loads(RESULTS.read_text())
    rows = report.targets(results)
    names = [r["target"] for r in rows]
    for prefix in ("B1 consolidated", "B1 plain", "B2 read", "B3 .ozx", "B4", "B5", "B6"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert all(r["met"] in ("yes", "**no**", "n/a") for r in rows)
    text = report.render(results)
    for section in ("## B1", "## B2", "## B3", "## B4", "## B5", "## B6"):
        assert section in text
