"""``zcbench verify``: check signed artefacts; today ``zcbench verify attestation``.

``verify attestation PATH`` recognises the evidence (:func:`zcbench.tee.detect_tee`: a Nitro
document, an SEV-SNP report, a TDX or SGX quote) and says which it verified. Nitro documents go
through :func:`zcbench.nitro.check_attestation` (one :class:`~zcbench.nitro.AttestationPolicy`
built from the flags) and, with ``--log RUN_DIR``, :func:`zcbench.nitro.binding.check_log_binding`;
every other TEE through :func:`zcbench.tee.check_evidence` with the same policy object
(``--expect-measurement``, ``--report-data``, ``--expect-field``, ``--allow-debug``,
``--allow-tcb-status``) and its own inputs (``--cert`` for SEV-SNP, ``--collateral`` for DCAP).
A flag that does not apply to the evidence given is a usage error, never silently ignored.
``--json`` always carries ``tee``, ``verified``, ``failed_check``, ``measurement``,
``report_data``, ``debug`` and ``tcb_status``.
Exit 0 verified, 1 a check failed (or the document is malformed), 2 usage. Without
``--expect-pcr`` or ``--commitment`` the signature, chain and time are still checked and the
exit code says whether they hold, but the output says loudly that no PCR was checked
(``pcrs_checked: false``). What the verdict rests on is the result's trust root: SIMULATED for
the development CA however it was trusted, "custom root <fingerprint>" for any other PEM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import pathlib
import sys
from typing import TYPE_CHECKING

from zcbench.errors import EXIT_FAILED, EXIT_OK, DataError, UsageError

if TYPE_CHECKING:
    from zcbench.nitro import AttestationPolicy, AttestationReport
    from zcbench.nitro.binding import LogBinding

__all__ = ["register"]

_NO_PCR_WARNING = (
    "WARNING: no PCR was checked (pass --expect-pcr N=HEX or --commitment FILE): this proves a "
    "genuine enclave signed the document, not WHICH code it runs"
)
_SIMULATED_WARNING = (
    "SIMULATED: checked against the development CA, not AWS; this document proves nothing "
    "about real hardware"
)
_CUSTOM_WARNING = (
    "CUSTOM ROOT: checked against the root certificate {fingerprint}, not AWS's; this proves only "
    "what that root's owner vouches for"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "verify",
        help="verify attestation documents and other signed artefacts",
        description="Verify signed artefacts. Exit 0 verified, 1 failed, 2 usage error.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    att = kinds.add_parser(
        "attestation",
        help="verify a Nitro attestation document",
        description=(
            "Verify a Nitro attestation document: strict format, certificate chain to a pinned "
            "root, signature, then policy (PCRs, debug mode, nonce, age)."
        ),
    )
    att.add_argument("path", metavar="PATH", help="the document (CBOR COSE_Sign1 bytes)")
    att.add_argument(
        "--at",
        default="now",
        metavar="ISO8601|doc|now",
        help="verification time: an ISO 8601 instant with a zone, 'doc' for the document's "
        "own timestamp (archived documents; audit only), or 'now' (default)",
    )
    att.add_argument("--nonce", metavar="HEX", help="the nonce the document must carry")
    att.add_argument(
        "--expect-pcr",
        action="append",
        default=[],
        metavar="N=HEX",
        help="a PCR the document must carry (repeatable)",
    )
    att.add_argument(
        "--commitment",
        metavar="FILE",
        help="a commitment.json whose PCRs (Nitro) or measurements (schema 2: SEV-SNP, TDX, "
        "SGX) the evidence must carry",
    )
    att.add_argument(
        "--trust",
        default="aws",
        metavar="aws|dev|PEMFILE",
        help="root of trust: 'aws' (pinned AWS Nitro Root-G1, default), 'dev' (the development "
        "CA; SIMULATED) or a PEM root certificate file",
    )
    att.add_argument(
        "--allow-debug",
        action="store_true",
        help="accept debug-mode documents (zero PCR0/1/2): for tests only",
    )
    att.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="refuse documents older than this"
    )
    att.add_argument(
        "--log",
        metavar="RUN_DIR",
        help="the run's folder (or its log/): check that the checkpoint the document carries "
        "in user_data is signed by the attested key and held by this log",
    )
    att.add_argument(
        "--expect-measurement",
        metavar="HEX",
        help="the launch measurement the evidence must carry (Nitro PCR0, SEV-SNP MEASUREMENT, "
        "TDX MRTD, SGX MRENCLAVE)",
    )
    att.add_argument(
        "--expect-field",
        action="append",
        default=[],
        metavar="NAME=HEX",
        help="another measured field by its TEE's name (rtmr0..rtmr3, mrsigner, host_data, ...; "
        "repeatable)",
    )
    att.add_argument(
        "--report-data",
        metavar="HEX",
        help="the report data the evidence must carry (up to 64 bytes, compared zero-padded; "
        "for Nitro the user_data)",
    )
    att.add_argument(
        "--cert",
        action="append",
        default=[],
        metavar="FILE",
        help="SEV-SNP: the VCEK or VLEK (DER or PEM), and optionally its ASK/ASVK and ARK "
        "(repeatable)",
    )
    att.add_argument(
        "--collateral",
        metavar="FILE",
        help="TDX/SGX: the collateral JSON (TCB info, QE identity, CRLs); without it the TCB "
        "status is unknown",
    )
    att.add_argument(
        "--pck-chain",
        metavar="FILE",
        help="TDX/SGX: the PCK certificate chain (PEM) of a quote that names its platform by "
        "PPID (certification data types 1-3) or carries only its PCK leaf (type 4)",
    )
    att.add_argument(
        "--kds",
        nargs="?",
        const="https://kdsintf.amd.com",
        metavar="URL",
        help="SEV-SNP: fetch the VCEK from AMD's KDS (default kdsintf.amd.com) when no --cert "
        "gives it",
    )
    att.add_argument(
        "--pccs",
        metavar="URL",
        help="TDX/SGX: fetch the collateral from this PCCS or Intel PCS (https) instead of "
        "--collateral",
    )
    att.add_argument(
        "--allow-tcb-status",
        action="append",
        default=[],
        metavar="STATUS",
        help="TDX/SGX: accept this TCB status besides UpToDate (e.g. SWHardeningNeeded; "
        "repeatable)",
    )
    att.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    att.set_defaults(handler=_attestation)
    from zcbench.cli.remote import register_kind  # zcbench verify remote URL

    register_kind(kinds)


def _shown(text: str, limit: int = 40) -> str:
    """User text for a one-line message: quoted, control characters escaped, cut if long."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut) + '"'


