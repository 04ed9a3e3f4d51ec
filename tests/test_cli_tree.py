"""``hcsfs tree`` and ``hcsfs serve`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner

from hcsfs.cli import main


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def body(output: str) -> list[str]:
    """The tree without its first line (the plate's location)."""
    return output.splitlines()[1:]


def test_tree_is_the_same_for_a_directory_and_an_archive(plate_factory: Any) -> None:
    directory = run("tree", plate_factory("dir", "0.5").url)
    archive = run("tree", plate_factory("ozx", "0.5").url)
    assert directory.exit_code == archive.exit_code == 0, directory.output + archive.output
    assert body(directory.output) == body(archive.output)
    lines = body(directory.output)
    assert lines[0] == "├── A/  row"
    assert "│   ├── 1/  well" in lines
    assert "│   │   ├── 0/  field" in lines
    assert "│   │   │   └── labels/  labels" in lines
    assert "│   │   │       └── cells/  label image" in lines
    assert "└── B/  row" in lines
    assert not any("zarr.json" in line or "/c/" in line for line in lines)  # no chunks
    assert lines[-1] == "2 rows, 3 wells, 6 fields, 1 labels group, 1 label image, 14 arrays"


def test_tree_of_a_zarr_v2_plate_matches_its_v3_archive(plate_factory: Any) -> None:
    v2 = run("tree", plate_factory("dir", "0.4").url)
    v3 = run("tree", plate_factory("ozx", "0.4").url)  # packed to 0.5
    assert v2.exit_code == 0 and body(v2.output) == body(v3.output)


def test_tree_of_a_node_with_depth_and_arrays(plate_factory: Any) -> None:
    url = plate_factory("dir", "0.5").url
    result = run("tree", url, "A/1", "--depth", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{url}/A/1  well"
    assert body(result.output) == ["├── 0/  field", "└── 1/  field", "", "2 fields"]
    arrays = run("tree", url, "B/3/1", "--arrays")
    assert "├── 0  array · 9 keys," in arrays.output  # zarr.json + 2 channels x 2 x 2 chunks
    assert "└── 1  array · 3 keys," in arrays.output  # zarr.json + 2 channels x 1 chunk
    assert "in arrays" in arrays.output.splitlines()[-1]
    array = run("tree", url, "B/3/1/0")  # an array by name: described, not listed
    assert array.output.splitlines()[0].startswith(f"{url}/B/3/1/0  array · 9 keys, ")


def test_tree_json(plate_factory: Any) -> None:
    plate_on = plate_factory("ozx_s3", "0.5")
    opts = plate_on.storage_options
    result = run(
        "tree", plate_on.url, "--json", "--arrays",
        "--endpoint-url", opts["endpoint_url"],
        "-o", f"key={opts['key']}", "-o", f"secret={opts['secret']}",
        "-o", "client_kwargs=" + json.dumps(opts["client_kwargs"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tree = json.loads(result.output)
    assert tree["url"] == plate_on.url and tree["kind"] == "plate"
    assert [row["name"] for row in tree["children"]] == ["A", "B"]
    well = tree["children"][1]["children"][0]
    assert (well["key"], well["kind"]) == ("B/3", "well")
    level = well["children"][1]["children"][0]
    assert level["key"] == "B/3/1/0" and level["kind"] == "array"
    assert level["keys"] > 1 and level["bytes"] > 0


def test_tree_of_a_missing_node_is_a_one_line_error(plate_factory: Any) -> None:
    result = CliRunner().invoke(main, ["tree", plate_factory("dir", "0.5").url, "Z/9"])
    assert result.exit_code == 1
    assert result.output.startswith("hcsfs: error: FileNotFoundError")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["serve", "tree"])
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_serve_prints_its_url_serves_logs_and_stops_on_sigterm(plate_factory: Any) -> None:
    url = plate_factory("ozx", "0.5").url
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hcsfs.cli", "serve", url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"serving {url} at http://127.0.0.1:"), line
        base = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(base + "zarr.json", timeout=10) as response:
            assert "consolidated_metadata" in json.loads(response.read())
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert '"GET /zarr.json HTTP/1.1" 200' in err
    assert "stopped" in err
