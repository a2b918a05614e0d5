"""The proof service: run logs as tlog-tiles and fresh attestations over HTTP (Starlette, uvicorn).

Routes (GET and HEAD only; anything else is 405):

* ``/``                                    the runs, how to verify them, and the report's in-browser
  checks over evidence fetched from this server (the LP pastes commitment and root)
* ``/runs``                                the runs as JSON (run id, origin, published size, live)
* ``/runs/<run id>/checkpoint``            the newest checkpoint note of that run's log
* ``/runs/<run id>/tile/<L>/<N>[.p/<W>]``  hash tiles: public
* ``/runs/<run id>/tile/entries/<N>[...]`` entry bundles: a reader's token (401 without, 403 out of
  scope); a reader without ``bodies`` gets IN records as empty entries (their leaf hashes are in
  the hash tiles)
* ``/runs/<run id>/slice?start=<i>&end=<j>`` records ``[i, j)`` (at most
  :data:`MAX_SLICE_RECORDS`) and the boot record as a log slice (``zcbench.log-slice/1``, what
  ``zcbench log export`` writes) proven against the served checkpoint: a reader's token, as for
  entry bundles; a reader without ``bodies`` gets the slice without its IN records
* ``/ledger/checkpoint``, ``/ledger/tile/...`` the strategy's ledger (``--ledger``) as tlog-tiles,
  entry bundles included, all public: its entries are hashes and facts
* ``/ledger/proof/<index>`` one ledger entry as a ``.tlog-proof`` (what ``zcbench ledger proof``
  writes) against the served ledger checkpoint: a reader's token (403 when the entry names a
  run outside its scope)
* ``/witness/add-checkpoint`` (POST), ``/witness/`` the ledger's C2SP tlog-witness, when given
* ``/.well-known/zcbench/attestation?nonce=<hex>``  a fresh document from the enclave of the run
  in progress, with the caller's nonce and the latest checkpoint in ``user_data``; 503 with
  ``Retry-After`` and the last run's id when no enclave runs. Needs a reader token when the server
  has readers; rate-limited per reader (per client address without readers).

Every run folder under ``--runs`` with a ``log/`` is followed by a
:class:`~zcbench.serve.tiles.RunTiles` in a background thread (a run in progress included);
its run id is the last part of its log's origin. Tiles are written under ``--tiles`` (default
``<runs>/.tiles``), never in a run folder.

Responses are gzip-compressed for clients that accept it (:class:`Compress`), hash tiles
excepted; decoded, every file is byte for byte what is stored.

Hardening, in one place (:class:`Guard`, a pure ASGI wrapper): request line and query bounded
(414), headers bounded (431), bodies refused (413), a token bucket per client address (429 with
Retry-After), no CORS headers at all (a browser on another origin cannot read a response),
``nosniff`` and a closed CSP, an access log line per request (JSON: time, client, reader name,
method, path, status, bytes, milliseconds; never a token or a query string). Paths are parsed
strictly (canonical tile paths, known run ids), so no request names a file outside the tile
folders.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipResponder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from zcbench.auditlog.checkpoint import parse_checkpoint_note
from zcbench.auditlog.records import KINDS, decode_record
from zcbench.errors import DataError, UsageError, ZcbenchError
from zcbench.serve.control import MAX_NONCE, NoEnclave, attest_run, control_socket
from zcbench.serve.readers import Reader, Readers
from zcbench.serve.tiles import (
    LedgerTiles,
    RunTiles,
    TileError,
    TileReader,
    encode_bundle,
    file_fetch,
    parse_bundle,
    parse_tile_path,
)

__all__ = ["MAX_SLICE_BYTES", "MAX_SLICE_RECORDS", "Catalog", "Compress", "Guard", "ProofService",
           "RunEntry", "ServeConfig", "accepts_gzip", "build_app", "make_server"]

MAX_SLICE_RECORDS: Final = 4096
"""The most records one ``/runs/<run id>/slice`` request may name."""
MAX_SLICE_BYTES: Final = 64 * 1024 * 1024
"""The largest slice served (a narrower range is asked for beyond it)."""

_RUN_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NONCE: Final = re.compile(r"(?:[0-9a-fA-F]{2}){16,64}")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,17}")
_HASH_TILE: Final = re.compile(r"/(?:runs/[^/]+|ledger)/tile/[0-9]/")
_GZIP_MIN: Final = 256
_GZIP_LEVEL: Final = 6
_PROOF_THREADS: Final = 2
_MAX_TARGET: Final = 2048
_ATTEST_THREADS: Final = 16
_MAX_HEADERS: Final = 64
_MAX_HEADER_BYTES: Final = 8192
_MAX_WITNESS_BODY: Final = 65_536
_SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ServeConfig:
    """What ``zcbench serve`` serves and how hard it holds on."""

    runs: Path
    tiles: Path | None = None
    readers: Readers | None = None
    access_log: Path | None = None
    requests_per_s: float = 200.0
    request_burst: int = 400
    attest_per_s: float = 2.0
    attest_burst: int = 5
    proof_per_s: float = 2.0
    """Slices and ``.tlog-proof`` files per second per reader (each reads the log)."""
    proof_burst: int = 10
    sync_interval_s: float = 0.25
    attest_timeout_s: float = 15.0
    boot_key: Callable[[bytes], tuple[bytes, str]] | None = None
    """How the log key is read from a boot record (default: a Nitro document's ``public_key``)."""
    ledger: Path | None = None
    """The strategy's ledger folder, served at ``/ledger/`` (public: hashes and facts only)."""
    witness: Any = None
    """The ledger's witness (:func:`zcbench.ledger.witness_server.build_app`), mounted at
    ``/witness/``: the only path taking POST, with bodies of at most 64 KiB."""

    @property
    def tiles_root(self) -> Path:
        return self.tiles if self.tiles is not None else self.runs / ".tiles"


@dataclass
class RunEntry:
    """One followed run folder."""

    folder: Path
    tiles: RunTiles
    run_id: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def live(self) -> bool:
        return control_socket(self.folder).exists()


class Catalog:
    """The run folders under ``runs`` and their tiles, kept in sync by a background thread."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._entries: dict[Path, RunEntry] = {}
        self._by_id: dict[str, RunEntry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.ledger: LedgerTiles | None = None
        self.ledger_error: str | None = None
        self._ledger_lock = threading.Lock()
        if config.ledger is not None:
            self.ledger = LedgerTiles(config.ledger, config.tiles_root / ".ledger")

    def start(self) -> None:
        self.sync_once()
        self._thread = threading.Thread(target=self._loop, name="zcbench-tiles", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poke(self) -> None:
        """Sync now rather than at the next interval (a reader is about to want new tiles)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.sync_interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.sync_once()

    def sync_once(self) -> None:
        """Find new run folders and follow every run's log once (and the ledger's)."""
        self._sync_ledger()
        try:
            folders = sorted(p for p in self.config.runs.iterdir()
                             if p.is_dir() and not p.name.startswith(".") and (p / "log").is_dir())
        except OSError:
            folders = []
        for folder in folders:
            entry = self._entries.get(folder)
            if entry is None:
                tiles = RunTiles(folder, self.config.tiles_root / folder.name,
                                 boot_key=self.config.boot_key)
                entry = self._entries[folder] = RunEntry(folder, tiles)
            self._sync_entry(entry)

    def _sync_entry(self, entry: RunEntry) -> None:
        with entry.lock:
            if entry.error is not None:
                return
            try:
                entry.tiles.sync()
            except TileError as exc:
                entry.error = str(exc)
            except OSError as exc:
                entry.error = f"reading {entry.folder}: {exc}"
            origin = entry.tiles.origin
            if entry.run_id is None and origin is not None:
                run_id = origin.rsplit("/", 1)[-1]
                with self._lock:
                    if run_id in self._by_id:
                        entry.error = f"run id {run_id} is served from {self._by_id[run_id].folder}"
                    else:
                        entry.run_id = run_id
                        self._by_id[run_id] = entry

    def _sync_ledger(self) -> None:
        if self.ledger is None:
            return
        with self._ledger_lock:
            if self.ledger_error is not None:
                return
            try:
                self.ledger.sync()
            except TileError as exc:
                self.ledger_error = str(exc)
            except OSError as exc:
                self.ledger_error = f"reading the ledger: {exc}"

    def get(self, run_id: str) -> RunEntry | None:
        with self._lock:
            return self._by_id.get(run_id)

    def runs(self) -> list[RunEntry]:
        with self._lock:
            return list(self._by_id.values())

    def live_run(self) -> RunEntry | None:
        """The run whose enclave most recently opened its control socket."""
        live = [(control_socket(e.folder).stat().st_mtime, e.run_id or "", e)
                for e in self.runs() if e.live]
        return max(live, key=lambda t: (t[0], t[1]))[2] if live else None

    def last_run(self) -> RunEntry | None:
        runs = self.runs()
        return max(runs, key=lambda e: e.folder.stat().st_mtime) if runs else None


class _Buckets:
    """Token buckets by key (rate per second, burst), bounded in number."""

    def __init__(self, rate: float, burst: int, *, keep: int = 10_000) -> None:
        self.rate, self.burst, self.keep = rate, burst, keep
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """0 when allowed, else the seconds until a token is there."""
        tokens, last = self._state.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._state[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self._state) > self.keep:
            self._state.popitem(last=False)
        return wait


class _Reply(Exception):
    """A response decided early (an error with its reason)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.body = body


class Guard:
    """Limits, security headers and the access log around the app (a pure ASGI wrapper)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 config: ServeConfig, on_close: Callable[[], None] | None = None) -> None:
        self.app = app
        self._on_close = on_close
        self.config = config
        self.buckets = _Buckets(config.requests_per_s, config.request_burst)
        self._log_lock = threading.Lock()
        self._log = None
        if config.access_log is not None:
            config.access_log.parent.mkdir(parents=True, exist_ok=True)
            self._log = config.access_log.open("a", encoding="utf-8", buffering=1)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
        if self._log is not None:
            self._log.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 0, "bytes": 0}
        scope.setdefault("state", {})["access"] = state

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if not k.lower().startswith(b"access-control-")]
                headers.extend(_SECURITY_HEADERS)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # logged before the last byte leaves: a client that has its answer
                    # finds its line in the access log
                    self._write_log(scope, state, started)
            await send(message)

        try:
            self._check(scope)
            await self.app(scope, receive, guarded_send)
        except _Reply as reply:
            await _send_error(guarded_send, reply)
        finally:
            self._write_log(scope, state, started)  # once: a request that never finished

    def _check(self, scope: Scope) -> None:
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if target > _MAX_TARGET:
            raise _Reply(414, f"request target longer than {_MAX_TARGET} bytes")
        posting = (self.config.witness is not None and scope["method"] == "POST"
                   and str(scope.get("path", "")) == "/witness/add-checkpoint")
        if scope["method"] not in ("GET", "HEAD") and not posting:
            raise _Reply(405, "only GET and HEAD are served (and POST to the witness)",
                         {"Allow": "GET, HEAD"})
        headers = scope.get("headers", [])
        size = sum(len(k) + len(v) for k, v in headers)
        if len(headers) > _MAX_HEADERS or size > _MAX_HEADER_BYTES:
            raise _Reply(431, f"at most {_MAX_HEADERS} headers of {_MAX_HEADER_BYTES} bytes")
        length: int | None = None
        for name, value in headers:
            if name == b"transfer-encoding":
                raise _Reply(413, "requests carry no chunked body here")
            if name == b"content-length":
                length = int(value) if value.isdigit() and len(value) < 10 else -1
                if length != 0 and not (posting and 0 < length <= _MAX_WITNESS_BODY):
                    raise _Reply(413, "requests carry no body here" if not posting else
                                 f"a witness request is 1..{_MAX_WITNESS_BODY} bytes")
        if posting and length is None:
            raise _Reply(411, "a witness request needs a Content-Length")
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.buckets.take(f"ip:{client}", time.monotonic())
        if wait:
            raise _Reply(429, "too many requests from this address",
                         {"Retry-After": str(max(1, round(wait + 0.5)))})

    def _write_log(self, scope: Scope, state: dict[str, Any], started: float) -> None:
        if self._log is None or state.get("logged"):
            return
        state["logged"] = True
        line = json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "client": (scope.get("client") or ("?", 0))[0],
            "reader": state.get("reader"),
            "method": scope.get("method"),
            "path": str(scope.get("path", ""))[:256],
            "query_bytes": len(scope.get("query_string") or b""),
            "status": state["status"],
            "bytes": state["bytes"],
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }, sort_keys=True)
        with self._log_lock:
            self._log.write(line + "\n")


