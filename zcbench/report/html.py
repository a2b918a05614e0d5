"""Small HTML building blocks shared by the LP report and the notebook panels.

Everything the panels and the report show goes through :func:`esc`; nothing from a document, a
log or an error message reaches the page unescaped. Styles are inline so the same fragments look
the same in JupyterLab, Voila and a standalone nbconvert HTML file.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence

__all__ = [
    "AMBER",
    "FONT",
    "GREEN",
    "GREY",
    "INK",
    "MONO",
    "RED",
    "banner",
    "duration",
    "esc",
    "facts",
    "heading",
    "mono",
    "notice",
    "pill",
    "table",
    "unexpected",
    "when",
]

GREEN = "#1b7f3b"
RED = "#b3261e"
AMBER = "#9a6700"
GREY = "#57606a"
INK = "#1f2328"
FONT = "font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;line-height:1.4;"
MONO = "font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px;"


def esc(value: object) -> str:
    """``value`` as text safe to put inside HTML."""
    return html.escape(str(value), quote=True)


def pill(text: str, colour: str) -> str:
    """A small coloured label."""
    return (
        f'<span style="display:inline-block;padding:2px 10px;margin:0 6px 0 0;border-radius:12px;'
        f'background:{colour};color:white;font-weight:600;font-size:13px;{FONT}">'
        f"{esc(text)}</span>"
    )


def banner(title: str, colour: str, lines: Iterable[str], *, extra: str = "") -> str:
    """A wide verdict box: a big title in ``colour`` and lines of already-escaped HTML below."""
    body = "".join(f'<div style="margin-top:4px">{line}</div>' for line in lines)
    return (
        f'<div style="border:2px solid {colour};border-left:10px solid {colour};border-radius:6px;'
        f'padding:10px 14px;margin:6px 0;background:#fff;color:{INK};{FONT}">'
        f'<div style="font-size:24px;font-weight:700;color:{colour};letter-spacing:1px">'
        f"{esc(title)} {extra}</div>{body}</div>"
    )


def notice(text: str, colour: str = GREY) -> str:
    """A one-line message in ``colour`` (errors in red, hints in grey)."""
    return f'<div style="color:{colour};{FONT};font-size:13px;margin:4px 0">{esc(text)}</div>'


def heading(text: str) -> str:
    """A section heading inside a panel."""
    return (
        f'<div style="{FONT};font-size:15px;font-weight:600;color:{INK};margin:10px 0 4px 0;'
        f'border-bottom:1px solid #d0d7de">{esc(text)}</div>'
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    mono_columns: Sequence[int] = (),
    nowrap_columns: Sequence[int] = (),
    row_colours: Sequence[str | None] | None = None,
) -> str:
    """A compact table; cells are already-escaped HTML. ``row_colours`` tints whole rows."""
    head = "".join(
        f'<th style="text-align:left;padding:4px 8px;border-bottom:2px solid #d0d7de">{esc(h)}</th>'
        for h in headers
    )
    out = []
    for i, row in enumerate(rows):
        tint = row_colours[i] if row_colours is not None and i < len(row_colours) else None
        bg = f"background:{tint};" if tint else ""
        cells = []
        for j, cell in enumerate(row):
            style = MONO + "word-break:break-all;" if j in mono_columns else ""
            if j in nowrap_columns:
                style += "white-space:nowrap;"
            cells.append(
                f'<td style="text-align:left;overflow-wrap:anywhere;padding:3px 8px;'
                f'border-bottom:1px solid #eaeef2;'
                f'vertical-align:top;'
                f'{style}">{cell}</td>'
            )
        out.append(f'<tr style="{bg}">{"".join(cells)}</tr>')
    return (
        f'<table style="border-collapse:collapse;{FONT};font-size:13px;color:{INK};width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"
    )


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column list of labelled facts; values are already-escaped HTML."""
    rows = "".join(
        f'<tr><td style="text-align:left;padding:2px 12px 2px 0;color:{GREY};white-space:nowrap;'
        f'vertical-align:top">{esc(k)}</td>'
        f'<td style="text-align:left;padding:2px 0;word-break:break-all">{v}</td>'
        f"</tr>"
        for k, v in pairs
    )
    style = f"border-collapse:collapse;{FONT};font-size:13px;color:{INK}"
    return f'<table style="{style}">{rows}</table>'


def unexpected(exc: BaseException) -> str:
    """The message for an error that is a bug below the panel, shown rather than swallowed."""
    return f"Unexpected error (please report it): {type(exc).__name__}: {exc}"


def mono(text: str) -> str:
    """Monospaced, escaped text (hex, paths, commands)."""
    return f'<span style="{MONO}">{esc(text)}</span>'


def when(value: dt.datetime | None) -> str:
    """A UTC instant as ``YYYY-MM-DD HH:MM:SS UTC`` (escaped), or an em dash."""
    if value is None:
        return "—"
    return esc(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def duration(value: dt.timedelta) -> str:
    """A short human duration such as ``3 s``, ``4 min 2 s``, ``2 h 5 min`` or ``-12 s``."""
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    if seconds < 3600:
        return f"{sign}{seconds // 60} min {seconds % 60} s"
    if seconds < 86400 * 2:
        return f"{sign}{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{sign}{seconds // 86400} days"
