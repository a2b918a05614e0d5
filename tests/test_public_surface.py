"""The public surface is mechanical (STYLE.md habit 7): every public module declares __all__,
every name in it exists, and the CLI answers --help for every command."""

from __future__ import annotations

import importlib
import importlib.resources
import pkgutil

import pytest

import zcbench
from zcbench.cli import build_parser, main


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(zcbench.__path__, prefix="zcbench."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.name.startswith(("zcbench.cli", "zcbench.widgets")):
            continue  # command modules and widget panels are exercised through their own tests
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _public_modules())
def test_public_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names missing attributes {missing}"


def test_package_ships_py_typed() -> None:
    assert importlib.resources.files("zcbench").joinpath("py.typed").is_file()


def test_cli_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0, command
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "usage: zcbench" in capsys.readouterr().out


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "--help" in capsys.readouterr().err
