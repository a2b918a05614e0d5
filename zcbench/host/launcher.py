"""Enclave launchers: the local enclave as a separate process, and Nitro through ``nitro-cli``.

Local: ``python -m zcbench.enclave`` in a new network namespace when the machine allows it
(``unshare -n``: as root here; the launch reports ``isolated_network`` either way), listening on
a Unix socket in a private 0700 folder. The process is started in its own process group so the
host can kill it (and only it) by its id. The enclave measures the image sections it loads; the
sealed payload is outside them, delivered at boot: the ``payload`` of :func:`launch_local`
(default: the build folder's ``payload.sealed``), or the boot message's
``config["sealed_payload"]`` as on Nitro, whose image cannot hold it.

Nitro: commands for ``nitro-cli run-enclave / describe-enclaves / terminate-enclave`` and parsers
of their JSON output. They cannot run here; the command building and parsing are unit-tested.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from zcbench.channel import Connection, connect, private_socket_dir
from zcbench.errors import DataError, EnvError, UsageError

__all__ = [
    "EnclaveInfo",
    "EnclaveProcess",
    "LocalEnclave",
    "NitroEnclave",
    "NitroRunner",
    "describe_enclaves_command",
    "launch_local",
    "launch_nitro",
    "network_isolation_available",
    "parse_describe_enclaves",
    "parse_run_enclave",
    "run_enclave_command",
    "run_nitro",
    "terminate_enclave_command",
]

_UNSHARE: Final = "unshare"


class EnclaveProcess(Protocol):
    """A started enclave as the live runner sees it, local or Nitro."""

    isolated_network: bool

    def connect(self, *, timeout: float = 30.0) -> Connection: ...

    def alive(self) -> bool: ...

    def wait(self, timeout: float) -> int | None: ...

    def kill(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> int | None: ...

    def diagnostics(self) -> str: ...


def network_isolation_available() -> bool:
    """True when ``unshare -n`` can start a process in a new network namespace here."""
    exe = shutil.which(_UNSHARE)
    if exe is None:
        return False
    try:
        done = subprocess.run(
            [exe, "-n", sys.executable, "-c", "pass"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class LocalEnclave:
    """A running local enclave process and the address it listens on."""

    process: subprocess.Popen[bytes]
    address: str
    socket_dir: Path
    isolated_network: bool
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def wait(self, timeout: float) -> int | None:
        """The exit code once the process has exited within ``timeout`` s, else None."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def connect(self, *, timeout: float = 30.0) -> Connection:
        """Connect once the enclave says it is ready (or fail with what it printed)."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        line = b""
        # the enclave prints "ready <address>" once it listens
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise EnvError(f"the enclave was not ready within {timeout} s; killed it")
            chunk = os.read(fd, 256)
            if not chunk:
                break
            line += chunk
        if not line.startswith(b"ready "):
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            raise EnvError(f"the enclave did not start: {self.diagnostics() or 'no output'}")
        return connect(self.address, timeout=max(1.0, deadline - time.monotonic()))

    def diagnostics(self) -> str:
        """The last lines the enclave wrote to stderr."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    def kill(self) -> None:
        """Kill the enclave process (SIGKILL to its own process group)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit (killing it after ``timeout``); clean up its folder."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return code


def launch_local(
    image_args: Sequence[str],
    *,
    isolate_network: bool | None = None,
    stderr_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    payload: Path | str | None = None,
) -> LocalEnclave:
    """Start the local enclave; ``image_args`` say what it loads (``["--build", DIR]`` or
    ``["--module", FILE, "--params", JSON]``, see ``python -m zcbench.enclave --help``).

    ``isolate_network``: True requires a new network namespace, False never uses one, None uses
    one when available. ``stderr_path`` keeps the enclave's diagnostics (default: its socket
    folder). ``payload`` is where a ``--build`` image's sealed payload is delivered from: a file,
    or ``"boot"`` for the boot message (default: the build folder's ``payload.sealed``).
    """
    available = network_isolation_available() if isolate_network is not False else False
    if isolate_network and not available:
        raise EnvError("a new network namespace was required but `unshare -n` is not permitted")
    folder = private_socket_dir()
    address = f"unix:{folder}/enclave.sock"
    cmd = [
        sys.executable,
        "-m",
        "zcbench.enclave",
        "--listen",
        address,
        *image_args,
        *(["--payload", str(payload)] if payload is not None else []),
    ]
    if available:
        cmd = [shutil.which(_UNSHARE) or _UNSHARE, "-n", *cmd]
    err_path = stderr_path or folder / "enclave.stderr"
    with open(err_path, "wb") as err:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    return LocalEnclave(process, address, folder, available, err_path)


# -- Nitro ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnclaveInfo:
    """One enclave as ``nitro-cli`` reports it."""

    enclave_id: str
    cid: int
    state: str
    cpus: int
    memory_mib: int
    name: str = ""
    pcrs: Mapping[int, str] = field(default_factory=dict)


def run_enclave_command(
    eif: Path,
    *,
    cpus: int = 2,
    memory_mib: int = 2048,
    cid: int | None = None,
    debug: bool = False,
    name: str | None = None,
) -> list[str]:
    """``nitro-cli run-enclave`` for ``eif`` (``debug`` zeroes the PCRs: never for production)."""
    if cpus < 1 or memory_mib < 64:
        raise UsageError("an enclave needs at least 1 CPU and 64 MiB")
    cmd = [
        "nitro-cli",
        "run-enclave",
        "--eif-path",
        str(eif),
        "--cpu-count",
        str(cpus),
        "--memory",
        str(memory_mib),
    ]
    if cid is not None:
        if cid < 4:
            raise UsageError(f"enclave CID must be >= 4, got {cid}")
        cmd += ["--enclave-cid", str(cid)]
    if name:
        cmd += ["--enclave-name", name]
    if debug:
        cmd.append("--debug-mode")
    return cmd


def describe_enclaves_command() -> list[str]:
    """``nitro-cli describe-enclaves``."""
    return ["nitro-cli", "describe-enclaves"]


def terminate_enclave_command(enclave_id: str) -> list[str]:
    """``nitro-cli terminate-enclave`` for one enclave id."""
    if not enclave_id.startswith("i-") or "-enc" not in enclave_id:
        raise UsageError(f"not an enclave id: {enclave_id!r}")
    return ["nitro-cli", "terminate-enclave", "--enclave-id", enclave_id]


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what}: output is not JSON ({exc.msg} at {exc.pos})") from None


def _info(item: object, what: str) -> EnclaveInfo:
    if not isinstance(item, dict):
        raise DataError(f"{what}: expected a JSON object per enclave")
    try:
        measurements = item.get("Measurements") or {}
        pcrs = {
            int(k[3:]): str(v)
            for k, v in measurements.items()
            if isinstance(k, str) and k.startswith("PCR") and k[3:].isdigit()
        }
        return EnclaveInfo(
            enclave_id=str(item["EnclaveID"]),
            cid=int(item["EnclaveCID"]),
            state=str(item.get("State", "RUNNING")),
            cpus=int(item["NumberOfCPUs"]),
            memory_mib=int(item["MemoryMiB"]),
            name=str(item.get("EnclaveName", "")),
            pcrs=pcrs,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{what}: missing or bad field {exc}") from None


def parse_run_enclave(text: str) -> EnclaveInfo:
    """The enclave ``nitro-cli run-enclave`` started, from its JSON output."""
    return _info(_json(text, "run-enclave"), "run-enclave")


def parse_describe_enclaves(text: str) -> list[EnclaveInfo]:
    """Every enclave in ``nitro-cli describe-enclaves`` output."""
    doc = _json(text, "describe-enclaves")
    if not isinstance(doc, list):
        raise DataError("describe-enclaves: expected a JSON list")
    return [_info(item, "describe-enclaves") for item in doc]


NitroRunner = Callable[[Sequence[str]], str]
"""Runs one ``nitro-cli`` command and returns its stdout (default :func:`run_nitro`)."""


@dataclass
class NitroEnclave:
    """An enclave started by ``nitro-cli``; its runtime listens on vsock ``CID:port``."""

    info: EnclaveInfo
    port: int
    runner: NitroRunner
    isolated_network: bool = True  # a Nitro enclave has no network device at all

    @property
    def address(self) -> str:
        return f"vsock:{self.info.cid}:{self.port}"

    def connect(self, *, timeout: float = 60.0) -> Connection:
        """Connect over vsock, retrying while the enclave's runtime starts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return connect(self.address, timeout=5.0)
            except EnvError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def alive(self) -> bool:
        """True while ``describe-enclaves`` lists this enclave as running."""
        found = parse_describe_enclaves(self.runner(describe_enclaves_command()))
        return any(e.enclave_id == self.info.enclave_id and e.state == "RUNNING" for e in found)

    def terminate(self) -> None:
        """``nitro-cli terminate-enclave`` for this enclave."""
        self.runner(terminate_enclave_command(self.info.enclave_id))

    def wait(self, timeout: float) -> int | None:
        """0 once the enclave is no longer listed as running within ``timeout`` s, else None."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)
        return 0

    def kill(self) -> None:
        """Terminate the enclave."""
        if self.alive():
            self.terminate()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Wait for the enclave to stop by itself, terminating it after ``timeout`` s."""
        code = self.wait(timeout)
        if code is None:
            self.terminate()
        return code

    def diagnostics(self) -> str:
        """Nothing: a production enclave has no console (see ``nitro-cli console`` in debug)."""
        return ""


def launch_nitro(
    eif: Path,
    *,
    port: int = 5005,
    cpus: int = 2,
    memory_mib: int = 2048,
    cid: int | None = None,
    runner: NitroRunner | None = None,
) -> NitroEnclave:
    """Start ``eif`` with ``nitro-cli run-enclave`` (never in debug mode: debug zeroes PCRs)."""
    run = runner or run_nitro
    info = parse_run_enclave(
        run(run_enclave_command(eif, cpus=cpus, memory_mib=memory_mib, cid=cid))
    )
    return NitroEnclave(info, port, run)


def run_nitro(cmd: Sequence[str], *, timeout: float = 120.0) -> str:
    """Run a ``nitro-cli`` command and return its stdout (EnvError when it is missing/fails)."""
    if shutil.which(cmd[0]) is None:
        raise EnvError("nitro-cli is not installed: Nitro enclaves need an enabled parent instance")
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise EnvError(f"{' '.join(cmd[:2])} failed: {done.stderr.strip()[:300]}")
    return done.stdout
