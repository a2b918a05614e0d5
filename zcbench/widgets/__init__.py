"""zcbench.widgets: the PM's, LP's and analyst's panels, thin over the public API.

Three ipywidgets panels, each over a small backend interface whose real implementation calls the
same functions the CLI calls (DESIGN.md, "Who uses what"):

* :class:`AttestationPanel`: nonce, "Request attestation", the verdict (VERIFIED / FAILED with
  the failed check / SIMULATED under the development CA), PCRs expected against actual, the
  certificate chain, document time and age, "Export report";
* :class:`LiveRunPanel`: start and stop a local run and watch it live;
* :class:`LogInspector`: verify, browse, export and replay a signed log.

They hold no verification logic of their own and never swallow an error: a failure is shown in
the panel as a readable message and the panel stays usable.
"""

from zcbench.widgets.attestation import AttestationPanel, AttestationResult, parse_nonce
from zcbench.widgets.liverun import LiveRunPanel, RunRequest, RunSnapshot
from zcbench.widgets.loginspector import LogInspector, ReplaySummary

__all__ = [
    "AttestationPanel",
    "AttestationResult",
    "LiveRunPanel",
    "LogInspector",
    "ReplaySummary",
    "RunRequest",
    "RunSnapshot",
    "parse_nonce",
]
