"""zcbench.report: the LP's attestation report for a run, as one HTML file.

``write_report(run_dir, out_path)`` checks the run's attestation document against the
commitment its ``summary.json`` names, and its signed log, with the same verifiers the CLI uses,
then writes an executed notebook converted by nbconvert with the code hidden: commitment,
document facts, nonce, verdict (SIMULATED under the development CA), checkpoint, and the
commands that re-verify it. ``zcbench report RUN_DIR`` is the same from the command line.
"""

from zcbench.report._lp import LPReport, collect_report, report_sections, write_report

__all__ = ["LPReport", "collect_report", "report_sections", "write_report"]
