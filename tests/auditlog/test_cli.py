"""Export, the polars view, the witness, the `zcbench log` commands, and one run end to end with a
real emulated boot document (zcbench.nitro NsmEmulator + development CA)."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import pytest

from tests.auditlog.support import (
    BuiltLog,
    batch_bodies,
    build_log,
    fake_boot_verifier,
    key,
    real_run,
)
from zcbench.auditlog import LogVerificationError, verify_log
from zcbench.auditlog._frames import CHECKPOINT_FILE, frame
from zcbench.auditlog.checkpoint import LogSigner
from zcbench.auditlog.export import check_slice, export_slice
from zcbench.auditlog.frame import events_frame, signals_frame, to_polars
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.note import Cosigner, parse_note
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.verify import check_log
from zcbench.auditlog.witness import Witness, WitnessRefusal, consistency_proof_from_log
from zcbench.auditlog.writer import HostLogWriter
from zcbench.cli import main


@pytest.fixture
def built(tmp_path: Path) -> BuiltLog:
    return build_log(tmp_path / "run", batches=6)


def _export(built: BuiltLog, out: Path, **selector: object) -> list[int]:
    summary = export_slice(built.run, out, trust="fake", boot_verifier=fake_boot_verifier,
                           **selector)  # type: ignore[arg-type]
    return list(summary.indices)


def test_export_by_range_time_and_symbol(built: BuiltLog, tmp_path: Path) -> None:
    out = tmp_path / "slice.cbor"
    assert _export(built, out, index_range=(3, 6)) == [3, 4, 5]
    report = check_slice(out, trust="fake", boot_verifier=fake_boot_verifier)
    assert report.classification == "intact"
    assert report.entries == 3
    # The generic entry point recognises a slice too.
    assert check_log(out, trust="fake", boot_verifier=fake_boot_verifier).verified

    _, _, t2 = batch_bodies(2)
    _, _, t3 = batch_bodies(3)
    assert _export(built, out, time_range=(t2, t3 + 1)) == [5, 6, 7, 8]
    # Batch seq s holds SYMBOLS[s % 3] and SYMBOLS[(s + 1) % 3]: TSLA is in seqs 1, 2, 4, 5,
    # and a symbol selection takes both the IN and the OUT record of each such batch.
    tsla = _export(built, out, symbol="TSLA")
    assert tsla == [3, 4, 5, 6, 9, 10, 11, 12]
    frame_view = to_polars(out)
    assert set(frame_view.get_column("index").to_list()) == {0, *tsla}


def test_tampered_slice_is_refused(built: BuiltLog, tmp_path: Path) -> None:
    out = tmp_path / "slice.cbor"
    _export(built, out, index_range=(1, 5))
    doc = cbor2.loads(out.read_bytes())
    record = bytearray(doc["entries"][1]["record"])
    record[-1] ^= 1
    doc["entries"][1]["record"] = bytes(record)
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(cbor2.dumps(doc, canonical=True))
    report = check_slice(bad, trust="fake", boot_verifier=fake_boot_verifier)
    assert not report.verified
    assert report.classification in ("rewritten", "corrupt")

    doc = cbor2.loads(out.read_bytes())
    doc["checkpoint"] = LogSigner(key(66), built.origin).sign(13, leaf_hash(b"x"))
    bad.write_bytes(cbor2.dumps(doc, canonical=True))
    assert check_slice(bad, trust="fake",
                       boot_verifier=fake_boot_verifier).classification == "bad_signature"

    doc = cbor2.loads(out.read_bytes())
    doc["entries"] = list(reversed(doc["entries"]))
    bad.write_bytes(cbor2.dumps(doc, canonical=True))
    assert check_slice(bad, trust="fake",
                       boot_verifier=fake_boot_verifier).classification == "reordered"

    bad.write_bytes(out.read_bytes() + b"\x00")
    assert check_slice(bad, trust="fake",
                       boot_verifier=fake_boot_verifier).classification == "corrupt"


def test_export_refuses_a_damaged_log(built: BuiltLog, tmp_path: Path) -> None:
    cp = built.log / CHECKPOINT_FILE
    cp.write_bytes(cp.read_bytes() + frame(LogSigner(key(5), built.origin).sign(1, bytes(32))))
    with pytest.raises(LogVerificationError):
        _export(built, tmp_path / "x.cbor", index_range=(0, 2))


def test_polars_views(built: BuiltLog) -> None:
    records = to_polars(built.run)
    assert records.height == 13
    assert records.get_column("kind").to_list()[:3] == ["boot", "in", "out"]
    assert records.filter(records["kind"] == "in").get_column("events").to_list() == [2] * 6
    raw = to_polars(built.log, decoder=None)
    assert "events" not in raw.columns
    assert raw.get_column("body").to_list()[0] == built.boot_document
    events = events_frame(built.run)
    assert events.height == 12
    assert events.columns[:2] == ["log_index", "seq"]
    signals = signals_frame(built.run)
    assert signals.get_column("quantity").to_list() == [1, 2, 3, 4, 5, 6]


def test_witness_accepts_growth_and_refuses_fork_and_rollback(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=2)
    pk = built.signer.public_key_spki_der
    witness = Witness()
    first = built.writer.store.checkpoints
    assert first[-1].size == 5
    note5 = built.signer.sign(5, first[-1].root)
    assert witness.observe(note5, public_key=pk).previous is None
    # Growth to 9 needs a proof; the log provides it.
    reopened = HostLogWriter(LogStore.open(built.log), pk, built.origin)
    built.writer = reopened
    built.add_batches(2)
    reopened.close()
    note9 = built.signer.sign(9, reopened.store.root())
    with pytest.raises(WitnessRefusal, match="consistency proof"):
        witness.observe(note9, public_key=pk)
    proof = consistency_proof_from_log(built.run, 5, 9)
    result = witness.observe(note9, public_key=pk, proof=proof, cosign_as="lp.example/w",
                             timestamp=1_800_000_000)
    assert result.previous is not None
    assert result.previous.size == 5
    assert result.cosigned is not None
    line = parse_note(result.cosigned).signatures[-1]
    assert Cosigner.verify(line, parse_note(note9).text,
                           witness.cosigner("lp.example/w").private_key.public_key()) == (
        1_800_000_000)
    # Rollback, fork, a wrong proof and another key are refused; state is unchanged.
    with pytest.raises(WitnessRefusal) as info:
        witness.observe(note5, public_key=pk)
    assert info.value.check == "witness_rollback"
    with pytest.raises(WitnessRefusal) as info:
        witness.observe(built.signer.sign(9, leaf_hash(b"fork")), public_key=pk)
    assert info.value.check == "witness_fork"
    with pytest.raises(WitnessRefusal) as info:
        witness.observe(built.signer.sign(11, leaf_hash(b"fork")), public_key=pk, proof=proof)
    assert info.value.check == "witness_consistency"
    other = LogSigner(key(77), built.origin)
    with pytest.raises(WitnessRefusal) as info:
        witness.observe(other.sign(9, reopened.store.root()),
                        public_key=other.public_key_spki_der)
    assert info.value.check == "witness_key"
    state = witness.state(built.origin)
    assert state is not None
    assert state.size == 9
    # A log verified against the witness state catches a rollback.
    assert check_log(built.run, trust="fake", boot_verifier=fake_boot_verifier,
                     known_checkpoint=state.checkpoint).verified


# -- CLI and the real boot document ---------------------------------------------------------


@pytest.mark.slow
def test_real_boot_document_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = real_run(tmp_path)
    report = verify_log(run, trust="dev")
    assert report.classification == "intact"
    assert report.simulated
    assert report.origin == "zcbench/abababababababab/run-real"
    assert any("pcrs_checked" in w for w in report.warnings)
    assert check_log(run, trust="aws").classification == "untrusted_boot"

    assert main(["log", "verify", str(run), "--trust", "dev", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is True
    assert out["classification"] == "intact"
    assert (out["entries"], out["checkpoints"], out["first_bad_index"]) == (7, 4, None)

    assert main(["log", "verify", str(run), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["classification"] == "untrusted_boot"

    slice_path = tmp_path / "slice.cbor"
    assert main(["log", "export", str(run), "--trust", "dev", "--range", "1:3",
                 "--out", str(slice_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert main(["log", "verify", str(slice_path), "--trust", "dev", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "slice"

    assert main(["log", "show", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 7
    assert main(["log", "show", str(slice_path)]) == 0
    assert "unverified" in capsys.readouterr().out

    assert main(["log", "witness", str(run), "--trust", "dev", "--json",
                 "--cosign-as", "lp.example/w", "--out", str(tmp_path / "cosigned")]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == 7
    assert (tmp_path / "cosigned").read_bytes().count("\u2014".encode()) == 2
    assert main(["log", "witness", "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["origins"][0]["size"] == 7
    assert main(["log", "verify", str(run), "--trust", "dev", "--from-witness"]) == 0
    capsys.readouterr()


def test_cli_exit_codes_for_damage_and_usage(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = real_run(tmp_path, batches=2)
    seg = run / "log" / "seg-00000000.zlog"
    data = bytearray(seg.read_bytes())
    data[200] ^= 0x40
    seg.write_bytes(bytes(data))
    assert main(["log", "verify", str(run), "--trust", "dev", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False
    assert out["classification"] in ("corrupt", "untrusted_boot")
    assert main(["log", "verify", str(tmp_path / "missing")]) == 2
    assert main(["log", "export", str(run), "--out", str(tmp_path / "x"), "--range", "5"]) == 2
    assert main(["log", "export", str(run), "--out", str(tmp_path / "x")]) == 2
    capsys.readouterr()


# -- Streaming: a listing's first page and a small export read a bounded part of the log -------


class _Reads:
    """Counts records decoded by log walks, payloads decoded by export, and segment bytes read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import zcbench.auditlog.export as export
        from zcbench.auditlog._fs import OsFileSystem
        from zcbench.auditlog.records import RUN_RECORDS, decode_record

        self.walked = 0
        self.exported = 0
        self.bytes = 0

        def walked(data: bytes) -> object:
            self.walked += 1
            return decode_record(data)

        def exported(data: bytes) -> object:
            self.exported += 1
            return decode_record(data)

        original = OsFileSystem.read_bytes

        def read_bytes(fs: OsFileSystem, path: Path) -> bytes:
            data = original(fs, path)
            if path.name.startswith("seg-"):
                self.bytes += len(data)
            return data

        monkeypatch.setattr(RUN_RECORDS, "decode", walked)  # what the walk decodes with
        monkeypatch.setattr(export, "decode_record", exported)
        monkeypatch.setattr(OsFileSystem, "read_bytes", read_bytes)