def _parse_hex(text: str, what: str) -> bytes:
    cleaned = text.strip()
    if cleaned.startswith(("0x", "0X")):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise UsageError(f"{what} is not hex: {_shown(text)}") from exc


def _parse_at(text: str) -> dt.datetime | None:
    if text == "now":
        return dt.datetime.now(dt.UTC)
    if text == "doc":
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"--at {text!r} is not ISO 8601 (e.g. 2024-05-01T12:00:00Z), 'doc' or 'now'"
        ) from exc
    if at.tzinfo is None:
        raise UsageError(f"--at {text!r} has no time zone; add 'Z' or '+00:00'")
    return at


def _expected_pcrs(args: argparse.Namespace) -> dict[int, bytes] | None:
    from zcbench.nitro import load_commitment_pcrs
    from zcbench.nitro.commitment import pcr_index

    expected: dict[int, bytes] = {}
    if args.commitment:
        expected.update(load_commitment_pcrs(args.commitment))
    for item in args.expect_pcr:
        index_text, sep, value_text = item.partition("=")
        index = pcr_index(index_text.strip())
        if not sep or index is None:
            raise UsageError(
                f"--expect-pcr {_shown(item)}: write N=HEX with N a decimal 0..31 in ASCII "
                "digits, e.g. 0=f4d48b81..."
            )
        value = _parse_hex(value_text, f"--expect-pcr {index}")
        if len(value) not in (32, 48, 64):
            raise UsageError(
                f"--expect-pcr {index}: a PCR is 32, 48 or 64 bytes (64, 96 or 128 hex digits), "
                f"got {len(value)} bytes"
            )
        if index in expected and expected[index] != value:
            raise UsageError(f"PCR{index} is given twice with different values")
        expected[index] = value
    return expected or None


