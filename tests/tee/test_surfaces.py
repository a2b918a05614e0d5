"""SEV-SNP reports and TDX/SGX quotes in the attestation panel (as a widget model, no browser)
and the LP report's sections (parsed HTML): the same verdict, measured fields, chain, report
data, debug and TCB status as the verifier's, on the real fixtures of tests/vectors/tee."""

from __future__ import annotations

import datetime as dt
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zcbench.cli import main
from zcbench.report.attestation import attestation_result
from zcbench.report.attestation_html import (
    chain_html,
    document_facts_html,
    pcr_table_html,
    verdict_html,
)
from zcbench.tee.dcap import load_collateral
from zcbench.tee.view import evidence_view
from zcbench.widgets.attestation import AttestationPanel, VerifyingBackend

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
MILAN_REPORT = bytes.fromhex((TEE / "snp" / "report_milan.hex").read_text().strip())
MILAN_VCEK = (TEE / "snp" / "vcek_milan.der").read_bytes()
AT_MILAN = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
AT_DCAP = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)
TDX_QUOTE = (TEE / "tdx" / "tdx_quote").read_bytes()
SGX_QUOTE = (TEE / "sgx" / "sgx_quote").read_bytes()


class _Text(HTMLParser):
    """The visible text of an HTML fragment and its table rows (cells as text)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def _commitment(folder: Path, tee: str, measurements: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "commitment.json"
    path.write_text(json.dumps({
        "schema": "zcbench.commitment/2", "tee": tee, "strategy": "momentum",
        "measurements": {k: v.hex() for k, v in measurements.items()},
    }))  # fmt: skip
    return path


def _fields(quote_verdict_fields: dict[str, str], *names: str) -> dict[str, bytes]:
    return {n: bytes.fromhex(quote_verdict_fields[n]) for n in names}


def _panel(tmp_path: Path, evidence: bytes, commitment: Path, at: dt.datetime,
           **kw: object) -> AttestationPanel:
    backend = VerifyingBackend(lambda _nonce: evidence, commitment=commitment,
                               description="a confidential VM", clock=lambda: at,
                               **kw)  # type: ignore[arg-type]  # fmt: skip
    return AttestationPanel(backend, export_dir=tmp_path / "export", rng=lambda n: b"\x07" * n)


# --- SEV-SNP in the panel -----------------------------------------------------------------


def test_the_panel_shows_a_verified_snp_report_like_a_nitro_document(tmp_path: Path) -> None:
    measurement = MILAN_REPORT[0x90:0xC0]
    report_data = MILAN_REPORT[0x50:0x90]
    commitment = _commitment(tmp_path / "build", "sev-snp", {"measurement": measurement})
    panel = _panel(tmp_path, MILAN_REPORT, commitment, AT_MILAN, certificates=[MILAN_VCEK])
    panel.nonce.value = report_data.hex()  # the guest put the nonce in its report data
    result = panel.request()
    assert result is not None
    assert panel.last_error is None
    assert result.verdict == "VERIFIED"
    assert result.tee == "sev-snp"
    banner = _Text(panel.banner.value).text
    assert "VERIFIED" in banner
    assert "SEV-SNP" in banner
    assert "AMD Milan ARK (pinned)" in banner
    assert "MEASUREMENT matches the commitment" in banner
    assert "your nonce is its report data" in banner
    table = _Text(panel.pcrs.value)
    assert "Measurements: commitment against the AMD SEV-SNP attestation report" in table.text
    assert ["MEASUREMENT", measurement.hex(), measurement.hex(), "match"] in table.rows
    chain = _Text(panel.chain.value)
    assert [row[0] for row in chain.rows[1:]] == ["root", "intermediate", "leaf"]
    assert "ARK-Milan" in chain.rows[1][1]
    assert "SEV-VCEK" in chain.rows[3][1]
    assert all(row[-1] == "valid" for row in chain.rows[1:])
    facts = _Text(panel.facts.value).text
    assert report_data.hex() in facts
    assert "debug no" in facts
    assert "guest policy 0x0000000000030000" in facts
    assert "product Milan" in facts


def test_the_panel_names_the_failed_check_with_expected_and_actual(tmp_path: Path) -> None:
    wrong = bytes(range(48))
    commitment = _commitment(tmp_path / "build", "sev-snp", {"measurement": wrong})
    panel = _panel(tmp_path, MILAN_REPORT, commitment, AT_MILAN, certificates=[MILAN_VCEK])
    panel.nonce.value = MILAN_REPORT[0x50:0x90].hex()
    result = panel.request()
    assert result is not None
    assert result.verdict == "FAILED"
    banner = _Text(panel.banner.value).text
    assert "Failed check: measurement" in banner
    assert f"expected {wrong.hex()}" in banner
    assert f"actual {MILAN_REPORT[0x90:0xC0].hex()}" in banner
    assert ["MEASUREMENT", wrong.hex(), MILAN_REPORT[0x90:0xC0].hex(), "MISMATCH"] in _Text(
        panel.pcrs.value).rows
    # the panel's own random nonce is not the report's data: the binding check fails
    right = _commitment(tmp_path / "b2", "sev-snp", {"measurement": MILAN_REPORT[0x90:0xC0]})
    panel = _panel(tmp_path, MILAN_REPORT, right, AT_MILAN, certificates=[MILAN_VCEK])
    result = panel.request()
    assert result is not None
    assert result.tee_verdict.failed_check == "report_data"
    assert "Failed check: report_data" in _Text(panel.banner.value).text


def test_evidence_of_another_tee_than_committed_fails_check_tee(tmp_path: Path) -> None:
    commitment = _commitment(tmp_path / "build", "tdx", {"mrtd": bytes(48)})
    panel = _panel(tmp_path, MILAN_REPORT, commitment, AT_MILAN, certificates=[MILAN_VCEK])
    result = panel.request()
    assert result is not None
    assert result.tee_verdict.failed_check == "tee"
    assert (result.tee_verdict.expected, result.tee_verdict.actual) == ("tdx", "sev-snp")
    assert "Failed check: tee" in _Text(panel.banner.value).text


def test_garbage_for_an_snp_commitment_is_a_failed_verdict_not_a_crash(tmp_path: Path) -> None:
    commitment = _commitment(tmp_path / "build", "sev-snp", {"measurement": bytes(48)})
    panel = _panel(tmp_path, b"\xff" * 100, commitment, AT_MILAN)
    result = panel.request()
    assert result is not None
    assert (result.tee, result.tee_verdict.failed_check) == ("sev-snp", "decode")
    assert "Failed check: decode" in _Text(panel.banner.value).text
    assert ["MEASUREMENT", bytes(48).hex(), "—", "MISSING"] in _Text(panel.pcrs.value).rows
    assert "no certificate chain" in panel.chain.value


def test_an_snp_export_re_verifies_with_only_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commitment = _commitment(tmp_path / "build", "sev-snp",
                             {"measurement": MILAN_REPORT[0x90:0xC0]})  # fmt: skip
    panel = _panel(tmp_path, MILAN_REPORT, commitment, AT_MILAN, certificates=[MILAN_VCEK])
    panel.nonce.value = MILAN_REPORT[0x50:0x90].hex()
    panel.request()
    path = panel.export()
    assert path is not None
    assert panel.reverify_command is not None
    exported = json.loads(path.read_text())
    assert exported["tee"] == "sev-snp"
    assert exported["verified"] is True
    assert exported["measured"][0] == {"name": "measurement", "status": "match",
                                       "expected": MILAN_REPORT[0x90:0xC0].hex(),
                                       "actual": MILAN_REPORT[0x90:0xC0].hex()}  # fmt: skip
    words = panel.reverify_command.split()
    assert "--report-data" in words
    assert "--cert" in words
    assert "--trust" not in words
    cwd = Path.cwd()
    os.chdir(path.parent)
    try:
        code = main([*words[1:], "--json"])
    finally:
        os.chdir(cwd)
    printed = json.loads(capsys.readouterr().out)
    assert code == 0, printed
    assert (printed["tee"], printed["verified"], printed["measurement_checked"]) == (
        "sev-snp", True, True)


# --- TDX and SGX in the panel -------------------------------------------------------------


def test_the_panel_shows_a_tdx_quote_with_its_tcb_status(tmp_path: Path) -> None:
    probe = attestation_result(TDX_QUOTE, nonce=None, expected_pcrs={}, trust="aws",
                               at=AT_DCAP, source="probe")  # fmt: skip
    committed = _fields(dict(probe.tee_verdict.fields), "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
    commitment = _commitment(tmp_path / "build", "tdx", committed)
    collateral = load_collateral(TEE / "tdx" / "tdx_quote_collateral.json")
    panel = _panel(tmp_path, TDX_QUOTE, commitment, AT_DCAP, collateral=collateral)
    panel.nonce.value = probe.tee_verdict.report_data.hex()  # type: ignore[union-attr]
    result = panel.request()
    assert result is not None
    assert result.verdict == "VERIFIED", result.tee_verdict.message
    banner = _Text(panel.banner.value).text
    assert "TDX" in banner
    assert "MRTD matches the commitment" in banner
    assert "TCB status: UpToDate" in banner
    rows = {row[0]: row[1:] for row in _Text(panel.pcrs.value).rows[1:]}
    assert list(rows)[:5] == ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"]
    assert all(rows[name][2] == "match" for name in ("MRTD", "RTMR0", "RTMR3"))
    assert "Intel SGX Root CA" in _Text(panel.chain.value).text
    facts = _Text(panel.facts.value).text
    assert "TCB status UpToDate" in facts
    assert "TD attributes" in facts


def test_an_outdated_tdx_platform_fails_naming_its_status(tmp_path: Path) -> None:
    quote = (TEE / "tdx" / "tdx_quote_outdated").read_bytes()
    collateral = load_collateral(TEE / "tdx" / "tdx_quote_outdated_collateral.json")
    at = dt.datetime(2026, 2, 19, tzinfo=dt.UTC)
    result = attestation_result(quote, nonce=None, expected_pcrs={}, trust="aws", at=at,
                                source="file", collateral=collateral)  # fmt: skip
    assert result.tee_verdict.failed_check == "tcb_status"
    banner = _Text(verdict_html(result)).text
    assert "Failed check: tcb_status" in banner
    assert f"actual {result.tee_verdict.actual}" in banner
    facts = _Text(document_facts_html(result)).text
    assert "the collateral yielded none (failed check tcb_status)" in facts
    assert "no collateral was given" not in facts
    for advisory in result.tee_verdict.advisory_ids:
        assert advisory in facts


def test_an_sgx_quote_without_collateral_says_its_tcb_status_is_unknown() -> None:
    result = attestation_result(SGX_QUOTE, nonce=b"Hello, world!", expected_pcrs={},
                                trust="aws", at=AT_DCAP, source="file")  # fmt: skip
    assert result.verdict == "VERIFIED"
    banner = _Text(verdict_html(result)).text
    assert "TCB status: unknown" in banner
    assert "no collateral" in banner
    assert "no measurement was checked" in banner
    names = [row[0] for row in _Text(pcr_table_html(result)).rows[1:]]
    assert names[:2] == ["MRENCLAVE", "MRSIGNER"]
    assert "not committed" in pcr_table_html(result)
    assert "Intel SGX Root CA" in chain_html(result)


def test_the_view_is_the_one_comparison_of_commitment_and_evidence() -> None:
    result = attestation_result(SGX_QUOTE, nonce=None, expected_pcrs={}, trust="aws",
                                at=AT_DCAP, source="file")  # fmt: skip
    fields = dict(result.tee_verdict.fields)
    view = evidence_view(result.tee_verdict, {
        "mrenclave": bytes.fromhex(fields["mrenclave"]), "mrsigner": bytes(32),
        "isvsvn": b"\x00\x00"})  # fmt: skip
    assert [(f.label, f.status) for f in view.measured] == [
        ("MRENCLAVE", "match"), ("MRSIGNER", "MISMATCH"), ("ISVSVN", "match")]
    assert [f.name for f in view.mismatched] == ["mrsigner"]


# --- the LP report ------------------------------------------------------------------------


def _run(folder: Path, commitment_tee: str, measurements: dict[str, bytes]) -> Path:
    """A run folder naming a build whose commitment names ``commitment_tee`` (no log: the
    attestation sections are what this checks; the log's absence is said in its section)."""
    _commitment(folder / "build", commitment_tee, measurements)
    run = folder / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(
        {"run_id": "r-snp", "image": str(folder / "build"), "status": "finished"}))
    return run


