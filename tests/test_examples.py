"""Every script in ``examples/`` runs as a user would run it, and says what it should.

Each example is started as ``python examples/NAME.py`` in a fresh process (so its
``if __name__ == "__main__":`` path, its imports and any worker processes it starts
are exercised) with a timeout; the test asserts exit code 0 and the key lines of its
output. A new example without an entry in :data:`EXPECTED` fails here on purpose.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Check(NamedTuple):
    """What one example must print, what it needs, how long it may take."""

    lines: tuple[str, ...]
    needs: tuple[str, ...] = ()
    timeout: float = 120
    args: tuple[str, ...] = ()  # "{tmp}" is replaced by a per-test temporary directory


EXPECTED: dict[str, Check] = {
    "open_s3_plate.py": Check(
        ("wells        3 present of 3 declared", "pixels match the sample plate"),
        needs=("moto",),
    ),
    "dask_cluster_analysis.py": Check(
        ("a task ships the plate as", "per-well results match numpy"),
        needs=("moto", "distributed"),
        timeout=180,
    ),
    "mount_ozx.py": Check(
        ("matches", "unmounted; mount process exited with 0"),
        needs=("mfusepy",),
    ),
    "open_with_peers.py": Check(
        ("ngio pixels equal: True", "ngff-zarr pixels equal: True"),
        needs=("ngio", "ngff_zarr"),
        timeout=180,
    ),
    "write_parallel_dask.py": Check(
        ("workers wrote 16 fields", "consolidated: True", "pixels equal: True"),
        needs=("distributed",),
        timeout=180,
        args=("{tmp}/dask-example.ome.zarr",),
    ),
}


def _examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_checked() -> None:
    unchecked = sorted(set(_examples()) - set(EXPECTED))
    assert not unchecked, f"add the expected output of {unchecked} to EXPECTED"
    gone = sorted(set(EXPECTED) - set(_examples()))
    assert not gone, f"EXPECTED lists examples that no longer exist: {gone}"


@pytest.mark.parametrize("name", _examples())
def test_example_runs(name: str, tmp_path: Path) -> None:
    if name not in EXPECTED:
        pytest.fail(f"examples/{name} has no entry in EXPECTED")
    lines, modules, timeout, args = EXPECTED[name]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"examples/{name} needs {module!r}, which is not installed")
    if name == "mount_ozx.py":
        from hcsfs.mount import fuse_unavailable_reason

        reason = fuse_unavailable_reason()
        if reason is not None:
            pytest.skip(f"FUSE is not available here: {reason}")
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / name), *(a.format(tmp=tmp_path) for a in args)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail(f"examples/{name} did not finish in {timeout} s; output:\n{text}")
    report = f"examples/{name} exited {done.returncode}\n--- stdout\n{done.stdout}\n"
    report += f"--- stderr (last 3000 chars)\n{done.stderr[-3000:]}"
    assert done.returncode == 0, report
    for line in lines:
        assert line in done.stdout, f"{line!r} missing from the output of\n{report}"
