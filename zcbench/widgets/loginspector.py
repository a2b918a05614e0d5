"""The log inspector: open a run's signed log (or an exported slice), verify it, browse, export.

Owns what an analyst sees of a log: the verification verdict with a progress bar, the records as
a table filtered by kind, time and symbol and paged, an index range exported as a slice that
verifies alone, and a replay's match/mismatch summary. Every operation is the audit log's public
API (replay: :func:`zcbench.host.replay.replay_log`, a fresh local enclave from the run's
build) behind a small :class:`LogBackend`; the panel draws what it returns.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import ipywidgets as widgets
import polars as pl

from zcbench.auditlog import RecordFilter
from zcbench.errors import EnvError, UsageError, ZcbenchError
from zcbench.report import html as h
from zcbench.widgets.logbackend import AuditLogBackend, LogBackend, LogReportLike, ReplaySummary

__all__ = [
    "AuditLogBackend",
    "LogBackend",
    "LogInspector",
    "LogReportLike",
    "ReplaySummary",
    "filter_records",
    "log_verdict_html",
]

PAGE_SIZE = 25
_INTACT = ("intact", "torn_tail", "uncommitted_tail")


def _parse_time(text: str, what: str) -> int | None:
    from zcbench.auditlog import parse_time_ns

    text = text.strip()
    return parse_time_ns(text, what) if text else None


def filter_records(
    frame: pl.DataFrame,
    *,
    kind: str | None = None,
    symbol: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> pl.DataFrame:
    """The records of ``frame`` of ``kind``, naming ``symbol``, with time in ``[since, until)``:
    :func:`zcbench.auditlog.frame.filter_frame`, the rules ``zcbench log show`` applies.

    Asking for a filter the frame has no column for raises :class:`UsageError` rather than
    silently returning everything.
    """
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import filter_frame

    def ns(value: dt.datetime | None) -> int | None:
        if value is None:
            return None
        value = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1_000_000) * 1_000

    chosen = RecordFilter(kinds=frozenset({kind}) if kind else None, symbol=symbol or None,
                          since_ns=ns(since), until_ns=ns(until))
    return filter_frame(frame, chosen)


def log_verdict_html(report: LogReportLike) -> str:
    """The verification banner: VERIFIED (with warnings) or FAILED with the classification."""
    lines = [
        f"{report.entries:,} records, {report.checkpoints:,} checkpoints; classification "
        f"<b>{h.esc(report.classification)}</b>",
        h.esc(report.message),
    ]
    if report.first_bad_index is not None:
        lines.append(f"first bad record: index <b>{report.first_bad_index}</b>")
    lines += [f'<span style="color:{h.AMBER}">warning: {h.esc(w)}</span>' for w in report.warnings]
    verified = report.verified and report.classification in _INTACT
    return h.banner("VERIFIED" if verified else "FAILED", h.GREEN if verified else h.RED, lines)


def _when_ns(value: int) -> str:
    return dt.datetime.fromtimestamp(value / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _display(frame: pl.DataFrame) -> pl.DataFrame:
    """Records as shown: times as UTC text, bodies as their size."""
    out = frame
    for column in ("time_ns", "event_time_ns"):
        if column in out.columns and out.schema[column].is_integer():
            out = out.with_columns(
                pl.col(column).map_elements(_when_ns, return_dtype=pl.String).alias(column)
            )
    if "body" in out.columns and out.schema["body"] == pl.Binary:
        out = out.with_columns(
            (pl.col("body").bin.size().cast(pl.String) + " bytes").alias("body")
        )
    if "leaf_hash" in out.columns and out.schema["leaf_hash"] == pl.String:
        out = out.with_columns((pl.col("leaf_hash").str.slice(0, 16) + "…").alias("leaf_hash"))
    if "symbols" in out.columns and isinstance(out.schema["symbols"], pl.List):
        out = out.with_columns(pl.col("symbols").list.join(", ").alias("symbols"))
    return out


def _cell(value: object) -> str:
    if isinstance(value, bytes):
        text = value.hex()
        return h.mono(text if len(text) <= 48 else f"{text[:48]}… ({len(value)} bytes)")
    if value is None:
        return "—"
    text = str(value)
    return h.esc(text if len(text) <= 80 else text[:80] + "…")


class LogInspector(widgets.VBox):  # type: ignore[misc]
    """Open, verify (with a progress bar), filter, page, export a slice, replay.

    ``backend`` does the work; ``path`` is opened at once when given; ``export_dir`` is where
    slices go (default: an ``exports`` folder beside the log). :meth:`load`, :meth:`verify`,
    :meth:`apply_filters`, :meth:`export`, :meth:`replay` do what the buttons do.
    """

    def __init__(
        self,
        backend: LogBackend,
        *,
        path: pathlib.Path | None = None,
        export_dir: pathlib.Path | None = None,
        page_size: int = PAGE_SIZE,
        title: str = "Log inspector",
    ) -> None:
        self.backend = backend
        self.export_dir = export_dir
        self.page_size = page_size
        self.records: pl.DataFrame | None = None
        self.filtered: pl.DataFrame | None = None
        self.report: LogReportLike | None = None
        self.replay_summary: ReplaySummary | None = None
        self.page = 0
        self.last_error: str | None = None

        self.header = widgets.HTML(
            f'<div style="{h.FONT};font-size:20px;font-weight:700;color:{h.INK}">'
            f"{h.esc(title)}</div>"
        )
        self.path = widgets.Text(
            value="" if path is None else str(path),
            placeholder="run folder, log folder or exported slice",
            description="Log",
            layout=widgets.Layout(width="640px"),
        )
        self.open_button = widgets.Button(description="Open", icon="folder-open")
        self.verify_button = widgets.Button(
            description="Verify", button_style="primary", icon="check", disabled=True
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="")
        self.verdict = widgets.HTML()
        self.kind = widgets.Dropdown(options=["(all)"], value="(all)", description="Kind")
        self.symbol = widgets.Text(placeholder="e.g. MSFT", description="Symbol")
        self.since = widgets.Text(placeholder="2026-01-02T00:00:00Z", description="From")
        self.until = widgets.Text(placeholder="2026-01-03T00:00:00Z", description="Until")
        self.filter_button = widgets.Button(description="Apply filters", icon="filter")
        self.prev_button = widgets.Button(description="◀ Prev", layout=widgets.Layout(width="90px"))
        self.next_button = widgets.Button(description="Next ▶", layout=widgets.Layout(width="90px"))
        self.page_label = widgets.HTML()
        self.table = widgets.HTML()
        self.start = widgets.BoundedIntText(value=0, min=0, max=0, description="From index")
        self.stop = widgets.BoundedIntText(value=0, min=0, max=0, description="To (excl.)")
        self.export_button = widgets.Button(description="Export slice", icon="download")
        self.replay_button = widgets.Button(description="Replay", icon="repeat")
        self.action_status = widgets.HTML()
        self.status = widgets.HTML(h.notice("Type a run folder and press Open."))

        self._opened: str | None = None  # the path field's text when the shown log was opened
        self.path.observe(self._path_changed, names="value")
        self.open_button.on_click(lambda _b: self.load())
        self.verify_button.on_click(lambda _b: self.verify())
        self.filter_button.on_click(lambda _b: self.apply_filters())
        self.prev_button.on_click(lambda _b: self.turn(-1))
        self.next_button.on_click(lambda _b: self.turn(+1))
        self.export_button.on_click(lambda _b: self.export())
        self.replay_button.on_click(lambda _b: self.replay())
        super().__init__(
            [
                self.header,
                widgets.HBox([self.path, self.open_button]),
                self.status,
                widgets.HBox([self.verify_button, self.progress]),
                self.verdict,
                widgets.HTML(h.heading("Records")),
                widgets.HBox([self.kind, self.symbol]),
                widgets.HBox([self.since, self.until, self.filter_button]),
                widgets.HBox([self.prev_button, self.next_button, self.page_label]),
                self.table,
                widgets.HTML(h.heading("Slice")),
                widgets.HBox([self.start, self.stop]),
                widgets.HBox([self.export_button, self.replay_button]),
                self.action_status,
            ],
            layout=widgets.Layout(border="1px solid #d0d7de", padding="10px", max_width="1100px"),
        )
        self.add_class("zcbench-log-inspector")
        if path is not None:
            self.load()

    # ------------------------------------------------------------------ helpers

    def _error(self, where: widgets.HTML, message: str) -> None:
        self.last_error = message
        where.value = h.notice(message, h.RED)

    def _current_path(self) -> pathlib.Path:
        text = self.path.value.strip()
        if not text:
            raise UsageError("type the path of a run folder, a log folder or an exported slice")
        path = pathlib.Path(text).expanduser()
        if not path.exists():
            raise EnvError(f"{path} does not exist")
        return path

    def _clear(self) -> None:
        """Forget the previous log: its rows, verdict, replay, errors and slice bounds."""
        self.last_error = None
        self.records = self.filtered = None
        self.report = None
        self.replay_summary = None
        self.page = 0
        for field in (self.verdict, self.action_status, self.table, self.page_label):
            field.value = ""
        self.status.value = ""
        self.progress.value, self.progress.bar_style = 0, ""
        self.kind.options = ["(all)"]
        self.kind.value = "(all)"
        self.start.value = self.stop.value = 0
        self.start.max = self.stop.max = 0
        self.verify_button.disabled = True

    def _path_changed(self, change: dict[str, object]) -> None:
        """Another path typed: the shown log's rows, verdict and errors are no longer its, so
        they go at once (not only on Open), and the panel says what to press."""
        if change.get("new") == self._opened:
            return
        self._clear()
        self._opened = None
        self.status.value = h.notice("Press Open to read this path.")

    # ------------------------------------------------------------------ actions

    def load(self) -> bool:
        """Load the records of the log at the path field; False (with a message) on failure."""
        self._clear()
        try:
            path = self._current_path()
            frame = self.backend.records(path)
        except ZcbenchError as exc:
            self._error(self.status, f"Cannot open: {exc}")
            return False
        except Exception as exc:  # a bug below us: show it, never a bare traceback
            self._error(self.status, h.unexpected(exc))
            return False
        self.records = frame
        self._opened = self.path.value
        kinds = sorted(frame["kind"].unique().to_list()) if "kind" in frame.columns else []
        self.kind.options = ["(all)", *kinds]
        self.kind.value = "(all)"
        self.verify_button.disabled = False
        n = frame.height
        self.start.max = self.stop.max = n
        self.start.value, self.stop.value = 0, n
        self.status.value = h.notice(f"Opened {path}: {n:,} records. Press Verify to check them.")
        self.apply_filters()
        return True

    def verify(self) -> LogReportLike | None:
        """Verify the log at the path field with a progress bar; show and return the report."""
        self.last_error = None
        try:
            path = self._current_path()
        except ZcbenchError as exc:
            self._error(self.status, str(exc))
            return None
        self.progress.bar_style = "info"
        self.progress.value = 0

        def on_progress(done: int, total: int) -> None:
            self.progress.max = max(total, 1)
            self.progress.value = min(done, self.progress.max)

        try:
            report = self.backend.verify(path, on_progress=on_progress)
        except ZcbenchError as exc:
            self.progress.bar_style = "danger"
            self._error(self.verdict, f"Could not verify: {exc}")
            return None
        except Exception as exc:
            self.progress.bar_style = "danger"
            self._error(self.verdict, h.unexpected(exc))
            return None
        self.report = report
        ok = report.verified and report.classification in _INTACT
        self.progress.value = self.progress.max
        self.progress.bar_style = "success" if ok else "danger"
        self.verdict.value = log_verdict_html(report)
        return report

    def apply_filters(self) -> pl.DataFrame | None:
        """Filter the loaded records by the kind, symbol and time fields; show page one."""
        if self.records is None:
            self._error(self.status, "Open a log first.")
            return None
        from zcbench.auditlog.frame import filter_frame

        try:
            chosen = RecordFilter(
                kinds=None if self.kind.value == "(all)" else frozenset({self.kind.value}),
                symbol=self.symbol.value.strip() or None,
                since_ns=_parse_time(self.since.value, "'From'"),
                until_ns=_parse_time(self.until.value, "'Until'"),
            )
            filtered = filter_frame(self.records, chosen)
        except ZcbenchError as exc:
            self._error(self.action_status, f"Filter: {exc}")
            return None
        self.filtered = filtered
        self.page = 0
        if "index" in filtered.columns and filtered.height:
            self.start.value = int(filtered["index"].min())  # type: ignore[arg-type]
            self.stop.value = int(filtered["index"].max()) + 1  # type: ignore[arg-type]
        self._render_page()
        return filtered

    @property
    def pages(self) -> int:
        n = 0 if self.filtered is None else self.filtered.height
        return max(1, -(-n // self.page_size))

    def turn(self, step: int) -> None:
        """Move ``step`` pages forward (negative: back), staying within the records."""
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._render_page()

    def _render_page(self) -> None:
        frame = self.filtered
        if frame is None:
            return
        rows = _display(frame.slice(self.page * self.page_size, self.page_size))
        self.page_label.value = h.notice(
            f"page {self.page + 1} of {self.pages} · {frame.height:,} of "
            f"{0 if self.records is None else self.records.height:,} records match"
        )
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        if rows.height == 0:
            self.table.value = h.notice("no records match these filters")
            return
        self.table.value = h.table(
            rows.columns, [[_cell(v) for v in row] for row in rows.iter_rows()]
        )

    def _out_dir(self, path: pathlib.Path) -> pathlib.Path:
        if self.export_dir is not None:
            return pathlib.Path(self.export_dir)
        base = path if path.is_dir() else path.parent
        return base / "exports"

    def export(self) -> pathlib.Path | None:
        """Export records ``[From index, To)`` as a slice that verifies alone."""
        self.last_error = None
        try:
            path = self._current_path()
            start, stop = int(self.start.value), int(self.stop.value)
            if stop <= start:
                raise UsageError(f"the slice [{start}, {stop}) is empty: 'To' must exceed 'From'")
            out = self.backend.export(path, self._out_dir(path), start=start, stop=stop)
        except ZcbenchError as exc:
            self._error(self.action_status, f"Export: {exc}")
            return None
        self.action_status.value = h.notice(
            f"Exported records [{start}, {stop}) to {out}. Anyone can check it with: "
            f"zcbench log verify {out}", h.GREEN,
        )
        return out

    def replay(self) -> ReplaySummary | None:
        """Replay records ``[From, To)`` through the bundle; show matches and mismatches."""
        self.last_error = None
        try:
            path = self._current_path()
            summary = self.backend.replay(
                path, start=int(self.start.value), stop=int(self.stop.value)
            )
        except ZcbenchError as exc:
            self._error(self.action_status, f"Replay: {exc}")
            return None
        self.replay_summary = summary
        headline = summary.verdict_headline
        colour = {"REPLAY MATCHES": h.GREEN, "REPLAY INCONCLUSIVE": h.AMBER}.get(headline, h.RED)
        lines = [
            f"{summary.compared:,} OUT records compared: {summary.matched:,} match, "
            f"{summary.mismatched:,} differ",
            h.esc(summary.message),
        ]
        if summary.first_mismatch_index is not None:
            lines.append(f"first mismatch at index <b>{summary.first_mismatch_index}</b>")
        lines += [f'<span style="color:{h.AMBER}">warning: {h.esc(w)}</span>'
                  for w in summary.warnings]
        self.action_status.value = h.banner(headline, colour, lines)
        return summary
