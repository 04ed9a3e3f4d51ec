"""Test helpers: an in-memory range fetcher that counts requests."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MemoryFetcher"]


@dataclass
class MemoryFetcher:
    """A :data:`hcsfs.ozx.RangeFetcher` over ``data`` recording every request.

    ``calls`` lists ``(start, end)`` as asked; ``bytes_read`` sums what was returned.
    Out-of-range requests return what exists (possibly nothing), like a lenient server.
    """

    data: bytes
    calls: list[tuple[int, int | None]] = field(default_factory=list)
    bytes_read: int = 0

    async def __call__(self, start: int, end: int | None) -> bytes:
        self.calls.append((start, end))
        if start < 0:
            if end is not None:
                raise ValueError("a suffix request takes no end")
            chunk = self.data[max(len(self.data) + start, 0) :]
        elif end is None:
            chunk = self.data[start:]
        else:
            chunk = self.data[start:end]
        self.bytes_read += len(chunk)
        return chunk

    @property
    def count(self) -> int:
        """Number of requests made so far."""
        return len(self.calls)

    def reset(self) -> None:
        """Forget the recorded requests."""
        self.calls.clear()
        self.bytes_read = 0