async def _send_error(send: Send, reply: _Reply) -> None:
    body = json.dumps(reply.body or {"error": reply.reason}).encode() + b"\n"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    headers.extend((k.lower().encode(), v.encode()) for k, v in reply.headers.items())
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request's ``Accept-Encoding`` allows gzip (RFC 9110 §12.5.3: ``gzip`` or
    ``x-gzip``, else ``*``, with a q-value above 0; no header: identity only)."""
    weights: dict[str, float] = {}
    for name, value in headers:
        if name != b"accept-encoding":
            continue
        for item in value.decode("latin-1").split(","):
            coding, _, params = item.partition(";")
            coding = coding.strip().lower()
            q = 1.0
            for param in params.split(";"):
                key, _, number = param.strip().partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(number)
                    except ValueError:
                        q = 0.0
            if coding:
                weights[coding] = q if 0.0 <= q <= 1.0 else 0.0
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


class Compress:
    """gzip for clients that accept it (Starlette's ``GZipResponder``), except hash tiles:
    32-byte hashes do not compress, so they go out as stored. A client that accepts no gzip
    gets every file byte for byte as stored; one that does gets the same bytes once decoded."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or _HASH_TILE.match(str(scope.get("path", "")))
                or not accepts_gzip(scope.get("headers", []))):
            await self.app(scope, receive, send)
            return
        responder = GZipResponder(self.app, _GZIP_MIN, compresslevel=_GZIP_LEVEL)
        await responder(scope, receive, send)


