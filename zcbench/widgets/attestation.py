"""The attestation panel: ask an enclave for a fresh document with your nonce and see the verdict.

Owns what a PM or an LP sees about one attestation: the verdict banner (VERIFIED, FAILED naming
the failed check, and SIMULATED whenever the root is the development CA), the PCRs expected from
the commitment against those in the document, the certificate chain with validity, document time
and age, the latest log checkpoint the enclave put in ``user_data``, and an export of all of it.

It decides nothing itself: the verdict is :func:`zcbench.nitro.verify.check_attestation`'s
report, taken as is. Where documents come from is a small :class:`AttestationBackend`; the real
ones here fetch a document (from a running enclave, or from the NSM emulator for a build) and
check it against the commitment; tests pass an in-memory fake.

Every failure while requesting (a malformed nonce, a missing build, a dead enclave) is shown in
the panel as a readable message and the panel stays usable; nothing is left as a traceback in
the cell output.

This module is the panel and the facade; one concept per module behind it:

* :mod:`zcbench.widgets._attest_result`   one request and its verdict (:class:`AttestationResult`)
* :mod:`zcbench.widgets._attest_sources`  backends: where checked documents come from
* :mod:`zcbench.widgets._attest_render`   the verdict banner, PCR table, chain, facts, JSON
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import threading
from collections.abc import Callable

import ipywidgets as widgets

from zcbench.errors import UsageError, ZcbenchError
from zcbench.widgets import _html as h
from zcbench.widgets._attest_render import (
    chain_html,
    document_facts_html,
    pcr_table_html,
    result_to_json,
    verdict_html,
)
from zcbench.widgets._attest_result import (
    DEFAULT_NONCE_BYTES,
    AttestationResult,
    CheckpointFacts,
    attestation_result,
    checkpoint_facts,
    parse_nonce,
)
from zcbench.widgets._attest_sources import (
    AttestationBackend,
    EmulatorSource,
    EnclaveSource,
    VerifyingBackend,
    emulator_backend,
    enclave_backend,
    read_commitment,
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
    ) -> None:
        self.backend = backend
        self.export_dir = pathlib.Path(export_dir) if export_dir is not None else pathlib.Path()
        self._rng = rng
        self._lock = threading.Lock()
        self.result: AttestationResult | None = None
        self.last_error: str | None = None

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
            ],
            layout=widgets.Layout(
                border="1px solid #d0d7de", padding="10px", max_width="1100px"
            ),
        )
        self.add_class("zcbench-attestation-panel")

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
        self.pcrs.value = h.heading("PCRs: commitment against document") + pcr_table_html(result)
        self.chain.value = h.heading("Certificate chain") + chain_html(result)
        self.facts.value = h.heading("Document") + document_facts_html(result)
        self.status.value = h.notice(
            f"Document received {h.when(result.requested_at)} from {result.source}."
        )
        self.export_button.disabled = False
        # The verdict last: whoever sees it (a person, a browser test) sees the rest with it.
        self.banner.value = verdict_html(result)

    def export(self, directory: pathlib.Path | None = None) -> pathlib.Path | None:
        """Write the last result as JSON and the raw document (``.cbor``); the JSON's path."""
        result = self.result
        if result is None:
            self._show_error("Nothing to export yet: request an attestation first.")
            return None
        folder = pathlib.Path(directory) if directory is not None else self.export_dir
        nonce_hex = "" if result.nonce is None else result.nonce.hex()
        when = result.requested_at.astimezone(dt.UTC)
        stem = f"attestation-{when:%Y%m%dT%H%M%SZ}-{nonce_hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{stem}.cbor").write_bytes(result.document)
            path = folder / f"{stem}.json"
            path.write_text(json.dumps(result_to_json(result), indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            self._show_error(f"Could not export to {folder}: {exc.strerror or exc}")
            return None
        self.status.value = h.notice(
            f"Exported {path} (and the raw document {stem}.cbor). Re-verify it with: "
            f"zcbench verify attestation {stem}.cbor --nonce {nonce_hex} "
            "--commitment commitment.json"
            + ("" if result.report.trust_root.kind == "aws" else " --trust "
               + ("dev" if result.report.policy.trust == "dev" else "ROOT.pem")),
            h.GREEN,
        )
        return path