def _print_human(report: AttestationReport, binding: LogBinding | None) -> None:
    doc = report.document
    out = sys.stdout
    root = report.trust_root
    rests_on = {"aws": "", "dev": " (SIMULATED)"}.get(
        root.kind, f" (custom root {root.fingerprint})"
    )
    if report.verified and (binding is None or binding.bound):
        out.write(f"VERIFIED{rests_on}\n")
    elif report.verified and binding is not None:
        out.write(f"FAILED: log_binding: {binding.problem}{rests_on}\n")
    else:
        out.write(f"FAILED: {report.failed_check}: {report.message}{rests_on}\n")
        if report.expected is not None or report.actual is not None:
            out.write(f"  expected: {report.expected}\n  actual:   {report.actual}\n")
    out.write("  tee:       nitro\n")
    out.write(f"  root:      {root.description}\n  at:        {report.at.isoformat()}\n")
    if doc is not None:
        out.write(f"  module_id: {doc.module_id}\n  timestamp: {doc.time.isoformat()}\n")
        out.write(f"  debug:     {report.debug}\n")
        checked = set(report.checked_pcrs)
        for index, value in doc.pcrs.items():
            if any(value) or index in checked:
                mark = " (checked)" if index in checked else ""
                out.write(f"  PCR{index:<2}     {value.hex()}{mark}\n")
    if binding is not None:
        where = f" in {binding.log}" if binding.log_checked else ""
        state = "bound" if binding.bound else "NOT BOUND"
        out.write(f"  log:       {binding.origin}, {binding.size} records, {state}{where}\n")


def _read_input(text: str, what: str) -> bytes:
    path = pathlib.Path(text)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{what} {path} is a folder, not a file") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _tee_of(data: bytes) -> tuple[str | None, bytes]:
    """The evidence's TEE and its bytes (hex text decoded); ``None`` when unrecognised, which
    the Nitro path then refuses with its strict parser's ``decode``."""
    from zcbench.tee import decode_evidence, detect_tee

    try:
        raw = decode_evidence(data)
        return detect_tee(raw), raw
    except (DataError, ValueError):
        if data[:4] == b"HCLA":
            raise  # an Azure HCL report: its own refusal says what to verify instead
        return None, data


def _tee_policy_fields(args: argparse.Namespace) -> dict[str, object]:
    """The TEE-neutral policy fields from the flags (misuse: UsageError)."""
    fields: dict[str, bytes] = {}
    for item in args.expect_field:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--expect-field {_shown(item)}: write NAME=HEX, e.g. rtmr0=ab12...")
        key = name.strip().lower()
        if key in fields:
            raise UsageError(f"--expect-field {key} is given twice")
        fields[key] = _parse_hex(value, f"--expect-field {key}")
    out: dict[str, object] = {
        "expected_fields": fields or None,
        "allowed_tcb_statuses": frozenset(args.allow_tcb_status),
    }
    if args.expect_measurement is not None:
        out["expected_measurement"] = _parse_hex(args.expect_measurement, "--expect-measurement")
    if args.report_data is not None:
        out["expected_report_data"] = _parse_hex(args.report_data, "--report-data")
    return out


