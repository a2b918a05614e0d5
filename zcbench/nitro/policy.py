"""What a caller requires of an attestation document: one frozen :class:`AttestationPolicy`.

Owns the policy half of verification (sigstore's policy objects): the expected PCRs, the nonce,
the maximum age, whether debug mode is acceptable, the trust root, and the expected
``public_key`` and ``user_data``. It is checked for misuse once, when it is made
(:class:`~zcbench.errors.UsageError`), so every layer passes one value instead of retyping nine
keyword arguments. It does not check documents: :mod:`zcbench.nitro.verify` does, in order.

Unsafe choices have unsafe names (``unsafe_skip_pcr_check``, ``allow_debug``) and are said on
every use: :attr:`AttestationPolicy.unsafe` lists them in words, each verification logs them as a
warning on the ``zcbench.nitro`` logger and carries them in its result's ``warnings``, which
every surface prints.

Time is not part of the policy: the verification instant ``at`` is given to each check
(python-tuf's ``reference_time``). The documented clock skew :data:`MAX_CLOCK_SKEW` is how far a
document's signed timestamp may lie after ``at`` before it is refused (check ``future``).
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from zcbench.errors import UsageError

__all__ = ["MAX_CLOCK_SKEW", "AttestationPolicy"]

MAX_CLOCK_SKEW = dt.timedelta(seconds=60)
"""How far a document's timestamp may lie after the verification time (clocks disagree a little;
a document from further in the future was stamped by a wrong clock or is checked at a time
chosen to make it look fresh)."""

_MAX_INDEX = 31
_PCR_SIZES = (32, 48, 64)

logger = logging.getLogger("zcbench.nitro")
logger.addHandler(logging.NullHandler())


def _normalise_pcrs(expected: Mapping[int, bytes]) -> Mapping[int, bytes]:
    if not isinstance(expected, Mapping):
        raise UsageError("expected_pcrs must be a mapping of PCR index to bytes")
    out: dict[int, bytes] = {}
    for index, value in expected.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= _MAX_INDEX:
            raise UsageError(f"expected PCR index {index!r} is not in 0..{_MAX_INDEX}")
        if not isinstance(value, (bytes, bytearray)):
            raise UsageError(f"expected PCR{index} must be bytes, not {type(value).__name__}")
        if len(value) not in _PCR_SIZES:
            raise UsageError(f"expected PCR{index} is {len(value)} bytes; a PCR is 32, 48 or 64")
        out[index] = bytes(value)
    if not out:
        raise UsageError("expected_pcrs is empty: name at least one PCR (PCR0 is the image)")
    return MappingProxyType(dict(sorted(out.items())))


@dataclass(frozen=True)
class AttestationPolicy:
    """Everything a document must satisfy, apart from the time it is checked at.

    ``trust`` names the root: ``"aws"`` (pinned Root-G1), ``"dev"`` (the development CA in the
    zcbench home; SIMULATED) or a :class:`pathlib.Path` to a PEM root. Every PCR in
    ``expected_pcrs`` must be present and equal; without them the policy is refused unless
    ``unsafe_skip_pcr_check=True``. Debug-mode documents are refused unless ``allow_debug``.
    ``nonce``, ``max_age``, ``expected_public_key`` and ``expected_user_data`` are checked when
    given. ``expected_pcrs`` is stored read-only and sorted.
    """

    expected_pcrs: Mapping[int, bytes] | None = None
    nonce: bytes | None = None
    max_age: dt.timedelta | None = None
    allow_debug: bool = False
    trust: str | pathlib.Path = "aws"
    expected_public_key: bytes | None = None
    expected_user_data: bytes | None = None
    unsafe_skip_pcr_check: bool = False
    unsafe: tuple[str, ...] = field(init=False, default=(), compare=False)

    def __post_init__(self) -> None:
        if self.expected_pcrs is None and not self.unsafe_skip_pcr_check:
            raise UsageError(
                "no expected PCRs: pass expected_pcrs (e.g. from load_commitment_pcrs), or "
                "unsafe_skip_pcr_check=True to accept any enclave image"
            )
        if self.expected_pcrs is not None and self.unsafe_skip_pcr_check:
            raise UsageError("pass expected_pcrs or unsafe_skip_pcr_check=True, not both")
        if self.expected_pcrs is not None:
            object.__setattr__(self, "expected_pcrs", _normalise_pcrs(self.expected_pcrs))
        for name in ("nonce", "expected_public_key", "expected_user_data"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bytes):
                raise UsageError(f"{name} must be bytes, not {type(value).__name__}")
        if self.max_age is not None:
            if not isinstance(self.max_age, dt.timedelta):
                raise UsageError("max_age must be a datetime.timedelta")
            if self.max_age < dt.timedelta(0):
                raise UsageError("max_age must not be negative")
        if not isinstance(self.trust, (str, pathlib.Path)):
            raise UsageError("trust must be 'aws', 'dev' or a pathlib.Path to a PEM root")
        for name in ("allow_debug", "unsafe_skip_pcr_check"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be True or False")
        unsafe: list[str] = []
        if self.unsafe_skip_pcr_check:
            unsafe.append(
                "no PCR is checked (unsafe_skip_pcr_check): a genuine enclave signed the "
                "document, but nothing says WHICH code it runs"
            )
        if self.allow_debug:
            unsafe.append(
                "debug-mode documents are accepted (allow_debug): the host can read such an "
                "enclave's memory"
            )
        object.__setattr__(self, "unsafe", tuple(unsafe))

    @property
    def checked_pcrs(self) -> tuple[int, ...]:
        """The PCR indexes this policy compares, in order (empty when it checks none)."""
        return tuple(self.expected_pcrs or ())

    def warn(self) -> tuple[str, ...]:
        """Log this policy's unsafe choices (once per call: call it on every use); return them."""
        for text in self.unsafe:
            logger.warning("unsafe attestation policy: %s", text)
        return self.unsafe
