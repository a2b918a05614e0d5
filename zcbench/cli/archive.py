"""``zcbench archive``: put runs' records in a WORM bucket, and read them back.

``zcbench archive RUN_DIR... --s3 URL --bucket B --retain-until DATE|--retain-days N`` uploads
each ended run (log segments, checkpoints, boot document, journal, summary, attestation, and the
build's commitment, manifest, bundle and image) under S3 Object Lock in COMPLIANCE mode, after
testing that the bucket enforces it, and records every object's key, VersionId and SHA-256 in
``RUN_DIR/archive.json``. ``zcbench archive verify RUN_DIR... --s3 URL --bucket B`` reads every
object back by VersionId and checks its hash and lock. With ``--ledger DIR`` archiving also
appends ``archive`` entries to the strategy's ledger and verifying holds every object to them.
Thin over :mod:`zcbench.archive`.
Credentials come from the standard AWS environment or config and are never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]

_MAX_DAYS = 100 * 366


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from zcbench.archive import DEFAULT_MIN_RETENTION_DAYS, DEFAULT_PREFIX

    parser = sub.add_parser(
        "archive",
        help="archive runs' records to a WORM (S3 Object Lock) bucket; 'archive verify' reads "
        "them back",
        description="Upload each run's records to an S3 bucket under Object Lock in COMPLIANCE "
        "mode (the bucket is created with the lock when missing; one without it is refused, and "
        "so is one whose lock the server does not enforce), recording bucket, key, VersionId and "
        "SHA-256 of every object in RUN_DIR/archive.json. 'zcbench archive verify RUN_DIR... "
        "--s3 URL --bucket B' reads every object back by VersionId and checks its hash and lock. "
        "Credentials come from the standard AWS environment or config.",
    )
    parser.add_argument("run_dir", nargs="+", metavar="RUN_DIR",
                        help="run folders (first 'verify' to read an archive back)")
    parser.add_argument("--s3", required=True, metavar="URL",
                        help="the S3 endpoint, http(s)://host[:port], or 'aws'")
    parser.add_argument("--bucket", required=True, help="the bucket (made with the lock if new)")
    parser.add_argument("--retain-until", metavar="DATE",
                        help="keep every object until this UTC date (YYYY-MM-DD, or an ISO "
                        "8601 time with its zone)")
    parser.add_argument("--retain-days", type=int, metavar="N",
                        help="keep every object N days from now")
    parser.add_argument("--min-retain-days", type=int, default=DEFAULT_MIN_RETENTION_DAYS,
                        metavar="N", help="refuse a retention shorter than this (default "
                        f"{DEFAULT_MIN_RETENTION_DAYS}: 5 years, Rule 204-2 and RTS 6 Art. 28)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help=f"key prefix (default {DEFAULT_PREFIX})")
    parser.add_argument("--ledger", metavar="DIR", type=Path,
                        help="the strategy's ledger: archiving appends 'archive' entries (each "
                        "run's run-start must be in it); 'archive verify' checks every object "
                        "against them")
    parser.add_argument("--by", metavar="LIVE_BUILD_DIR", type=Path, default=None,
                        help="with --ledger: the live version's build, whose enclave appends "
                        "the archive entries (required for a ledger made by 'zcbench ledger "
                        "init', whose key only attested enclaves hold)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_run, check_values=_check_values)


def _parse_until(text: str) -> dt.datetime:
    try:
        if len(text) == 10:
            return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--retain-until {text!r} is not a date: give YYYY-MM-DD or an ISO "
                         "8601 time with its zone") from None
    if value.tzinfo is None:
        raise UsageError(f"--retain-until {text!r} names no time zone: add Z for UTC")
    return value


def _check_values(args: argparse.Namespace) -> None:
    from zcbench.archive import S3Endpoint

    args.verify = args.run_dir[0] == "verify" and not Path("verify").is_dir()
    if args.verify:
        args.run_dir = args.run_dir[1:]
        if not args.run_dir:
            raise UsageError("archive verify needs at least one RUN_DIR")
        for flag in ("retain_until", "retain_days"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} is for archiving, not for "
                                 "'archive verify'")
    else:
        if (args.retain_until is None) == (args.retain_days is None):
            raise UsageError("give exactly one of --retain-until DATE and --retain-days N")
        if args.retain_days is not None and not 1 <= args.retain_days <= _MAX_DAYS:
            raise UsageError(f"--retain-days must be between 1 and {_MAX_DAYS}")
        if not 1 <= args.min_retain_days <= _MAX_DAYS:
            raise UsageError(f"--min-retain-days must be between 1 and {_MAX_DAYS}")
        if args.retain_until is not None:
            args.retain_until_value = _parse_until(args.retain_until)
    args.endpoint = S3Endpoint(args.s3)


def _emit(args: argparse.Namespace, payload: Any, lines: list[str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def _run(args: argparse.Namespace) -> int:
    return _verify(args) if args.verify else _archive(args)


def _archive(args: argparse.Namespace) -> int:
    from zcbench.archive import DEFAULT_MIN_RETENTION_DAYS, RetentionPolicy, archive_runs

    if args.min_retain_days < DEFAULT_MIN_RETENTION_DAYS:
        sys.stderr.write(f"zcbench: warning: minimum retention lowered to "
                         f"{args.min_retain_days} days (--min-retain-days), below the 5-year "
                         "rule: fine for a trial, not for records a rule requires\n")
    now = dt.datetime.now(dt.UTC)
    until = (args.retain_until_value if args.retain_until is not None
             else now + dt.timedelta(days=args.retain_days))
    if args.ledger is not None:
        from zcbench.archive.ledger import check_runs_in_ledger
        from zcbench.archive.upload import run_identity

        if getattr(args, "by", None) is not None and not (args.by / "manifest.json").is_file():
            raise UsageError(f"--by {args.by}: not a build folder; give the live version's "
                             "build (the folder 'zcbench package' wrote)")
        check_runs_in_ledger(args.ledger, [run_identity(Path(p))[0] for p in args.run_dir],
                             by_enclave=getattr(args, "by", None) is not None)
    results = archive_runs([Path(p) for p in args.run_dir], endpoint=args.endpoint,
                           bucket=args.bucket, retain_until=until, prefix=args.prefix,
                           policy=RetentionPolicy(args.min_retain_days), now=lambda: now)
    lines = []
    if args.ledger is not None:
        from zcbench.archive.ledger import archive_bodies, record_archives
        from zcbench.archive.upload import run_identity

        archived = [(run_identity(r.run_dir)[0], r.archive) for r in results]
        if getattr(args, "by", None) is not None:
            from zcbench.host import BuildImage
            from zcbench.host.endorse import archive_request, endorse

            signed = endorse(BuildImage(args.by), args.ledger,
                             [archive_request(b) for b in archive_bodies(args.ledger,
                                                                         archived)])
            indices = [a.entry.index for a in signed.every]
        else:
            indices = record_archives(args.ledger, archived)
        lines.append(f"LEDGER: {len(indices)} archive entries appended to {args.ledger} "
                     f"(entries {indices[0]}..{indices[-1]})")
    for result in results:
        archive = result.archive
        lines.append(f"ARCHIVED: {result.run_dir}: {len(archive.objects)} objects in bucket "
                     f"{archive.bucket}, COMPLIANCE until {archive.retain_until}")
        lines.append(f"  lock enforced (probe {result.probe.probe_key}): delete, shorten, "
                     "downgrade and suspend all refused")
        lines.append(f"  manifest: {result.manifest}")
    lines.append("Read it back (the same endpoint and AWS credentials): zcbench archive verify "
                 + " ".join(str(r.run_dir) for r in results)
                 + f" --s3 {args.endpoint} --bucket {args.bucket}"
                 + (f" --ledger {args.ledger}" if args.ledger is not None else ""))
    _emit(args, [r.to_json() for r in results], lines)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from zcbench.archive import check_archives

    reports = check_archives([Path(p) for p in args.run_dir], endpoint=args.endpoint,
                             bucket=args.bucket, ledger=args.ledger)
    lines = [line for report in reports for line in report.summary_lines()]
    _emit(args, [r.to_json() for r in reports], lines)
    return EXIT_OK if all(r.verified for r in reports) else EXIT_FAILED
