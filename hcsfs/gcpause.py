"""Pause Python's cyclic garbage collector while many long-lived objects are built.

Parsing a large plate's metadata (a consolidated root of several MB, thousands of
node documents) allocates hundreds of thousands of objects that all stay alive. Each
allocation burst makes the collector traverse the whole, growing heap again, for
nothing: nothing built here forms cycles. On a 1536-well plate that traversal was
half the walk (0.52 s -> 0.27 s without it). Reference counting still frees
everything as usual while the collector is paused.

Nested and concurrent pauses are counted; the collector comes back (if it was on)
when the last one ends. Hand-written: the standard library has no such guard.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Within the block the cyclic collector does not run."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
