"""The HTTP witness: C2SP tlog-witness ``add-checkpoint`` over Starlette, served by uvicorn.

``POST /add-checkpoint`` with the body::

    old <size>\\n
    <base64 consistency-proof hash>\\n    (0..63 lines; none when old is 0)
    \\n
    <checkpoint note>

answers, as https://c2sp.org/tlog-witness says: **200** with this witness's cosignature/v1
line (``text/plain; charset=utf-8``); **400** a malformed body, or ``old`` above the
checkpoint's size; **403** no signature by the configured log key; **404** an origin this
witness is not configured for; **409** ``old`` is not the size it holds (body: that size and a
newline, ``Content-Type: text/x.tlog.size``), or the same size with another root; **422** a
consistency proof that does not verify. ``GET /`` answers the witness's vkey and the origins it
serves, one a line.

The state is :class:`zcbench.auditlog.witness.Witness`'s (one JSON file per origin, replaced
atomically under a lock, the check and the update in one step); the same folder serves
``zcbench log witness``. Bodies are bounded (:data:`MAX_BODY`) and read strictly; anything else
is a 400 and the server answers the next request. Blocking work (fsync, the lock) runs in the
thread pool so one slow disk does not stall the event loop.
"""

from __future__ import annotations

import binascii
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from zcbench.auditlog import LogFormatError, WitnessRefusal
from zcbench.auditlog.checkpoint import parse_checkpoint_note
from zcbench.auditlog.note import Cosigner, NoteVerifier, parse_vkey
from zcbench.auditlog.witness import Witness

__all__ = ["MAX_BODY", "MAX_PROOF_LINES", "AddCheckpoint", "build_app", "parse_add_checkpoint",
           "parse_log_list", "running", "serve"]

MAX_BODY: Final = 65_536
MAX_PROOF_LINES: Final = 63
_SIZE: Final = re.compile(r"(0|[1-9][0-9]{0,19})")
_TEXT: Final = "text/plain; charset=utf-8"


class BadRequest(ValueError):
    """A body that is not an add-checkpoint request."""


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed add-checkpoint request."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request in ``body``; raises :class:`BadRequest` naming what is wrong."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"body of {len(body)} bytes is larger than {MAX_BODY}")
    head, sep, note = body.partition(b"\n\n")
    if not sep or not note:
        raise BadRequest("no empty line between the proof and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise BadRequest("the old-size and proof lines are not ASCII") from None
    first = lines[0]
    if not first.startswith("old ") or not _SIZE.fullmatch(first[4:]):
        raise BadRequest("the first line is not 'old <decimal size>'")
    old = int(first[4:])
    if old >= 2**63:
        raise BadRequest("old size out of range")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise BadRequest(f"{len(proof_lines)} proof lines, at most {MAX_PROOF_LINES}")
    proof = []
    for line in proof_lines:
        try:
            value = binascii.a2b_base64(line, strict_mode=True)
        except (binascii.Error, ValueError):
            raise BadRequest("a proof line is not base64") from None
        if len(value) != 32:
            raise BadRequest("a proof line is not a 32-byte hash")
        proof.append(value)
    return AddCheckpoint(old, tuple(proof), note)


def parse_log_list(text: str) -> list[NoteVerifier]:
    """The logs of a witness-network list (``logs/v0``, then ``vkey``/``origin``/``qpd``/
    ``contact`` lines per log); every log's vkey must be named by its origin."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines or lines[0] != "logs/v0":
        raise LogFormatError("a log list starts with 'logs/v0'")
    logs: list[NoteVerifier] = []
    origin_pending: NoteVerifier | None = None
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "vkey":
            origin_pending = parse_vkey(value)
            logs.append(origin_pending)
        elif key == "origin":
            if origin_pending is None or origin_pending.name != value:
                raise LogFormatError(f"origin {value!r} does not follow a vkey of that name")
        elif key in ("qpd", "contact"):
            continue
        else:
            raise LogFormatError(f"log list: unknown line {line!r}")
    return logs


def build_app(witness: Witness, cosigner: Cosigner, logs: Sequence[NoteVerifier], *,
              clock: Callable[[], float] = time.time) -> Starlette:
    """The witness application for ``logs`` (each named by its origin), cosigning with
    ``cosigner`` and keeping state in ``witness``."""
    by_origin: Mapping[str, NoteVerifier] = {log.name: log for log in logs}

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return PlainTextResponse("body too large\n", status_code=400)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("body too large\n", status_code=400)
        try:
            parsed = parse_add_checkpoint(bytes(body))
            origin = parse_checkpoint_note(parsed.note).origin
        except (BadRequest, LogFormatError) as exc:
            return PlainTextResponse(f"malformed request: {exc}\n", status_code=400)
        log = by_origin.get(origin)
        if log is None:
            return PlainTextResponse(f"unknown origin {origin}\n", status_code=404)
        try:
            line = await run_in_threadpool(
                witness.add_checkpoint, parsed.note, old_size=parsed.old_size,
                proof=parsed.proof, log=log, cosigner=cosigner, timestamp=int(clock()))
        except WitnessRefusal as refusal:
            if refusal.status == 409 and refusal.check == "witness_size":
                return Response(f"{refusal.witness_size}\n", status_code=409,
                                media_type="text/x.tlog.size")
            return PlainTextResponse(f"{refusal}\n", status_code=refusal.status)
        except LogFormatError as exc:  # this witness's own state is damaged: not the client's
            return PlainTextResponse(f"witness state unreadable: {exc}\n", status_code=500)
        return Response(line.line(), status_code=200, media_type=_TEXT)

    async def index(_request: Request) -> Response:
        text = cosigner.vkey + "\n" + "".join(f"{origin}\n" for origin in sorted(by_origin))
        return PlainTextResponse(text)

    return Starlette(routes=[
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/", index, methods=["GET"]),
    ])


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` with uvicorn on ``host:port`` until interrupted (SIGINT, SIGTERM)."""
    import uvicorn

    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    if on_ready is not None:
        on_ready(f"http://{host}:{sock.getsockname()[1]}")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def running(app: Starlette, *, host: str = "127.0.0.1", port: int = 0,
            start_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread of this process (a free port by default) and
    yield its URL; stop it on exit. For notebooks and tests: the server is the real one."""
    import uvicorn

    sock = _bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="zcbench-witness")
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise OSError(f"the witness server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(start_timeout)
        sock.close()