# -- the app ---------------------------------------------------------------------------------


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token or len(token) > 256 or " " in token:
                raise _Reply(401, "Authorization must be 'Bearer <token>'",
                             {"WWW-Authenticate": 'Bearer realm="zcbench"'})
            return token
    return None


class ProofService:
    """The routes (see the module docstring) as Starlette endpoints, over a :class:`Catalog`."""

    def __init__(self, config: ServeConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.attest_buckets = _Buckets(config.attest_per_s, config.attest_burst)
        self.proof_buckets = _Buckets(config.proof_per_s, config.proof_burst)
        # a pool of its own: the enclave answers in order, and a slow answer must not take
        # the threads the rest of the server needs
        self._pool = ThreadPoolExecutor(max_workers=_ATTEST_THREADS,
                                        thread_name_prefix="zcbench-attest")
        # slices and proofs read the log: a few at a time, beside the rest
        self._proof_pool = ThreadPoolExecutor(max_workers=_PROOF_THREADS,
                                              thread_name_prefix="zcbench-proof")
        self._ledger_entries: tuple[int, bytes, list[bytes]] | None = None
        self._ledger_entries_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._proof_pool.shutdown(wait=False, cancel_futures=True)

    def starlette(self) -> Starlette:
        """The Starlette application: routes, and every error as one JSON reason."""
        app = Starlette(
            routes=[
                Route("/", self.index, methods=["GET"]),
                Route("/runs", self.runs, methods=["GET"]),
                Route("/.well-known/zcbench/attestation", self.attestation, methods=["GET"]),
                Route("/runs/{run_id}/{rest:path}", self.run_file, methods=["GET"]),
                Route("/ledger/{rest:path}", self.ledger_file, methods=["GET"]),
                *([Mount("/witness", app=self.config.witness)]
                  if self.config.witness is not None else []),
            ],
            exception_handlers={_Reply: _reply_response, HTTPException: _http_response},
        )
        app.router.redirect_slashes = False
        return app

    def _reader(self, request: Request) -> Reader | None:
        token = _bearer(request.scope)
        if token is None:
            return None
        readers = self.config.readers
        reader = readers.authenticate(token) if readers is not None else None
        if reader is None:
            raise _Reply(401, "unknown token", {"WWW-Authenticate": 'Bearer realm="zcbench"'})
        request.scope["state"]["access"]["reader"] = reader.name
        return reader

    # -- pages ----------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        runs = []
        for entry in sorted(self.catalog.runs(), key=lambda e: e.run_id or ""):
            published = entry.tiles.published
            runs.append({
                "run": entry.run_id,
                "origin": entry.tiles.origin,
                "size": None if published is None else published.size,
                "live": entry.live,
                "error": None if entry.error is None else "the run's log could not be followed",
            })
        return _response(json.dumps({"runs": runs}, indent=2).encode() + b"\n",
                         "application/json")

    async def index(self, request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{html.escape(e.run_id or '')}</td><td>{html.escape(e.tiles.origin or '')}"
            f"</td><td>{e.tiles.published.size if e.tiles.published else ''}</td>"
            f"<td>{'live' if e.live else ''}</td></tr>"
            for e in sorted(self.catalog.runs(), key=lambda e: e.run_id or "")
        )
        from zcbench.serve.report import render_live_page

        page = render_live_page("<tr><th>run</th><th>origin</th><th>size</th><th></th></tr>"
                                + rows)
        return _response(page.encode(), "text/html; charset=utf-8",
                         csp="default-src 'none'; style-src 'unsafe-inline'; "
                         "script-src 'unsafe-inline'; connect-src 'self'")

    # -- tiles ----------------------------------------------------------------------------

    async def run_file(self, request: Request) -> Response:
        run_id: str = request.path_params["run_id"]
        rest: str = request.path_params["rest"]
        entry = self.catalog.get(run_id) if _RUN_ID.fullmatch(run_id) else None
        if entry is None:
            raise _Reply(404, "unknown run id")
        folder = entry.tiles.tiles_dir
        if rest == "checkpoint":
            if entry.tiles.published is None:
                raise _Reply(404, "no checkpoint yet")
            return _response((folder / "checkpoint").read_bytes(), "text/plain; charset=utf-8",
                             cache="no-cache, max-age=1")
        if rest == "slice":
            return await self._slice(request, entry, run_id)
        tile = parse_tile_path(rest)
        if tile is None:
            raise _Reply(404, "not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")
        reader = None
        if tile.level is None:
            reader = self._reader(request)
            if reader is None:
                raise _Reply(401, "entry bundles need a reader token",
                             {"WWW-Authenticate": 'Bearer realm="zcbench"'})
            self._in_scope(reader, run_id)
        try:
            data = (folder / rest).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise _Reply(404, "no such tile (yet): tiles exist for published sizes only") from None
        if reader is None:
            return _response(data, "application/octet-stream",
                             cache="public, max-age=31536000, immutable")
        headers = {}
        if not reader.bodies:
            data = _without_bodies(data, tile.width)
            headers["X-Zcbench-Withheld"] = "in-bodies"
        return _response(data, "application/octet-stream",
                         cache="private, max-age=31536000, immutable", headers=headers)

    async def ledger_file(self, request: Request) -> Response:
        """The ledger's checkpoint (with its cosignatures), hash tiles and entry bundles: all
        public (ledger entries are hashes and facts, never market data)."""
        rest: str = request.path_params["rest"]
        ledger = self.catalog.ledger
        if ledger is None:
            raise _Reply(404, "this server serves no ledger")
        if self.catalog.ledger_error is not None:
            raise _Reply(503, "the ledger could not be followed", {"Retry-After": "30"})
        if rest == "checkpoint":
            if ledger.published is None:
                raise _Reply(404, "no checkpoint yet")
            return _response((ledger.tiles_dir / "checkpoint").read_bytes(),
                             "text/plain; charset=utf-8", cache="no-cache, max-age=1")
        if rest.startswith("proof/"):
            return await self._ledger_proof(request, ledger, rest[len("proof/"):])
        if parse_tile_path(rest) is None:
            raise _Reply(404, "not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")
        try:
            data = (ledger.tiles_dir / rest).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise _Reply(404, "no such tile (yet): tiles exist for published sizes only") from None
        return _response(data, "application/octet-stream",
                         cache="public, max-age=31536000, immutable")

    # -- slices and proofs ----------------------------------------------------------------

    def _token_reader(self, request: Request, what: str) -> Reader:
        reader = self._reader(request)
        if reader is None:
            raise _Reply(401, f"{what} need a reader token",
                         {"WWW-Authenticate": 'Bearer realm="zcbench"'})
        return reader

    @staticmethod
    def _in_scope(reader: Reader, run_id: str) -> None:
        if not reader.may_read(run_id):
            raise _Reply(403, f"this token's scope does not cover run {run_id}")

    def _take_proof_token(self, reader: Reader) -> None:
        wait = self.proof_buckets.take(f"reader:{reader.name}", time.monotonic())
        if wait:
            raise _Reply(429, "slice and proof rate limit",
                         {"Retry-After": str(max(1, round(wait + 0.5)))})

    async def _slice(self, request: Request, entry: RunEntry, run_id: str) -> Response:
        """Records ``[start, end)`` as a log slice against the served checkpoint."""
        from zcbench.auditlog.export import build_slice
        from zcbench.auditlog.select import RecordFilter

        reader = self._token_reader(request, "slices")
        self._in_scope(reader, run_id)
        query = _query(request, ("start", "end"))
        start, end = (_decimal(query[k], k) for k in ("start", "end"))
        if entry.tiles.published is None:
            raise _Reply(404, "no checkpoint yet: nothing can be proven")
        note = (entry.tiles.tiles_dir / "checkpoint").read_bytes()
        size = parse_checkpoint_note(note).size
        if not start < end:
            raise _Reply(400, f"start {start} must be below end {end}")
        if end > size:
            raise _Reply(400, f"end {end} is past the served checkpoint's size {size}: records "
                         f"0 to {size - 1} can be proven")
        if end - start > MAX_SLICE_RECORDS:
            raise _Reply(400, f"at most {MAX_SLICE_RECORDS} records a request: ask for "
                         "narrower ranges")
        self._take_proof_token(reader)
        kinds = None if reader.bodies else frozenset(KINDS) - {"in"}
        chosen = RecordFilter(index_range=(start, end), kinds=kinds)
        loop = asyncio.get_running_loop()
        try:
            sliced = await loop.run_in_executor(
                self._proof_pool,
                functools.partial(build_slice, entry.folder, chosen, checkpoint_note=note))
        except ZcbenchError:
            raise _Reply(500, "the run's log does not prove this range (its records do not "
                         "hash to the served checkpoint)") from None
        data = sliced.to_bytes()
        if len(data) > MAX_SLICE_BYTES:
            raise _Reply(400, f"the slice would be {len(data)} bytes, more than "
                         f"{MAX_SLICE_BYTES}: ask for a narrower range")
        headers = {"Content-Disposition":
                   f'attachment; filename="{run_id}-{start}-{end}.slice.cbor"'}
        if not reader.bodies:
            headers["X-Zcbench-Withheld"] = "in-records"
        return _response(data, "application/cbor", cache="private, no-store", headers=headers)

    async def _ledger_proof(self, request: Request, ledger: LedgerTiles,
                            index_text: str) -> Response:
        """One ledger entry as a ``.tlog-proof`` against the served ledger checkpoint."""
        from zcbench.ledger import decode_entry, format_tlog_proof, tlog_proof_for

        reader = self._token_reader(request, ".tlog-proof files")
        if request.scope.get("query_string"):
            raise _Reply(400, "a proof takes no query parameters")
        index = _decimal(index_text, "the entry index")
        if ledger.published is None:
            raise _Reply(404, "no checkpoint yet: nothing can be proven")
        note = (ledger.tiles_dir / "checkpoint").read_bytes()
        size = parse_checkpoint_note(note).size
        if index >= size:
            raise _Reply(404, f"entry {index} is not in the served ledger: it holds entries 0 "
                         f"to {size - 1}")
        self._take_proof_token(reader)
        loop = asyncio.get_running_loop()
        try:
            entries = await loop.run_in_executor(
                self._proof_pool, functools.partial(self._ledger_entries_of, ledger, note))
            run_origin = getattr(decode_entry(entries[index]).body, "run_origin", None)
            if isinstance(run_origin, str):
                self._in_scope(reader, run_origin.rsplit("/", 1)[-1])
            proof = tlog_proof_for(entries, index, note)
        except (ZcbenchError, OSError):
            raise _Reply(500, "the served ledger tiles do not prove this entry") from None
        return _response(format_tlog_proof(proof), "text/plain; charset=utf-8",
                         cache="private, no-store", headers={
                             "Content-Disposition":
                             f'attachment; filename="ledger-{index}.tlog-proof"'})

    def _ledger_entries_of(self, ledger: LedgerTiles, note: bytes) -> list[bytes]:
        """The ledger's entries under ``note``, from its tiles (each checked against its leaf
        hash); the last answer is kept for the next request at the same checkpoint."""
        size = parse_checkpoint_note(note).size
        with self._ledger_entries_lock:
            kept = self._ledger_entries
            if kept is not None and kept[:2] == (size, note):
                return kept[2]
            entries = list(TileReader(file_fetch(ledger.tiles_dir)).iter_entries(size))
            self._ledger_entries = (size, note, entries)
            return entries

    # -- attestation ----------------------------------------------------------------------

    async def attestation(self, request: Request) -> Response:
        query = request.scope.get("query_string", b"").decode("latin-1")
        fields = query.split("&") if query else []
        if len(fields) != 1 or not fields[0].startswith("nonce="):
            raise _Reply(400, "give exactly one query parameter: nonce=<hex>")
        nonce_hex = fields[0][len("nonce="):]
        if not _NONCE.fullmatch(nonce_hex):
            raise _Reply(400, f"nonce must be 16 to {MAX_NONCE} bytes in hex")
        reader = self._reader(request)
        if self.config.readers is not None and reader is None:
            raise _Reply(401, "attestations need a reader token",
                         {"WWW-Authenticate": 'Bearer realm="zcbench"'})
        entry = self.catalog.live_run()
        if entry is None or entry.run_id is None:
            last = self.catalog.last_run()
            raise _Reply(503, "no enclave runs now", {"Retry-After": "30"},
                         {"error": "no enclave runs now",
                          "last_run": None if last is None else last.run_id})
        if reader is not None and not reader.may_read(entry.run_id):
            raise _Reply(403, f"this token's scope does not cover run {entry.run_id}")
        client = request.client.host if request.client else "?"
        key = f"reader:{reader.name}" if reader is not None else f"ip:{client}"
        wait = self.attest_buckets.take(key, time.monotonic())
        if wait:
            raise _Reply(429, "attestation rate limit",
                         {"Retry-After": str(max(1, round(wait + 0.5)))})
        nonce = bytes.fromhex(nonce_hex)
        loop = asyncio.get_running_loop()
        try:
            document = await loop.run_in_executor(
                self._pool,
                functools.partial(attest_run, entry.folder, nonce,
                                  timeout=self.config.attest_timeout_s))
        except NoEnclave:
            raise _Reply(503, "the enclave does not answer", {"Retry-After": "30"},
                         {"error": "the enclave does not answer", "last_run": entry.run_id}
                         ) from None
        except ZcbenchError:
            raise _Reply(502, "the enclave refused to attest") from None
        # the checkpoint inside may be a batch or two ahead of the stored log: tile it now (the
        # reader fetches the checkpoint next and waits a moment if it is still behind)
        self.catalog.poke()
        return _response(document, "application/cbor", headers={"X-Zcbench-Run": entry.run_id})


async def _reply_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Reply)
    return _error_response(exc)


