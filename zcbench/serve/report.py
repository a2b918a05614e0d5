"""The LP's remote verdict as an HTML page that verifies itself (``verify remote --report``).

The page shows the verdict :func:`~zcbench.serve.remote.check_remote` computed and embeds its
evidence (the document, nonce, expected PCRs, the root's DER, the checkpoint notes, the hash
tiles); a script in the page (``lp_report.html.tmpl``, WebCrypto, no network) re-verifies the
document's signature and chain up to that root, the PCRs and nonce, both checkpoints' Ed25519
signatures by the attested log key and both roots from the tiles, and says VERIFIED or the
first failed check. It decides nothing the Python verifier did not; it lets an LP without
Python check the same evidence.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any

from zcbench.serve.remote import RemoteReport

__all__ = ["render_report"]


def _script_json(value: Any) -> str:
    # inside <script type="application/json">: nothing may close the element early
    return json.dumps(value, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")


def render_report(report: RemoteReport) -> str:
    """The self-verifying HTML page of ``report``."""
    verdict = report.to_dict()
    rows = []
    for key in ("verified", "failed_check", "message", "url", "at", "nonce", "run_id", "origin",
                "simulated", "tiles_checked", "state"):
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(verdict[key]))}</td></tr>")
    for key in ("checkpoint", "published", "previous"):
        if verdict[key]:
            text = f"size {verdict[key]['size']}, root {verdict[key]['root']}"
            rows.append(f"<tr><th>{key}</th><td>{html.escape(text)}</td></tr>")
    if report.trust_root:
        rows.append("<tr><th>root</th><td>"
                    f"{html.escape(report.trust_root.get('description', ''))}</td></tr>")
    title = ("VERIFIED" if report.verified else "FAILED") + (
        " (SIMULATED)" if report.simulated else "")
    template = (files("zcbench.serve") / "lp_report.html.tmpl").read_text(encoding="utf-8")
    return (
        template.replace("{{TITLE}}", html.escape(title))
        .replace("{{AT}}", html.escape(str(verdict["at"])))
        .replace("{{ROWS}}", "".join(rows))
        .replace("{{JSON}}", html.escape(json.dumps(verdict, indent=2, sort_keys=True)))
        .replace("{{EVIDENCE}}", _script_json(report.evidence))
    )
