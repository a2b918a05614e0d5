"""Fixtures of the audit-log tests."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture
def tlog_vectors() -> Path:
    """Merkle, signed-note and CT vectors (tests/vectors/tlog/SOURCES.md)."""
    return VECTORS / "tlog"
