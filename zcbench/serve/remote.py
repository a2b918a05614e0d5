"""The LP's side of the proof service: verify a fund's running strategy from the LP's own machine.

:func:`check_remote` (a report, never raising for a failed check) and :func:`verify_remote` (the
report, or :class:`RemoteVerificationError`) do, in order:

1. ask ``<url>/.well-known/zcbench/attestation`` for a document with a fresh random nonce;
2. verify it with :func:`zcbench.nitro.check_attestation`: chain to the root the LP names, PCRs
   against the commitment, the nonce, its age (``max_age``), SIMULATED when the root is the dev CA;
3. read the checkpoint in its ``user_data`` (:func:`zcbench.nitro.binding.check_log_binding`:
   signed by the attested log key, origin naming PCR0);
4. fetch the run's published checkpoint (``/runs/<run id>/checkpoint``, same key) and its hash
   tiles, and recompute from the tiles both roots: the attested checkpoint's and the published
   one's (one set of tiles for both, so they are proven consistent);
5. compare with the checkpoint this LP saved for the same origin on its last visit (``state``):
   a smaller size is a **rollback**, another root at the saved size a **fork**; then save the
   newest checkpoint, atomically.

With ``slice_range`` the records of that range come too (``/runs/<run id>/slice``, fetched
before the served checkpoint, so that checkpoint is at least the slice's): the slice is checked
as ``zcbench log verify`` checks a slice file (:func:`~zcbench.auditlog.slice.check_slice_bytes`:
its boot document under the same root and commitment, its checkpoint signed by the attested
key, every inclusion proof), its log key must be the attested one, and its checkpoint's root is
recomputed from the same tiles; ``slice_out`` keeps it (a file ``zcbench log verify`` and
``log replay`` read) when the visit verified.

Nothing the server says is taken on trust: sizes and roots come from signed checkpoints only,
every hash from tiles the root is recomputed from. Time (``at``) and the nonce (``rng``) come in
as parameters.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zcbench.auditlog.checkpoint import Checkpoint, CheckpointVerifier, parse_checkpoint_note
from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError, UsageError, VerificationError, ZcbenchError
from zcbench.nitro.commitment import Commitment
from zcbench.serve.tiles import TileError, TileReader

__all__ = [
    "RemoteReport",
    "RemoteVerificationError",
    "check_remote",
    "check_remote_ledger",
    "verify_remote",
]

REMOTE_SCHEMA: Final = "zcbench.remote-verdict/1"
STATE_SCHEMA: Final = "zcbench.lp-state/1"
_MAX_BODY: Final = 1 << 20
_MAX_TILE_BODY: Final = 8 * 1024 * 1024
DEFAULT_MAX_AGE: Final = dt.timedelta(minutes=5)


class RemoteVerificationError(VerificationError):
    """The remote run failed a check; ``report`` says which and what was learnt."""

    def __init__(self, report: RemoteReport) -> None:
        super().__init__(report.message, check=report.failed_check or "remote",
                         expected=report.expected, actual=report.actual)
        self.report = report


@dataclass(frozen=True)
class RemoteReport:
    """What one visit established (``verified``) or which check failed (``failed_check``).

    ``state`` is ``first_visit`` (no saved checkpoint for this origin), ``consistent`` (the saved
    one is a prefix of today's), ``rollback`` or ``forked``. ``simulated`` is true when the
    verdict rests on the development CA.
    """

    url: str
    verified: bool
    failed_check: str | None
    message: str
    at: dt.datetime
    nonce: str
    expected: str | None = None
    actual: str | None = None
    run_id: str | None = None
    origin: str | None = None
    attestation: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None
    published: dict[str, Any] | None = None
    tiles_checked: bool = False
    state: str | None = None
    previous: dict[str, Any] | None = None
    simulated: bool = False
    trust_root: dict[str, str] | None = None
    slice: dict[str, Any] | None = None
    """The slice fetched (``slice_range``): range, records, checkpoint size, withheld kinds."""
    ledger: dict[str, Any] | None = None
    """The ledger checks (``--ledger-vkey`` or ``--policy``): its checkpoint, quorum, root from
    tiles, the running PCR0's announcement, the run's run-start, and the last visit."""
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    """What the checks read (base64/hex): the document, nonce, expected PCRs, the root's DER,
    the checkpoint notes and the hash tiles, for a report that re-verifies itself."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON verdict (``--json``)."""
        return {
            "schema": REMOTE_SCHEMA,
            "url": self.url,
            "verified": self.verified,
            "failed_check": self.failed_check,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "at": self.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "nonce": self.nonce,
            "run_id": self.run_id,
            "origin": self.origin,
            "simulated": self.simulated,
            "trust_root": self.trust_root,
            "attestation": self.attestation,
            "checkpoint": self.checkpoint,
            "published": self.published,
            "tiles_checked": self.tiles_checked,
            "state": self.state,
            "previous": self.previous,
            "slice": self.slice,
            "ledger": self.ledger,
        }


class _Failed(Exception):
    def __init__(self, check: str, message: str, expected: object = None,
                 actual: object = None) -> None:
        super().__init__(message)
        self.check, self.message = check, message
        self.expected = None if expected is None else str(expected)
        self.actual = None if actual is None else str(actual)


Get = Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]


