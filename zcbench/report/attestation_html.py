"""Views of one attestation result as HTML: verdict banner, measured fields, chain, facts.

Owns how a result is shown, and nothing about what it means: every verdict, failed check and
TCB status comes from the result's :class:`~zcbench.tee.TeeVerdict`, every measured field and
its status from :func:`zcbench.tee.view.evidence_view`, every word about a Nitro root from the
report's ``trust_root`` (AWS, SIMULATED, or a custom root by fingerprint). Nitro documents,
SEV-SNP reports and TDX/SGX quotes are shown by the same functions. Used by the LP report and
by the attestation panel (:mod:`zcbench.widgets.attestation`). No widget toolkit is imported
here.
"""

from __future__ import annotations

from zcbench.report import html as h
from zcbench.report.attestation import AttestationResult

__all__ = [
    "chain_html",
    "document_facts_html",
    "measured_title",
    "pcr_table_html",
    "verdict_html",
]

_STATUS_COLOURS = {"match": "#dafbe1", "MISMATCH": "#ffebe9", "MISSING": "#ffebe9"}


def _failure_lines(result: AttestationResult) -> list[str]:
    verdict = result.tee_verdict
    lines = [f"Failed check: <b>{h.esc(verdict.failed_check)}</b>", h.esc(verdict.message)]
    if verdict.expected is not None or verdict.actual is not None:
        actual = "(none)" if verdict.actual is None else verdict.actual
        lines.append(f"expected {h.mono(str(verdict.expected))}")
        lines.append(f"actual&nbsp;&nbsp;&nbsp;{h.mono(actual)}")
    return lines


def _nitro_lines(result: AttestationResult) -> tuple[list[str], str]:
    report = result.report
    assert report is not None
    trust_root = report.trust_root
    extra = h.pill("SIMULATED", h.AMBER) if report.simulated else ""
    if trust_root.kind == "custom":
        extra = h.pill("CUSTOM ROOT", h.AMBER)
    lines: list[str] = []
    if report.verified:
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
        lines += _failure_lines(result)
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
    return lines, extra


def _tee_lines(result: AttestationResult) -> list[str]:
    verdict = result.tee_verdict
    view = result.view
    if not verdict.verified:
        return _failure_lines(result)
    lines = [
        f"{h.esc(view.tee_name)}: signature and certificate chain verified to "
        f"{h.esc(verdict.rests_on)}; "
        + (
            f"{h.esc(view.measurement_label)} matches the commitment; "
            if verdict.measurement_checked
            else "<b>no measurement was checked</b>; "
        )
        + (
            "your nonce is its report data."
            if result.nonce is not None
            else "<b>no nonce was given, so freshness was not checked</b>."
        )
    ]
    if view.tcb_text is not None:
        colour = h.GREEN if verdict.tcb_status == "UpToDate" else h.AMBER
        lines.append(f'<span style="color:{colour}">TCB status: {h.esc(view.tcb_text)}</span>')
    return lines


def verdict_html(result: AttestationResult) -> str:
    """The verdict banner: VERIFIED or FAILED (with the check, expected and actual), the TEE,
    SIMULATED beside it when so, and every warning the verifier carried."""
    verdict = result.tee_verdict
    if result.report is not None:
        lines, extra = _nitro_lines(result)
    else:
        lines, extra = _tee_lines(result), ""
    extra = h.pill(verdict.tee.upper(), h.GREY) + extra
    for warning in verdict.warnings:
        lines.append(f'<span style="color:{h.AMBER}">{h.esc(warning)}</span>')
    colour = h.GREEN if verdict.verified else h.RED
    return h.banner(result.verdict, colour, lines, extra=extra)


def measured_title(result: AttestationResult) -> str:
    """The heading of :func:`pcr_table_html`'s table (PCRs for Nitro, measurements else)."""
    return result.view.measured_title