async def _http_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reason = "no such path: see / for what is served" if exc.status_code == 404 else exc.detail
    return _error_response(_Reply(exc.status_code, reason))


def _error_response(reply: _Reply) -> Response:
    body = json.dumps(reply.body or {"error": reply.reason}).encode() + b"\n"
    return _response(body, "application/json", status=reply.status, headers=reply.headers)


def _response(body: bytes, content_type: str, *, status: int = 200, cache: str = "no-store",
              csp: str = "default-src 'none'", headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=content_type, headers={
        "Cache-Control": cache, "Content-Security-Policy": csp, **(headers or {})})


def _without_bodies(bundle: bytes, width: int) -> bytes:
    """The bundle with every IN record replaced by an empty entry (market data withheld)."""
    try:
        entries = parse_bundle(bundle, width)
        return encode_bundle([b"" if decode_record(e).kind == "in" else e for e in entries])
    except DataError as exc:
        raise _Reply(500, "a stored bundle does not parse") from exc


def _query(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """Exactly the parameters ``names``, each once, nothing else (no percent-decoding: the
    values served here are decimals)."""
    text = request.scope.get("query_string", b"").decode("latin-1")
    found: dict[str, str] = {}
    for field_ in text.split("&") if text else []:
        name, sep, value = field_.partition("=")
        if not sep or name not in names or name in found:
            raise _Reply(400, f"give exactly the query parameters {', '.join(names)} "
                         f"({'=<n>&'.join(names)}=<n>)")
        found[name] = value
    missing = [n for n in names if n not in found]
    if missing:
        raise _Reply(400, f"missing query parameter {missing[0]}")
    return found


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise _Reply(400, f"{what} must be a decimal number without sign or leading zeros, "
                     f"not {text[:24]!r}")
    return int(text)


def build_app(config: ServeConfig) -> tuple[Guard, Catalog]:
    """The ASGI app and its catalog (start the catalog; stop it and close the guard after)."""
    if not config.runs.is_dir():
        raise UsageError(f"--runs {config.runs} is not a folder")
    catalog = Catalog(config)
    service = ProofService(config, catalog)
    return Guard(Compress(service.starlette()), config, on_close=service.close), catalog


def make_server(app: Guard, *, host: str = "127.0.0.1", port: int = 8443,
                tls_cert: Path | None = None, tls_key: Path | None = None) -> Any:
    """A uvicorn server for ``app`` (call ``.run()``, or ``.run(sockets=[...])``)."""
    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        raise UsageError("give --tls-cert and --tls-key together")
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
        lifespan="on", timeout_keep_alive=5, limit_concurrency=512, backlog=256,
        h11_max_incomplete_event_size=16 * 1024, http="h11", loop="asyncio", ws="none",
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    )
    return uvicorn.Server(config)
