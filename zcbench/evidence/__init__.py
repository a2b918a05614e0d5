"""zcbench.evidence: the index of records an examiner asks for, recomputed from run folders.

MiFID II Art. 17 and RTS 6 ask an algorithmic-trading firm for its algorithms and their
versions, each order tied to the algorithm responsible (RTS 6 Art. 12), the pre-trade controls
(Art. 15) and their events, clocks traceable to UTC within RTS 25's limit; SEC 17a-4 and Rule
204-2 for records kept unalterable and produced promptly. A pack holds, for given runs:

* ``runs`` and ``algorithms``: each run's log verdict; each version by PCR0 with its commitment
* ``orders``: every journal row with its PCR0, OUT log index, the OUT record's leaf hash and
  whether the signal is in the signed log
* ``controls``, ``control_changes``, ``control_flags`` and ``control_events``: the limits in
  force at the start (its signed control record; or that the run recorded none), every change,
  kill and re-enable (who, when, old, new), everything that contradicts them (a limit change
  not made through the logged command), and every reject by the control that made it
* ``clock``: each record's time source and error bound against the chosen RTS 25 limit;
  records without a bound are flagged, never assumed within it
* ``archive``: bucket, key, VersionId, SHA-256 of every archived file (``zcbench archive``)
* with the strategy's ledger, ``ledger_versions``, ``ledger_archives`` and ``ledger_controls``:
  the versions it announced, its archive entries, and the control entries the enclave signed
  for each control record of a run
* ``files``: every source file, its SHA-256 and the command that re-verifies it

Modules: :mod:`~zcbench.evidence.clock` (clock sources with their error bounds: the host's
kernel discipline, AWS ClockBound), :mod:`~zcbench.evidence.collect` (the facts),
:mod:`~zcbench.evidence.pack` (HTML, CSV, Parquet, ``SHA256SUMS``),
:mod:`~zcbench.evidence.verify` (rebuild and compare).
"""

from zcbench.evidence.clock import (
    ClockBoundSource,
    ClockReading,
    ClockSource,
    HostClock,
    judge,
    parse_clockbound,
)
from zcbench.evidence.collect import (
    RTS25_LIMITS_NS,
    EvidenceTables,
    RunFacts,
    collect_evidence,
    iso_ns,
)
from zcbench.evidence.pack import PACK_SCHEMA, EvidencePack, build_pack, files_table
from zcbench.evidence.verify import PackReport, PackVerificationError, check_pack, verify_pack

__all__ = [
    "PACK_SCHEMA",
    "RTS25_LIMITS_NS",
    "ClockBoundSource",
    "ClockReading",
    "ClockSource",
    "EvidencePack",
    "EvidenceTables",
    "HostClock",
    "PackReport",
    "PackVerificationError",
    "RunFacts",
    "build_pack",
    "check_pack",
    "collect_evidence",
    "files_table",
    "iso_ns",
    "judge",
    "parse_clockbound",
    "verify_pack",
]
