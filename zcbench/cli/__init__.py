"""The ``zcbench`` command line: thin over the public API (DESIGN.md, "Interfaces people expect").

Each subcommand lives in its own module here with a ``register(subparsers)`` function that adds
its parser and sets ``handler`` to a function ``(args) -> int`` returning the exit code. Handlers
import the heavy parts of zcbench lazily so ``zcbench --help`` stays quick.

Exit codes are one table (zcbench.errors): 0 pass, 1 malformed content or a failed
verification, 2 usage (a missing input path or one of the wrong kind included), 3 environment
(an unwritable output, disk or device), 130 and 143 a command ended by Ctrl-C or SIGTERM (a
live run after writing its ``interrupted`` summary), 141 a broken pipe, quietly. This module is
the one place that turns failures into codes and messages: every error is one readable line on
standard error, ``zcbench: <what failed>``, never a traceback or a Python repr.

Input paths are checked here, before any handler runs, by one convention every subcommand
follows: a positional argument whose metavar ends in ``DIR`` names an input folder, one ending
in ``FILE`` or ``NOTEBOOK`` an input file, one holding ``PATH`` an input of either kind (any other
positional, such as ``PCR0``, is a value), and so do the options in :data:`_INPUT_OPTIONS`. A
subcommand that checks its flags' values sets ``check_values`` (``(args) -> None``, raising a
UsageError); that runs before the paths are checked, so a bad flag is named even when an input
is missing too. An ``OSError`` a handler lets through is an environment error on an output
(exit 3) unless it names a missing or wrong-kind input path (exit 2); the options in
:data:`_OUTPUT_OPTIONS` are the outputs.
Only :class:`zcbench.errors.ZcbenchError` and ``OSError`` are caught; anything else is a bug
and is shown as one.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from zcbench import __version__
from zcbench.errors import (
    EXIT_ENV,
    EXIT_PIPE,
    EXIT_USAGE,
    UsageError,
    ZcbenchError,
    describe_os_error,
    exit_code_for,
)

__all__ = ["build_parser", "cli_wording", "main"]

# Modules under zcbench.cli that add subcommands, in the order --help lists them.
_COMMAND_MODULES = (
    "backtest",
    "sweep",
    "package",
    "keys",
    "measure",
    "run",
    "demo",
    "verify",
    "log",
    "nitro",
    "report",
    "archive",
    "ledger",
    "witness",
    "serve",
    "venue",
    "reconcile",
    "evidence",
    "limits",
)

# Options that name an input path, by dest: "file", "dir" or "path" (either). ``--trust`` names
# a PEM file unless it is one of the root names.
_INPUT_OPTIONS: Final[dict[str, str]] = {
    "data": "file",
    "commitment": "file",
    "known_checkpoint": "file",
    "attestation": "file",
    "build": "dir",
    "notebook": "file",
    "lock": "file",
    "public_key": "file",
    "trust": "file",
    "research": "file",
    "ledger": "dir",
    "policy": "file",
    "statement": "file",
}
_ROOT_NAMES: Final = frozenset({"aws", "dev"})
# Options that name an output path, by dest: an OSError on them (or under them) is exit 3.
_OUTPUT_OPTIONS: Final = frozenset({"out", "output", "keep", "run_dir", "out_dir"})
# What an OSError says when the path it names is missing or of the wrong kind.
_PATH_ERRNOS: Final = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as exit code 2, one line, and a hint to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _kind_of_positional(metavar: str) -> str | None:
    """``dir``, ``file`` or ``path`` for a positional naming an input, None for a value."""
    name = metavar.upper()
    if name.endswith("DIR"):
        return "dir"
    if name.endswith(("FILE", "NOTEBOOK")):
        return "file"
    if "PATH" in name:
        return "path"
    return None


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaf_parsers(child)


def _declare_inputs(parser: argparse.ArgumentParser) -> None:
    """Record on every leaf parser which of its arguments name input paths, and of what kind."""
    for leaf in _leaf_parsers(parser):
        inputs: list[tuple[str, str, str]] = []
        for action in leaf._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if not action.option_strings:
                metavar = action.metavar if isinstance(action.metavar, str) else action.dest
                positional = _kind_of_positional(metavar)
                if positional is None:
                    continue  # a value such as a PCR0, not a path
                kind, label = positional, metavar
            elif action.dest in _INPUT_OPTIONS:
                kind, label = _INPUT_OPTIONS[action.dest], action.option_strings[-1]
            else:
                continue
            if action.help and action.help != argparse.SUPPRESS and "%" not in action.help:
                label = f"{label}: {action.help}"
            inputs.append((action.dest, kind, label))
        leaf.set_defaults(_zcbench_inputs=tuple(inputs), _zcbench_prog=leaf.prog)


def build_parser() -> argparse.ArgumentParser:
    """The full ``zcbench`` parser with every available subcommand."""
    parser = _Parser(
        prog="zcbench",
        description="Research-to-enclave workbench: backtest, promote, run and prove a strategy.",
    )
    parser.add_argument("--version", action="version", version=f"zcbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"zcbench.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"zcbench.cli.{name}":
                raise
            continue  # that part has not landed yet
        module.register(sub)
    _declare_inputs(parser)
    return parser


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse a missing input path, or one of the wrong kind, before the handler runs."""
    for dest, kind, label in getattr(args, "_zcbench_inputs", ()):
        value = getattr(args, dest, None)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str | Path) or (dest == "trust" and item in _ROOT_NAMES):
                continue
            path = Path(item)
            if not path.exists():
                raise UsageError(f"{path} does not exist ({label})")
            if kind == "file" and not path.is_file():
                raise UsageError(f"{path} is a folder, not a file ({label})")
            if kind == "dir" and not path.is_dir():
                raise UsageError(f"{path} is a file, not a folder ({label})")


