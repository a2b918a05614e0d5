"""Where the attestation panel's documents come from, already checked.

Owns the :class:`AttestationBackend` seam, :class:`VerifyingBackend` (fetch a document for a
nonce, check it against a build's ``commitment.json``), the NSM-emulator source for a build
folder, and reading a commitment with its whole document for display.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from collections.abc import Callable
from typing import Any, Protocol

from zcbench.errors import DataError, EnvError
from zcbench.nitro import load_commitment_pcrs
from zcbench.widgets._attest_result import AttestationResult, attestation_result

__all__ = [
    "AttestationBackend",
    "EmulatorSource",
    "VerifyingBackend",
    "emulator_backend",
    "read_commitment",
]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AttestationBackend(Protocol):
    """Where the panel's documents come from, already checked.

    ``request`` raises a :class:`~zcbench.errors.ZcbenchError` when no document could be had
    (no enclave, missing build); a document that fails a check is a result, not an error.
    """

    @property
    def description(self) -> str: ...

    def request(self, nonce: bytes) -> AttestationResult: ...


class VerifyingBackend:
    """A backend that fetches a document for a nonce and checks it against a commitment.

    ``fetch(nonce) -> bytes`` is the seam: a running enclave's ``attest``, or the NSM emulator.
    ``commitment`` is the build's ``commitment.json``; its PCRs, read with
    :func:`zcbench.nitro.load_commitment_pcrs`, are the expected ones. ``trust`` names the root
    (``"dev"`` for the local world, every verdict then SIMULATED). ``clock`` gives the
    verification time.
    """

    def __init__(
        self,
        fetch: Callable[[bytes], bytes],
        *,
        commitment: pathlib.Path,
        trust: str | pathlib.Path = "aws",
        description: str = "enclave",
        clock: Callable[[], dt.datetime] = _utcnow,
        max_age: dt.timedelta | None = dt.timedelta(minutes=5),
    ) -> None:
        self._fetch = fetch
        self._commitment = pathlib.Path(commitment)
        self._trust = trust
        self._description = description
        self._clock = clock
        self._max_age = max_age

    @property
    def description(self) -> str:
        return self._description

    @property
    def fetch(self) -> Callable[[bytes], bytes]:
        """Where documents come from (e.g. a ``LiveEnclaveSource``)."""
        return self._fetch

    def request(self, nonce: bytes) -> AttestationResult:
        expected, commitment = read_commitment(self._commitment)
        document = self._fetch(nonce)
        return attestation_result(
            document,
            nonce=nonce,
            expected_pcrs=expected,
            trust=self._trust,
            at=self._clock(),
            source=self._description,
            max_age=self._max_age,
            commitment=commitment,
        )


class EmulatorSource:
    """Documents from the NSM emulator for a build folder, until a live enclave can be asked.

    The emulator's PCR0-2 are measured from the build's image sections on every request
    (:func:`zcbench.packager.measure_local_image`), never taken from the commitment, so a build
    whose image no longer matches its commitment fails. Signed by the development CA:
    every verdict is SIMULATED.
    """

    def __init__(
        self, build_dir: pathlib.Path, *, clock: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        self.build_dir = pathlib.Path(build_dir)
        self._clock = clock

    def __call__(self, nonce: bytes) -> bytes:
        from zcbench.nitro import DevCA, NsmEmulator
        from zcbench.packager import measure_local_image

        if not self.build_dir.is_dir():
            raise EnvError(
                f"build folder {self.build_dir} does not exist: make one with 'zcbench package'"
            )
        pcrs = measure_local_image(self.build_dir)
        ca = DevCA.load_or_create(now=self._clock())
        return NsmEmulator(pcrs, ca, clock=self._clock).attestation(nonce=nonce)


def emulator_backend(
    build_dir: pathlib.Path,
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
    max_age: dt.timedelta | None = dt.timedelta(minutes=5),
) -> VerifyingBackend:
    """A backend for ``build_dir`` whose documents come from the NSM emulator (SIMULATED),
    checked against the build's ``commitment.json`` under the development CA root."""
    build_dir = pathlib.Path(build_dir)
    return VerifyingBackend(
        EmulatorSource(build_dir, clock=clock),
        commitment=build_dir / "commitment.json",
        trust="dev",
        description=f"NSM emulator over the measured image of {build_dir} (SIMULATED)",
        clock=clock,
        max_age=max_age,
    )


def read_commitment(path: pathlib.Path) -> tuple[dict[int, bytes], dict[str, Any]]:
    """The expected PCRs and the whole document of a ``commitment.json``.

    Raises :class:`zcbench.errors.EnvError` when the file is missing and :class:`DataError`
    when it is malformed.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise EnvError(
            f"no commitment at {path}: point the panel at a build folder made by "
            "'zcbench package' (it writes commitment.json)"
        )
    raw = path.read_bytes()
    try:
        whole = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(whole, dict):
        raise DataError(f"{path} is not a JSON object")
    return load_commitment_pcrs(path), whole
