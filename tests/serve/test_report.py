"""The self-verifying LP report of ``verify remote``, checked in Chromium against good and bad
evidence, each bad case refused by the Python verifier too."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.gated_run import GatedRun, grow_to
from tests.serve.support import RunningServer
from zcbench.nitro import AttestationPolicy, check_attestation, export_dev_root
from zcbench.nitro.commitment import Commitment
from zcbench.serve.app import ServeConfig
from zcbench.serve.remote import check_remote
from zcbench.serve.report import _script_json, render_report

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
_EVIDENCE = re.compile(r'(<script type="application/json" id="zcbench-evidence">)(.*?)(</script>)',
                       re.S)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import os

    tmp = tmp_path_factory.mktemp("report")
    old = os.environ.get("ZCBENCH_HOME")
    os.environ["ZCBENCH_HOME"] = str(tmp / "home")
    try:
        runs = tmp / "runs"
        runs.mkdir()
        run = GatedRun(runs, "run", "run-report")
        try:
            export_dev_root(tmp / "dev-root.pem")
            with RunningServer(ServeConfig(runs=runs)) as server:
                grow_to(run, server, 300)  # past one full tile
                commitment = Commitment(pcrs=run.image.expected_pcrs())
                report = check_remote(server.url, commitment, trust=tmp / "dev-root.pem")
                assert report.verified, report.message
                assert httpx.get(server.url + "/runs", timeout=10).status_code == 200
        finally:
            run.stop()
        return {"html": render_report(report), "tmp": tmp, "report": report,
                "root": tmp / "dev-root.pem"}
    finally:
        if old is None:
            os.environ.pop("ZCBENCH_HOME", None)
        else:
            os.environ["ZCBENCH_HOME"] = old


def _with(page: str, change: Callable[[dict[str, Any]], None]) -> tuple[str, dict[str, Any]]:
    match = _EVIDENCE.search(page)
    assert match is not None
    evidence = json.loads(match.group(2))
    change(evidence)
    return page[:match.start(2)] + _script_json(evidence) + page[match.end(2):], evidence


def _flip_last(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _aws_root_der() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = (Path(__file__).parents[1] / "vectors" / "nitro" / "aws_nitro_root_g1.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return base64.b64encode(der).decode()


def _flip_tile(evidence: dict[str, Any]) -> None:
    path = sorted(evidence["tiles"])[0]
    evidence["tiles"][path] = _flip_last(evidence["tiles"][path])


CASES: list[tuple[str, Callable[[dict[str, Any]], None] | None, str]] = [
    ("good", None, "VERIFIED (SIMULATED"),
    ("document signature", lambda e: e.update(document=_flip_last(e["document"])),
     "FAILED: signature"),
    ("another commitment", lambda e: e["expected_pcrs"].update({"0": "00" * 48}),
     "FAILED: pcr0"),
    ("another nonce", lambda e: e.update(nonce="00" * 32), "FAILED: nonce"),
    ("another root", lambda e: e.update(root=_aws_root_der()), "FAILED: root"),
    ("a tile changed", _flip_tile, "FAILED: tiles_root_attested"),
    ("served checkpoint changed", lambda e: e.update(published=e["published"].replace(
        e["published"].split("\n")[2], base64.b64encode(bytes(32)).decode())),
     "FAILED: published_signature"),
]


def test_the_report_verifies_itself_in_chromium(good: dict[str, Any]) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser-deps)")
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    def in_chromium() -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
            try:
                page = browser.new_page()
                for name, change, want in CASES:
                    html, evidence = (good["html"], None) if change is None else _with(
                        good["html"], change)
                    path = good["tmp"] / f"{name.replace(' ', '-')}.html"
                    path.write_text(html, encoding="utf-8")
                    page.goto(path.as_uri())
                    page.wait_for_selector("body[data-verdict]", state="attached",
                                           timeout=60_000)
                    got = page.get_attribute("body", "data-verdict") or ""
                    assert got.startswith(want), (name, got)
                    if evidence is not None and name in (
                            "document signature", "another commitment", "another nonce",
                            "another root"):
                        _python_refuses(evidence, good)
            finally:
                browser.close()

    _in_own_thread(in_chromium)


def _in_own_thread(body: Callable[[], None]) -> None:
    """Run ``body`` in a thread of its own: Playwright's sync API refuses a thread whose event
    loop is already running, as the main thread's is while the browser suite's session-wide
    Playwright is open."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as exc:  # handed back to the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run, name="playwright")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def _python_refuses(evidence: dict[str, Any], good: dict[str, Any]) -> None:
    """The same bad evidence, given to the Python verifier, is refused too."""
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".der", delete=False) as handle:
        handle.write(base64.b64decode(evidence["root"]))
    root_der = Path(handle.name)
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = root_der.with_suffix(".pem")
        pem.write_bytes(x509.load_der_x509_certificate(root_der.read_bytes())
                        .public_bytes(Encoding.PEM))
        policy = AttestationPolicy(
            expected_pcrs={int(k): bytes.fromhex(v) for k, v in evidence["expected_pcrs"].items()},
            nonce=bytes.fromhex(evidence["nonce"]), trust=pem)
        document = base64.b64decode(evidence["document"])
        report = check_attestation(document, policy, at=good["report"].at)
        assert not report.verified
    finally:
        root_der.unlink(missing_ok=True)
        root_der.with_suffix(".pem").unlink(missing_ok=True)


def test_the_page_at_the_root_runs_the_same_checks_against_the_live_server(
        tmp_path: Path, zcbench_home: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser-deps)")
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    runs.mkdir()
    run = GatedRun(runs, "run", "run-page")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    try:
        root = export_dev_root(tmp_path / "dev-root.pem")
        with RunningServer(ServeConfig(runs=runs, attest_burst=20)) as server:
            grow_to(run, server, 3)
            run.flowing.set()  # the log keeps growing while the page verifies

            def in_chromium() -> None:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
                    try:
                        page = browser.new_page()
                        page.goto(server.url + "/")
                        good = run.image.expected_pcrs()
                        for pcrs, want in ((good, "VERIFIED (root " + root.fingerprint),
                                           ({**good, 0: bytes(48)}, "FAILED: pcr0")):
                            page.fill("#commitment", Commitment(pcrs=pcrs).to_json().decode())
                            page.fill("#root", (tmp_path / "dev-root.pem").read_text())
                            page.click("#verify")
                            page.wait_for_selector("body[data-verdict]", state="attached",
                                                   timeout=60_000)
                            got = page.get_attribute("body", "data-verdict") or ""
                            assert got.startswith(want), got
                    finally:
                        browser.close()

            _in_own_thread(in_chromium)
    finally:
        run.stop()
