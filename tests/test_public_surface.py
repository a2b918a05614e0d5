"""The public surface is mechanical (STYLE.md habit 7): every public module declares __all__,
every name in it exists, and the CLI answers --help for every command."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import json
import pkgutil
from pathlib import Path

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


# -- The public surface, pinned ----------------------------------------------------------------
#
# tests/public_api.json lists every public module (cli and widgets included) with its __all__.
# A change to the public surface is a change to this file, made on purpose and seen in review.

_PIN = Path(__file__).with_name("public_api.json")


def _every_public_module() -> list[str]:
    found = ["zcbench"]
    for info in pkgutil.walk_packages(zcbench.__path__, prefix="zcbench."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def test_the_public_modules_are_the_pinned_ones() -> None:
    pinned = json.loads(_PIN.read_text())
    modules = _every_public_module()
    assert sorted(pinned) == modules, (
        f"public modules changed: new {sorted(set(modules) - set(pinned))}, gone "
        f"{sorted(set(pinned) - set(modules))}; update {_PIN.name} on purpose"
    )


@pytest.mark.parametrize("name", _every_public_module())
def test_all_is_pinned_and_names_every_public_definition(name: str) -> None:
    module = importlib.import_module(name)
    exported = sorted(getattr(module, "__all__", ()))
    pinned = json.loads(_PIN.read_text()).get(name)
    assert exported == pinned, (
        f"{name}.__all__ differs from {_PIN.name}: added "
        f"{sorted(set(exported) - set(pinned or ()))}, removed "
        f"{sorted(set(pinned or ()) - set(exported))}; update the pin on purpose"
    )
    assert len(exported) == len(set(module.__all__)), f"{name}.__all__ repeats a name"
    # a public function or class defined here is exported, or named with an underscore
    unexported = [
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
        and key not in exported
    ]
    assert unexported == [], f"{name} defines public {unexported} outside __all__"
