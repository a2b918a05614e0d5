"""LogInspector over an in-memory backend: open, verify, filter, page, export, replay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from zcbench.errors import EnvError, UsageError
from zcbench.widgets.loginspector import (
    AuditLogBackend,
    LogInspector,
    ReplaySummary,
    filter_records,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


@dataclass(frozen=True)
class Report:
    verified: bool = True
    classification: str = "intact"
    entries: int = 61
    checkpoints: int = 30
    first_bad_index: int | None = None
    message: str = "every record is under a signed checkpoint"
    warnings: tuple[str, ...] = ()


def _frame(n: int = 61) -> pl.DataFrame:
    kinds = ["boot"] + ["in" if i % 2 else "out" for i in range(1, n)]
    return pl.DataFrame(
        {
            "index": list(range(n)),
            "kind": kinds,
            "seq": [None] + [(i + 1) // 2 for i in range(1, n)],
            "time_ns": [T0 + i * 1_000_000_000 for i in range(n)],
            "body": [bytes([i % 256]) * 10 for i in range(n)],
            "symbols": [[]] + [["MSFT"] if i % 4 in (1, 2) else ["AAPL"] for i in range(1, n)],
        },
        schema_overrides={"index": pl.UInt64},
    )


@dataclass
class FakeLog:
    report: Report = field(default_factory=Report)
    frame: pl.DataFrame = field(default_factory=_frame)
    exported: list[tuple[int, int]] = field(default_factory=list)
    replay_result: ReplaySummary | None = None

    def verify(self, path: Path, *, on_progress: Callable[[int, int], None]) -> Report:
        for i in range(self.report.entries + 1):
            on_progress(i, self.report.entries)
        return self.report

    def records(self, path: Path) -> pl.DataFrame:
        if path.name == "broken":
            raise EnvError(f"{path} holds no log: expected run/log/ segments")
        return self.frame

    def export(self, path: Path, out_dir: Path, *, start: int, stop: int) -> Path:
        self.exported.append((start, stop))
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"slice-{start}-{stop}.cbor"
        out.write_bytes(b"slice")
        return out

    def replay(self, path: Path, *, start: int, stop: int) -> ReplaySummary:
        if self.replay_result is None:
            raise EnvError("replay is not available in this installation yet")
        return self.replay_result


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    return folder


def test_open_verify_and_page(run_dir: Path) -> None:
    backend = FakeLog()
    panel = LogInspector(backend, path=run_dir, page_size=25)
    assert panel.records is not None
    assert "61 records" in panel.status.value
    assert panel.kind.options == ("(all)", "boot", "in", "out")
    assert "page 1 of 3" in panel.page_label.value
    assert panel.prev_button.disabled
    assert "2026-01-01 00:00:00.000" in panel.table.value
    assert "10 bytes" in panel.table.value
    panel.next_button.click()
    panel.next_button.click()
    panel.next_button.click()  # stays on the last page
    assert "page 3 of 3" in panel.page_label.value
    assert panel.next_button.disabled
    report = panel.verify()
    assert report is not None
    assert panel.progress.value == panel.progress.max == 61
    assert panel.progress.bar_style == "success"
    assert "VERIFIED" in panel.verdict.value
    assert "intact" in panel.verdict.value


def test_filters_by_kind_symbol_and_time(run_dir: Path) -> None:
    panel = LogInspector(FakeLog(), path=run_dir)
    panel.kind.value = "in"
    panel.symbol.value = "MSFT"
    panel.since.value = "2026-01-01T00:00:10Z"
    panel.until.value = "2026-01-01T00:00:30"
    filtered = panel.apply_filters()
    assert filtered is not None
    assert filtered["index"].to_list() == [13, 17, 21, 25, 29]
    assert (panel.start.value, panel.stop.value) == (13, 30)
    assert "5 of 61 records match" in panel.page_label.value
    panel.since.value = "yesterday"
    assert panel.apply_filters() is None
    assert "ISO 8601" in panel.action_status.value
    panel.since.value = ""
    panel.symbol.value = "NONE"
    panel.apply_filters()
    assert "no records match" in panel.table.value


def test_filter_records_refuses_filters_it_cannot_apply() -> None:
    frame = pl.DataFrame({"index": [0, 1], "kind": ["boot", "in"]})
    with pytest.raises(UsageError, match="symbol"):
        filter_records(frame, symbol="MSFT")
    with pytest.raises(UsageError, match="time"):
        filter_records(frame, since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert filter_records(frame, kind="in")["index"].to_list() == [1]


def test_failed_verification_is_red_with_the_first_bad_index(run_dir: Path) -> None:
    bad = Report(verified=False, classification="rewritten", first_bad_index=17,
                 message="record 17 does not hash to the signed root")
    panel = LogInspector(FakeLog(report=bad), path=run_dir)
    panel.verify_button.click()
    assert "FAILED" in panel.verdict.value
    assert "rewritten" in panel.verdict.value
    assert "index <b>17</b>" in panel.verdict.value
    assert panel.progress.bar_style == "danger"


def test_export_slice_and_replay_messages(run_dir: Path, tmp_path: Path) -> None:
    backend = FakeLog()
    panel = LogInspector(backend, path=run_dir, export_dir=tmp_path / "exports")
    panel.start.value, panel.stop.value = 5, 5
    assert panel.export() is None
    assert "empty" in panel.action_status.value
    panel.start.value, panel.stop.value = 5, 9
    out = panel.export()
    assert out == tmp_path / "exports" / "slice-5-9.cbor"
    assert backend.exported == [(5, 9)]
    assert "zcbench log verify" in panel.action_status.value
    assert panel.replay() is None
    assert "not available" in panel.action_status.value
    backend.replay_result = ReplaySummary(compared=4, matched=3, first_mismatch_index=8,
                                          message="signal bodies differ")
    summary = panel.replay()
    assert summary is not None
    assert summary.mismatched == 1
    assert "REPLAY DIFFERS" in panel.action_status.value
    assert "index <b>8</b>" in panel.action_status.value
    backend.replay_result = ReplaySummary(4, 4, None, "byte for byte")
    panel.replay()
    assert "REPLAY MATCHES" in panel.action_status.value


def test_missing_or_broken_paths_are_shown(tmp_path: Path) -> None:
    panel = LogInspector(FakeLog())
    assert not panel.load()
    assert "type the path" in panel.status.value
    panel.path.value = str(tmp_path / "nope")
    assert not panel.load()
    assert "does not exist" in panel.status.value
    broken = tmp_path / "broken"
    broken.mkdir()
    panel.path.value = str(broken)
    assert not panel.load()
    assert "holds no log" in panel.status.value
    assert panel.verify_button.disabled


def test_real_backend_refuses_a_folder_that_is_no_log(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "commitment.json").write_text("{}")
    panel = LogInspector(AuditLogBackend(trust="dev"), path=build)
    assert panel.records is None  # not an empty log: no log at all
    assert "is not a log" in panel.status.value
    assert "build folder" in panel.status.value
    assert panel.verify_button.disabled
    assert panel.verify() is None  # says so again, never FAILED or "0 records"
    assert "is not a log" in panel.verdict.value
    assert "REPLAY MATCHES" not in panel.action_status.value


def test_opening_another_path_clears_the_previous_logs_rows_and_errors(
    run_dir: Path, tmp_path: Path
) -> None:
    backend = FakeLog(replay_result=ReplaySummary(4, 3, 8, "signal bodies differ"))
    panel = LogInspector(backend, path=run_dir)
    panel.verify()
    panel.replay()
    assert "REPLAY DIFFERS" in panel.action_status.value
    broken = tmp_path / "broken"
    broken.mkdir()
    panel.path.value = str(broken)
    assert not panel.load()
    assert panel.records is None
    assert panel.filtered is None
    assert panel.report is None
    assert panel.replay_summary is None
    assert panel.table.value == ""
    assert panel.verdict.value == ""
    assert panel.action_status.value == ""
    assert (panel.start.value, panel.stop.value) == (0, 0)
    assert panel.kind.options == ("(all)",)
    assert "holds no log" in panel.status.value
    panel.path.value = str(run_dir)
    assert panel.load()
    assert panel.last_error is None
    assert "holds no log" not in panel.status.value
    assert panel.records is not None
    assert panel.records.height == 61


def test_typing_another_path_clears_the_shown_log_before_open(run_dir: Path,
                                                                tmp_path: Path) -> None:
    backend = FakeLog(replay_result=ReplaySummary(4, 3, 8, "signal bodies differ"))
    panel = LogInspector(backend, path=run_dir)
    panel.verify()
    panel.replay()
    assert panel.table.value
    panel.path.value = str(tmp_path / "another")  # typed, Open not pressed yet
    assert panel.records is None
    assert panel.report is None
    assert panel.table.value == panel.verdict.value == panel.action_status.value == ""
    assert panel.verify_button.disabled
    assert "Press Open" in panel.status.value
    panel.path.value = str(run_dir)
    assert panel.load()
    assert panel.records is not None


def test_replay_shows_the_reports_own_verdict_and_caveats(run_dir: Path) -> None:
    backend = FakeLog(replay_result=ReplaySummary(
        2, 1, 7, "replay inconclusive", headline="REPLAY INCONCLUSIVE",
        warnings=("this slice does not hold every batch from the run's first",)))
    panel = LogInspector(backend, path=run_dir)
    panel.replay()
    assert "REPLAY INCONCLUSIVE" in panel.action_status.value
    assert "REPLAY DIFFERS" not in panel.action_status.value
    assert "does not hold every batch" in panel.action_status.value


def test_panels_keep_the_widget_protocol() -> None:
    # A panel method named like a Widget method (e.g. ``open``, which makes the comm) would
    # silently break the panel in the browser ("model not found").
    import ipywidgets

    from zcbench.widgets import AttestationPanel, LiveRunPanel, LogInspector

    widget_names = set(dir(ipywidgets.VBox))
    for panel in (AttestationPanel, LiveRunPanel, LogInspector):
        own = {n for n in vars(panel) if not n.startswith("_")}
        assert own & widget_names == set(), panel.__name__
    inspector = LogInspector(FakeLog())
    assert inspector.comm is not None
    assert inspector.model_id
