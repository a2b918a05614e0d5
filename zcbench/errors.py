"""The one error tree of zcbench.

Every failure the package reports on purpose is an instance of :class:`ZcbenchError`; the CLI
catches only that base and maps the branch to an exit code::

    ZcbenchError                     base; never raised bare
    ├── DataError                    input is malformed: a file, a frame, a document, a notebook
    │                                (exit 1)
    ├── VerificationError            a check on signed or measured data failed: a signature, a
    │                                chain, a PCR, a proof, a policy (exit 1); carries the name of
    │                                the failed check and the expected and actual values
    ├── EnvError                     the environment is missing something: a device, a socket,
    │                                a folder, a tool (exit 3)
    └── UsageError                   the caller asked for something that cannot be done as asked
                                     (exit 2)

Parts define their own subclasses under these branches (for example
``zcbench.nitro.AttestationError`` under :class:`VerificationError`) so callers can catch as
narrowly as they like. Messages say what failed, where, and what to do next; they never carry a
secret.
"""

from __future__ import annotations

__all__ = [
    "EXIT_ENV",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "DataError",
    "EnvError",
    "UsageError",
    "VerificationError",
    "ZcbenchError",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENV = 3


class ZcbenchError(Exception):
    """Base of every error zcbench raises on purpose."""


class DataError(ZcbenchError):
    """Input data is malformed (a file, a frame, a document, a notebook)."""


class VerificationError(ZcbenchError):
    """A check on signed or measured data failed.

    ``check`` names the failed check (stable, machine-readable, e.g. ``"pcr0"`` or
    ``"inclusion_root"``); ``expected`` and ``actual`` carry the compared values when the check
    is a comparison, rendered as text (hex for bytes).
    """

    def __init__(
        self,
        message: str,
        *,
        check: str,
        expected: object | None = None,
        actual: object | None = None,
    ) -> None:
        super().__init__(message)
        self.check = check
        self.expected = expected
        self.actual = actual


class EnvError(ZcbenchError):
    """The environment lacks something needed: a device, a socket, a folder, a tool."""


class UsageError(ZcbenchError):
    """The caller asked for something that cannot be done as asked."""


def exit_code_for(error: ZcbenchError) -> int:
    """The CLI exit code for ``error`` (DESIGN.md: 1 failed, 2 usage, 3 environment)."""
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, EnvError):
        return EXIT_ENV
    return EXIT_FAILED