def _attestation(args: argparse.Namespace) -> int:
    path = pathlib.Path(args.path)
    tee, data = _tee_of(_read_input(args.path, "evidence file"))
    if tee in ("sev-snp", "tdx", "sgx"):
        return _other_tee(args, path, data)
    for flag, given in (("--cert", args.cert), ("--collateral", args.collateral),
                        ("--pck-chain", args.pck_chain)):
        if given:
            raise UsageError(
                f"{flag} is for {'SEV-SNP reports' if flag == '--cert' else 'TDX/SGX quotes'}; "
                f"{path} is {'a Nitro document' if tee else 'no evidence this verifier knows'}"
            )
    if args.allow_tcb_status:
        raise UsageError("--allow-tcb-status is for TDX/SGX quotes; a Nitro document has no TCB")
    if args.kds or args.pccs:
        raise UsageError("--kds and --pccs are for SEV-SNP reports and TDX/SGX quotes")
    return _nitro(args, path, data, recognised=tee is not None)


def _nitro(args: argparse.Namespace, path: pathlib.Path, data: bytes, *, recognised: bool) -> int:
    from zcbench.nitro import AttestationError, AttestationPolicy, check_attestation, parse_document

    if args.expect_field:
        raise UsageError("--expect-field is for SEV-SNP and DCAP evidence; use --expect-pcr N=HEX")
    tee_fields = _tee_policy_fields(args)
    measurement = tee_fields.get("expected_measurement")
    report_data = tee_fields.get("expected_report_data")
    assert measurement is None or isinstance(measurement, bytes)
    assert report_data is None or isinstance(report_data, bytes)
    trust: str | pathlib.Path = args.trust
    if args.trust not in ("aws", "dev"):
        trust = pathlib.Path(args.trust)
        if not trust.is_file():
            raise UsageError(
                f"--trust {_shown(args.trust)}: use aws, dev or an existing PEM file"
            )
    nonce = _parse_hex(args.nonce, "--nonce") if args.nonce is not None else None
    if args.max_age is not None and not (math.isfinite(args.max_age) and args.max_age >= 0):
        raise UsageError("--max-age must be a finite, non-negative number of seconds")
    if args.max_age is not None and args.at == "doc":
        raise UsageError(
            "--max-age with --at doc cannot fail (a document's age at its own timestamp is "
            "zero): give --at now or an ISO 8601 time, or drop --max-age"
        )
    max_age = dt.timedelta(seconds=args.max_age) if args.max_age is not None else None
    log: pathlib.Path | None = None
    if args.log is not None:
        log = pathlib.Path(args.log)
        if not log.exists():
            raise UsageError(f"--log {log} does not exist: give the run's folder")
    expected = _expected_pcrs(args)
    try:
        policy = AttestationPolicy(
            expected_pcrs=expected,
            nonce=nonce,
            max_age=max_age,
            allow_debug=args.allow_debug,
            trust=trust,
            unsafe_skip_pcr_check=expected is None and measurement is None,
            expected_measurement=measurement,
            expected_report_data=report_data,
        )
    except UsageError as exc:
        raise UsageError(f"{exc} (check --expect-measurement and --report-data)") from None
    at = _parse_at(args.at)
    if at is None:
        # --at doc: the document's own signed time; a document that does not parse cannot
        # name a time, and the report for it is the parse failure.
        try:
            at = parse_document(data).time
        except AttestationError:
            at = dt.datetime.now(dt.UTC)
    report = check_attestation(data, policy, at=at)
    binding = _binding(report, log, policy) if report.verified and log is not None else None
    root = report.trust_root
    if root.simulated:
        sys.stderr.write(_SIMULATED_WARNING + "\n")
    elif root.kind == "custom":
        sys.stderr.write(_CUSTOM_WARNING.format(fingerprint=root.fingerprint) + "\n")
    if expected is None and measurement is None and report.verified:
        sys.stderr.write(_NO_PCR_WARNING + "\n")
    if args.allow_debug and report.debug:
        sys.stderr.write("WARNING: accepted a debug-mode document (--allow-debug)\n")
    verified = report.verified and (binding is None or binding.bound)
    if args.json:
        verdict = report.to_verdict().to_dict()
        result = {
            **report.to_dict(),
            "tee": "nitro" if recognised else None,
            "measurement": verdict["measurement"],
            "measurement_checked": verdict["measurement_checked"],
            "report_data": verdict["report_data"],
            "tcb_status": None,
            "path": str(path),
        }
        if log is not None:
            result["log_binding"] = None if binding is None else binding.to_dict()
        if report.verified and not verified:
            assert binding is not None
            result.update(
                verified=False, failed_check="log_binding", message=binding.problem
            )
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        _print_human(report, binding)
    return EXIT_OK if verified else EXIT_FAILED