def _client_get(client: Any) -> Get:
    import httpx

    def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            with client.stream("GET", url, headers=headers) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_TILE_BODY:
                        raise DataError(f"{url} answered more than {_MAX_TILE_BODY} bytes")
                return response.status_code, dict(response.headers), body
        except httpx.HTTPError as exc:
            raise EnvError(f"cannot reach {url}: {str(exc).rpartition('] ')[2]}") from None

    return get


def _state_path(state: Path, origin: str) -> Path:
    return state / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.json"


def _load_state(state: Path, origin: str) -> Checkpoint | None:
    path = _state_path(state, origin)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"saved state {path} is unreadable: {exc}; move it away to start over"
                        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA or not isinstance(
            doc.get("note"), str):
        raise DataError(f"saved state {path} is not a {STATE_SCHEMA} file")
    checkpoint = parse_checkpoint_note(doc["note"].encode())
    if checkpoint.origin != origin:
        raise DataError(f"saved state {path} holds another origin ({checkpoint.origin})")
    return checkpoint


def _save_state(state: Path, origin: str, note: bytes, url: str, at: dt.datetime) -> None:
    state.mkdir(parents=True, exist_ok=True)
    path = _state_path(state, origin)
    body = json.dumps({"schema": STATE_SCHEMA, "origin": origin, "url": url,
                       "saved_at": at.astimezone(dt.UTC).isoformat(),
                       "note": note.decode()}, indent=2) + "\n"
    try:
        write_atomically(path, body.encode(), 0o644)
    except OSError as exc:
        raise EnvError(f"cannot save the checkpoint in {state}: {exc}") from None


def _cp_dict(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root.hex()}


def check_remote(
    url: str,
    commitment: Commitment,
    *,
    trust: str | Path = "aws",
    token: str | None = None,
    state: Path | None = None,
    at: dt.datetime | None = None,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
    rng: Callable[[int], bytes] = secrets.token_bytes,
    get: Get | None = None,
    tls_verify: bool | str = True,
    tile_wait_s: float = 5.0,
    ledger_vkey: str | None = None,
    policy: Any = None,
    slice_range: tuple[int, int] | None = None,
    slice_out: Path | None = None,
) -> RemoteReport:
    """One visit to the proof service at ``url`` (see the module docstring).

    ``get`` replaces the HTTP client (``(url, headers) -> (status, headers, body)``);
    ``tls_verify`` is True (the system's CAs), False, or a CA bundle file. Raises only for
    misuse (:class:`UsageError`) and an unreachable or refusing server (:class:`EnvError`,
    exit 3); every failed check is in the report. With ``ledger_vkey`` (the ledger key the
    fund handed over) or ``policy`` (a :class:`~zcbench.ledger.TlogPolicy` naming it, and the
    witnesses' quorum) the run is also held to the ledger served at ``<url>/ledger/``
    (:func:`check_remote_ledger`). With ``slice_range`` (``[start, stop)``) the records of
    that range are fetched and checked too, and written to ``slice_out`` when the visit
    verified.
    """
    ledger = (ledger_vkey, policy)
    if slice_range is not None and not 0 <= slice_range[0] < slice_range[1]:
        raise UsageError(f"the slice [{slice_range[0]}, {slice_range[1]}) is empty or negative")
    if slice_out is not None and slice_range is None:
        raise UsageError("a slice output needs a slice range")
    wanted = _SliceRequest(slice_range, slice_out) if slice_range is not None else None
    if get is not None:
        return _check(url, commitment, trust, token, state, at, max_age, rng, get, tile_wait_s,
                      ledger, wanted)
    import ssl

    import httpx

    verify = ssl.create_default_context(cafile=tls_verify) if isinstance(tls_verify, str) \
        else tls_verify
    with httpx.Client(verify=verify, timeout=20.0, follow_redirects=False) as client:
        return _check(url, commitment, trust, token, state, at, max_age, rng,
                      _client_get(client), tile_wait_s, ledger, wanted)


