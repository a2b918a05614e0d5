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

The exit codes, one table for every command (README.md and DESIGN.md repeat it)::

    0    passed
    1    malformed content (DataError) or a verification that failed (VerificationError)
    2    usage: a missing input path or one of the wrong kind (a folder for a file, a build
         folder for a log), a bad option value (UsageError)
    3    environment: an unwritable output, a full disk, a missing device or tool (EnvError,
         and an OSError on anything the command writes)
    130  ended by Ctrl-C; 143 by SIGTERM (a live run writes its ``interrupted`` summary first)
    141  a broken pipe on standard output (``zcbench ... | head``): quiet, as for SIGPIPE

Parts define their own subclasses under these branches (for example
``zcbench.nitro.AttestationError`` under :class:`VerificationError`) so callers can catch as
narrowly as they like. Messages say what failed, where, and what to do next; they never carry a
secret.
"""

from __future__ import annotations

import os

__all__ = [
    "EXIT_ENV",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "DataError",
    "EnvError",
    "UsageError",
    "VerificationError",
    "ZcbenchError",
    "describe_os_error",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENV = 3
EXIT_PIPE = 141


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


def describe_os_error(error: OSError, *, writing: bool = False) -> str:
    """One readable line for ``error``: the path, then what the system said, in words.

    Never ``[Errno N]`` or a quoted repr: ``/x/out.cbor: cannot write: no space left on
    device``.
    """
    reason = (error.strerror or error.__class__.__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    action = "cannot write" if writing else "cannot use"
    if error.filename is None:
        return f"{action}: {reason}"
    name = os.fsdecode(error.filename) if isinstance(error.filename, str | bytes) else str(
        error.filename
    )
    return f"{name}: {action}: {reason}"
