"""``zcbench verify``: check signed artefacts; today ``zcbench verify attestation``.

Thin over :func:`zcbench.nitro.check_attestation` (one :class:`~zcbench.nitro.AttestationPolicy`
built from the flags) and, with ``--log RUN_DIR``, :func:`zcbench.nitro.binding.check_log_binding`.
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
        help="a commitment.json whose PCRs the document must carry",
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


def _attestation(args: argparse.Namespace) -> int:
    from zcbench.nitro import AttestationError, AttestationPolicy, check_attestation, parse_document

    path = pathlib.Path(args.path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
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
    policy = AttestationPolicy(
        expected_pcrs=expected,
        nonce=nonce,
        max_age=max_age,
        allow_debug=args.allow_debug,
        trust=trust,
        unsafe_skip_pcr_check=expected is None,
    )
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
    if expected is None and report.verified:
        sys.stderr.write(_NO_PCR_WARNING + "\n")
    if args.allow_debug and report.debug:
        sys.stderr.write("WARNING: accepted a debug-mode document (--allow-debug)\n")
    verified = report.verified and (binding is None or binding.bound)
    if args.json:
        result = {**report.to_dict(), "path": str(path)}
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
