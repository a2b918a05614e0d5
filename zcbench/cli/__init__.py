"""The ``zcbench`` command line: thin over the public API (DESIGN.md, "Interfaces people expect").

Each subcommand lives in its own module here with a ``register(subparsers)`` function that adds
its parser and sets ``handler`` to a function ``(args) -> int`` returning the exit code. Handlers
import the heavy parts of zcbench lazily so ``zcbench --help`` stays quick.

Exit codes: 0 pass, 1 verification failed or bad data, 2 usage, 3 environment. Only
:class:`zcbench.errors.ZcbenchError` is caught; anything else is a bug and is shown as one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from zcbench import __version__
from zcbench.errors import EXIT_ENV, EXIT_USAGE, ZcbenchError, exit_code_for

__all__ = ["build_parser", "main"]

# Modules under zcbench.cli that add subcommands, in the order --help lists them.
_COMMAND_MODULES = (
    "backtest",
    "package",
    "keys",
    "measure",
    "run",
    "demo",
    "verify",
    "log",
    "nitro",
    "report",
)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as exit code 2 and a hint to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ZcbenchError as exc:
        sys.stderr.write(f"zcbench: {exc}\n")
        return exit_code_for(exc)
    except OSError as exc:
        # A file or folder the command needed could not be used: an environment problem.
        sys.stderr.write(f"zcbench: {exc}\n")
        return EXIT_ENV
    except KeyboardInterrupt:
        sys.stderr.write("zcbench: interrupted\n")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