@dataclass(frozen=True)
class _SliceRequest:
    range: tuple[int, int]
    out: Path | None


def _check(url: str, commitment: Commitment, trust: str | Path, token: str | None,
           state: Path | None, at: dt.datetime | None, max_age: dt.timedelta,
           rng: Callable[[int], bytes], fetch: Get, tile_wait_s: float,
           ledger: tuple[str | None, Any] = (None, None),
           wanted: _SliceRequest | None = None) -> RemoteReport:
    from zcbench.nitro import AttestationPolicy, check_attestation
    from zcbench.nitro.binding import check_log_binding

    base = url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise UsageError(f"{url} is not an http(s) URL")
    when = at or dt.datetime.now(dt.UTC)
    nonce = rng(32)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, answer_headers, body = fetch(
        f"{base}/.well-known/zcbench/attestation?nonce={nonce.hex()}", headers)
    if status == 503:
        hint = ""
        try:
            last = json.loads(body).get("last_run")
            hint = f" (the last run was {last})" if last else ""
        except (ValueError, AttributeError):
            pass
        raise EnvError(f"{base}: no enclave runs now{hint}; retry after "
                       f"{answer_headers.get('retry-after', 'a while')} s")
    if status in (401, 403):
        raise UsageError(f"{base} refused the attestation request ({status}): "
                         f"{_reason(body)}; ask the fund for a token (--token)")
    if status != 200:
        raise EnvError(f"{base} answered {status} to the attestation request: {_reason(body)}")
    policy = AttestationPolicy(expected_pcrs=commitment.pcrs, nonce=nonce, max_age=max_age,
                               trust=trust)
    report = check_attestation(body, policy, at=when)
    evidence: dict[str, Any] = {
        "document": base64.b64encode(body).decode(), "nonce": nonce.hex(),
        "expected_pcrs": {str(i): v.hex() for i, v in sorted(commitment.pcrs.items())},
        "root": base64.b64encode(report.trust_root.der).decode(),
        "simulated": report.simulated, "tiles": {},
    }
    common: dict[str, Any] = {
        "url": base, "at": when, "nonce": nonce.hex(), "attestation": report.to_dict(),
        "simulated": report.simulated, "trust_root": report.trust_root.to_dict(),
        "evidence": evidence,
    }
    if not report.verified:
        return RemoteReport(verified=False, failed_check=f"attestation:{report.failed_check}",
                            message=f"the attestation document failed: {report.message}",
                            expected=report.expected, actual=report.actual, **common)
    document = report.document
    assert document is not None
    assert document.public_key is not None
    progress: dict[str, Any] = {}
    try:
        binding = check_log_binding(document)
        if binding is None:
            raise _Failed("binding", "the document carries no checkpoint in user_data")
        if binding.problem is not None:
            raise _Failed("binding", binding.problem)
        attested = parse_checkpoint_note(binding.note)
        origin = attested.origin
        run_id = origin.rsplit("/", 1)[-1]
        progress.update(origin=origin, run_id=run_id, checkpoint=_cp_dict(attested))
        verifier = CheckpointVerifier(document.public_key, origin)
        run_base = f"{base}/runs/{run_id}"
        # the slice first (once the run has a served checkpoint at all): the served
        # checkpoint fetched next is then at least the slice's
        slice_body = None
        if wanted is not None:
            _published(fetch, run_base, headers, 1, tile_wait_s)
            slice_body = _fetch_slice(fetch, run_base, headers, wanted.range)
        published_note = _published(fetch, run_base, headers, attested.size, tile_wait_s)
        evidence["attested"] = binding.note.decode("utf-8", "replace")
        evidence["published"] = published_note.decode("utf-8", "replace")
        try:
            published = verifier.verify(published_note)
        except ZcbenchError as exc:
            raise _Failed("published_checkpoint",
                          f"the served checkpoint is not signed by the attested log key: {exc}"
                          ) from None
        progress["published"] = _cp_dict(published)
        if published.size < attested.size:
            raise _Failed("published_checkpoint",
                          "the served log is shorter than the checkpoint the enclave attests",
                          attested.size, published.size)
        reader = TileReader(_tile_fetch(fetch, run_base, headers))
        for what, checkpoint in (("attested", attested), ("published", published)):
            computed = reader.root(checkpoint.size, published.size)
            evidence["tiles"] = {p: base64.b64encode(d).decode()
                                 for p, d in reader.fetched().items()}
            if computed != checkpoint.root:
                raise _Failed("tiles_root", f"the tiles do not hash to the {what} checkpoint's "
                              f"root (size {checkpoint.size})", checkpoint.root.hex(),
                              computed.hex())
        progress["tiles_checked"] = True
        if wanted is not None and slice_body is not None:
            progress["slice"] = _check_fetched_slice(
                slice_body, wanted.range, f"{run_base}/slice", trust, commitment,
                document.public_key, origin, published, reader)
        newest_note, newest = published_note, published
        progress["state"] = "first_visit"
        if state is not None:
            previous = _load_state(state, origin)
            if previous is not None:
                progress["previous"] = _cp_dict(previous)
                if previous.size > published.size:
                    progress["state"] = "rollback"
                    raise _Failed("rollback", f"the log is shorter than on the last visit: "
                                  f"size {published.size}, saved {previous.size}",
                                  previous.size, published.size)
                computed = reader.root(previous.size, published.size)
                if computed != previous.root:
                    progress["state"] = "forked"
                    raise _Failed("forked", f"the log forked: the root at size {previous.size} "
                                  "is not the one saved on the last visit",
                                  previous.root.hex(), computed.hex())
                progress["state"] = "consistent"
        if ledger != (None, None):
            from zcbench.auditlog.checkpoint import log_verifier

            pcr0 = document.pcrs.get(0)
            if pcr0 is None:
                raise _Failed("ledger_pcr0", "the document carries no PCR0")
            ledger_progress: dict[str, Any] = {}
            progress["ledger"] = ledger_progress
            _ledger_checks(fetch, f"{base}/ledger", ledger_progress, vkey=ledger[0],
                           policy=ledger[1], pcr0=bytes(pcr0), run_origin=origin,
                           run_vkey=log_verifier(document.public_key, origin).vkey,
                           state=state, at=when)
        if wanted is not None and wanted.out is not None and slice_body is not None:
            _write_slice(wanted.out, slice_body)
        if state is not None:
            _save_state(state, origin, newest_note, base, when)
            if "ledger" in progress:
                saved = progress["ledger"].pop("_note")
                _save_state(state, progress["ledger"]["origin"], saved, base, when)
    except _Failed as failed:
        return RemoteReport(verified=False, failed_check=failed.check, message=failed.message,
                            expected=failed.expected, actual=failed.actual, **common, **progress)
    except TileError as exc:
        return RemoteReport(verified=False, failed_check="tiles", message=str(exc), **common,
                            **progress)
    except DataError as exc:
        return RemoteReport(verified=False, failed_check="format", message=str(exc), **common,
                            **progress)
    size = newest.size
    if "ledger" in progress:
        progress["ledger"].pop("_note", None)
    return RemoteReport(
        verified=True, failed_check=None,
        message=f"verified: {origin}, {size} records, root recomputed from tiles"
        + ("" if progress["state"] != "consistent" else "; consistent with the last visit")
        + ("" if "slice" not in progress else
           f"; slice of {progress['slice']['records']} records verified")
        + ("" if "ledger" not in progress else "; held to the ledger"),
        **common, **progress)


