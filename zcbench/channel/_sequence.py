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

    def accept(self, seq: int) -> None:
        """Accept ``seq`` if it is the next one; raise naming a gap or a replay otherwise."""
        if seq == self.next:
            self.next += 1
            return
        kind = "replay" if seq < self.next else "gap"
        raise FrameError(f"sequence {kind}: got {seq}, expected {self.next}", code=f"seq_{kind}")