def _binding(
    report: AttestationReport, log: pathlib.Path, policy: AttestationPolicy
) -> LogBinding:
    from zcbench.nitro.binding import LogBinding, check_log_binding

    doc = report.document
    assert doc is not None
    try:
        binding = check_log_binding(doc, log=log, policy=policy)
    except DataError as exc:
        binding = None
        problem = str(exc)
    else:
        problem = (
            "the document carries no checkpoint in user_data: --log needs a document an "
            "enclave made on request during the run (its user_data holds the latest checkpoint)"
        )
    if binding is not None:
        return binding
    return LogBinding(
        origin="", size=0, root=b"", note=b"", signed=False, log_checked=True,
        problem=problem, log=str(log),
    )


_TEE_NAMES = {"sev-snp": "AMD SEV-SNP report", "tdx": "Intel TDX quote", "sgx": "Intel SGX quote"}
_NITRO_ONLY = (
    ("--nonce", "nonce"),
    ("--expect-pcr", "expect_pcr"),
    ("--max-age", "max_age"),
    ("--log", "log"),
)


def _from_commitment(
    fields: dict[str, object], path: pathlib.Path, tee: str, name: str
) -> None:
    """Add a schema-2 commitment's measurements to the policy fields (a flag that names the
    same field must agree with it)."""
    from zcbench.nitro.commitment import Commitment

    commitment = Commitment.load(path)
    if commitment.tee != tee:
        raise UsageError(
            f"{path} commits a {commitment.tee} image; the evidence is an {name}: give the "
            "commitment of the image this TEE runs"
        )
    given = fields.get("expected_measurement")
    if given is not None and given != commitment.expected_measurement:
        raise UsageError(f"--expect-measurement differs from the measurement in {path}")
    fields["expected_measurement"] = commitment.expected_measurement
    extra = dict(commitment.expected_fields)
    flags = fields.get("expected_fields")
    if isinstance(flags, dict):
        for key, value in flags.items():
            if key in extra and extra[key] != value:
                raise UsageError(f"--expect-field {key} differs from {path}")
            extra[key] = value
    fields["expected_fields"] = extra or None


