"""The attestation panel: ask an enclave for a fresh document with your nonce and see the verdict.

Owns what a PM or an LP sees about one attestation: the verdict banner (VERIFIED, FAILED naming
the failed check, and SIMULATED whenever the root is the development CA), the PCRs expected from
the commitment against those in the document, the certificate chain with validity, document time
and age, the latest log checkpoint the enclave put in ``user_data``, and an export of all of it.
SEV-SNP reports and TDX/SGX quotes are shown the same way (their measured fields, report data,
debug, TCB status and advisories), from the same :class:`~zcbench.tee.TeeVerdict`.

It decides nothing itself: the verdict is :func:`zcbench.nitro.verify.check_attestation`'s
report, taken as is. Where documents come from is a small :class:`AttestationBackend`; the real
ones here fetch a document (from a running enclave, or from the NSM emulator for a build) and
check it against the commitment; tests pass an in-memory fake.

Every failure while requesting (a malformed nonce, a missing build, a dead enclave) is shown in
the panel as a readable message and the panel stays usable; nothing is left as a traceback in
the cell output.

This module is the panel and the facade; one concept per module behind it:

* :mod:`zcbench.report.attestation`       one request and its verdict (:class:`AttestationResult`)
                                          and its JSON
* :mod:`zcbench.widgets._attest_sources`  backends: where checked documents come from
* :mod:`zcbench.report.attestation_html`  the verdict banner, PCR table, chain, facts
"""

from __future__ import annotations

import os
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from zcbench.durable import write_atomically
from zcbench.errors import UsageError, ZcbenchError
from zcbench.report import html as h
from zcbench.report.attestation import (
    DEFAULT_NONCE_BYTES,
    AttestationResult,
    CheckpointFacts,
    attestation_result,
    checkpoint_facts,
    export_files,
    parse_nonce,
    read_commitment,
    result_to_json,
    reverify_command,
)
from zcbench.report.attestation_html import (
    chain_html,
    document_facts_html,
    measured_title,
    pcr_table_html,
    verdict_html,
)
from zcbench.widgets._attest_sources import (
    AttestationBackend,
    EmulatorSource,
    EnclaveSource,
    VerifyingBackend,
    emulator_backend,
    enclave_backend,
)

__all__ = [
    "DEFAULT_NONCE_BYTES",
    "AttestationBackend",
    "AttestationPanel",
    "AttestationResult",
    "CheckpointFacts",
    "EmulatorSource",
    "EnclaveSource",
    "VerifyingBackend",
    "attestation_result",
    "chain_html",
    "checkpoint_facts",
    "document_facts_html",
    "emulator_backend",
    "enclave_backend",
    "parse_nonce",
    "pcr_table_html",
    "read_commitment",
    "result_to_json",
    "verdict_html",
]


# ---------------------------------------------------------------------------------- the panel


