"""Fixtures of the browser tests: a build and a run, Jupyter servers on localhost, Chromium.

Servers (JupyterLab, Voila) are started by the tests themselves on a free localhost port, with
their own config, runtime and settings folders and a random token, waited for with a generous
bound and always stopped in ``finally``. Chromium is Debian's (``make browser-deps``), driven by
Playwright; never a downloaded browser build.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    READY_TIMEOUT_S,
    REPO,
    Server,
    World,
)
from tests.live_world import LiveWorld


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parameterised(name: str, out_dir: Path, parameters: dict[str, Any]) -> Path:
    # Like papermill: a cell right after the ``parameters`` cell overrides its values.
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "".join(f"{key} = {value!r}\n" for key, value in parameters.items())
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    out = out_dir / name
    nbformat.write(nb, out)
    return out


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, live_world: LiveWorld) -> World:
    # a copy of the shared run: the notebooks add runs and exports beside it
    root = tmp_path_factory.mktemp("browser-world")
    copy = live_world.copy_to(root)
    home, run = copy.home, copy.run
    notebooks = root / "notebooks"
    notebooks.mkdir()
    build = root / "build"
    _parameterised(
        "03_live_run.ipynb",
        notebooks,
        {"build_dir": str(build), "speed": 2.0, "duration": None,
         "run_root": str(root / "runs")},
    )
    _parameterised(
        "04_attestation.ipynb",
        notebooks,
        {"build_dir": str(build), "export_dir": str(root), "run_root": str(root / "runs-04")},
    )
    _parameterised("05_log_replay.ipynb", notebooks, {"run_dir": str(run), "trust": "dev"})
    return World(root=root, home=home, build=build, run=run, notebooks=notebooks)


def _server_env(world: World, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        (state / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(state / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["ZCBENCH_HOME"] = str(world.home)
    # No network from the server: no news feed, no update check.
    (state / "config" / "jupyter_server_config.json").write_text(
        '{"LabApp": {"news_url": null, '
        '"check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}'
    )
    # JupyterLab user settings: start the notebook's own kernel without asking, fetch no news.
    settings = state / "lab-settings" / "@jupyterlab"
    for extension, name, body in (
        ("notebook-extension", "tracker", '{"autoStartDefaultKernel": true}'),
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),
    ):
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(body)
    return env


@contextlib.contextmanager
def _serve(cmd: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(ready_url, timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    tail = log.read_text()[-3000:]
                    pytest.fail(f"server not ready in {READY_TIMEOUT_S} s:\n{tail}")
                time.sleep(0.25)
            yield
        finally:
            # The server and the kernels it started are in the session we made for it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def jupyterlab(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("jupyterlab")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={world.notebooks}",
    ]
    server = Server(f"http://127.0.0.1:{port}", token)
    with _serve(cmd, _server_env(world, state), server.url("/api/status"), state / "server.log"):
        yield server


@pytest.fixture(scope="session")
def voila(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("voila")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "voila", str(world.notebooks / "04_attestation.ipynb"),
        "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", f"--token={token}",
        "--ServerApp.port_retries=0",
    ]
    server = Server(f"http://127.0.0.1:{port}", token)
    ready = server.url("/voila/static/voila.js")  # a static file: probing runs no kernel
    with _serve(cmd, _server_env(world, state), ready, state / "server.log"):
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with 'make browser-deps'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    try:
        yield context.new_page()
    finally:
        context.close()
