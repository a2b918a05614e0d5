"""The proof service on a real uvicorn server: tiles, tokens and scopes, limits, garbage, TLS."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auditlog.support import build_log
from tests.serve.support import IndependentTlogClient, RunningServer, fake_boot_key, self_signed
from zcbench.auditlog.records import decode_record
from zcbench.errors import DataError
from zcbench.serve.app import ServeConfig
from zcbench.serve.control import ControlSocket, control_socket
from zcbench.serve.readers import Readers, add_reader


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serve")
    runs = root / "runs"
    a = build_log(runs / "run-a", batches=4, run_id="run-a")
    b = build_log(runs / "folder-of-b", batches=2, run_id="run-b", seed=8)
    readers = root / "readers.json"
    tokens = {
        "a": add_reader(readers, "lp-a", runs=["run-a"], bodies=True),
        "hashes": add_reader(readers, "lp-h", runs=["*"], bodies=False),
    }
    config = ServeConfig(runs=runs, readers=Readers.load(readers), boot_key=fake_boot_key,
                         access_log=root / "access.log", attest_burst=3, attest_per_s=0.5,
                         request_burst=10_000, requests_per_s=10_000.0)
    with RunningServer(config) as server:
        yield {"url": server.url, "tokens": tokens, "a": a, "b": b, "root": root,
               "readers": readers, "port": server.port, "server": server}


def _get(world: dict[str, Any], path: str, token: str | None = None,
         **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(world["url"] + path, headers=headers, timeout=10, **kw)


def test_an_independent_client_recomputes_the_root_from_served_tiles(
        world: dict[str, Any]) -> None:
    runs = _get(world, "/runs").json()["runs"]
    assert {r["run"] for r in runs} == {"run-a", "run-b"}  # run ids from the log origins
    for name in ("a", "b"):
        built = world[name]
        run_id = built.origin.rsplit("/", 1)[-1]

        def fetch(path: str, run_id: str = run_id) -> bytes:
            response = _get(world, f"/runs/{run_id}/{path}")
            assert response.status_code == 200, (path, response.text)
            return response.content

        size, signed, computed = IndependentTlogClient(fetch).recompute_root(
            built.signer.public_key_spki_der)
        assert size == 1 + 2 * (4 if name == "a" else 2)
        assert computed == signed
    tile = _get(world, "/runs/run-a/tile/0/000.p/9")
    assert tile.headers["cache-control"].startswith("public")
    assert _get(world, "/runs/run-a/checkpoint").headers["content-type"].startswith("text/plain")


def test_entry_bundles_need_a_token_in_scope(world: dict[str, Any]) -> None:
    path = "/runs/run-a/tile/entries/000.p/9"
    assert _get(world, path).status_code == 401
    assert _get(world, path, "zcbr_not-a-reader").status_code == 401
    assert _get(world, "/runs/run-b/tile/entries/000.p/5", world["tokens"]["a"]).status_code == 403
    whole = _get(world, path, world["tokens"]["a"])
    assert whole.status_code == 200
    leaves = _get(world, "/runs/run-a/tile/0/000.p/9").content
    entries = _entries(whole.content)
    assert [hashlib.sha256(b"\x00" + e).digest() for e in entries] == [
        leaves[i:i + 32] for i in range(0, len(leaves), 32)]
    # a reader without market-data rights gets the IN records withheld, the rest whole
    withheld = _get(world, path, world["tokens"]["hashes"])
    assert withheld.status_code == 200
    assert withheld.headers["x-zcbench-withheld"] == "in-bodies"
    kinds = [decode_record(e).kind for e in entries]
    assert kinds.count("in") == 4
    for kind, full, shown in zip(kinds, entries, _entries(withheld.content), strict=True):
        assert shown == (b"" if kind == "in" else full)


def _entries(bundle: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(bundle):
        n = int.from_bytes(bundle[offset:offset + 2], "big")
        out.append(bundle[offset + 2:offset + 2 + n])
        offset += 2 + n
    return out


@pytest.mark.parametrize("path", [
    "/runs/run-a/tile/../../readers.json", "/runs/run-a/tile/0/%2e%2e/%2e%2e/x",
    "/runs/run-a/tile/0/000.p/10", "/runs/run-a/tile/0/0", "/runs/nope/checkpoint",
    "/runs/../runs/run-a/checkpoint", "/runs/run-a/../../access.log", "/runs/run-a/log/x",
    "/runs/run-a//checkpoint", "/runs/run-a/tile/0/000.p/9/", "/%00", "/runs/run-a/summary.json",
])
def test_paths_outside_the_tiles_are_404(world: dict[str, Any], path: str) -> None:
    # sent as written (an HTTP client would remove the dot segments first)
    answer = _raw(world["port"], f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  .encode())
    assert answer.startswith(b"HTTP/1.1 404 "), (path, answer[:200])
    assert b'"error"' in answer


def test_attestation_without_an_enclave_and_with_bad_nonces(world: dict[str, Any]) -> None:
    token = world["tokens"]["a"]
    nonce = "ab" * 32
    assert _get(world, f"/.well-known/zcbench/attestation?nonce={nonce}").status_code == 401
    gone = _get(world, f"/.well-known/zcbench/attestation?nonce={nonce}", token)
    assert gone.status_code == 503
    assert gone.headers["retry-after"] == "30"
    assert gone.json()["last_run"] in ("run-a", "run-b")
    for bad in ("", "nonce=", "nonce=zz" * 20, "nonce=abc", "nonce=" + "ab" * 8 + "a",
                "nonce=" + "ab" * 65, f"nonce={nonce}&nonce={nonce}", f"x=1&nonce={nonce}",
                "nonce=" + "%41" * 40):
        response = _get(world, f"/.well-known/zcbench/attestation?{bad}", token)
        assert response.status_code == 400, bad
        assert response.json()["error"]


def test_a_live_enclave_answers_and_attestations_are_rate_limited(world: dict[str, Any]) -> None:
    served: list[bytes] = []

    def attest(nonce: bytes) -> bytes:
        served.append(nonce)
        return b"document for " + nonce

    control = ControlSocket(world["a"].run)
    control.open(attest)
    try:
        token = world["tokens"]["hashes"]
        statuses = []
        for i in range(6):
            nonce = bytes([i]) * 16
            response = _get(world, f"/.well-known/zcbench/attestation?nonce={nonce.hex()}", token)
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.content == b"document for " + nonce
                assert response.headers["x-zcbench-run"] == "run-a"
                assert response.headers["content-type"] == "application/cbor"
            else:
                assert response.status_code == 429
                assert int(response.headers["retry-after"]) >= 1
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses
        # the limit is per reader: another reader is still served
        other = _get(world, "/.well-known/zcbench/attestation?nonce=" + "cd" * 16,
                     world["tokens"]["a"])
        assert other.status_code == 200
        # out of scope for lp-a: run-b (the newest live run is attested)
        control_b = ControlSocket(world["b"].run)
        control_b.open(attest)
        # run-b's socket is the newer one whatever the clock's resolution
        newer = control_socket(world["a"].run).stat().st_mtime_ns + 10**9
        os.utime(control_socket(world["b"].run), ns=(newer, newer))
        try:
            response = _get(world, "/.well-known/zcbench/attestation?nonce=" + "ef" * 16,
                            world["tokens"]["a"])
            assert response.status_code == 403
        finally:
            control_b.close()
    finally:
        control.close()
    assert not (world["a"].run / "control").exists()


def test_limits_methods_and_cors(world: dict[str, Any]) -> None:
    url = world["url"]
    assert httpx.post(url + "/runs", content=b"x", timeout=10).status_code in (405, 413)
    assert httpx.request("OPTIONS", url + "/runs", timeout=10,
                         headers={"Origin": "https://evil.example",
                                  "Access-Control-Request-Method": "GET"}).status_code == 405
    response = httpx.get(url + "/runs", headers={"Origin": "https://evil.example"}, timeout=10)
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(url + "/runs?" + "a" * 5000, timeout=10).status_code == 414
    assert httpx.request("GET", url + "/runs", content=b"body", timeout=10).status_code == 413
    assert httpx.get(url + "/runs", headers={"Authorization": "Basic x"}, timeout=10
                     ).status_code == 200  # a header not needed is not looked at
    assert _get(world, "/runs/run-a/tile/entries/000.p/9", "a b").status_code == 401
    assert "zcbench verify remote" in httpx.get(url + "/", timeout=10).text


def _raw(port: int, data: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


@pytest.mark.parametrize("garbage", [
    b"\x00\xff" * 100 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 40_000 + b"\r\n\r\n",
    b"GET /runs HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET " + b"/" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /runs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 200,  # TLS to a plain port
])
def test_garbage_gets_an_answer_or_a_close_and_the_next_request_is_served(
        world: dict[str, Any], garbage: bytes) -> None:
    closing = garbage.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    answer = _raw(world["port"], closing)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    assert httpx.get(world["url"] + "/runs", timeout=10).status_code == 200


@pytest.mark.slow
def test_half_open_and_slow_clients_do_not_block_others(world: dict[str, Any]) -> None:
    stalled = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", world["port"]), timeout=10)
        sock.sendall(b"GET /runs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stalled.append(sock)
    try:
        assert httpx.get(world["url"] + "/runs", timeout=10).status_code == 200
    finally:
        for sock in stalled:
            sock.close()
    assert httpx.get(world["url"] + "/runs", timeout=10).status_code == 200


def test_access_log_names_readers_never_tokens(world: dict[str, Any]) -> None:
    _get(world, "/runs/run-a/tile/entries/000.p/9", world["tokens"]["a"])
    _get(world, "/.well-known/zcbench/attestation?nonce=" + "ab" * 16, world["tokens"]["a"])
    text = (world["root"] / "access.log").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(line["reader"] == "lp-a" and line["status"] == 200 for line in lines)
    for token in world["tokens"].values():
        assert token not in text
        assert token not in world["readers"].read_text()
    assert "nonce" not in text
    assert {"time", "client", "method", "path", "status", "bytes", "ms"} <= set(lines[0])


@pytest.mark.slow
def test_requests_over_the_rate_are_429_then_served_again(tmp_path: Path) -> None:
    build_log(tmp_path / "runs" / "r", batches=1, run_id="r")
    config = ServeConfig(runs=tmp_path / "runs", boot_key=fake_boot_key, request_burst=3,
                         requests_per_s=0.5)
    with RunningServer(config) as server, httpx.Client(timeout=10) as client:
        statuses = [client.get(server.url + "/runs").status_code for _ in range(8)]
        assert statuses[:3] == [200] * 3
        assert 429 in statuses
        time.sleep(2.5)
        assert httpx.get(server.url + "/runs", timeout=10).status_code == 200


@pytest.mark.slow
def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    built = build_log(tmp_path / "runs" / "r", batches=1, run_id="r")
    cert, key = self_signed(tmp_path)
    config = ServeConfig(runs=tmp_path / "runs", boot_key=fake_boot_key)
    with RunningServer(config, tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        note = httpx.get(server.url + "/runs/r/checkpoint", verify=trusted, timeout=10)
        assert note.status_code == 200
        assert note.content.startswith(built.origin.encode())
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/runs", timeout=10)  # not trusted without the certificate
        assert _raw(server.port, b"GET /runs HTTP/1.1\r\nHost: x\r\n\r\n")[:9] != b"HTTP/1.1 "
        assert httpx.get(server.url + "/runs", verify=trusted, timeout=10).status_code == 200


def test_readers_file_is_strict_and_holds_no_token(tmp_path: Path) -> None:
    path = tmp_path / "readers.json"
    token = add_reader(path, "lp", runs=["run-1", "run-2"])
    readers = Readers.load(path)
    reader = readers.authenticate(token)
    assert reader is not None
    assert reader.may_read("run-2")
    assert not reader.may_read("run-3")
    assert not reader.bodies
    assert readers.authenticate(token + "x") is None
    assert token not in path.read_text()
    doc = json.loads(path.read_text())
    for broken in (
        {**doc, "extra": 1},
        {**doc, "schema": "zcbench.readers/2"},
        {**doc, "readers": [{**doc["readers"][0], "runs": []}]},
        {**doc, "readers": [{**doc["readers"][0], "token_sha256": "AB" * 32}]},
        {**doc, "readers": [doc["readers"][0], doc["readers"][0]]},
        {**doc, "readers": [{**doc["readers"][0], "bodies": "yes"}]},
    ):
        path.write_text(json.dumps(broken))
        with pytest.raises(DataError):
            Readers.load(path)
    path.write_text('{"schema": "zcbench.readers/1", "schema": "x", "readers": []}')
    with pytest.raises(DataError, match="twice"):
        Readers.load(path)


def _raw_body(world: dict[str, Any], path: str, encoding: str | None,
              token: str | None = None) -> tuple[httpx.Headers, bytes]:
    """The body as sent (not decoded) with ``Accept-Encoding: encoding`` (None: no header)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", world["url"] + path, headers=headers)
        del request.headers["accept-encoding"]
        if encoding is not None:
            request.headers["accept-encoding"] = encoding
        response = client.send(request, stream=True)
        try:
            return response.headers, b"".join(response.iter_raw())
        finally:
            response.close()


