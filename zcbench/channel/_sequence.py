"""Sequence numbers: each side checks that batches arrive in order, with no gap and no replay."""

from __future__ import annotations

from zcbench.channel._frames import FrameError

__all__ = ["SequenceGuard"]


class SequenceGuard:
    """Accepts ``0, 1, 2, ...`` in order; anything else is refused with a non-fatal FrameError.

    A refused number does not advance the guard, so the sender can resend the right one.
    """

    def __init__(self, start: int = 0) -> None:
        self.next = start

    def check(self, seq: int) -> None:
        """Raise naming a gap or a replay unless ``seq`` is the next one; never advances."""
        if seq == self.next:
            return
        kind = "replay" if seq < self.next else "gap"
        raise FrameError(f"sequence {kind}: got {seq}, expected {self.next}", code=f"seq_{kind}")

    def accept(self, seq: int) -> None:
        """:meth:`check`, then advance: call once the item is fully processed."""
        self.check(seq)
        self.next += 1
