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

__all__ = ["render_live_page", "render_report"]

_REPORT_INTRO = (
    "<p>The verdict of <code>zcbench verify remote</code>, computed on the verifier's own "
    "machine at {at}. Below, this page verifies the same evidence again by itself, in your "
    "browser, with WebCrypto and no network: the attestation document's signature and "
    "certificate chain (ECDSA P-384) up to the root embedded here, its PCRs against the "
    "commitment, its nonce, the checkpoint it carries (Ed25519, by the attested log key), the "
    "served checkpoint, and both log roots recomputed from the embedded hash tiles. Compare the "
    "root's fingerprint with the one the fund handed you: a page cannot vouch for its own root. "
    "The document's age is not checked here (the page is an archive); it was at the time "
    "above.</p>"
)
_LIVE_INTRO = (
    "<p>Run logs as C2SP tlog-tiles, and fresh attestations from the enclave of the run in "
    "progress. <strong>Nothing this server says is a verdict:</strong> a verdict only counts "
    "when your own copy of the verifier computed it, with the commitment and the root the fund "
    "handed you:</p><pre>zcbench verify remote URL --commitment commitment.json --trust aws "
    "--token TOKEN --state DIR --report verdict.html</pre>"
    "<p>For convenience, the same checks run in this page (a copy served by the fund, so it "
    "proves nothing a copy of your own would not): paste the commitment and the root, then "
    "Verify. It asks for a document with a random nonce and fetches the tiles it needs.</p>"
    "<p><label>commitment.json<br><textarea id=commitment rows=6 cols=80></textarea></label></p>"
    "<p><label>root certificate (PEM)<br><textarea id=root rows=6 cols=80></textarea></label></p>"
    "<p><label>reader token <input id=token size=60 autocomplete=off></label> "
    "<button id=verify>Verify</button></p>"
)


def _fill(title: str, intro: str, rows: str, verdict_json: str, evidence: str,
          connect: str) -> str:
    template = (files("zcbench.serve") / "lp_report.html.tmpl").read_text(encoding="utf-8")
    return (
        template.replace("{{TITLE}}", html.escape(title))
        .replace("{{CONNECT}}", connect)
        .replace("{{INTRO}}", intro)
        .replace("{{ROWS}}", rows)
        .replace("{{JSON}}", verdict_json)
        .replace("{{EVIDENCE}}", evidence)
    )


def render_live_page(rows: str) -> str:
    """The page ``zcbench serve`` answers at ``/``: its runs (``rows``, HTML table rows) and the
    same in-browser checks over evidence it gathers from this server."""
    return _fill("proof service", _LIVE_INTRO, rows, "", "null", "'self'")


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
    intro = _REPORT_INTRO.format(at=html.escape(str(verdict["at"])))
    return _fill(f"remote verdict: {title}", intro, "".join(rows),
                 html.escape(json.dumps(verdict, indent=2, sort_keys=True)),
                 _script_json(report.evidence), "'none'")
