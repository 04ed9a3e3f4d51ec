"""The hcsfs command line, run in-process with click's runner."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from click.testing import CliRunner

import hcsfs
from hcsfs.cli import main, storage_options_from

COMMANDS = [
    "info", "ls", "tree", "cat", "pack", "cp", "consolidate", "validate", "mount", "serve", "demo",
]  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def s3_flags(plate_on: Any) -> list[str]:
    if not plate_on.storage_options:
        return []
    opts = plate_on.storage_options
    return [
        "--endpoint-url", opts["endpoint_url"],
        "-o", f"key={opts['key']}",
        "-o", f"secret={opts['secret']}",
        "-o", "client_kwargs=" + json.dumps(opts["client_kwargs"]),
    ]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output or command == "demo"


def test_storage_options_come_from_flags_and_environment() -> None:
    opts = storage_options_from("http://h:1", True, ("max_concurrency=4", 'client_kwargs={"a": 1}'))
    assert opts == {
        "endpoint_url": "http://h:1",
        "anon": True,
        "max_concurrency": 4,
        "client_kwargs": {"a": 1},
    }
    os.environ["AWS_ENDPOINT_URL"] = "http://env:2"
    try:
        assert storage_options_from(None, False, ())["endpoint_url"] == "http://env:2"
    finally:
        del os.environ["AWS_ENDPOINT_URL"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_info_prints_the_same_summary_on_a_directory_and_on_s3(
    plate_factory: Any, version: str
) -> None:
    outputs = []
    for backend in ("dir", "memory", "s3"):
        plate_on = plate_factory(backend, version)
        result = run("info", plate_on.url, "--size", *s3_flags(plate_on))
        assert result.exit_code == 0, result.output
        outputs.append([line for line in result.output.splitlines() if "location" not in line])
    assert outputs[0] == outputs[1] == outputs[2]
    text = "\n".join(outputs[0])
    assert "sample plate" in text
    assert f"OME-Zarr     {version}" in text
    assert "2 rows x 3 columns" in text
    assert "3 present of 3 declared" in text
    assert "1x2x1x64x64 uint16 (tczyx), chunks 1x1x1x32x32" in text
    assert "DAPI, GFP" in text


def test_info_json_is_machine_readable(plate_factory: Any) -> None:
    plate_on = plate_factory("ozx", "0.5")
    result = run("info", plate_on.url, "--json")
    summary = json.loads(result.output)
    assert summary["wells_present"] == 3
    assert summary["image"]["shape"] == [1, 2, 1, 64, 64]
    assert summary["consolidated_metadata"] is True
    assert summary["total_bytes"] > 0


def test_ls_agrees_across_backends(plate_factory: Any) -> None:
    listings = []
    for backend in ("dir", "memory", "s3"):
        plate_on = plate_factory(backend, "0.5")
        result = run("ls", plate_on.url, "A/1", "-l", *s3_flags(plate_on))
        assert result.exit_code == 0, result.output
        listings.append(result.output)
    assert listings[0] == listings[1] == listings[2]
    assert "A/1/zarr.json" in listings[0]
    recursive = json.loads(run("ls", plate_factory("ozx", "0.5").url, "B/3", "-R", "--json").output)
    assert {e["name"] for e in recursive} >= {"B/3/zarr.json", "B/3/1/0/zarr.json"}


def test_cat_writes_the_document_bytes(plate_factory: Any) -> None:
    plate_on = plate_factory("dir", "0.5")
    result = run("cat", plate_on.url, "A/1/zarr.json")
    with open(os.path.join(plate_on.url, "A/1/zarr.json"), "rb") as handle:
        assert result.stdout_bytes == handle.read()


def test_pack_and_cp_from_the_command_line(plate_factory: Any, tmp_path: Any) -> None:
    plate_on = plate_factory("dir", "0.4")
    archive = str(tmp_path / "p.ozx")
    result = run("pack", plate_on.url, archive, "--to-version", "0.5")
    assert result.exit_code == 0 and "OME-Zarr 0.5" in result.output
    copy = str(tmp_path / "copy.ome.zarr")
    result = run("cp", archive, copy)
    assert result.exit_code == 0, result.output
    assert sorted(hcsfs.open_plate(copy).wells) == ["A/1", "A/2", "B/3"]
    refused = CliRunner().invoke(main, ["pack", plate_on.url, str(tmp_path / "q.ozx")])
    assert refused.exit_code == 1
    assert "--to-version 0.5" in refused.output


def test_validate_reports_every_problem_with_its_path(tmp_path: Any, plate_factory: Any) -> None:
    good = run("validate", plate_factory("dir", "0.5").url, "--strict")
    assert good.exit_code == 0 and "valid: 0 errors" in good.output
    broken = tmp_path / "broken.ome.zarr"
    import shutil

    shutil.copytree(plate_factory("dir", "0.5").url, broken)
    shutil.rmtree(broken / "A" / "2")
    doc = json.loads((broken / "B/3/1/zarr.json").read_text())
    doc["attributes"]["ome"]["multiscales"][0]["axes"] = 5
    (broken / "B/3/1/zarr.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["validate", str(broken), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    paths = {issue["path"] for issue in report["issues"] if issue["severity"] == "error"}
    assert "A/2/zarr.json" in paths
    assert "B/3/1/zarr.json" in paths


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Any) -> None:
    result = CliRunner().invoke(main, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("hcsfs: error: FileNotFoundError")
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(main, ["--debug", "info", str(tmp_path / "missing")])
    assert debug.exit_code == 1
    assert isinstance(debug.exception, FileNotFoundError)


def test_usage_errors_exit_with_2() -> None:
    assert CliRunner().invoke(main, ["info"]).exit_code == 2
    assert CliRunner().invoke(main, ["nonsense"]).exit_code == 2


def test_demo_writes_packs_opens_and_summarises(tmp_path: Any) -> None:
    result = run("demo", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "packed it into" in result.output
    assert "3 present of 3 declared" in result.output
    assert "read field A/1/0 level 0: shape (1, 2, 1, 64, 64)" in result.output
    assert (tmp_path / "sample.ozx").exists()


def test_consolidate_writes_metadata_that_readers_then_use(
    plate_factory: Any, tmp_path: Any
) -> None:
    import shutil

    plate_dir = tmp_path / "plate.ome.zarr"
    shutil.copytree(plate_factory("dir", "0.5").url, plate_dir)
    result = run("consolidate", str(plate_dir))
    assert result.exit_code == 0, result.output
    root = json.loads((plate_dir / "zarr.json").read_text())
    assert "B/3/1/0" in root["consolidated_metadata"]["metadata"]
    summary = json.loads(run("info", str(plate_dir), "--json").output)
    assert summary["consolidated_metadata"] is True