def test_the_lp_report_shows_an_snp_report_through_the_report_path(tmp_path: Path) -> None:
    from zcbench.errors import UsageError
    from zcbench.report import collect_report, report_sections

    run = _run(tmp_path, "sev-snp", {"measurement": MILAN_REPORT[0x90:0xC0]})
    evidence = tmp_path / "report.bin"
    evidence.write_bytes(MILAN_REPORT)
    vcek = tmp_path / "vcek.der"
    vcek.write_bytes(MILAN_VCEK)
    with pytest.raises(UsageError, match="--attestation"):
        collect_report(run, at=AT_MILAN)
    with pytest.raises(UsageError, match="--at"):
        collect_report(run, attestation=evidence, certificates=[vcek])
    report = collect_report(run, attestation=evidence, certificates=[vcek], at=AT_MILAN,
                            nonce=MILAN_REPORT[0x50:0x90])  # fmt: skip
    assert report.attestation.verified
    assert report.attestation.tee == "sev-snp"
    assert not report.verified  # no log in this folder
    facts = report.to_json()
    assert (facts["tee"], facts["verdict"], facts["tcb_status"], facts["debug"]) == (
        "sev-snp", "VERIFIED", None, False)
    assert facts["measurement"] == MILAN_REPORT[0x90:0xC0].hex()
    html = "\n".join(report_sections(report))
    page = _Text(html)
    assert "VERIFIED" in page.text
    assert "AMD Milan ARK (pinned)" in page.text
    assert "The attestation evidence (AMD SEV-SNP attestation report)" in page.text
    assert ["MEASUREMENT", MILAN_REPORT[0x90:0xC0].hex(), MILAN_REPORT[0x90:0xC0].hex(),
            "match"] in page.rows  # fmt: skip
    assert "tee sev-snp" in page.text
    command = (f"zcbench verify attestation report.bin --commitment build/commitment.json "
               f"--report-data {MILAN_REPORT[0x50:0x90].hex()} --cert vcek.der --at")
    assert command in page.text
    assert "--trust" not in page.text.split(command)[1].split("zcbench log verify")[0]