def check_remote_ledger(ledger_url: str, *, pcr0: bytes, run_origin: str, run_vkey: str,
                        vkey: str | None = None, policy: Any = None, state: Path | None = None,
                        at: dt.datetime | None = None, get: Get | None = None
                        ) -> dict[str, Any]:
    """Hold one run (its PCR0, log origin and log vkey) to the ledger served at
    ``ledger_url`` (``<server>/ledger``); the checks as :func:`check_remote` does them.

    Returns the ledger part of the verdict: ``verified``, ``failed_check`` (``ledger_*``),
    ``message`` and what each check found. The ledger checkpoint is saved in ``state`` only
    when every check passed.
    """
    when = at or dt.datetime.now(dt.UTC)

    def run(fetch: Get) -> dict[str, Any]:
        found: dict[str, Any] = {}
        try:
            _ledger_checks(fetch, ledger_url.rstrip("/"), found, vkey=vkey, policy=policy,
                           pcr0=pcr0, run_origin=run_origin, run_vkey=run_vkey, state=state,
                           at=when)
        except _Failed as failed:
            found.pop("_note", None)
            return {**found, "verified": False, "failed_check": failed.check,
                    "message": failed.message}
        note = found.pop("_note")
        if state is not None:
            _save_state(state, found["origin"], note, ledger_url, when)
        return {**found, "verified": True, "failed_check": None,
                "message": f"run {run_origin} is in the ledger {found['origin']}"}

    if get is not None:
        return run(get)
    import httpx

    with httpx.Client(timeout=20.0, follow_redirects=False) as client:
        return run(_client_get(client))


