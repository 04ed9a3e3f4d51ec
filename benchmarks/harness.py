"""Parent side of the measurements: the counting S3 server and one child per tool.

Each tool (hcsfs, the raw limit, every peer) runs in its own child process
(:mod:`benchmarks.peers`), started once and fed one task at a time. Between a task
and its answer only that child talks to the server, so the server's request log
for that window is exactly the task's requests. A child that overruns its task's
time is killed; the task is recorded as not run and the child restarted.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcsfs.testing import CountingS3Server

__all__ = ["Child", "Measurement", "Session"]

PEERS_SCRIPT = Path(__file__).resolve().parent / "peers.py"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    """One task's outcome: the child's answer plus the requests the server saw."""

    tool: str
    op: str
    ok: bool
    wall_s: float | None
    requests: dict[str, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def total_requests(self) -> int:
        """All requests, every kind."""
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tool": self.tool,
            "op": self.op,
            "ok": self.ok,
            "wall_s": None if self.wall_s is None else round(self.wall_s, 5),
            "requests": dict(self.requests),
            "total_requests": self.total_requests,
            "note": self.note,
            **{k: v for k, v in self.detail.items() if k not in ("op", "ok", "wall_s")},
        }


class Child:
    """A running ``peers.py TOOL`` process."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120.0) -> None:
        """Start the child and wait until it has imported its tool."""
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        self.proc = subprocess.Popen(
            [sys.executable, str(PEERS_SCRIPT), self.tool],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
            cwd=REPO,
        )
        ready = self._readline(timeout)
        if ready is None or not json.loads(ready).get("ready"):
            self.stop()
            raise RuntimeError(f"{self.tool}: child did not start")

    def _readline(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([self.proc.stdout], [], [], left)
            if readable:
                line = self.proc.stdout.readline()
                return line or None

    def ask(self, task: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send ``task``; its answer, or None when the child overran ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(task) + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if line is None:
            self.stop()
            return None
        return dict(json.loads(line))

    def stop(self) -> None:
        """Stop the child (kill it if it does not exit)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None


class Session:
    """The server, its options and the tool children of one benchmark run."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = CountingS3Server().start()
        self.children: dict[str, Child] = {}
        self.last_requests: list[Any] = []

    @property
    def options(self) -> dict[str, Any]:
        """s3fs options every tool uses (as a user would pass them)."""
        return self.server.storage_options()

    def set_latency(self, seconds: float) -> None:
        """Per-request latency the server adds from now on."""
        self.server.latency = seconds

    def child(self, tool: str) -> Child:
        """The (started) child of ``tool``."""
        if tool not in self.children:
            self.children[tool] = Child(tool)
        return self.children[tool]

    def run(
        self,
        tool: str,
        task: dict[str, Any],
        *,
        timeout: float,
        label: str | None = None,
        grace: float = 30.0,
    ) -> Measurement:
        """Run ``task`` in ``tool``'s child; count what the server sees meanwhile."""
        child = self.child(tool)
        if child.proc is None:
            child.start()
        task = {"options": self.options, "deadline": timeout, **task}
        self.server.reset_counts()
        answer = child.ask(task, timeout=timeout + grace)
        seen = self.server.snapshot()
        self.last_requests = seen
        requests = dict(Counter(r.kind for r in seen))
        name = label or tool
        if answer is None:
            note = f"killed at {timeout + grace:.0f} s (cap)"
            return Measurement(name, task["op"], False, None, requests, note=note)
        note = ""
        if answer.get("timed_out"):
            note = f"stopped at the {timeout:.0f} s cap after {answer.get('fields', 0)} fields"
        elif answer.get("error"):
            note = str(answer["error"])
        detail = dict(answer)
        detail["ranged_gets"] = sum(1 for r in seen if r.kind == "GET" and r.range)
        detail["distinct_keys"] = len({r.key for r in seen if r.kind == "GET"})
        return Measurement(
            name, task["op"], bool(answer.get("ok")), answer.get("wall_s"), requests, detail, note
        )

    def close(self) -> None:
        """Stop every child and the server."""
        for child in self.children.values():
            child.stop()
        self.server.stop()