def test_the_lp_report_fails_an_snp_report_for_another_image(tmp_path: Path) -> None:
    from zcbench.report import collect_report, report_sections

    run = _run(tmp_path, "sev-snp", {"measurement": bytes(48)})
    evidence = tmp_path / "report.hex"
    evidence.write_text(MILAN_REPORT.hex())  # hex text, as SEV-SNP reports are often kept
    vcek = tmp_path / "vcek.der"
    vcek.write_bytes(MILAN_VCEK)
    report = collect_report(run, attestation=evidence, certificates=[vcek], at=AT_MILAN)
    assert report.attestation.tee_verdict.failed_check == "measurement"
    page = _Text("\n".join(report_sections(report)))
    assert "Failed check: measurement" in page.text
    assert f"expected {bytes(48).hex()}" in page.text
    assert "MISMATCH" in page.text


@pytest.mark.slow
def test_the_cli_writes_the_lp_report_of_a_tdx_commitment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = attestation_result(TDX_QUOTE, nonce=None, expected_pcrs={}, trust="aws",
                               at=AT_DCAP, source="probe")  # fmt: skip
    run = _run(tmp_path, "tdx", _fields(dict(probe.tee_verdict.fields), "mrtd", "rtmr0"))
    quote = tmp_path / "quote.bin"
    quote.write_bytes(TDX_QUOTE)
    out = tmp_path / "report.html"
    code = main(["report", str(run), "-o", str(out), "--attestation", str(quote),
                 "--collateral", str(TEE / "tdx" / "tdx_quote_collateral.json"),
                 "--at", "2025-06-20T00:00:00Z", "--json"])  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert code == 1  # the attestation verified; the folder has no log
    assert (printed["tee"], printed["verdict"], printed["tcb_status"]) == (
        "tdx", "VERIFIED", "UpToDate")
    page = _Text(out.read_text())
    assert "TCB status: UpToDate" in page.text
    assert "MRTD matches the commitment" in page.text
    assert any(row[:1] == ["RTMR0"] and row[-1] == "match" for row in page.rows)
    assert "--collateral tdx_quote_collateral.json" in page.text
