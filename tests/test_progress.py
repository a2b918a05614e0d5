"""zcbench.progress: lines when not on a terminal, nothing for quick work, nothing when off."""

from __future__ import annotations

import io

from zcbench.progress import LineReporter, progress, reporter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_when_not_a_terminal_at_most_one_per_interval() -> None:
    clock, out = Clock(), io.StringIO()
    seen = []
    for item in progress(range(10), desc="verifying log", stream=out, interval=5.0,
                         clock=clock, unit="records"):
        seen.append(item)
        clock.now += 2.0  # each item takes two seconds
    assert seen == list(range(10))
    lines = out.getvalue().splitlines()
    assert lines[0] == "zcbench: verifying log: 3 of 10 records (30%), 6.0 s"
    assert len(lines) == 3 + 1  # at 6, 12 and 18 s (5 s apart at least), then done
    assert lines[-1] == "zcbench: verifying log: done, 10 records in 20.0 s"


def test_quick_work_prints_nothing_and_disabled_prints_nothing() -> None:
    out = io.StringIO()
    assert list(progress([1, 2, 3], desc="quick", stream=out, clock=Clock())) == [1, 2, 3]
    assert out.getvalue() == ""
    assert list(progress(iter([1]), enabled=False)) == [1]
    assert reporter("x", enabled=False).advance() is None


def test_a_reporter_without_a_total_counts() -> None:
    clock, out = Clock(), io.StringIO()
    report = LineReporter("live run", unit="batches", stream=out, interval=1.0, clock=clock)
    clock.now = 1.5
    report.advance(40)
    report.close()
    report.close()  # closing twice says done once
    assert out.getvalue().splitlines() == [
        "zcbench: live run: 40 batches, 1.5 s",
        "zcbench: live run: done, 40 batches in 1.5 s",
    ]