def _outputs(args: argparse.Namespace) -> list[Path]:
    found = []
    for dest in _OUTPUT_OPTIONS:
        value = getattr(args, dest, None)
        if isinstance(value, str | Path):
            found.append(Path(os.path.abspath(value)))
    return found


def _names_output(error: OSError, args: argparse.Namespace) -> bool:
    """Whether ``error`` is about one of the command's outputs (or a file under one)."""
    if error.filename is None:
        return True  # no path: a device or the disk
    failed = Path(os.path.abspath(os.fsdecode(error.filename)))
    # The output itself, a file under an output folder, a folder on the way to it, or a
    # temporary file beside it (written, then renamed into place).
    return any(failed == out or out in failed.parents or failed in out.parents
               or failed.parent == out.parent for out in _outputs(args))


_KEYWORD_SPELLING: Final = re.compile(r"\b([a-z][a-z_]*)='([^'\s]*)'")


def cli_wording(text: str) -> str:
    """``text`` as a command-line user reads it: one line, and the library's keyword spellings
    in the CLI's (``trust='dev'`` becomes ``--trust dev``)."""
    text = " ".join(text.split()) or "failed"
    return _KEYWORD_SPELLING.sub(
        lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}".rstrip(), text
    )


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's last flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            sys.stdout.flush()  # --help and --version print, then exit: flush while we can tell
            raise
    except BrokenPipeError:  # --help into a closed pipe
        _quiet_stdout()
        return EXIT_PIPE
    try:
        check_values = getattr(args, "check_values", None)
        if check_values is not None:
            check_values(args)  # a subcommand's own flag values first: no file is touched
        _check_inputs(args)
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE
    except ZcbenchError as exc:
        sys.stderr.write(f"zcbench: {cli_wording(str(exc))}\n")
        return exit_code_for(exc)
    except OSError as exc:
        writing = _names_output(exc, args)
        sys.stderr.write(f"zcbench: {cli_wording(describe_os_error(exc, writing=writing))}\n")
        return EXIT_ENV if writing or exc.errno not in _PATH_ERRNOS else EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("zcbench: interrupted\n")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
