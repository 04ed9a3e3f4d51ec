"""The documentation: the mkdocs site builds cleanly, the public API is documented,
the runnable examples run, and the CLI reference names exactly the real commands.

Runnable examples: in README.md and docs/quickstart.md, a fenced ``python`` or
``bash`` block directly preceded by the line ``<!-- runnable -->`` is run. The blocks
of one file run in order, in one fresh directory, the Python ones sharing one
namespace, so later blocks may use what earlier ones made. Unmarked blocks (S3
buckets of your own, placeholders) are not run.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hcsfs
from hcsfs.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNNABLE_MARK = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------------ the site builds
def test_mkdocs_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "api" / "index.html").is_file()


# ------------------------------------------------------------------ docstrings
PUBLIC_CLASSES = (hcsfs.Plate, hcsfs.Well, hcsfs.Image, hcsfs.HCSStore, hcsfs.HCSFileSystem)


def _public_api() -> list[tuple[str, Any]]:
    return [(name, getattr(hcsfs, name)) for name in hcsfs.__all__ if name != "__version__"]


def _own_public_members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties defined in ``cls`` itself (not only inherited)."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if (
            isinstance(value, property)
            or callable(value)
            or isinstance(value, (staticmethod, classmethod))
        ):
            members.append((name, value))
    return members


def _doc_of(cls: type, name: str, value: Any) -> str | None:
    """The docstring a reader gets: the member's own, or the overridden base method's."""
    if isinstance(value, property):
        return inspect.getdoc(value)
    return inspect.getdoc(getattr(cls, name))


@pytest.mark.parametrize(("name", "obj"), _public_api(), ids=[n for n, _ in _public_api()])
def test_every_public_name_has_a_docstring(name: str, obj: Any) -> None:
    assert (obj.__doc__ or "").strip(), f"hcsfs.{name} has no docstring"


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=[c.__name__ for c in PUBLIC_CLASSES])
def test_public_methods_of_the_main_classes_have_docstrings(cls: type) -> None:
    missing = [
        f"{cls.__name__}.{name}"
        for name, value in _own_public_members(cls)
        if not (_doc_of(cls, name, value) or "").strip()
    ]
    assert not missing, f"no docstring: {missing}"


def test_version_is_a_string() -> None:
    assert isinstance(hcsfs.__version__, str) and hcsfs.__version__


# ------------------------------------------------------------------ runnable examples
def runnable_blocks(path: Path) -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every block marked runnable in ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        if before.strip() != RUNNABLE_MARK:
            continue
        language = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        assert language in ("python", "bash"), (
            f"{path.name}:{line}: only python and bash blocks can be runnable, got {language!r}"
        )
        blocks.append((language, match.group(2), line))
    marks = text.count(RUNNABLE_MARK)
    assert marks == len(blocks), (
        f"{path.name}: {marks} {RUNNABLE_MARK} marks but {len(blocks)} blocks follow one "
        "directly (the mark must be the line just above the opening ```)"
    )
    return blocks


def _run_blocks(path: Path, where: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(where)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    blocks = runnable_blocks(path)
    for language, code, line in blocks:
        label = f"{path.relative_to(ROOT)}:{line}"
        if language == "python":
            try:
                exec(compile(code, label, "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{label}: the example raised {exc!r}\n{code}") from exc
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                cwd=where,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"{label}: exit {done.returncode}\n{code}\n{done.stderr}"
    return len(blocks)


@pytest.mark.parametrize("document", ["README.md", "docs/quickstart.md"])
def test_runnable_examples_run(
    document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ROOT / document
    count = _run_blocks(path, tmp_path, monkeypatch)
    if document == "docs/quickstart.md":
        assert count >= 5, "the quickstart should keep its runnable walk-through"


# ------------------------------------------------------------------ CLI reference
def documented_commands() -> set[str]:
    """Commands with a section in docs/cli.md (``### name`` under Examples)."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    return set(re.findall(r"^### ([a-z][a-z-]*)\s*$", text, re.MULTILINE))


def test_cli_reference_names_exactly_the_real_commands() -> None:
    real = set(cli_main.commands)
    documented = documented_commands()
    assert documented - real == set(), "docs/cli.md documents commands that do not exist"
    assert real - documented == set(), "commands missing from docs/cli.md"


def test_cli_reference_examples_use_real_commands() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    used = set(re.findall(r"^hcsfs ([a-z][a-z-]*)\b", text, re.MULTILINE))
    assert used, "no examples found in docs/cli.md"
    assert used - set(cli_main.commands) == set()
