"""Where the attestation panel's documents come from, already checked.

Owns the :class:`AttestationBackend` seam, :class:`VerifyingBackend` (fetch evidence for a
nonce, check it against a build's ``commitment.json``: a Nitro document against its PCRs, an
SEV-SNP report or a TDX/SGX quote against the measurements of a commitment naming that TEE,
with the nonce as its report data), the sources it fetches from (the NSM
emulator for a build folder; :class:`EnclaveSource`, the enclave of a local run, reused while it
runs and started only when none is), and reading a commitment with its whole document for
display.

A fetch may say what it did for the last document in its ``provenance`` attribute (text, or
``None``); the backend puts it in the result's ``source``, so the panel says "started a local
enclave run ... for this request" or "the running local enclave ..." every time.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from zcbench.errors import EnvError
from zcbench.report.attestation import (
    AttestationResult,
    attestation_result,
    committed_fields,
    read_commitment,
)
from zcbench.widgets._liveattest import LiveEnclaveSource
from zcbench.widgets._localrun import LocalRunBackend
from zcbench.widgets._runmodel import RunRequest

if TYPE_CHECKING:
    from zcbench.tee.dcap import Collateral

__all__ = [
    "AttestationBackend",
    "EmulatorSource",
    "EnclaveSource",
    "VerifyingBackend",
    "emulator_backend",
    "enclave_backend",
    "running_enclave_backend",
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
    """A backend that fetches evidence for a nonce and checks it against a commitment.

    ``fetch(nonce) -> bytes`` is the seam: a running enclave's ``attest``, the NSM emulator,
    or a confidential VM's report or quote for that nonce. ``commitment`` is the build's
    ``commitment.json``; its PCRs (Nitro) or measurements (schema 2) are the expected ones.
    ``trust`` names a Nitro root (``"dev"`` for the local world, every verdict then
    SIMULATED); ``max_age`` bounds a Nitro document's age (other TEEs' evidence carries no
    time: the nonce in its report data is its freshness). ``certificates`` (SEV-SNP VCEK or
    VLEK, as file contents) and ``collateral`` (DCAP) serve the other TEEs. ``clock`` gives
    the verification time.
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
        certificates: Sequence[bytes] = (),
        collateral: Collateral | None = None,
    ) -> None:
        self._certificates = tuple(certificates)
        self._collateral = collateral
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
        provenance = getattr(self._fetch, "provenance", None)
        source = self._description
        if isinstance(provenance, str) and provenance:
            source = f"{source}: {provenance}"
        tee, _ = committed_fields(commitment)
        if tee != "nitro":
            return attestation_result(
                document, nonce=nonce, expected_pcrs={}, trust=self._trust, at=self._clock(),
                source=source, commitment=commitment, certificates=self._certificates,
                collateral=self._collateral,
            )
        return attestation_result(
            document,
            nonce=nonce,
            expected_pcrs=expected,
            trust=self._trust,
            at=self._clock(),
            source=source,
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


class EnclaveSource:
    """Documents from the enclave of a local run, saying each time which run answered.

    ``runner`` is a :class:`zcbench.widgets.liverun.LocalRunBackend`. While it has a run going,
    every request is answered by that run's enclave (no new run, no new folder). With ``start``,
    a request when none is going starts that run in the background and waits for its boot; the
    run then keeps answering until it ends or :meth:`stop_run` is called. :attr:`provenance`
    says which of the two happened for the last document, with the run id and folder.
    """

    def __init__(self, runner: Any, *, start: Any = None, boot_s: float = 60.0) -> None:
        self._source = LiveEnclaveSource(runner, start=start, boot_s=boot_s)
        self.runner = runner
        self.provenance: str | None = None
        self.started_runs = 0

    @property
    def stop(self) -> Any:
        """The stop event of the run this source started (``None`` if it started none)."""
        return self._source.stop

    def stop_run(self) -> None:
        """End the run this source started, if it is still going."""
        if self._source.stop is not None:
            self._source.stop.set()

    def __call__(self, nonce: bytes) -> bytes:
        was_running = self.runner.handle is not None
        before = self._source.stop
        document: bytes = self._source(nonce)
        started = not was_running and self._source.stop is not before
        handle = self.runner.handle
        run_id = getattr(handle, "run_id", None) or "?"
        where = self._run_folder()
        if started:
            self.started_runs += 1
            self.provenance = (
                f"no local enclave was running, so a run was started for this request (run "
                f"{run_id}{where}); it answers the next requests while it runs"
            )
        else:
            self.provenance = f"asked the running local enclave (run {run_id}{where})"
        return document

    def _run_folder(self) -> str:
        start = self._source.start
        folder = getattr(start, "run_dir", None)
        return "" if folder is None else f", folder {folder}"


def enclave_backend(
    runner: Any,
    build_dir: pathlib.Path,
    *,
    start: Any = None,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> VerifyingBackend:
    """A backend asking the enclave of ``runner``'s current run (starting ``start`` first when
    given and no run is going; :class:`EnclaveSource`), checked against
    ``build_dir/commitment.json`` under the root ``runner`` trusts (``"dev"``: SIMULATED)."""
    build_dir = pathlib.Path(build_dir)
    return VerifyingBackend(
        EnclaveSource(runner, start=start),
        commitment=build_dir / "commitment.json",
        trust=runner.trust,
        description=f"the local enclave of {build_dir}",
        clock=clock,
    )


def running_enclave_backend(
    backend: LocalRunBackend, build_dir: pathlib.Path, *, start: RunRequest | None = None
) -> Any:
    """An attestation backend asking the enclave of ``backend``'s current run (starting
    ``start`` first when given and no run is going), checked against
    ``build_dir/commitment.json`` under the root ``backend`` trusts (``"dev"``: SIMULATED)."""
    build_dir = pathlib.Path(build_dir)
    return VerifyingBackend(
        LiveEnclaveSource(backend, start=start),
        commitment=build_dir / "commitment.json",
        trust=backend.trust,
        description=f"the running local enclave of {build_dir} (SIMULATED)",
    )