def _ledger_checks(fetch: Get, ledger_base: str, found: dict[str, Any], *, vkey: str | None,
                   policy: Any, pcr0: bytes, run_origin: str, run_vkey: str,
                   state: Path | None, at: dt.datetime) -> None:
    """The ledger checks, in order, each named in ``found["checks"]`` once passed; raises
    :class:`_Failed` at the first that fails. ``found["_note"]`` is the checkpoint to save."""
    from zcbench.ledger import LedgerRuleError, LedgerState, check_quorum, decode_entry
    from zcbench.ledger.store import checkpoint_of

    checks: list[str] = []
    found["checks"] = checks
    status, _, note = fetch(f"{ledger_base}/checkpoint", {})
    if status != 200:
        raise _Failed("ledger_checkpoint", f"{ledger_base}/checkpoint answered {status}: "
                      f"{_reason(note)}; the server serves no ledger")
    if len(note) > _MAX_BODY:
        raise _Failed("ledger_checkpoint", "the served ledger checkpoint is too large")
    if policy is not None:
        try:
            claimed = parse_checkpoint_note(note).origin
        except DataError as exc:
            raise _Failed("ledger_checkpoint", f"the ledger checkpoint: {exc}") from None
        keys = [v.vkey for v, _ in policy.logs if v.name == claimed]
        if not keys:
            raise _Failed("ledger_checkpoint", f"the served ledger {claimed!r} is not the log "
                          "your policy names")
        if vkey is not None and vkey != keys[0]:
            raise UsageError("--ledger-vkey and --policy name different ledger keys")
        vkey = keys[0]
    assert vkey is not None
    try:
        checkpoint = checkpoint_of(note, vkey)
    except ZcbenchError as exc:
        raise _Failed("ledger_checkpoint", "the served ledger checkpoint is not signed by the "
                      f"ledger key you were handed: {exc}") from None
    found.update(origin=checkpoint.origin, size=checkpoint.size, root=checkpoint.root.hex())
    checks.append("ledger_checkpoint")
    if policy is not None and policy.quorum is not None:
        quorum = check_quorum(note, policy)
        found["cosigned_by"] = list(quorum.cosigned)
        if not quorum.met:
            raise _Failed("ledger_quorum", "the ledger checkpoint lacks your policy's quorum "
                          f"(cosigned by {', '.join(quorum.cosigned) or 'no witness'})")
        checks.append("ledger_quorum")
    reader = TileReader(_tile_fetch(fetch, ledger_base, {}))
    try:
        computed = reader.root(checkpoint.size)
        if computed != checkpoint.root:
            raise _Failed("ledger_tiles", "the ledger tiles do not hash to its checkpoint's root",
                          checkpoint.root.hex(), computed.hex())
        checks.append("ledger_tiles")
        ledger_state = LedgerState()
        for data in reader.iter_entries(checkpoint.size):
            ledger_state.apply(decode_entry(data))
    except TileError as exc:
        raise _Failed("ledger_tiles", f"the ledger tiles: {exc}") from None
    except (LedgerRuleError, DataError) as exc:
        raise _Failed("ledger_entries", f"a ledger entry: {exc}") from None
    checks.append("ledger_entries")
    at_ns = int(at.timestamp() * 1_000_000_000)
    version = ledger_state.versions.get(pcr0)
    found["pcr0"] = pcr0.hex()
    if version is None:
        raise _Failed("ledger_pcr0", f"the running PCR0 {pcr0.hex()[:16]}... is not announced in "
                      "the ledger")
    found["pcr0_announced_index"] = version.index
    if version.revoked_ns is not None and version.revoked_ns <= at_ns:
        raise _Failed("ledger_pcr0", f"the running PCR0 {pcr0.hex()[:16]}... is revoked in the "
                      f"ledger (entry {version.revoked_index})")
    if not version.allowed_at(at_ns):
        raise _Failed("ledger_pcr0", f"the running PCR0 {pcr0.hex()[:16]}... is valid only from "
                      f"{version.valid_from_ns} ns")
    checks.append("ledger_pcr0")
    entry = ledger_state.runs.get(run_origin)
    if entry is None:
        raise _Failed("ledger_run", f"run {run_origin} has no run-start in the ledger: a run "
                      "the ledger does not hold")
    if entry.pcr0 != pcr0 or entry.vkey != run_vkey:
        raise _Failed("ledger_run", f"the run-start of {run_origin} names another PCR0 or log "
                      "key than the run served")
    found["run_start_index"] = entry.start_index
    checks.append("ledger_run")
    found["state"] = "first_visit"
    if state is not None:
        previous = _load_state(state, checkpoint.origin)
        if previous is not None:
            found["previous"] = _cp_dict(previous)
            if previous.size > checkpoint.size:
                found["state"] = "rollback"
                raise _Failed("ledger_rollback", "the ledger is shorter than on the last visit: "
                              f"size {checkpoint.size}, saved {previous.size}",
                              previous.size, checkpoint.size)
            try:
                computed = reader.root(previous.size, checkpoint.size)
            except TileError as exc:
                raise _Failed("ledger_tiles", f"the ledger tiles: {exc}") from None
            if computed != previous.root:
                found["state"] = "forked"
                raise _Failed("ledger_forked", f"the ledger forked: the root at size "
                              f"{previous.size} is not the one saved on the last visit",
                              previous.root.hex(), computed.hex())
            found["state"] = "consistent"
        checks.append("ledger_state")
    found["_note"] = note


