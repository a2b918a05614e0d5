"""Views of one attestation result as HTML: verdict banner, PCR table, chain, facts.

Owns how a result is shown, and nothing about what it means: every word about the trust root
comes from the result's ``trust_root`` (AWS, SIMULATED, or a custom root by fingerprint), every
verdict from the verifier's report. Used by the LP report and by the attestation panel
(:mod:`zcbench.widgets.attestation`). No widget toolkit is imported here.
"""

from __future__ import annotations

from zcbench.report import html as h
from zcbench.report.attestation import AttestationResult

__all__ = [
    "chain_html",
    "document_facts_html",
    "pcr_table_html",
    "verdict_html",
]

_SHOWN_PCRS = (0, 1, 2, 3, 4, 8)  # the PCRs Nitro defines; the others are always zero


def verdict_html(result: AttestationResult) -> str:
    """The verdict banner: VERIFIED or FAILED (with the check), SIMULATED beside it when so."""
    report = result.report
    trust_root = report.trust_root
    simulated = h.pill("SIMULATED", h.AMBER) if report.simulated else ""
    if trust_root.kind == "custom":
        simulated = h.pill("CUSTOM ROOT", h.AMBER)
    lines: list[str] = []
    if report.verified:
        colour = h.GREEN
        root = {
            "aws": "the AWS Nitro root",
            "dev": "the local development CA",
        }.get(trust_root.kind, h.esc(trust_root.description))
        lines.append(
            f"Signature and certificate chain verified to {root}; "
            + (
                f"PCR{', PCR'.join(str(i) for i in report.checked_pcrs)} match the commitment; "
                if report.pcrs_checked
                else "<b>no PCR was checked</b>; "
            )
            + (
                "your nonce is in the document."
                if result.nonce is not None
                else "<b>no nonce was given, so freshness was not checked</b>."
            )
        )
    else:
        colour = h.RED
        lines.append(f"Failed check: <b>{h.esc(report.failed_check)}</b>")
        lines.append(h.esc(report.message))
        if report.expected is not None or report.actual is not None:
            lines.append(f"expected {h.mono(str(report.expected))}")
            lines.append(f"actual&nbsp;&nbsp;&nbsp;{h.mono(str(report.actual))}")
    if report.simulated:
        lines.append(
            f'<span style="color:{h.AMBER}">SIMULATED: the root is the local development CA. '
            "This is a faithful stand-in for a Nitro enclave, not a confidential one.</span>"
        )
    elif trust_root.kind == "custom":
        lines.append(
            f'<span style="color:{h.AMBER}">The root is not AWS\'s: '
            f"{h.esc(trust_root.description)}. This proves only what that root's owner vouches "
            "for.</span>"
        )
    for warning in report.warnings:
        lines.append(f'<span style="color:{h.AMBER}">{h.esc(warning)}</span>')
    return h.banner(result.verdict, colour, lines, extra=simulated)


def pcr_table_html(result: AttestationResult) -> str:
    """PCRs expected (commitment) against actual (document), one row per PCR shown."""
    doc = result.report.document
    actual = dict(doc.pcrs) if doc is not None else {}
    shown = {i for i in _SHOWN_PCRS if any(actual.get(i, b""))}
    indices = sorted(set(result.expected_pcrs) | shown)
    rows: list[list[str]] = []
    colours: list[str | None] = []
    for i in indices:
        want = result.expected_pcrs.get(i)
        got = actual.get(i)
        if want is None:
            status, colour = "not committed", None
        elif got is None:
            status, colour = "MISSING", "#ffebe9"
        elif got == want:
            status, colour = "match", "#dafbe1"
        else:
            status, colour = "MISMATCH", "#ffebe9"
        rows.append(
            [
                f"PCR{i}",
                h.esc("—" if want is None else want.hex()),
                h.esc("—" if got is None else got.hex()),
                f"<b>{h.esc(status)}</b>",
            ]
        )
        colours.append(colour)
    if not rows:
        return h.notice("no PCRs to show: the document did not parse")
    return h.table(
        ["PCR", "expected (commitment)", "actual (document)", ""],
        rows,
        mono_columns=(1, 2),
        nowrap_columns=(0, 3),
        row_colours=colours,
    )


def chain_html(result: AttestationResult) -> str:
    """The certificate chain, root first, with each certificate's validity at the check time."""
    report = result.report
    if not report.chain:
        return h.notice("no certificate chain could be read from the document")
    rows = []
    colours: list[str | None] = []
    n = len(report.chain)
    for i, cert in enumerate(report.chain):
        role = "root" if i == 0 else "leaf" if i == n - 1 else "intermediate"
        valid = cert.not_before <= report.at <= cert.not_after
        rows.append(
            [
                h.esc(role),
                h.esc(cert.subject),
                h.when(cert.not_before),
                h.when(cert.not_after),
                "valid" if valid else "<b>NOT VALID</b>",
            ]
        )
        colours.append(None if valid else "#ffebe9")
    return h.table(
        ["", "subject", "not before", "not after", f"at {h.when(report.at)}"],
        rows,
        nowrap_columns=(0, 2, 3, 4),
        row_colours=colours,
    )


def document_facts_html(result: AttestationResult) -> str:
    """Document time, age, module, nonce, source, trust root, and the checkpoint it carries."""
    report = result.report
    doc = report.document
    age = result.age
    pairs = [
        ("source", h.esc(result.source)),
        ("trust root", h.esc(report.trust_root.description)),
        ("nonce asked for", h.mono("— (not checked)" if result.nonce is None
                                   else result.nonce.hex())),
        ("nonce in document", h.mono("—" if doc is None or doc.nonce is None else doc.nonce.hex())),
        ("document time", h.when(doc.time if doc is not None else None)),
        ("age when checked", h.esc("—" if age is None else h.duration(age))),
        ("checked at", h.when(report.at)),
        ("module", h.esc("—" if doc is None else doc.module_id)),
    ]
    if result.commitment:
        strategy = result.commitment.get("strategy")
        sha = result.commitment.get("strategy_sha256")
        pairs.append(("strategy (commitment)", h.esc(strategy if strategy else "—")))
        pairs.append(("strategy_sha256", h.mono(str(sha) if sha else "—")))
    cp = result.checkpoint
    if cp is not None:
        sign = (
            f'<span style="color:{h.GREEN}">signed by the attested log key</span>'
            if cp.signed
            else f'<span style="color:{h.RED}">{h.esc(cp.problem)}</span>'
        )
        noun = "record" if cp.size == 1 else "records"
        pairs.append(("log checkpoint", f"{h.esc(cp.size)} {noun}; {sign}"))
        pairs.append(("log origin", h.mono(cp.origin)))
        pairs.append(("log root", h.mono(cp.root.hex())))
    elif result.checkpoint_problem:
        pairs.append(("log checkpoint", f'<span style="color:{h.RED}">'
                      f"{h.esc(result.checkpoint_problem)}</span>"))
    else:
        pairs.append(("log checkpoint", "none in this document"))
    return h.facts(pairs)
