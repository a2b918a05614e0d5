"""``zcbench verify remote``: an LP verifies a live run over HTTP, and a rollback or fork is caught.

These start real enclaves, a real server and, for the end-to-end case, every party as its own
process: the fund's ``zcbench run`` and ``zcbench serve``, the LP's ``zcbench verify remote``
under its own, empty home holding only what the fund handed over.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

import zcbench.examples.order_flow as order_flow
from tests.serve.gated_run import GatedRun, grow_to
from tests.serve.support import RunningServer
from zcbench.nitro import export_dev_root
from zcbench.nitro.commitment import Commitment
from zcbench.serve.app import ServeConfig
from zcbench.serve.readers import Readers, add_reader
from zcbench.serve.remote import check_remote

pytestmark = pytest.mark.slow

EXAMPLE = Path(order_flow.__file__)
ZCBENCH = [sys.executable, "-m", "zcbench"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def _package(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    source = EXAMPLE.read_text().replace("from __future__ import annotations\n", "")
    nb.cells = [
        nbformat.v4.new_code_cell("batch_count = 200", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp_path / "research.ipynb")
    from zcbench.packager import package_notebook

    package_notebook(tmp_path / "research.ipynb", tmp_path / "build")
    return tmp_path / "build"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_an_lp_in_its_own_process_and_home_verifies_a_live_run_end_to_end(
        tmp_path: Path, zcbench_home: Path) -> None:
    build = _package(tmp_path)
    fund_env = {**os.environ, "ZCBENCH_HOME": str(zcbench_home)}
    runs = tmp_path / "runs"
    runs.mkdir()
    run_dir = runs / "today"
    run_log = tmp_path / "run.stderr"
    # the run outlasts the test (which ends it with Ctrl-C) however loaded the machine is
    with run_log.open("wb") as err:
        run = subprocess.Popen(
            [*ZCBENCH, "run", str(build), "--synthetic", "--rate", "2000", "--duration", "900",
             "--run-dir", str(run_dir)], env=fund_env, stdout=subprocess.DEVNULL, stderr=err)
    serve: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "control" / "attest.sock").exists():
            assert run.poll() is None, run_log.read_text()
            assert time.monotonic() < deadline, "the run never opened its control socket"
            time.sleep(0.2)
        # what the fund hands the LP: the commitment, the dev root, a reader token
        handed = tmp_path / "handed"
        handed.mkdir()
        shutil.copy(build / "commitment.json", handed / "commitment.json")
        export_dev_root(handed / "dev-root.pem")
        token = add_reader(tmp_path / "readers.json", "lp-a")
        port = _free_port()
        serve = subprocess.Popen(
            [*ZCBENCH, "serve", "--runs", str(runs), "--port", str(port), "--readers",
             str(tmp_path / "readers.json")], env=fund_env, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/runs", serve)

        lp_home = tmp_path / "lp-home"
        lp_home.mkdir()
        lp_env = {k: v for k, v in os.environ.items() if k != "ZCBENCH_TOKEN"}
        lp_env["ZCBENCH_HOME"] = str(lp_home)
        argv = [*ZCBENCH, "verify", "remote", url, "--commitment",
                str(handed / "commitment.json"), "--trust", str(handed / "dev-root.pem"),
                "--token", token, "--state", str(tmp_path / "lp-state"), "--json"]
        verdicts = []
        for visit in range(2):
            done = subprocess.run([*argv, "--report", str(tmp_path / f"visit{visit}.html")],
                                  env=lp_env, capture_output=True, timeout=120, cwd=lp_home)
            assert done.returncode == 0, (done.stdout, done.stderr)
            verdicts.append(json.loads(done.stdout))
            assert "SIMULATED" in done.stderr.decode()
        first, second = verdicts
        assert first["verified"]
        assert first["simulated"]
        assert first["tiles_checked"]
        assert first["state"] == "first_visit"
        assert second["state"] == "consistent"
        assert second["previous"]["size"] == first["published"]["size"]
        assert second["checkpoint"]["size"] >= first["checkpoint"]["size"]
        assert first["attestation"]["checked_pcrs"] == [0, 1, 2]
        assert first["origin"].endswith("/" + first["run_id"])
        assert "VERIFIED" in (tmp_path / "visit1.html").read_text()
        assert not list(lp_home.iterdir())  # the LP's home was never needed
        # without the token the same command is refused, a usage problem (exit 2)
        refused = subprocess.run([a for a in argv if a != token and a != "--token"],
                                 env=lp_env, capture_output=True, timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.decode().startswith("zcbench: ")
    finally:
        if serve is not None:
            _stop(serve)
        _stop(run)
    # stopped with Ctrl-C (130): the run removed its control socket on the way out
    assert run.returncode == 130, run_log.read_text()
    assert not (run_dir / "control").exists()
    # once the run is over, the service says so: 503, and the LP's command exits 3
    port = _free_port()
    serve = subprocess.Popen([*ZCBENCH, "serve", "--runs", str(runs), "--port", str(port)],
                             env=fund_env, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/runs", serve)
        done = subprocess.run(
            [*ZCBENCH, "verify", "remote", f"http://127.0.0.1:{port}", "--commitment",
             str(tmp_path / "handed" / "commitment.json"), "--trust",
             str(tmp_path / "handed" / "dev-root.pem")],
            env=lp_env, capture_output=True, timeout=120)
        assert done.returncode == 3
        assert "no enclave runs now" in done.stderr.decode()
    finally:
        _stop(serve)


def test_a_server_that_rolls_back_or_forks_its_log_between_visits_is_caught(
        tmp_path: Path, zcbench_home: Path) -> None:
    first_runs, second_runs = tmp_path / "first", tmp_path / "second"
    first_runs.mkdir()
    second_runs.mkdir()
    readers = tmp_path / "readers.json"
    token = add_reader(readers, "lp")
    state = tmp_path / "lp-state"
    run = GatedRun(first_runs, "run", "run-same-id")
    commitment = Commitment(pcrs=run.image.expected_pcrs())
    root = export_dev_root(tmp_path / "dev-root.pem")
    assert root.simulated
    trust = tmp_path / "dev-root.pem"
    try:
        with RunningServer(ServeConfig(runs=first_runs, readers=Readers.load(readers),
                                       attest_burst=20)) as server:
            grow_to(run, server, 40)
            visit = check_remote(server.url, commitment, trust=trust, token=token, state=state)
            assert visit.verified, visit.message
            assert visit.state == "first_visit"
            saved = visit.published
            assert saved is not None
            assert saved["size"] >= 40
            grow_to(run, server, saved["size"] + 6)
            again = check_remote(server.url, commitment, trust=trust, token=token, state=state)
            assert again.verified, again.message
            assert again.state == "consistent"
    finally:
        run.stop()
    saved = again.published
    assert saved is not None
    # the fund restarts the run under the same id (a new key, a new log) and serves that
    rerun = GatedRun(second_runs, "run", "run-same-id")
    try:
        with RunningServer(ServeConfig(runs=second_runs, readers=Readers.load(readers),
                                       attest_burst=20)) as server:
            grow_to(rerun, server, 3)
            rolled = check_remote(server.url, commitment, trust=trust, token=token, state=state)
            assert not rolled.verified
            assert rolled.failed_check == "rollback"
            assert rolled.state == "rollback"
            assert rolled.origin == again.origin
            assert rolled.tiles_checked  # the new log itself is well-formed: only history fails
            grow_to(rerun, server, saved["size"] + 2)
            forked = check_remote(server.url, commitment, trust=trust, token=token, state=state)
            assert not forked.verified
            assert forked.failed_check == "forked"
            assert forked.expected == saved["root"]
            # the saved state still holds the first log's checkpoint: nothing was overwritten
            assert json.loads(next(state.iterdir()).read_text())["note"].split("\n")[1] == str(
                saved["size"])
    finally:
        rerun.stop()


def test_a_document_against_another_commitment_fails_and_names_the_pcr(
        tmp_path: Path, zcbench_home: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    run = GatedRun(runs, "run", "run-pcr")
    try:
        export_dev_root(tmp_path / "dev-root.pem")
        with RunningServer(ServeConfig(runs=runs)) as server:
            grow_to(run, server, 3)
            wrong = Commitment(pcrs={**run.image.expected_pcrs(), 0: bytes(48)})
            report = check_remote(server.url, wrong, trust=tmp_path / "dev-root.pem")
            assert not report.verified
            assert report.failed_check == "attestation:pcr0"
            assert not report.tiles_checked
            aws = check_remote(server.url, Commitment(pcrs=run.image.expected_pcrs()),
                               trust="aws")
            assert not aws.verified  # a SIMULATED document never passes under the AWS root
            assert aws.failed_check is not None
            assert aws.failed_check.startswith("attestation:")
    finally:
        run.stop()


def test_an_lp_fetches_a_slice_of_the_live_run_and_verifies_it(
        tmp_path: Path, zcbench_home: Path) -> None:
    from zcbench.auditlog import check_log
    from zcbench.auditlog.boot import nitro_boot_verifier
    from zcbench.auditlog.slice import LogSlice, SliceEntry
    from zcbench.cli import main
    from zcbench.serve.remote import _client_get

    runs = tmp_path / "runs"
    runs.mkdir()
    readers = tmp_path / "readers.json"
    whole = add_reader(readers, "lp-whole", bodies=True)
    hashes = add_reader(readers, "lp-hashes", bodies=False)
    run = GatedRun(runs, "run", "run-slice")
    pcrs = run.image.expected_pcrs()
    commitment = Commitment(pcrs=pcrs)
    export_dev_root(tmp_path / "dev-root.pem")
    trust = tmp_path / "dev-root.pem"
    try:
        with RunningServer(ServeConfig(runs=runs, readers=Readers.load(readers),
                                       attest_burst=20)) as server:
            grow_to(run, server, 20)
            out = tmp_path / "kept.slice"
            visit = check_remote(server.url, commitment, trust=trust, token=whole,
                                 slice_range=(3, 11), slice_out=out)
            assert visit.verified, visit.message
            assert visit.slice is not None
            assert visit.slice["records"] == 8
            assert visit.slice["withheld"] is None
            assert visit.published is not None
            assert visit.slice["size"] <= visit.published["size"]
            # the kept file is a slice the CLI's log verify accepts alone
            kept = check_log(out, trust=trust, boot_verifier=nitro_boot_verifier(pcrs))
            assert kept.verified, kept.message
            assert kept.origin == visit.origin
            # a reader without market-data rights: the slice comes without IN records
            hidden = check_remote(server.url, commitment, trust=trust, token=hashes,
                                  slice_range=(1, 11))
            assert hidden.verified, hidden.message
            assert hidden.slice is not None
            assert hidden.slice["withheld"] == "in-records"
            assert 0 < hidden.slice["records"] < 10
            # a record changed on the way: the slice's proof fails and nothing is kept
            with httpx.Client(timeout=20) as client:
                real = _client_get(client)

                def tampered(url: str, headers: dict[str, str]) -> tuple[
                        int, dict[str, str], bytes]:
                    status, answer, body = real(url, headers)
                    if "/slice?" in url and status == 200:
                        sliced = LogSlice.from_bytes(body)
                        first = sliced.entries[0]
                        changed = SliceEntry(first.record[:-1] + bytes([first.record[-1] ^ 1]),
                                             first.proof)
                        body = LogSlice(sliced.boot, sliced.checkpoint,
                                        (changed, *sliced.entries[1:]),
                                        sliced.selection).to_bytes()
                    return status, answer, body

                spoiled = tmp_path / "spoiled.slice"
                bad = check_remote(server.url, commitment, trust=trust, token=whole,
                                   slice_range=(3, 11), slice_out=spoiled, get=tampered)
            assert not bad.verified
            assert bad.failed_check is not None
            assert bad.failed_check.startswith("slice:")
            assert not spoiled.exists()
            # a range past the served log is the LP's usage problem (exit 2), with the reason
            (tmp_path / "c.json").write_text(json.dumps(commitment.to_dict()))
            base = ["verify", "remote", server.url, "--commitment", str(tmp_path / "c.json"),
                    "--trust", str(trust), "--token", whole]
            assert main([*base, "--slice", "1:999999"]) == 2
            assert main([*base, "--slice", "5"]) == 2
            assert main([*base, "--slice-out", str(tmp_path / "x")]) == 2
            assert main([*base, "--slice", "1:3", "--json"]) == 0
    finally:
        run.stop()
