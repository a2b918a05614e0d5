"""`zcbench verify remote` on a server that is not there: one readable line, exit 3."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from zcbench.errors import EnvError
from zcbench.serve.remote import _client_get


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_server_is_an_env_error_without_errno() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/.well-known/zcbench/attestation"
    with httpx.Client() as client, pytest.raises(EnvError) as info:
        _client_get(client)(url, {})
    message = str(info.value)
    assert message.startswith(f"cannot reach {url}: ")
    assert not re.search(r"\[Errno \d+\]", message), message
    assert "refused" in message.lower()