def pcr_table_html(result: AttestationResult) -> str:
    """The measured fields, committed against actual, one row each: Nitro's PCRs, SEV-SNP's
    MEASUREMENT (and HOST_DATA, ...), TDX's MRTD and RTMR0-3, SGX's MRENCLAVE and MRSIGNER."""
    view = result.view
    rows: list[list[str]] = []
    colours: list[str | None] = []
    for f in view.measured:
        rows.append(
            [
                h.esc(f.label),
                h.esc("—" if f.expected is None else f.expected.hex()),
                h.esc("—" if f.actual is None else f.actual.hex()),
                f"<b>{h.esc(f.status)}</b>",
            ]
        )
        colours.append(_STATUS_COLOURS.get(f.status))
    if not rows or (all(f.actual is None for f in view.measured) and not result.committed):
        if result.report is not None:
            return h.notice("no PCRs to show: the document did not parse")
        return h.notice("no measurements to show: the evidence did not parse")
    header = "PCR" if result.report is not None else "field"
    source = "document" if result.report is not None else "evidence"
    return h.table(
        [header, "expected (commitment)", f"actual ({source})", ""],
        rows,
        mono_columns=(1, 2),
        nowrap_columns=(0, 3),
        row_colours=colours,
    )


def chain_html(result: AttestationResult) -> str:
    """The certificate chain, root first, with each certificate's validity at the check time."""
    verdict = result.tee_verdict
    if not verdict.certificates:
        what = "document" if result.report is not None else "evidence"
        return h.notice(f"no certificate chain could be read from the {what}")
    rows = []
    colours: list[str | None] = []
    for cert in verdict.certificates:
        valid = cert.valid_at(verdict.at)
        rows.append(
            [
                h.esc(cert.role),
                h.esc(cert.subject),
                h.when(cert.not_before),
                h.when(cert.not_after),
                "valid" if valid else "<b>NOT VALID</b>",
            ]
        )
        colours.append(None if valid else "#ffebe9")
    return h.table(
        ["", "subject", "not before", "not after", f"at {h.when(verdict.at)}"],
        rows,
        nowrap_columns=(0, 2, 3, 4),
        row_colours=colours,
    ) + h.notice(f"the verdict rests on: {verdict.rests_on}")


def _commitment_pairs(result: AttestationResult) -> list[tuple[str, str]]:
    if not result.commitment:
        return []
    strategy = result.commitment.get("strategy")
    sha = result.commitment.get("strategy_sha256")
    return [
        ("strategy (commitment)", h.esc(strategy if strategy else "—")),
        ("strategy_sha256", h.mono(str(sha) if sha else "—")),
    ]


def document_facts_html(result: AttestationResult) -> str:
    """Where the evidence came from, what it rests on, the nonce, report data, debug, TCB
    status and the TEE's other reported facts; for a Nitro document its time, age, module and
    the checkpoint it carries."""
    if result.report is None:
        return _evidence_facts_html(result)
    report = result.report
    doc = report.document
    age = result.age
    pairs = [
        ("tee", h.esc(result.view.tee_name)),
        ("source", h.esc(result.source)),
        ("trust root", h.esc(report.trust_root.description)),
        ("nonce asked for", h.mono("— (not checked)" if result.nonce is None
                                   else result.nonce.hex())),
        ("nonce in document", h.mono("—" if doc is None or doc.nonce is None else doc.nonce.hex())),
        ("document time", h.when(doc.time if doc is not None else None)),
        ("age when checked", h.esc("—" if age is None else h.duration(age))),
        ("checked at", h.when(report.at)),
        ("module", h.esc("—" if doc is None else doc.module_id)),
        *_commitment_pairs(result),
    ]
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


def _evidence_facts_html(result: AttestationResult) -> str:
    verdict = result.tee_verdict
    view = result.view
    debug = "—" if verdict.debug is None else ("YES (debug allowed)" if verdict.debug else "no")
    pairs = [
        ("tee", h.esc(view.tee_name)),
        ("source", h.esc(result.source)),
        ("rests on", h.esc(verdict.rests_on)),
        ("nonce asked for", h.mono("— (not checked)" if result.nonce is None
                                   else result.nonce.hex())),
        ("report data", h.mono("—" if verdict.report_data is None
                               else verdict.report_data.hex())),
        ("debug", h.esc(debug)),
        ("TCB status", h.esc("—" if view.tcb_text is None else view.tcb_text)),
        ("advisories", h.esc(", ".join(verdict.advisory_ids) or "none")),
        ("checked at", h.when(verdict.at)),
        *((label, h.mono(value)) for label, value in view.facts),
        *_commitment_pairs(result),
    ]
    return h.facts(pairs)
