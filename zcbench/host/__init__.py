"""The host side of a live run: market-data proxy, enclave launchers, log writer, execution.

* :mod:`~zcbench.host.proxy`      sources, field stripping, batching, bounded queue, freshness
* :mod:`~zcbench.host.launcher`   the local enclave process; ``nitro-cli`` commands and parsing
* :mod:`~zcbench.host.logwriter`  store the enclave's records, recompute, verify, then release
* :mod:`~zcbench.host.execution`  risk limits, paper fills, positions, PnL, the journal
* :mod:`~zcbench.host.images`     enclave images (module, build) and the PCRs they must attest to
* :mod:`~zcbench.host.session`    one enclave session for live runs and replays: boot, log, stop
* :mod:`~zcbench.host.summary`    the run's progress snapshot and summary
* :mod:`~zcbench.host.live`       :func:`run_live`, the pipelined runner tying them together
* :mod:`~zcbench.host.options`    a run's settings (``zcbench.runsettings``) as run_live arguments

The host never holds the enclave's signing key; it acts only on signals covered by a checkpoint
it verified over records it wrote (log before act).
"""

from zcbench.host.execution import ExecutionLayer, OrderResult, RiskLimits, VerifiedSignals
from zcbench.host.images import BuildImage, EnclaveImage, ModuleImage
from zcbench.host.launcher import (
    EnclaveProcess,
    LocalEnclave,
    NitroEnclave,
    launch_local,
    launch_nitro,
)
from zcbench.host.live import RunHandle, run_live
from zcbench.host.logwriter import HostLog
from zcbench.host.proxy import LiveSource, MarketDataProxy, ProxyBatch, ProxyStats, ReplaySource
from zcbench.host.summary import RunProgress, RunSummary

__all__ = [
    "BuildImage",
    "EnclaveImage",
    "EnclaveProcess",
    "ExecutionLayer",
    "HostLog",
    "LiveSource",
    "LocalEnclave",
    "MarketDataProxy",
    "ModuleImage",
    "NitroEnclave",
    "OrderResult",
    "ProxyBatch",
    "ProxyStats",
    "ReplaySource",
    "RiskLimits",
    "RunHandle",
    "RunProgress",
    "RunSummary",
    "VerifiedSignals",
    "launch_local",
    "launch_nitro",
    "run_live",
]
