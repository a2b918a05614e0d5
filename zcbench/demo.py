"""The product's main job on the embedded defaults, end to end (``zcbench demo``).

research backtest -> package the notebook's strategy -> live run in the local enclave over the
sample data -> a fresh attestation with the caller's nonce, verified against the commitment ->
the signed log verified -> the LP report. Every step is a call to the same public API the CLI and
the widgets use; this module only sequences them and says where each artefact is. Everything it
produces locally is SIMULATED: the root of trust is the development CA.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zcbench.errors import EnvError, UsageError, VerificationError
from zcbench.risk import DEFAULT_INITIAL_CASH
from zcbench.runsettings import RUN_DEFAULTS

__all__ = ["DemoResult", "default_notebook", "run_demo"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """Where the demo left each artefact, and the verdicts it reached."""

    out_dir: Path
    build_dir: Path
    run_dir: Path
    attestation: Path
    report: Path
    pcrs: dict[str, str]
    run: dict[str, Any]
    log_classification: str
    research: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "build": str(self.build_dir),
            "run": str(self.run_dir),
            "attestation": str(self.attestation),
            "report": str(self.report),
            "pcrs": self.pcrs,
            "run_summary": self.run,
            "log_classification": self.log_classification,
            "research": self.research,
            "simulated": True,
        }


def default_notebook() -> Path:
    """The research notebook shipped beside the package (a source checkout)."""
    return Path(__file__).resolve().parents[1] / "notebooks" / "01_research.ipynb"


def run_demo(
    out_dir: Path,
    *,
    notebook: Path | None = None,
    seed: int = 7,
    duration_s: float = 5.0,
    initial_cash: float = DEFAULT_INITIAL_CASH,
    say: Say = print,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> DemoResult:
    """Run every step into ``out_dir`` (``build/``, ``run/``, ``attestation.cbor``,
    ``report.html``); raises the step's own error if one fails. The live run holds its orders
    to ``initial_cash`` (whole currency units, a cash account) and is made otherwise as
    ``zcbench run`` makes one by default (:data:`zcbench.runsettings.RUN_DEFAULTS`: the paper
    venue, feedback on)."""
    from zcbench.auditlog import check_log
    from zcbench.backtest import research_demo
    from zcbench.host.live import BuildImage, run_live
    from zcbench.host.options import new_run_id, run_options
    from zcbench.host.sources import market_source
    from zcbench.nitro import verify_attestation
    from zcbench.nitro.commitment import Commitment
    from zcbench.packager import package_notebook
    from zcbench.report import write_report

    notebook = notebook or default_notebook()
    if not notebook.is_file():
        raise EnvError(f"research notebook not found at {notebook}; pass --notebook PATH")
    out_dir = Path(out_dir)
    build_dir, run_dir = out_dir / "build", out_dir / "run"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    _clear_previous_demo(out_dir)
    if run_dir.exists():
        raise UsageError(f"{run_dir} exists: a run folder is never reused; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    # the marker goes first: an interrupted demo's outputs are then known as the demo's own
    (out_dir / _MARKER).write_text(json.dumps({"status": "started"}) + "\n")

    say("1/6 research: backtesting the example strategies")
    research = research_demo(out_dir / "research", seed=seed)

    say(f"2/6 promote: packaging the strategy cells of {notebook.name}")
    build = package_notebook(notebook, build_dir)
    pcrs = {str(k): v.hex() for k, v in build.commitment.pcrs.items()}
    say(f"    PCR0 {pcrs['0']}")

    say("3/6 run: the sealed strategy live in the local enclave over synthetic ticks")
    image = BuildImage(build_dir)
    market = market_source(image.batching(), duration_s=duration_s, seed=seed)
    nonce = secrets.token_bytes(32)
    settings = replace(RUN_DEFAULTS, initial_cash=float(initial_cash))
    run_id = new_run_id()
    summary = run_live(
        image, run_dir, market.source, run_id=run_id, account=market.account,
        capital=settings.capital(market.account), final_attest_nonce=nonce,
        **run_options(settings, run_dir, run_id),
    )
    if summary.status != "completed":
        raise VerificationError(
            f"the live run ended {summary.status}: {summary.reason} (see {run_dir})",
            check="run",
            expected="completed",
            actual=summary.status,
        )
    say(
        f"    {summary.batches} batches, {summary.events} events, {summary.signals} signals, "
        f"{summary.fills} fills; network isolation: "
        f"{'yes' if summary.isolated_network else 'NO (not allowed here)'}"
    )
    say(f"    {summary.capital_text()}")

    say("4/6 attest: a fresh document for our own nonce, verified against the commitment")
    document = (run_dir / "attestation.cbor").read_bytes()
    attestation = out_dir / "attestation.cbor"
    attestation.write_bytes(document)
    verified = verify_attestation(
        document,
        trust="dev",
        at=now(),
        expected_pcrs=dict(Commitment.load(build_dir / "commitment.json").pcrs),
        nonce=nonce,
        max_age=dt.timedelta(minutes=5),
    )
    say(f"    VERIFIED{' (SIMULATED: development CA)' if verified.simulated else ''}")

    say("5/6 audit: verifying the signed log from the boot document")
    log = check_log(run_dir, trust="dev", progress=False)
    if not log.verified:
        raise VerificationError(
            f"the run's log did not verify: {log.classification}: {log.message}",
            check="log",
            expected="intact",
            actual=log.classification,
        )
    say(f"    {log.classification}: {log.entries} records under {log.checkpoints} checkpoints")

    say("6/6 report: the LP's HTML report")
    report = write_report(
        run_dir, out_dir / "report.html", trust="dev", attestation=attestation, nonce=nonce
    )
    result = DemoResult(
        out_dir=out_dir,
        build_dir=build_dir,
        run_dir=run_dir,
        attestation=attestation,
        report=report,
        pcrs=pcrs,
        run=summary.to_json(),
        log_classification=log.classification,
        research=research,
    )
    (out_dir / _MARKER).write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    return result


_MARKER = "demo.json"
_DEMO_OUTPUTS = ("build", "run", "research", "attestation.cbor", "report.html", _MARKER)


def _clear_previous_demo(out_dir: Path) -> None:
    """Remove what an earlier demo wrote into ``out_dir``, so ``make demo`` can run again.

    Only a folder carrying the demo's marker is cleared (written before any output, so a demo
    interrupted at any step is cleared too), and only the demo's own outputs in it; anything
    else (a run folder of another origin, say) is left for the caller.
    """
    import shutil

    if not (out_dir / _MARKER).is_file():
        return
    for name in _DEMO_OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