def verify_remote(url: str, commitment: Commitment, **kwargs: Any) -> RemoteReport:
    """:func:`check_remote`, raising :class:`RemoteVerificationError` when a check failed."""
    report = check_remote(url, commitment, **kwargs)
    if not report.verified:
        raise RemoteVerificationError(report)
    return report


def _reason(body: bytes) -> str:
    try:
        text = str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        text = body[:200].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _published(fetch: Get, run_base: str, headers: dict[str, str], size: int,
               wait_s: float) -> bytes:
    """The served checkpoint, waiting a little for the tiles to reach ``size``."""
    deadline = time.monotonic() + wait_s
    while True:
        status, _, body = fetch(f"{run_base}/checkpoint", headers)
        if status == 404 and time.monotonic() < deadline:
            time.sleep(0.02)  # the run's first checkpoint is not tiled yet
            continue
        if status != 200:
            raise EnvError(f"{run_base}/checkpoint answered {status}: {_reason(body)}")
        if len(body) > _MAX_BODY:
            raise DataError("the served checkpoint is too large")
        try:
            if parse_checkpoint_note(body).size >= size or time.monotonic() > deadline:
                return body
        except DataError:
            return body  # verified (and refused) by the caller
        time.sleep(0.02)


def _fetch_slice(fetch: Get, run_base: str, headers: dict[str, str],
                 wanted: tuple[int, int]) -> bytes:
    """The served slice of records ``[start, stop)``, unverified."""
    url = f"{run_base}/slice?start={wanted[0]}&end={wanted[1]}"
    status, _, body = fetch(url, headers)
    if status in (401, 403):
        raise UsageError(f"{run_base} refused the slice ({status}): {_reason(body)}; ask the "
                         "fund for a token whose scope covers this run")
    if status == 400:
        raise UsageError(f"{run_base} refused the slice range: {_reason(body)}")
    if status != 200:
        raise EnvError(f"{url} answered {status}: {_reason(body)}")
    return body


