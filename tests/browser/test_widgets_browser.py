"""The panels in a real browser: JupyterLab and Voila on localhost, driven in Chromium.

Each test saves screenshots under test-artifacts/browser/ for people to look at.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.browser_support import ARTIFACTS, Server, World

pytestmark = pytest.mark.browser

LONG = 120_000  # ms: generous bounds for a kernel start and a run, ten times the usual


def _open_and_run_all(page: Any, server: Server, notebook: str) -> None:
    # ?reset: a fresh workspace, so only this notebook is open and active.
    page.goto(server.url(f"/lab/tree/{notebook}?reset"))
    expect(page.locator(".jp-Notebook").first).to_be_visible(timeout=LONG)
    # Should JupyterLab still ask which kernel to start, take the notebook's own (python3).
    select = page.get_by_role("button", name="Select Kernel")
    with contextlib.suppress(PlaywrightTimeout):
        select.click(timeout=3000)
    # Run only once the kernel is idle, so no cell waits in a queue unseen.
    expect(page.get_by_role("button", name=re.compile(r"\| Idle$"))).to_be_visible(timeout=LONG)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _throughput(panel: Any) -> float:
    match = re.search(r"THROUGHPUT\s*([\d,.]+) ev/s", panel.inner_text(), re.IGNORECASE)
    return float(match.group(1).replace(",", "")) if match else 0.0


def test_attestation_in_jupyterlab(page: Any, jupyterlab: Server, world: World) -> None:
    _open_and_run_all(page, jupyterlab, "04_attestation.ipynb")
    panel = page.locator(".zcbench-attestation-panel")
    expect(panel).to_be_visible(timeout=LONG)
    panel.get_by_role("button", name=re.compile("Request attestation")).click()
    expect(panel).to_contain_text("VERIFIED", timeout=LONG)
    expect(panel).to_contain_text("SIMULATED")
    expect(panel).to_contain_text("match")
    expect(panel).to_contain_text("signed by the attested log key")  # a running enclave's
    expect(panel).not_to_contain_text("FAILED")
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=ARTIFACTS / "attestation-panel-jupyterlab.png")
    page.screenshot(path=ARTIFACTS / "attestation-jupyterlab.png", full_page=True)
    # A malformed nonce is a message in the panel, and the panel stays usable.
    nonce = panel.locator("input[type='text']").first
    nonce.fill("not-hex")
    panel.get_by_role("button", name=re.compile("Request attestation")).click()
    expect(panel).to_contain_text("hex digits", timeout=LONG)
    panel.get_by_role("button", name=re.compile("New nonce")).click()
    panel.get_by_role("button", name=re.compile("Export report")).click()
    expect(panel).to_contain_text("Exported", timeout=LONG)
    assert list(world.root.glob("attestation-*.json"))


def test_live_run_in_jupyterlab(page: Any, jupyterlab: Server, world: World) -> None:
    _open_and_run_all(page, jupyterlab, "03_live_run.ipynb")
    panel = page.locator(".zcbench-liverun-panel")
    expect(panel).to_be_visible(timeout=LONG)
    panel.get_by_role("button", name=re.compile("Start")).click()
    expect(panel).to_contain_text("RUNNING", timeout=LONG)
    deadline = time.monotonic() + LONG / 1000
    while _throughput(panel) <= 0 and time.monotonic() < deadline:
        if "FAILED" in panel.inner_text():
            break  # the panel says why; the assertion below shows it
        time.sleep(0.5)
    assert _throughput(panel) > 0, panel.inner_text()
    time.sleep(2)  # let the charts fill for the screenshot
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=ARTIFACTS / "liverun-panel-running.png")
    panel.get_by_role("button", name=re.compile("Stop")).click()
    expect(panel).to_contain_text("STOPPED", timeout=LONG)
    expect(panel).to_contain_text("positions")  # the run's closing figures are in
    assert _throughput(panel) > 0
    # money in the currency the run recorded (the synthetic symbols' USD), not "currency units"
    expect(panel).to_contain_text(re.compile(r"PnL \(USD\)", re.IGNORECASE))
    expect(panel).not_to_contain_text(re.compile("currency unit", re.IGNORECASE))
    # capital binds as in `zcbench run`: the account and the refusals for lack of it
    expect(panel).to_contain_text(re.compile(r"cash \(USD\)", re.IGNORECASE))
    expect(panel).to_contain_text(re.compile(r"buying power used \(USD\)", re.IGNORECASE))
    expect(panel).to_contain_text("refused: insufficient cash")
    expect(panel).not_to_contain_text("ERROR")
    panel.screenshot(path=ARTIFACTS / "liverun-panel-stopped.png")
    assert list((world.root / "runs").glob("*/summary.json"))


def test_log_inspector_in_jupyterlab(page: Any, jupyterlab: Server, world: World) -> None:
    _open_and_run_all(page, jupyterlab, "05_log_replay.ipynb")
    panel = page.locator(".zcbench-log-inspector")
    expect(panel).to_be_visible(timeout=LONG)
    expect(panel).to_contain_text("records match", timeout=LONG)
    panel.get_by_role("button", name=re.compile(r"\bVerify$")).click()
    expect(panel).to_contain_text("VERIFIED", timeout=LONG)
    expect(panel.get_by_role("combobox").first).to_contain_text("out", timeout=LONG)
    panel.get_by_role("combobox").first.select_option("out")
    panel.get_by_role("button", name=re.compile("Apply filters")).click()
    expect(panel).to_contain_text("AAA", timeout=LONG)
    panel.get_by_role("button", name=re.compile("Export slice")).click()
    expect(panel).to_contain_text("zcbench log verify", timeout=LONG)
    # Replay from the first batch: the strategy keeps state, so a replay must start there.
    start = panel.locator("input[type='number']").first
    start.fill("0")
    start.press("Enter")
    panel.get_by_role("button", name=re.compile("Replay")).click()
    expect(panel).to_contain_text("REPLAY MATCHES", timeout=LONG)
    panel.screenshot(path=ARTIFACTS / "log-inspector-jupyterlab.png")


def test_attestation_dashboard_in_voila(page: Any, voila: Server) -> None:
    page.goto(voila.url("/"))
    panel = page.locator(".zcbench-attestation-panel")
    expect(panel).to_be_visible(timeout=LONG)
    # A dashboard: the code cells are not on the page.
    assert "emulator_backend" not in page.content()
    panel.get_by_role("button", name=re.compile("Request attestation")).click()
    expect(panel).to_contain_text("VERIFIED", timeout=LONG)
    expect(panel).to_contain_text("SIMULATED")
    expect(panel).to_contain_text("signed by the attested log key")
    page.screenshot(path=ARTIFACTS / "attestation-voila.png", full_page=True)
