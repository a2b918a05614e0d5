"""Trials on the record end to end: ``zcbench sweep`` writes the record, ``zcbench package
--research`` commits its digest, the trial count and the deflated Sharpe ratio, the commitment
reads back through the one type, and the LP report shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zcbench.cli import main
from zcbench.nitro.commitment import Commitment
from zcbench.report._lp import _research_pairs

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_research.ipynb"
# notebook 01's parameters cell: window 4, enter_pct 15, exit_pct 3, quantity 100
SYNTH = ["--synthetic", "--duration", "1", "--rate", "3000", "--width-ms", "50", "--serial"]


@pytest.mark.slow
def test_sweep_cli_writes_the_record_and_package_commits_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "research.json"
    argv = ["sweep", *SYNTH, "--record", str(record), "--json",
            "--param", "enter_pct=1,15,30", "--param", "window=4", "--param", "exit_pct=3"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_trials"] == 3
    assert out["n_failed"] == 1  # enter_pct 1 < exit_pct 3
    assert out["failed"][0]["params"] == {"enter_pct": 1, "window": 4, "exit_pct": 3}
    assert len(out["rows"]) == 3
    digest = out["digest"]

    build = tmp_path / "build"
    assert main(["package", str(NOTEBOOK), "-o", str(build), "--research", str(record),
                 "--json"]) == 0
    packaged = json.loads(capsys.readouterr().out)
    commitment = Commitment.load(build / "commitment.json")
    assert commitment.research is not None
    assert packaged["research"] == dict(commitment.research)
    research = commitment.research
    assert research["n_trials"] == 3
    assert [r["digest"] for r in research["records"]] == [digest]
    assert research["selected"]["params"] == {"enter_pct": 15, "window": 4, "exit_pct": 3}
    dsr = research["deflated_sharpe"]
    assert dsr is None or 0.0 <= dsr <= 1.0
    # one type reads and writes it: a round trip keeps the bytes
    raw = (build / "commitment.json").read_bytes()
    assert Commitment.from_json(raw).to_json() == raw
    # the LP report's lines
    shown = dict(_research_pairs(json.loads(raw)["research"]))
    assert "3 backtests behind these parameters" in shown["research trials"]
    assert digest[:16] in shown["research records"]
    assert "not committed" in dict(_research_pairs(None))["research trials"]

    # the research must be behind the packaged point, and intact
    other = tmp_path / "other.json"
    assert main(["sweep", *SYNTH, "--record", str(other), "--json",
                 "--param", "enter_pct=20,30"]) == 0
    capsys.readouterr()
    assert main(["package", str(NOTEBOOK), "-o", str(tmp_path / "b2"),
                 "--research", str(other)]) == 1
    assert "no point of the research" in capsys.readouterr().err
    altered = json.loads(record.read_text())
    altered["n_trials"] = 1
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    assert main(["package", str(NOTEBOOK), "-o", str(tmp_path / "b3"),
                 "--research", str(tmp_path / "altered.json")]) == 1
    capsys.readouterr()
    assert main(["package", str(NOTEBOOK), "-o", str(tmp_path / "b4"),
                 "--research", str(tmp_path / "missing.json")]) == 2


def test_commitment_refuses_a_malformed_research_field() -> None:
    base = {"schema": "zcbench.commitment/1", "pcrs": {"0": "00" * 48}}
    ok = {"n_trials": 3, "records": [{"digest": "ab" * 32}]}
    assert Commitment.from_json(json.dumps({**base, "research": ok})).research == ok
    from zcbench.errors import DataError

    for bad in ([], {"n_trials": 0, "records": ok["records"]}, {"n_trials": 3, "records": []},
                {"n_trials": 3, "records": [{"digest": "xyz"}]}, {**ok, "n_trials": True}):
        with pytest.raises(DataError, match="'research'"):
            Commitment.from_json(json.dumps({**base, "research": bad}))


@pytest.mark.slow
def test_walkforward_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "wf.json"
    folds = tmp_path / "folds.parquet"
    argv = ["walkforward", *SYNTH, "--record", str(record), "--param", "enter_pct=10,20",
            "--train", "6", "--test", "4", "--mode", "expanding", "--folds-out", str(folds)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "3 folds (expanding, train 6, test 4 batches), 6 in-sample trials" in text
    assert "out of sample, stitched: total return" in text
    assert folds.is_file()
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["fold"] for f in out["folds"]] == [0, 1, 2]
    assert out["n_trials"] == 6
    assert main(["walkforward", *SYNTH, "--record", str(record), "--param", "enter_pct=10",
                 "--train", "60", "--test", "40"]) == 2
    assert "no fold" in capsys.readouterr().err
