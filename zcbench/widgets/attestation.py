"""The attestation panel: ask an enclave for a fresh document with your nonce and see the verdict.

Owns what a PM or an LP sees about one attestation: the verdict banner (VERIFIED, FAILED naming
the failed check, and SIMULATED whenever the root is the development CA), the PCRs expected from
the commitment against those in the document, the certificate chain with validity, document time
and age, the latest log checkpoint the enclave put in ``user_data``, and an export of all of it.

It decides nothing itself: the verdict is :func:`zcbench.nitro.verify.check_attestation`'s
report, taken as is. Where documents come from is a small :class:`AttestationBackend`; the real
ones here fetch a document (from a running enclave, or from the NSM emulator for a build) and
check it against the commitment; tests pass an in-memory fake.

Every failure while requesting (a malformed nonce, a missing build, a dead enclave) is shown in
the panel as a readable message and the panel stays usable; nothing is left as a traceback in
the cell output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import ipywidgets as widgets

from zcbench import _cbor
from zcbench.errors import DataError, EnvError, UsageError, ZcbenchError
from zcbench.nitro import AttestationReport, check_attestation, load_commitment_pcrs
from zcbench.widgets import _html as h

__all__ = [
    "DEFAULT_NONCE_BYTES",
    "AttestationBackend",
    "AttestationPanel",
    "AttestationResult",
    "CheckpointFacts",
    "EmulatorSource",
    "VerifyingBackend",
    "attestation_result",
    "chain_html",
    "checkpoint_facts",
    "document_facts_html",
    "emulator_backend",
    "parse_nonce",
    "pcr_table_html",
    "read_commitment",
    "result_to_json",
    "verdict_html",
]

DEFAULT_NONCE_BYTES = 32
"""Length of the random nonce the panel proposes."""

_MAX_NONCE_BYTES = 1024  # what an NSM document can carry (zcbench.nitro.document)
_SHOWN_PCRS = (0, 1, 2, 3, 4, 8)  # the PCRs Nitro defines; the others are always zero


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_nonce(text: str) -> bytes:
    """The nonce written as hex (spaces and a ``0x`` prefix allowed); raises :class:`UsageError`.

    The message says what is wrong with the text so a person can correct it.
    """
    cleaned = "".join(text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned:
        raise UsageError("the nonce is empty: type hex digits or press 'New nonce'")
    bad = sorted({c for c in cleaned if c not in "0123456789abcdefABCDEF"})
    if bad:
        raise UsageError(
            f"the nonce must be hex digits 0-9 a-f; it contains {''.join(bad)!r}"
        )
    if len(cleaned) % 2:
        raise UsageError(
            f"the nonce has {len(cleaned)} hex digits; it needs an even number (two per byte)"
        )
    if len(cleaned) // 2 > _MAX_NONCE_BYTES:
        raise UsageError(
            f"the nonce is {len(cleaned) // 2} bytes; an attestation document holds at most "
            f"{_MAX_NONCE_BYTES}"
        )
    return bytes.fromhex(cleaned)


@dataclass(frozen=True)
class CheckpointFacts:
    """The log checkpoint an enclave put in ``user_data`` (CBOR ``{"checkpoint": note}``).

    ``signed`` is true only when the note's signature verified under the document's
    ``public_key`` (the attested log key) and the origin names the document's PCR0; ``problem``
    says why not otherwise.
    """

    origin: str
    size: int
    root: bytes
    note: bytes
    signed: bool
    problem: str | None


def checkpoint_facts(report: AttestationReport) -> CheckpointFacts | None:
    """The checkpoint in the document's ``user_data``, or ``None`` when there is none.

    Raises :class:`DataError` when ``user_data`` is present but is not a checkpoint map.
    """
    from zcbench.auditlog.checkpoint import parse_checkpoint_note, verify_checkpoint

    doc = report.document
    if doc is None or doc.user_data is None:
        return None
    try:
        # canonical, as the enclave writes it: {"checkpoint": <note bytes>}
        decoded = _cbor.decode(doc.user_data, canonical=True, max_depth=1)
    except _cbor.CborError as exc:
        raise DataError(f"user_data is not canonical CBOR: {exc}") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("checkpoint"), bytes):
        raise DataError("user_data is not a map {'checkpoint': <signed note bytes>}")
    note: bytes = decoded["checkpoint"]
    try:
        checkpoint = parse_checkpoint_note(note)
    except ZcbenchError as exc:
        raise DataError(f"user_data carries a checkpoint that does not parse: {exc}") from exc
    problem: str | None = None
    if doc.public_key is None:
        problem = "the document carries no public_key to check the checkpoint signature with"
    else:
        try:
            verify_checkpoint(note, doc.public_key, checkpoint.origin)
        except ZcbenchError as exc:
            problem = f"checkpoint signature does not verify under the attested key: {exc}"
        pcr0 = doc.pcrs.get(0)
        if problem is None and pcr0 is not None:
            prefix = f"zcbench/{pcr0.hex()[:16]}/"
            if not checkpoint.origin.startswith(prefix):
                problem = f"checkpoint origin {checkpoint.origin!r} does not name this PCR0"
    return CheckpointFacts(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=checkpoint.root,
        note=note,
        signed=problem is None,
        problem=problem,
    )


@dataclass(frozen=True)
class AttestationResult:
    """One attestation request and its verdict.

    ``report`` is the verifier's report, unaltered; ``document`` the raw bytes as received;
    ``nonce`` the nonce asked for and checked (``None``: none was given, none was checked);
    ``expected_pcrs`` what the commitment says; ``requested_at`` when the panel asked (the age
    shown is measured from the document's own time to this instant); ``source`` says where the
    document came from, in words.
    """

    report: AttestationReport
    document: bytes
    nonce: bytes | None
    expected_pcrs: Mapping[int, bytes]
    requested_at: dt.datetime
    source: str
    checkpoint: CheckpointFacts | None = None
    checkpoint_problem: str | None = None
    commitment: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``"VERIFIED"`` or ``"FAILED"`` (SIMULATED is said beside it, never instead)."""
        return "VERIFIED" if self.report.verified else "FAILED"

    @property
    def age(self) -> dt.timedelta | None:
        """How old the document was when it was requested, or ``None`` if it did not parse."""
        doc = self.report.document
        return None if doc is None else self.requested_at - doc.time


def attestation_result(
    document: bytes,
    *,
    nonce: bytes | None,
    expected_pcrs: Mapping[int, bytes],
    trust: str | pathlib.Path,
    at: dt.datetime,
    source: str,
    max_age: dt.timedelta | None = None,
    commitment: Mapping[str, Any] | None = None,
) -> AttestationResult:
    """Check ``document`` with :func:`check_attestation` and gather what the panel shows.

    Misuse (no expected PCRs, a naive ``at``) raises :class:`UsageError`; a failed check does
    not raise, it is the result's verdict.
    """
    report = check_attestation(
        document,
        trust=trust,
        at=at,
        expected_pcrs=expected_pcrs,
        nonce=nonce,
        max_age=max_age,
    )
    checkpoint: CheckpointFacts | None = None
    problem: str | None = None
    try:
        checkpoint = checkpoint_facts(report)
    except DataError as exc:
        problem = str(exc)
    return AttestationResult(
        report=report,
        document=document,
        nonce=nonce,
        expected_pcrs=dict(expected_pcrs),
        requested_at=at,
        source=source,
        checkpoint=checkpoint,
        checkpoint_problem=problem,
        commitment=dict(commitment or {}),
    )


class AttestationBackend(Protocol):
    """Where the panel's documents come from, already checked.

    ``request`` raises a :class:`~zcbench.errors.ZcbenchError` when no document could be had
    (no enclave, missing build); a document that fails a check is a result, not an error.
    """

    @property
    def description(self) -> str: ...

    def request(self, nonce: bytes) -> AttestationResult: ...


class VerifyingBackend:
    """A backend that fetches a document for a nonce and checks it against a commitment.

    ``fetch(nonce) -> bytes`` is the seam: a running enclave's ``attest``, or the NSM emulator.
    ``commitment`` is the build's ``commitment.json``; its PCRs, read with
    :func:`zcbench.nitro.load_commitment_pcrs`, are the expected ones. ``trust`` names the root
    (``"dev"`` for the local world, every verdict then SIMULATED). ``clock`` gives the
    verification time.
    """

    def __init__(
        self,
        fetch: Callable[[bytes], bytes],
        *,
        commitment: pathlib.Path,
        trust: str | pathlib.Path = "aws",
        description: str = "enclave",
        clock: Callable[[], dt.datetime] = _utcnow,
        max_age: dt.timedelta | None = dt.timedelta(minutes=5),
    ) -> None:
        self._fetch = fetch
        self._commitment = pathlib.Path(commitment)
        self._trust = trust
        self._description = description
        self._clock = clock
        self._max_age = max_age

    @property
    def description(self) -> str:
        return self._description

    @property
    def fetch(self) -> Callable[[bytes], bytes]:
        """Where documents come from (e.g. a ``LiveEnclaveSource``)."""
        return self._fetch

    def request(self, nonce: bytes) -> AttestationResult:
        expected, commitment = read_commitment(self._commitment)
        document = self._fetch(nonce)
        return attestation_result(
            document,
            nonce=nonce,
            expected_pcrs=expected,
            trust=self._trust,
            at=self._clock(),
            source=self._description,
            max_age=self._max_age,
            commitment=commitment,
        )


class EmulatorSource:
    """Documents from the NSM emulator for a build folder, until a live enclave can be asked.

    The emulator's PCR0-2 are measured from the build's image sections on every request
    (:func:`zcbench.packager.measure_local_image`), never taken from the commitment, so a build
    whose image no longer matches its commitment fails. Signed by the development CA:
    every verdict is SIMULATED.
    """

    def __init__(
        self, build_dir: pathlib.Path, *, clock: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        self.build_dir = pathlib.Path(build_dir)
        self._clock = clock

    def __call__(self, nonce: bytes) -> bytes:
        from zcbench.nitro import DevCA, NsmEmulator
        from zcbench.packager import measure_local_image

        if not self.build_dir.is_dir():
            raise EnvError(
                f"build folder {self.build_dir} does not exist: make one with 'zcbench package'"
            )
        pcrs = measure_local_image(self.build_dir)
        ca = DevCA.load_or_create(now=self._clock())
        return NsmEmulator(pcrs, ca, clock=self._clock).attestation(nonce=nonce)


def emulator_backend(
    build_dir: pathlib.Path,
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
    max_age: dt.timedelta | None = dt.timedelta(minutes=5),
) -> VerifyingBackend:
    """A backend for ``build_dir`` whose documents come from the NSM emulator (SIMULATED),
    checked against the build's ``commitment.json`` under the development CA root."""
    build_dir = pathlib.Path(build_dir)
    return VerifyingBackend(
        EmulatorSource(build_dir, clock=clock),
        commitment=build_dir / "commitment.json",
        trust="dev",
        description=f"NSM emulator over the measured image of {build_dir} (SIMULATED)",
        clock=clock,
        max_age=max_age,
    )


def read_commitment(path: pathlib.Path) -> tuple[dict[int, bytes], dict[str, Any]]:
    """The expected PCRs and the whole document of a ``commitment.json``.

    Raises :class:`zcbench.errors.EnvError` when the file is missing and :class:`DataError`
    when it is malformed.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise EnvError(
            f"no commitment at {path}: point the panel at a build folder made by "
            "'zcbench package' (it writes commitment.json)"
        )
    raw = path.read_bytes()
    try:
        whole = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(whole, dict):
        raise DataError(f"{path} is not a JSON object")
    return load_commitment_pcrs(path), whole


# ---------------------------------------------------------------------------------- rendering


def verdict_html(result: AttestationResult) -> str:
    """The verdict banner: VERIFIED or FAILED (with the check), SIMULATED beside it when so."""
    report = result.report
    simulated = h.pill("SIMULATED", h.AMBER) if report.simulated else ""
    lines: list[str] = []
    if report.verified:
        colour = h.GREEN
        root = "the AWS Nitro root" if report.root == "aws" else f"root {h.esc(report.root)}"
        if report.simulated:
            root = "the local development CA"
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
        ("trust root", h.esc(report.root or "—") + (" (SIMULATED)" if report.simulated else "")),
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


def result_to_json(result: AttestationResult) -> dict[str, Any]:
    """Everything the panel shows, as a JSON-ready dict (what 'Export report' writes)."""
    report = result.report
    doc = report.document
    cp = result.checkpoint
    return {
        "schema": "zcbench.attestation-report/1",
        "verdict": result.verdict,
        "simulated": report.simulated,
        "failed_check": report.failed_check,
        "message": report.message,
        "expected": report.expected,
        "actual": report.actual,
        "root": report.root,
        "pcrs_checked": report.pcrs_checked,
        "checked_pcrs": list(report.checked_pcrs),
        "checked_at": report.at.isoformat(),
        "source": result.source,
        "nonce": None if result.nonce is None else result.nonce.hex(),
        "document": None
        if doc is None
        else {
            "module_id": doc.module_id,
            "time": doc.time.isoformat(),
            "nonce": None if doc.nonce is None else doc.nonce.hex(),
            "public_key": None if doc.public_key is None else doc.public_key.hex(),
            "pcrs": {str(i): v.hex() for i, v in sorted(doc.pcrs.items())},
        },
        "age_seconds": None if result.age is None else result.age.total_seconds(),
        "expected_pcrs": {str(i): v.hex() for i, v in sorted(result.expected_pcrs.items())},
        "chain": [
            {
                "subject": c.subject,
                "issuer": c.issuer,
                "not_before": c.not_before.isoformat(),
                "not_after": c.not_after.isoformat(),
                "sha256": c.sha256,
            }
            for c in report.chain
        ],
        "checkpoint": None
        if cp is None
        else {
            "origin": cp.origin,
            "size": cp.size,
            "root": cp.root.hex(),
            "signed_by_attested_key": cp.signed,
            "problem": cp.problem,
            "note": cp.note.decode("utf-8", "replace"),
        },
        "commitment": dict(result.commitment),
    }


# ---------------------------------------------------------------------------------- the panel


class AttestationPanel(widgets.VBox):  # type: ignore[misc]
    """Nonce, 'Request attestation', verdict, PCRs, chain, facts and 'Export report'.

    ``backend`` supplies checked documents; ``export_dir`` is where 'Export report' writes
    (default: the current folder); ``rng(n)`` makes the proposed nonce. :meth:`request` and
    :meth:`export` do what the buttons do and return their result, for notebooks and tests.
    """

    def __init__(
        self,
        backend: AttestationBackend,
        *,
        export_dir: pathlib.Path | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        title: str = "Attestation",
    ) -> None:
        self.backend = backend
        self.export_dir = pathlib.Path(export_dir) if export_dir is not None else pathlib.Path()
        self._rng = rng
        self._lock = threading.Lock()
        self.result: AttestationResult | None = None
        self.last_error: str | None = None

        self.header = widgets.HTML(
            f'<div style="{h.FONT};font-size:20px;font-weight:700;color:{h.INK}">'
            f"{h.esc(title)}</div>"
            + h.notice(f"documents from: {backend.description}")
        )
        self.nonce = widgets.Text(
            value=rng(DEFAULT_NONCE_BYTES).hex(),
            description="Nonce (hex)",
            layout=widgets.Layout(width="640px"),
            style={"description_width": "90px"},
        )
        self.new_nonce_button = widgets.Button(description="New nonce", icon="refresh")
        self.request_button = widgets.Button(
            description="Request attestation", button_style="primary", icon="shield",
            layout=widgets.Layout(width="200px"),
        )
        self.export_button = widgets.Button(
            description="Export report", icon="download", disabled=True
        )
        self.status = widgets.HTML(h.notice("Press 'Request attestation' to ask for a document."))
        self.banner = widgets.HTML()
        self.pcrs = widgets.HTML()
        self.chain = widgets.HTML()
        self.facts = widgets.HTML()
        self.new_nonce_button.on_click(lambda _b: self._new_nonce())
        self.request_button.on_click(lambda _b: self.request())
        self.export_button.on_click(lambda _b: self.export())
        super().__init__(
            [
                self.header,
                widgets.HBox([self.nonce, self.new_nonce_button]),
                widgets.HBox([self.request_button, self.export_button]),
                self.status,
                self.banner,
                self.pcrs,
                self.chain,
                self.facts,
            ],
            layout=widgets.Layout(
                border="1px solid #d0d7de", padding="10px", max_width="1100px"
            ),
        )
        self.add_class("zcbench-attestation-panel")

    def _new_nonce(self) -> None:
        self.nonce.value = self._rng(DEFAULT_NONCE_BYTES).hex()

    def _show_error(self, text: str) -> None:
        self.last_error = text
        self.status.value = h.notice(text, h.RED)

    def request(self) -> AttestationResult | None:
        """Ask the backend for a document with the nonce in the field; show and return it.

        Returns ``None`` (and shows why in the panel) when no document could be had.
        """
        if not self._lock.acquire(blocking=False):
            return None  # a request is already running
        try:
            self.request_button.disabled = True
            self.last_error = None
            try:
                nonce = parse_nonce(self.nonce.value)
            except UsageError as exc:
                self._show_error(f"Nonce: {exc}")
                return None
            self.status.value = h.notice("Requesting a document…")
            try:
                result = self.backend.request(nonce)
            except ZcbenchError as exc:
                self._show_error(f"No document: {exc}")
                return None
            except Exception as exc:  # a bug below us: show it, never leave a bare traceback
                self._show_error(h.unexpected(exc))
                return None
            self._show(result)
            return result
        finally:
            self.request_button.disabled = False
            self._lock.release()

    def _show(self, result: AttestationResult) -> None:
        self.result = result
        self.pcrs.value = h.heading("PCRs: commitment against document") + pcr_table_html(result)
        self.chain.value = h.heading("Certificate chain") + chain_html(result)
        self.facts.value = h.heading("Document") + document_facts_html(result)
        self.status.value = h.notice(
            f"Document received {h.when(result.requested_at)} from {result.source}."
        )
        self.export_button.disabled = False
        # The verdict last: whoever sees it (a person, a browser test) sees the rest with it.
        self.banner.value = verdict_html(result)

    def export(self, directory: pathlib.Path | None = None) -> pathlib.Path | None:
        """Write the last result as JSON and the raw document (``.cbor``); the JSON's path."""
        result = self.result
        if result is None:
            self._show_error("Nothing to export yet: request an attestation first.")
            return None
        folder = pathlib.Path(directory) if directory is not None else self.export_dir
        nonce_hex = "" if result.nonce is None else result.nonce.hex()
        when = result.requested_at.astimezone(dt.UTC)
        stem = f"attestation-{when:%Y%m%dT%H%M%SZ}-{nonce_hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{stem}.cbor").write_bytes(result.document)
            path = folder / f"{stem}.json"
            path.write_text(json.dumps(result_to_json(result), indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            self._show_error(f"Could not export to {folder}: {exc.strerror or exc}")
            return None
        self.status.value = h.notice(
            f"Exported {path} (and the raw document {stem}.cbor). Re-verify it with: "
            f"zcbench verify attestation {stem}.cbor --nonce {nonce_hex} "
            "--commitment commitment.json"
            + (" --trust dev" if result.report.simulated else ""),
            h.GREEN,
        )
        return path
