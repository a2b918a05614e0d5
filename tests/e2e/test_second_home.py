"""A new user's whole path: the fund runs the demo; an LP on a second machine, in a fresh
zcbench home holding nothing of the fund's, checks the run with only the files handed over,
using the README's LP commands, and every step says SIMULATED."""

from __future__ import annotations

import html as html_text
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# What the fund hands over (README, "An LP on another machine"): the attestation document,
# the build's commitment, the run folder with its signed log, and the development CA root.
_HANDED_OVER = ("attestation.cbor", "build/commitment.json", "run", "dev-root.pem")


def _zcbench(home: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZCBENCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "zcbench", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_an_lp_in_a_fresh_home_verifies_the_run_with_only_what_the_fund_hands_over(
    tmp_path: Path,
) -> None:
    fund_home, fund = tmp_path / "fund-home", tmp_path / "fund"
    fund.mkdir()
    demo = _zcbench(fund_home, fund, "demo", "--out", "demo-out", "--duration", "2")
    assert demo.returncode == 0, demo.stderr
    assert "SIMULATED" in demo.stdout + demo.stderr
    root = _zcbench(fund_home, fund, "nitro", "export-root", "--out", "demo-out/dev-root.pem")
    assert root.returncode == 0, root.stderr
    assert "SIMULATED" in root.stderr

    # The second machine: another folder, another home, only the handed-over files.
    lp_home, lp = tmp_path / "lp-home", tmp_path / "lp" / "received"
    for name in _HANDED_OVER:
        source, target = fund / "demo-out" / name, lp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    shutil.rmtree(fund_home)  # nothing of the fund's machine is left to lean on
    shutil.rmtree(fund)

    steps = [
        ("verify", "attestation", "attestation.cbor", "--trust", "dev-root.pem",
         "--commitment", "build/commitment.json"),
        ("log", "verify", "run", "--trust", "dev-root.pem"),
        ("report", "run", "--trust", "dev-root.pem", "-o", "report.html"),
    ]  # fmt: skip
    for argv in steps:
        done = _zcbench(lp_home, lp, *argv)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert "SIMULATED" in done.stdout + done.stderr, argv
    html = (lp / "report.html").read_text()
    assert "SIMULATED" in html
    assert "--trust dev-root.pem" in html  # its re-verify commands name the handed-over root
    assert str(tmp_path) not in html
    # ... and run as printed, from the folder the LP received (build/commitment.json, not a
    # bare commitment.json that is nowhere there).
    (block,) = re.findall(r"<pre[^>]*>(zcbench verify attestation.*?)</pre>", html, re.S)
    commands = html_text.unescape(block).splitlines()
    assert len(commands) >= 2
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "zcbench"
        done = _zcbench(lp_home, lp, *argv[1:])
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    verdict = _zcbench(lp_home, lp, "verify", "attestation", "attestation.cbor", "--trust",
                       "dev-root.pem", "--commitment", "build/commitment.json", "--json")
    result = json.loads(verdict.stdout)
    assert result["verified"] is True
    assert result["simulated"] is True
    assert result["trust_root"]["kind"] == "dev"
    assert not (lp_home / "devca").exists()  # the LP never made a CA of their own
    # Without the handed-over root, the LP's own --trust dev cannot succeed, and says why.
    refused = _zcbench(lp_home, lp, "log", "verify", "run", "--trust", "dev")
    assert refused.returncode == 3
    assert "ask the fund" in refused.stderr