def _other_tee(args: argparse.Namespace, path: pathlib.Path, data: bytes) -> int:
    """An SEV-SNP report or a DCAP quote: the same policy object, :func:`check_evidence`."""
    from zcbench.tee import AttestationPolicy, check_evidence, detect_tee

    tee = detect_tee(data)
    name = _TEE_NAMES[tee]
    for flag, attr in _NITRO_ONLY:
        if getattr(args, attr):
            raise UsageError(
                f"{flag} is for Nitro documents; {path} is an {name} (bind a nonce with "
                "--report-data, the image with --expect-measurement)"
            )
    if args.trust != "aws":
        raise UsageError(
            f"--trust is for Nitro documents; an {name} verifies against the pinned "
            f"{'AMD' if tee == 'sev-snp' else 'Intel'} root only"
        )
    if args.cert and tee != "sev-snp":
        raise UsageError(f"--cert is for SEV-SNP reports; {path} is an {name}")
    if (args.collateral or args.pccs) and tee == "sev-snp":
        raise UsageError(f"--collateral and --pccs are for TDX/SGX quotes; {path} is an {name}")
    if args.pck_chain and tee == "sev-snp":
        raise UsageError(f"--pck-chain is for TDX/SGX quotes; {path} is an {name}")
    if args.kds and tee != "sev-snp":
        raise UsageError(f"--kds is for SEV-SNP reports; {path} is an {name}")
    if args.collateral and args.pccs:
        raise UsageError("give --collateral FILE or --pccs URL, not both")
    if args.at == "doc":
        raise UsageError(
            f"--at doc needs a signed time and an {name} carries none: give an ISO 8601 time "
            "inside its certificates' validity, or 'now'"
        )
    at = _parse_at(args.at)
    assert at is not None
    fields = _tee_policy_fields(args)
    if args.commitment:
        _from_commitment(fields, pathlib.Path(args.commitment), tee, name)
    try:
        policy = AttestationPolicy(
            allow_debug=args.allow_debug,
            unsafe_skip_pcr_check="expected_measurement" not in fields,
            **fields,  # type: ignore[arg-type]
        )
    except UsageError as exc:
        raise UsageError(f"{exc} (check --expect-measurement, --report-data, --expect-field "
                         "and --allow-tcb-status)") from None
    certificates = [_read_input(c, "certificate file") for c in args.cert]
    collateral = None
    if args.collateral:
        from zcbench.tee.dcap import load_collateral

        collateral = load_collateral(args.collateral)
    kds = pccs = None
    if args.kds:
        from zcbench.tee.amd_kds import HttpKds

        kds = HttpKds(args.kds)
    if args.pccs:
        from zcbench.tee.dcap import HttpPccs

        pccs = HttpPccs(args.pccs)
    pck_chain = None if not args.pck_chain else _read_input(args.pck_chain, "PCK chain file")
    verdict = check_evidence(
        data, policy, at=at, certificates=certificates, collateral=collateral, kds=kds,
        pccs=pccs, pck_chain=pck_chain,
    )
    if "expected_measurement" not in fields and verdict.verified:
        sys.stderr.write(
            "WARNING: no measurement was checked (pass --expect-measurement HEX): this proves "
            f"a genuine {name} was signed, not WHICH code it runs\n"
        )
    if args.allow_debug and verdict.debug:
        sys.stderr.write("WARNING: accepted debug-mode evidence (--allow-debug)\n")
    if verdict.tcb_status == "unknown" and verdict.verified:
        sys.stderr.write(
            "WARNING: no collateral (--collateral FILE): the TCB status is unknown\n"
        )
    if args.json:
        sys.stdout.write(json.dumps({**verdict.to_dict(), "path": str(path)}) + "\n")
    else:
        out = sys.stdout
        if verdict.verified:
            out.write(f"VERIFIED ({tee})\n")
        else:
            out.write(f"FAILED: {verdict.failed_check}: {verdict.message} ({tee})\n")
            if verdict.expected is not None or verdict.actual is not None:
                actual = "(none)" if verdict.actual is None else verdict.actual
                out.write(f"  expected: {verdict.expected}\n  actual:   {actual}\n")
        out.write(f"  tee:         {tee} ({name})\n  root:        {verdict.rests_on}\n")
        out.write(f"  at:          {verdict.at.isoformat()}\n")
        if verdict.measurement is not None:
            mark = " (checked)" if verdict.measurement_checked else ""
            out.write(f"  measurement: {verdict.measurement.hex()}{mark}\n")
        if verdict.report_data is not None:
            out.write(f"  report_data: {verdict.report_data.hex()}\n")
        out.write(f"  debug:       {verdict.debug}\n  tcb_status:  {verdict.tcb_status}\n")
        if verdict.advisory_ids:
            out.write(f"  advisories:  {', '.join(verdict.advisory_ids)}\n")
        for note in verdict.warnings:
            out.write(f"  note:        {note}\n")
    return EXIT_OK if verdict.verified else EXIT_FAILED