class AttestationPanel(widgets.VBox):  # type: ignore[misc]
    """Nonce, 'Request attestation', verdict, PCRs, chain, facts and 'Export report'.

    ``backend`` supplies checked documents; ``export_dir`` is where 'Export report' writes
    (default: the current folder); ``rng(n)`` makes the proposed nonce. :meth:`request` and
    :meth:`export` do what the buttons do and return their result, for notebooks and tests.
    """

    def __init__(
        self,
        backend: AttestationBackend,
        *,
        export_dir: pathlib.Path | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        title: str = "Attestation",
        ledger: pathlib.Path | None = None,
        run_origin: str | None = None,
    ) -> None:
        self.backend = backend
        self.ledger_dir = None if ledger is None else pathlib.Path(ledger)
        self.run_origin = run_origin
        self.ledger_history: Any = None  # the last LedgerHistory shown
        self.export_dir = pathlib.Path(export_dir) if export_dir is not None else pathlib.Path()
        self._rng = rng
        self._lock = threading.Lock()
        self.result: AttestationResult | None = None
        self.last_error: str | None = None
        self.reverify_command: str | None = None  # for the last export

        self.header = widgets.HTML(
            f'<div style="{h.FONT};font-size:20px;font-weight:700;color:{h.INK}">'
            f"{h.esc(title)}</div>"
            + h.notice(f"documents from: {backend.description}")
        )
        self.nonce = widgets.Text(
            value=rng(DEFAULT_NONCE_BYTES).hex(),
            description="Nonce (hex)",
            layout=widgets.Layout(width="640px"),
            style={"description_width": "90px"},
        )
        self.new_nonce_button = widgets.Button(description="New nonce", icon="refresh")
        self.request_button = widgets.Button(
            description="Request attestation", button_style="primary", icon="shield",
            layout=widgets.Layout(width="200px"),
        )
        self.export_button = widgets.Button(
            description="Export report", icon="download", disabled=True
        )
        self.status = widgets.HTML(h.notice("Press 'Request attestation' to ask for a document."))
        self.banner = widgets.HTML()
        self.pcrs = widgets.HTML()
        self.chain = widgets.HTML()
        self.facts = widgets.HTML()
        self.ledger = widgets.HTML()
        self.new_nonce_button.on_click(lambda _b: self._new_nonce())
        self.request_button.on_click(lambda _b: self.request())
        self.export_button.on_click(lambda _b: self.export())
        super().__init__(
            [
                self.header,
                widgets.HBox([self.nonce, self.new_nonce_button]),
                widgets.HBox([self.request_button, self.export_button]),
                self.status,
                self.banner,
                self.pcrs,
                self.chain,
                self.facts,
                self.ledger,
            ],
            layout=widgets.Layout(
                border="1px solid #d0d7de", padding="10px", max_width="1100px"
            ),
        )
        self.add_class("zcbench-attestation-panel")
        self.show_ledger()

    def show_ledger(self) -> Any:
        """Read the ledger (when the panel has one) and show its version history, this run's
        run-start and run-end; returns the :class:`~zcbench.ledger.history.LedgerHistory`."""
        if self.ledger_dir is None:
            return None
        from zcbench.ledger.history import version_history
        from zcbench.report.ledger_html import ledger_html

        try:
            history = version_history(self.ledger_dir)
        except ZcbenchError as exc:
            self.ledger.value = h.heading("The strategy's ledger") + h.notice(
                f"The ledger could not be read: {exc}", h.RED)
            return None
        self.ledger_history = history
        self.ledger.value = (h.heading("The strategy's ledger: versions and runs")
                             + ledger_html(history, run_origin=self.run_origin))
        return history

    def _new_nonce(self) -> None:
        self.nonce.value = self._rng(DEFAULT_NONCE_BYTES).hex()

    def _show_error(self, text: str) -> None:
        self.last_error = text
        self.status.value = h.notice(text, h.RED)

    def request(self) -> AttestationResult | None:
        """Ask the backend for a document with the nonce in the field; show and return it.

        Returns ``None`` (and shows why in the panel) when no document could be had.
        """
        if not self._lock.acquire(blocking=False):
            return None  # a request is already running
        try:
            self.request_button.disabled = True
            self.last_error = None
            try:
                nonce = parse_nonce(self.nonce.value)
            except UsageError as exc:
                self._show_error(f"Nonce: {exc}")
                return None
            self.status.value = h.notice("Requesting a document…")
            try:
                result = self.backend.request(nonce)
            except ZcbenchError as exc:
                self._show_error(f"No document: {exc}")
                return None
            except Exception as exc:  # a bug below us: show it, never leave a bare traceback
                self._show_error(h.unexpected(exc))
                return None
            self._show(result)
            return result
        finally:
            self.request_button.disabled = False
            self._lock.release()

    def _show(self, result: AttestationResult) -> None:
        self.result = result
        self.pcrs.value = h.heading(measured_title(result)) + pcr_table_html(result)
        self.chain.value = h.heading("Certificate chain") + chain_html(result)
        self.facts.value = h.heading(
            "Document" if result.report is not None else result.view.tee_name
        ) + document_facts_html(result)
        self.status.value = h.notice(
            f"Document received {h.when(result.requested_at)} from {result.source}."
        )
        self.export_button.disabled = False
        self.show_ledger()  # the history as of this document: a new version may be announced
        # The verdict last: whoever sees it (a person, a browser test) sees the rest with it.
        self.banner.value = verdict_html(result)

    def export(self, directory: pathlib.Path | None = None) -> pathlib.Path | None:
        """Write the last result with every file its re-verify command needs; the JSON's path.

        Beside the JSON report: the raw document (``.cbor``), the commitment it was checked
        against (``-commitment.json``) and, unless the root is AWS's pinned one, that root
        (``-root.pem``: for the development CA, the file an LP trusts; still SIMULATED). The
        command shown (:attr:`reverify_command`) names only those files and the instant the
        document was checked at, so it gives the same verdict on any machine, later.
        """
        result = self.result
        if result is None:
            self._show_error("Nothing to export yet: request an attestation first.")
            return None
        folder = pathlib.Path(directory) if directory is not None else self.export_dir
        try:
            files = export_files(result)
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                write_atomically(folder / name, data)
        except (OSError, ZcbenchError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self._show_error(f"Could not export to {folder}: {reason}")
            return None
        self.reverify_command = reverify_command(result)
        path = folder / next(reversed(files))  # the JSON report comes last
        self.status.value = h.notice(
            f"Exported {path} with {', '.join(n for n in files if n != path.name)}. Re-verify "
            f"it (in {folder}) with: {self.reverify_command}",
            h.GREEN,
        )
        return path
