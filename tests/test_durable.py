"""zcbench.durable: whole-file writes, replaced or created exclusively, and outputs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from zcbench.durable import write_atomically, write_output


def test_replace_keeps_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b"old")
    write_atomically(path, b"new", 0o600)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_exclusive_creates_once_and_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_atomically(path, b"first", 0o600, exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomically(path, b"second", 0o600, exclusive=True)
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_a_failed_write_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "file"
    with pytest.raises(FileNotFoundError) as info:
        write_atomically(missing, b"x")
    assert "no-such-folder" in str(info.value)


def test_output_into_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_output(tmp_path, b"x")
    write_output(tmp_path / "out.bin", b"x")
    assert (tmp_path / "out.bin").read_bytes() == b"x"