def test_gzip_when_accepted_and_every_tile_byte_exact(world: dict[str, Any]) -> None:
    import gzip

    tiles = world["root"] / "runs" / ".tiles" / "run-a"
    token = world["tokens"]["a"]
    bundle = "/runs/run-a/tile/entries/000.p/9"
    stored = (tiles / "tile/entries/000.p/9").read_bytes()
    headers, body = _raw_body(world, bundle, "gzip, identity", token)
    assert headers["content-encoding"] == "gzip"
    assert "accept-encoding" in headers["vary"].lower()
    assert int(headers["content-length"]) == len(body) < len(stored)
    assert gzip.decompress(body) == stored
    # no gzip asked for, or refused by q=0: the stored bytes themselves
    for encoding in (None, "identity", "gzip;q=0", "br", "*;q=0", "gzip;q=0, *"):
        headers, body = _raw_body(world, bundle, encoding, token)
        assert "content-encoding" not in headers, encoding
        assert body == stored
    # hash tiles do not compress: sent as stored even to a gzip client
    headers, body = _raw_body(world, "/runs/run-a/tile/0/000.p/9", "gzip")
    assert "content-encoding" not in headers
    assert body == (tiles / "tile/0/000.p/9").read_bytes()
    # JSON and pages are compressed too
    headers, body = _raw_body(world, "/", "gzip")
    assert headers["content-encoding"] == "gzip"
    assert b"zcbench verify remote" in gzip.decompress(body)
    # a client decoding gzip (httpx does by default) recomputes the root from what it reads
    client = IndependentTlogClient(lambda p: _get(world, f"/runs/run-a/{p}", token).content)
    size, signed, computed = client.recompute_root(world["a"].signer.public_key_spki_der)
    assert (size, computed) == (9, signed)
    assert client.entries(size) == _entries(stored)


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", True), ("GZIP", True), ("x-gzip", True), ("deflate, gzip;q=0.5", True),
    ("*", True), ("gzip;q=0", False), ("gzip;q=0, *", False), ("identity", False),
    ("br, deflate", False), ("gzip;q=abc", False), ("gzip;q=2", False), ("", False),
    (None, False), ("*;q=0", False), ("gzip ; q=0.001", True),
])
def test_accept_encoding_is_read_by_its_q_values(header: str | None, expected: bool) -> None:
    from zcbench.serve.app import accepts_gzip

    headers = [] if header is None else [(b"accept-encoding", header.encode())]
    assert accepts_gzip(headers) is expected


def test_a_request_is_in_the_access_log_before_its_last_byte_is_sent(tmp_path: Path) -> None:
    """A client holding its whole answer finds its line in the access log: the line is
    written before the response's last body message leaves the server, not after."""
    import asyncio

    from zcbench.serve.app import Guard

    log = tmp_path / "access.log"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    guard = Guard(app, ServeConfig(runs=tmp_path, access_log=log))
    seen: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            seen.append(len(log.read_text().splitlines()))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x",
             "query_string": b"", "headers": [], "client": ("127.0.0.1", 1)}
    try:
        asyncio.run(guard(scope, receive, send))
    finally:
        guard.close()
    assert seen == [1]  # the line was there when the last byte left
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["path"], line["status"], line["bytes"]) for line in lines] == [("/x", 200, 7)]
