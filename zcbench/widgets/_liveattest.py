"""Attestations from the enclave of the run a :class:`LocalRunBackend` is running."""

from __future__ import annotations

import threading

from zcbench.errors import EnvError
from zcbench.widgets._localrun import LocalRunBackend
from zcbench.widgets._runmodel import RunRequest

__all__ = ["LiveEnclaveSource"]


class LiveEnclaveSource:
    """Attestation documents from the enclave of a run ``backend`` is running, for
    :class:`~zcbench.widgets._attest_sources.VerifyingBackend`: the enclave answers with the
    caller's nonce and, in ``user_data``, its latest signed checkpoint.

    With ``start``, a request when no run is going starts that run in the background first
    (:meth:`LocalRunBackend.start_in_background`; :attr:`stop` then ends it). A starting run is
    waited for up to ``boot_s`` seconds.
    """

    def __init__(
        self,
        backend: LocalRunBackend,
        *,
        start: RunRequest | None = None,
        boot_s: float = 60.0,
    ) -> None:
        self.backend = backend
        self.start = start
        self.boot_s = boot_s
        self.stop: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self, nonce: bytes) -> bytes:
        with self._lock:
            if self.backend.handle is None and self.start is not None and (
                self.stop is None or self.backend.booted.is_set()
            ):
                self.stop = self.backend.start_in_background(self.start)
        self.backend.booted.wait(self.boot_s)
        handle = self.backend.handle
        if handle is None:
            why = f": {self.backend.error}" if self.backend.error else ""
            raise EnvError(
                f"no local enclave is running{why}; start a run (the live-run panel's Start) "
                "and ask again"
            )
        document: bytes = handle.attest(nonce)
        return document