@pytest.fixture
def long_log(tmp_path: Path) -> BuiltLog:
    """241 records in many small segments."""
    return build_log(tmp_path / "long", batches=120, segment_bytes=4096)


def test_log_show_streams_its_first_page(long_log: BuiltLog, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    segments = sorted(long_log.log.glob("seg-*.zlog"))
    assert len(segments) > 10
    log_bytes = sum(s.stat().st_size for s in segments)
    reads = _Reads(monkeypatch)
    assert main(["log", "show", str(long_log.run), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "showing 5 of 241 records (unverified listing)"
    assert reads.walked <= 5 + 20  # the first segment's records, not the log's 241
    assert reads.bytes <= 2 * 4096 < log_bytes
    # ISO times and decoded bodies: batch 0 holds AAPL and MSFT, its signal buys 1 AAPL.
    assert "2023-11-14T22:13:20.000000001Z" in out
    assert "2 events: AAPL, MSFT" in out
    assert "buy 1 AAPL" in out


def test_log_show_filters_by_kind_symbol_and_iso_time(
    long_log: BuiltLog, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", str(long_log.run), "--kind", "out", "--symbol", "TSLA",
                 "--time", "2023-11-14T22:13:22Z:2023-11-14T22:13:27Z", "--limit", "0",
                 "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    # Batches 2..6 lie in the window; TSLA is batch s's first symbol when s % 3 == 2.
    assert [row["seq"] for row in listing["rows"]] == [2, 5]
    assert {row["kind"] for row in listing["rows"]} == {"out"}
    assert (listing["records"], listing["matched"]) == (241, 2)
    assert listing["rows"][0]["summary"] == "buy 3 TSLA"
    assert listing["rows"][0]["event_time"] == "2023-11-14T22:13:22.000000001Z"
    assert main(["log", "show", str(long_log.run), "--kind", "in", "--limit", "2"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == ("showing the first 2 matching (kind in) of 241 records "
                      "(unverified listing)")


def test_export_of_a_small_range_reads_only_its_records(
    long_log: BuiltLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reads = _Reads(monkeypatch)
    out = tmp_path / "small.cbor"
    summary = export_slice(long_log.run, out, index_range=(100, 104), trust="fake",
                           boot_verifier=fake_boot_verifier)
    assert summary.indices == (100, 101, 102, 103)
    assert reads.walked == 0  # no walk of the whole log (the old code walked it twice)
    assert reads.exported == 5  # the boot record and the four chosen ones
    assert check_slice(out, trust="fake", boot_verifier=fake_boot_verifier).verified


def test_export_takes_iso_times(built: BuiltLog, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from zcbench.auditlog import parse_time_ns

    _, _, t2 = batch_bodies(2)
    assert parse_time_ns("2023-11-14T22:13:22.000000001Z") == t2
    run = real_run(tmp_path, batches=4)
    out = tmp_path / "by-time.cbor"
    assert main(["log", "export", str(run), "--trust", "dev", "--out", str(out),
                 "--time", "2023-11-14T22:13:21Z:2023-11-14T22:13:23Z", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 4  # batches 1 and 2, IN and OUT
    assert main(["log", "export", str(run), "--trust", "dev", "--out", str(out),
                 "--time", "noon:later"]) == 2
    assert "ISO 8601" in capsys.readouterr().err


# -- Commitments, known checkpoints, the witness and the vkey ----------------------------------


def _commitment(path: Path, pcr0: str = "ab" * 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": "zcbench.commitment/1", "strategy": "t",
                                "pcrs": {"0": pcr0, "1": "01" * 48, "2": "02" * 48}}))
    return path


def test_log_verify_takes_the_commitment_it_warns_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = real_run(tmp_path)
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 0
    err = capsys.readouterr().err
    assert "no PCR was compared" in err
    assert "commitment.json" in err  # the warning names what to give, which the command takes
    good = _commitment(tmp_path / "build" / "commitment.json")
    assert main(["log", "verify", str(run), "--trust", "dev", "--commitment", str(good)]) == 0
    assert "no PCR" not in capsys.readouterr().err
    # By default the build named by the run's summary.json holds the log to its PCRs.
    (run / "summary.json").write_text(json.dumps({"run_id": "run-real",
                                                  "image": str(tmp_path / "build")}))
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 0
    assert "no PCR" not in capsys.readouterr().err
    other = _commitment(tmp_path / "other" / "commitment.json", pcr0="cd" * 48)
    assert main(["log", "verify", str(run), "--trust", "dev", "--commitment", str(other),
                 "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["classification"] == "untrusted_boot"


def test_a_damaged_newest_checkpoint_gets_one_verdict_from_verify_and_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = real_run(tmp_path)
    assert main(["log", "witness", str(run), "--trust", "dev"]) == 0
    capsys.readouterr()
    state = Witness().state(check_log(run, trust="dev").origin or "")
    assert state is not None
    known = tmp_path / "known.note"
    known.write_bytes(state.checkpoint)
    cp = run / "log" / CHECKPOINT_FILE
    data = bytearray(cp.read_bytes())
    data[-40] ^= 0x01  # inside the newest checkpoint's frame: a torn tail of the file
    cp.write_bytes(bytes(data))
    verify_code = main(["log", "verify", str(run), "--trust", "dev", "--known-checkpoint",
                        str(known), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    witness_code = main(["log", "witness", str(run), "--trust", "dev", "--json"])
    witnessed = capsys.readouterr()
    from_witness = main(["log", "verify", str(run), "--trust", "dev", "--from-witness"])
    capsys.readouterr()
    # The records still hash to the known checkpoint; the newest records lost their signature.
    assert verdict["classification"] == "uncommitted_tail"
    assert any("torn tail" in w for w in verdict["warnings"])
    assert verify_code == witness_code == from_witness == 0, witnessed.err
    assert json.loads(witnessed.out)["size"] == state.size  # nothing rolled back, nothing new


def test_log_vkey_prints_the_c2sp_verifier_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zcbench.auditlog.note import parse_vkey

    run = real_run(tmp_path)
    assert main(["log", "vkey", str(run), "--trust", "dev", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["simulated"] is True
    assert printed["origin"] == "zcbench/abababababababab/run-real"
    verifier = parse_vkey(printed["vkey"])
    assert verifier.name == printed["origin"]
    signer = LogSigner(key(21), printed["origin"])
    assert verifier.vkey == signer.vkey
    assert main(["log", "vkey", str(run)]) == 1  # the development CA is not trusted by default
    capsys.readouterr()


def test_the_dataframe_api_takes_str_and_refuses_what_is_no_log(built: BuiltLog,
                                                                 tmp_path: Path) -> None:
    import zcbench.auditlog as auditlog
    from zcbench.errors import UsageError

    for name in ("to_polars", "events_frame", "signals_frame"):
        assert name in auditlog.__all__
    records = auditlog.to_polars(str(built.run))
    assert records.height == 13
    assert auditlog.events_frame(str(built.log)).height == 12
    assert auditlog.signals_frame(str(built.run)).height == 6
    build = tmp_path / "build"
    build.mkdir()
    (build / "commitment.json").write_text("{}")
    for view in (auditlog.to_polars, auditlog.events_frame, auditlog.signals_frame):
        with pytest.raises(UsageError, match="build folder"):
            view(build)
    document = tmp_path / "boot.cbor"
    document.write_bytes(built.boot_document)
    with pytest.raises(UsageError, match="is not a log"):
        auditlog.to_polars(document)
    only_out = auditlog.to_polars(built.run, record_filter=auditlog.RecordFilter(
        kinds=frozenset({"out"})))
    assert set(only_out.get_column("kind").to_list()) == {"out"}
