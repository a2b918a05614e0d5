"""``zcbench reconcile`` on real FIX runs: a clean chain reconciles; every edit, deletion or
addition in a journal or the statement, and every bad execution, is named (slow: it packages
a build and runs it twice against the simulator)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.venue.support import Sim, package
from zcbench.cli import main
from zcbench.host.execution import JOURNAL_FILE
from zcbench.venue.fix import decode, encode
from zcbench.venue.fix.codec import iter_messages
from zcbench.venue.reconcile import CSV_COLUMNS, check_reconciliation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("chain")
    with pytest.MonkeyPatch.context() as mp:  # the module's own home, never the user's
        mp.setenv("ZCBENCH_HOME", str(tmp / "home"))
        build, ticks = package(tmp)
        sim = Sim(tmp, ticks, tmp / "drop.fix")
        try:
            for name in ("run1", "run2"):
                argv = ["run", str(build), "--data", str(ticks), "--run-dir", str(tmp / name),
                        "--venue", f"fix://127.0.0.1:{sim.port}", "--json"]
                assert main(argv) == 0
        finally:
            sim.stop()
    return tmp


@pytest.fixture
def chain(built: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZCBENCH_HOME", str(built / "home"))  # its dev CA signed the runs
    return built


def _copy(chain: Path, tmp: Path) -> tuple[list[Path], Path]:
    runs = [tmp / n for n in ("run1", "run2")]
    for r in runs:
        shutil.copytree(chain / r.name, r)
    shutil.copy(chain / "drop.fix", tmp / "drop.fix")
    return runs, tmp / "drop.fix"


def _kinds(runs: list[Path], statement: Path) -> list[str]:
    report = check_reconciliation(runs, statement, trust="dev")
    return sorted({d.kind for d in report.discrepancies})


def test_clean_chain_reconciles_and_one_run_alone_does_not(
    chain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, drop = _copy(chain, tmp_path)
    capsys.readouterr()
    code = main(["reconcile", *map(str, runs), "--statement", str(drop), "--trust", "dev",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["discrepancies"][:5]
    assert out["ok"]
    assert out["signals"] == out["orders"] > 0
    assert out["positions"] == out["journal_positions"]
    # the second run's executions, against the first run alone: trades from outside
    assert main(["reconcile", str(runs[0]), "--statement", str(drop), "--trust", "dev"]) == 1
    assert "unknown_order" in capsys.readouterr().out


def _journal_edit(run: Path, edit: Callable[[list[dict[str, object]]], list[dict[str, object]]]
                  ) -> None:
    lines = (run / JOURNAL_FILE).read_text().splitlines()
    rows = [json.loads(x) for x in lines[1:]]
    rows = edit(rows)
    text = "\n".join([lines[0], *(json.dumps(r, sort_keys=True) for r in rows)]) + "\n"
    (run / JOURNAL_FILE).write_text(text)


def _first(rows: list[dict[str, object]], event: str) -> int:
    return next(i for i, r in enumerate(rows) if r["event"] == event)


def _more(row: dict[str, object]) -> dict[str, object]:
    return {**row, "quantity": int(str(row["quantity"])) + 1}


def _flip(row: dict[str, object]) -> dict[str, object]:
    return {**row, "side": "sell" if row["side"] == "buy" else "buy"}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda rows: [r if i != _first(rows, "fill") else _more(r) for i, r in enumerate(rows)],
         {"journal_mismatch", "position_mismatch"}),
        (lambda rows: [r for i, r in enumerate(rows) if i != _first(rows, "fill")],
         {"not_journaled"}),
        (lambda rows: [*rows, {**rows[_first(rows, "fill")], "exec_id": "SE999999"}],
         {"missing_in_statement", "position_mismatch"}),
        (lambda rows: [r for i, r in enumerate(rows) if i != _first(rows, "order")],
         {"not_journaled"}),
        (lambda rows: [r if i != _first(rows, "order") else _flip(r) for i, r in enumerate(rows)],
         {"order_mismatch"}),
    ],
    ids=["edit_fill", "delete_fill", "add_fill", "delete_order", "edit_order"],
)
def test_journal_edits_are_named(
    chain: Path, tmp_path: Path, edit: Callable[..., list[dict[str, object]]], expected: set[str]
) -> None:
    runs, drop = _copy(chain, tmp_path)
    _journal_edit(runs[1], edit)
    kinds = set(_kinds(runs, drop))
    assert expected <= kinds, kinds


def test_an_execution_journaled_by_two_runs_is_counted_twice(chain: Path, tmp_path: Path) -> None:
    runs, drop = _copy(chain, tmp_path)
    rows = [json.loads(x) for x in (runs[1] / JOURNAL_FILE).read_text().splitlines()[1:]]
    fill = rows[_first(rows, "fill")]
    _journal_edit(runs[0], lambda own: [*own, fill])  # run2's fill claimed by run1 too
    report = check_reconciliation(runs, drop, trust="dev")
    twice = [d for d in report.discrepancies if d.kind == "repeated_exec_id"]
    assert [d.exec_id for d in twice] == [fill["exec_id"]], report.discrepancies


def _messages(drop: Path) -> list[bytes]:
    return [m for m in iter_messages(drop.read_bytes()) if isinstance(m, bytes)]


def _reencode(raw: bytes, **changes: str) -> bytes:
    msg = decode(raw)
    tags = {int(k[1:]): v for k, v in changes.items()}
    return encode(msg.msg_type, [(t, tags.get(t, v)) for t, v in msg.fields])


def _trade_index(msgs: list[bytes]) -> int:
    return next(i for i, m in enumerate(msgs) if b"\x01150=F\x01" in m)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m[: _trade_index(m)] + m[_trade_index(m) + 1 :],
         {"sequence_gap", "missing_in_statement", "position_mismatch"}),
        (lambda m: [*m, m[_trade_index(m)]], {"repeated_exec_id", "sequence_gap"}),
        (lambda m: [x if i != _trade_index(m) else _reencode(x, t32=str(int(decode(x)[32]) + 1))
                    for i, x in enumerate(m)], {"journal_mismatch", "cum_mismatch"}),
        (lambda m: [*m, _reencode(m[_trade_index(m)], t17="SE777777", t11="ghost-1-0",
                                  t34=str(len(m) + 1))], {"unknown_order"}),
        (lambda m: [*m, _reencode(m[_trade_index(m)], t17="SE777778", t14="999999",
                                  t34=str(len(m) + 1))], {"overfill", "missing_in_journal"}),
        (lambda m: [*m[:3], b"8=FIX.4.4\x019=12\x01garbage\x01", *m[3:]], {"garbled"}),
        (lambda m: [x if i != _trade_index(m) else _reencode(x, t20002="0" * 64)
                    for i, x in enumerate(m)], {"no_signal"}),
    ],
    ids=["delete_fill", "repeat_exec_id", "edit_fill_qty", "foreign_execution", "overfill",
         "garbled", "wrong_signal_hash"],
)
def test_statement_damage_is_named(
    chain: Path, tmp_path: Path, mutate: Callable[[list[bytes]], list[bytes]], expected: set[str]
) -> None:
    runs, drop = _copy(chain, tmp_path)
    drop.write_bytes(b"".join(mutate(_messages(drop))))
    report = check_reconciliation(runs, drop, trust="dev")
    kinds = {d.kind for d in report.discrepancies}
    assert expected <= kinds, kinds
    assert all(d.exec_id or d.kind in ("garbled", "invalid", "position_mismatch")
               or d.log_index is not None for d in report.discrepancies)


def test_csv_statement(chain: Path, tmp_path: Path) -> None:
    from zcbench.venue.fix.codec import format_price
    from zcbench.venue.fix.messages import execution_from_fix

    runs, drop = _copy(chain, tmp_path)
    rows = [",".join(CSV_COLUMNS)]
    for n, raw in enumerate(_messages(drop), start=1):
        e = execution_from_fix(decode(raw))
        rows.append(",".join(str(v) for v in (
            n, e.exec_id, e.order_id, e.cl_ord_id, e.exec_type, e.ord_status, e.symbol, e.side,
            e.order_qty, e.last_qty, format_price(e.last_px) if e.last_px else "0", e.cum_qty,
            e.leaves_qty, e.ts, e.text.replace(",", ";"))))
    statement = tmp_path / "statement.csv"
    statement.write_text("\n".join(rows) + "\n")
    assert _kinds(runs, statement) == []
    statement.write_text("\n".join(rows[:5] + rows[6:]) + "\n")
    assert "sequence_gap" in _kinds(runs, statement)