def _check_fetched_slice(body: bytes, wanted: tuple[int, int], where: str,
                         trust: str | Path, commitment: Commitment, public_key: bytes,
                         origin: str, published: Checkpoint, reader: TileReader
                         ) -> dict[str, Any]:
    """The slice checked as ``zcbench log verify`` checks a slice file, then tied to this
    visit: the attested log key, a checkpoint no larger than the served one, and its root
    recomputed from the same tiles."""
    from zcbench.auditlog.boot import nitro_boot_verifier
    from zcbench.auditlog.records import decode_record
    from zcbench.auditlog.slice import LogSlice, check_slice_bytes

    report = check_slice_bytes(body, where, trust=trust,
                               boot_verifier=nitro_boot_verifier(commitment.pcrs))
    if not report.verified:
        raise _Failed(f"slice:{report.classification}", f"the slice does not verify: "
                      f"{report.message}")
    if report.public_key != public_key or report.origin != origin:
        raise _Failed("slice_key", "the slice is of another log than the attested one",
                      origin, report.origin)
    sliced = LogSlice.from_bytes(body)
    checkpoint = parse_checkpoint_note(sliced.checkpoint)
    if checkpoint.size > published.size:
        raise _Failed("slice_checkpoint", "the slice proves against a checkpoint larger than "
                      "the one served after it", published.size, checkpoint.size)
    computed = reader.root(checkpoint.size, published.size)
    if computed != checkpoint.root:
        raise _Failed("slice_tiles", f"the slice's checkpoint (size {checkpoint.size}) is not "
                      "consistent with the served tiles", computed.hex(), checkpoint.root.hex())
    indices = [decode_record(e.record).index for e in sliced.entries]
    start, stop = wanted
    if any(not start <= i < stop for i in indices):
        raise _Failed("slice_range", f"the slice holds records outside [{start}, {stop})")
    kinds = {decode_record(e.record).kind for e in sliced.entries}
    complete = indices == [i for i in range(max(start, 1), stop) if i < checkpoint.size]
    if not complete and "in" in kinds:
        raise _Failed("slice_range", f"the slice lacks records of [{start}, {stop})")
    return {"start": start, "stop": stop, "records": len(indices), "size": checkpoint.size,
            "withheld": None if complete else "in-records"}


def _write_slice(out: Path, body: bytes) -> None:
    from zcbench.durable import write_output
    from zcbench.errors import describe_os_error

    try:
        write_output(out, body)
    except OSError as exc:
        reason = describe_os_error(exc, writing=True)
        raise EnvError(f"cannot write the slice to {out}: {reason}") from None


def _tile_fetch(fetch: Get, run_base: str, headers: dict[str, str]) -> Callable[[str], bytes]:
    def tile(path: str) -> bytes:
        status, _, body = fetch(f"{run_base}/{path}", headers)
        if status != 200:
            raise TileError(f"{run_base}/{path} answered {status}: {_reason(body)}")
        return body

    return tile
