"""zcbench: take a trading strategy from a research notebook to a measured enclave, and prove it.

The package is split by part (see DESIGN.md): ``strategy``, ``marketdata``, ``backtest``,
``packager``, ``nitro``, ``keys``, ``channel``, ``enclave``, ``host``, ``auditlog``, ``widgets``
and ``cli``. Every failure any of them raises is a :class:`zcbench.errors.ZcbenchError`.
"""

from zcbench.errors import (
    DataError,
    EnvError,
    UsageError,
    VerificationError,
    ZcbenchError,
)

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "EnvError",
    "UsageError",
    "VerificationError",
    "ZcbenchError",
    "__version__",
]
