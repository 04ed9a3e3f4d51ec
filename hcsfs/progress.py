"""Progress bars for long work (pack, cp): tqdm on a terminal, silent elsewhere."""

from __future__ import annotations

import sys
from typing import Any, Protocol

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar(Protocol):
    """What hcsfs needs of a progress bar."""

    def update(self, n: int) -> object: ...

    def close(self) -> object: ...


class _Silent:
    def update(self, n: int) -> None:
        """Count nothing."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(total: int, progress: bool | None, desc: str, *, unit: str = "B") -> ProgressBar:
    """A tqdm bar counting ``unit`` (bytes by default), or a silent one.

    ``progress=None`` shows it only when standard error is a terminal.
    """
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return _Silent()
    from tqdm import tqdm

    bar: Any = tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=desc)
    return bar
