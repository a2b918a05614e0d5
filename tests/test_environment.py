"""environment.yml carries the same pins as requirements.lock, the lock pins with hashes, and it
leaves out the IRI checker whose import costs seconds."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_environment_yml_in_step_with_lock() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "sync_environment.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_locked_distribution_has_a_hash() -> None:
    text = (REPO / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [e for e in entries if "==" in e.split("\n", 1)[0]]
    assert len(pinned) > 50
    missing = [e.split(" ", 1)[0] for e in pinned if "--hash=sha256:" not in e]
    assert missing == []


def test_the_lock_leaves_out_the_slow_iri_checker() -> None:
    # jsonschema imports rfc3987-syntax when it is installed, and that import builds its Earley
    # parsers: 1-5 s in every process that imports nbformat (the Makefile's lock target says why)
    text = (REPO / "requirements.lock").read_text()
    names = {line.split("==", 1)[0].lower() for line in text.splitlines() if "==" in line
             and not line.startswith((" ", "#"))}
    assert {"nbformat", "jsonschema"} <= names
    assert names.isdisjoint({"rfc3987-syntax", "lark"})


def test_nbformat_imports_without_the_iri_checker() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, nbformat, jsonschema; "
         "print('rfc3987_syntax' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert done.stdout.strip() == "False"
