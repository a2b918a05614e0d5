"""The bundle manifest (``manifest.json``): one type, one reader, one writer.

The manifest is measured: it is the only member of the local image's ramdisk 1 and sits in the
bundle the Nitro image is built from, so PCR0 and PCR2 name it. It says which strategy the image
runs without holding it: the sealed payload (``payload.sealed``, ciphertext under the data key)
is delivered at boot, outside the measured sections, and the enclave runs it only if the opened
module hashes to :attr:`BundleManifest.strategy_sha256` and the opened plaintext (module and
parameters) to :attr:`BundleManifest.sealed_content_sha256`. So the manifest, and PCR0 with it,
depends on the strategy cells, the parameters, the runtime and the lock alone, never on the
data key or the machine (DESIGN.md, promotion)::

    {"schema": "zcbench.manifest/2", "strategy": name, "strategy_class": str,
     "strategy_sha256": hex, "sealed_content_sha256": hex, "input_fields": [str],
     "batching": {"count": int} | {"width_ns": int}, "parameters": [name],
     "zcbench_version": str, "lock_sha256": hex, "runtime_sha256": hex,
     "payload": "payload.sealed", "seal": {"alg": "AES-256-GCM-SIV"}, "source_date_epoch": int,
     "ledger_requirement": str}

Strict: exactly these keys, each of its type; ``ledger_requirement`` only in a build packaged
for a ledger (the canonical JSON of :class:`zcbench.enclave.ledger.LedgerRequirement`: the
enclave then serves only once the ledger's gate passed), absent otherwise, so a manifest
without one is byte for byte what it was. Written by the packager with
:meth:`BundleManifest.to_json`, read by the packager, the host and the enclave with
:meth:`BundleManifest.from_json` / :meth:`BundleManifest.load` (errors as for the commitment:
a missing file is a usage error, malformed content a :class:`~zcbench.errors.DataError`). It runs
inside the enclave, so it uses only the standard library and the runtime parts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from zcbench.errors import DataError
from zcbench.nitro.commitment import read_bounded, read_json_object

__all__ = ["MANIFEST_SCHEMA", "PAYLOAD_NAME", "SEAL_ALG", "BundleManifest"]

MANIFEST_SCHEMA: Final = "zcbench.manifest/2"
PAYLOAD_NAME: Final = "payload.sealed"
SEAL_ALG: Final = "AES-256-GCM-SIV"
_SHA256: Final = re.compile(r"[0-9a-f]{64}\Z", re.ASCII)
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
_KEYS: Final = frozenset(
    {
        "schema",
        "strategy",
        "strategy_class",
        "strategy_sha256",
        "sealed_content_sha256",
        "input_fields",
        "batching",
        "parameters",
        "zcbench_version",
        "lock_sha256",
        "runtime_sha256",
        "payload",
        "seal",
        "source_date_epoch",
    }
)


def _strings(value: object, name: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{source}: {name!r} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class BundleManifest:
    """A parsed ``manifest.json`` (the module docstring has the format)."""

    strategy: str
    strategy_class: str
    strategy_sha256: str
    sealed_content_sha256: str
    input_fields: tuple[str, ...]
    batching: Mapping[str, int]
    parameters: tuple[str, ...]
    zcbench_version: str
    lock_sha256: str
    runtime_sha256: str
    source_date_epoch: int
    payload: str = PAYLOAD_NAME
    seal_alg: str = SEAL_ALG
    ledger_requirement: str | None = None

    SCHEMA: ClassVar[str] = MANIFEST_SCHEMA

    def __post_init__(self) -> None:
        self._check(MANIFEST_SCHEMA)

    def _check(self, source: str) -> None:
        if not _NAME.match(self.strategy):
            raise DataError(f"{source}: 'strategy' {self.strategy!r} is not a strategy name")
        for name in ("strategy_sha256", "sealed_content_sha256", "lock_sha256", "runtime_sha256"):
            if not _SHA256.match(getattr(self, name)):
                raise DataError(f"{source}: {name!r} must be 64 lowercase hex digits")
        rule = dict(self.batching)
        if (
            len(rule) != 1
            or next(iter(rule)) not in ("count", "width_ns")
            or type(next(iter(rule.values()))) is not int
            or next(iter(rule.values())) <= 0
        ):
            raise DataError(f"{source}: 'batching' must be one positive count or width_ns")
        if type(self.source_date_epoch) is not int or self.source_date_epoch < 0:
            raise DataError(f"{source}: 'source_date_epoch' must be a non-negative integer")
        if self.payload != PAYLOAD_NAME or self.seal_alg != SEAL_ALG:
            raise DataError(f"{source}: payload must be {PAYLOAD_NAME} sealed with {SEAL_ALG}")
        if self.ledger_requirement is not None:
            from zcbench.enclave.ledger import LedgerRequirement
            from zcbench.ledger import LedgerFormatError

            try:
                LedgerRequirement.from_bytes(self.ledger_requirement.encode())
            except (LedgerFormatError, UnicodeEncodeError) as exc:
                raise DataError(f"{source}: 'ledger_requirement': {exc}") from None

    @classmethod
    def from_json(cls, raw: str | bytes, *, source: str = "manifest.json") -> BundleManifest:
        """Parse a manifest body; :class:`DataError` naming ``source`` and the field."""
        doc = read_json_object(raw, source=source, what="manifest")
        if doc.get("schema") != MANIFEST_SCHEMA:
            raise DataError(
                f"{source} has schema {doc.get('schema')!r}; expected {MANIFEST_SCHEMA!r} "
                "(package the build again with this zcbench)"
            )
        if set(doc) - {"ledger_requirement"} != _KEYS:
            extra = sorted(set(doc) - _KEYS - {"ledger_requirement"})
            missing = sorted(_KEYS - set(doc))
            raise DataError(f"{source}: unexpected keys {extra}, missing keys {missing}")
        texts = ("strategy", "strategy_class", "zcbench_version", "payload")
        digests = ("strategy_sha256", "sealed_content_sha256", "lock_sha256", "runtime_sha256")
        for name in (*texts, *digests):
            if not isinstance(doc[name], str):
                raise DataError(f"{source}: {name!r} must be a string")
        if "ledger_requirement" in doc and not isinstance(doc["ledger_requirement"], str):
            raise DataError(f"{source}: 'ledger_requirement' must be a string")
        seal = doc["seal"]
        if not isinstance(seal, dict) or set(seal) != {"alg"}:
            raise DataError(f"{source}: 'seal' must be {{\"alg\": {SEAL_ALG!r}}}")
        batching = doc["batching"]
        if not isinstance(batching, dict):
            raise DataError(f"{source}: 'batching' must be an object")
        values: dict[str, Any] = {
            "strategy": doc["strategy"],
            "strategy_class": doc["strategy_class"],
            "strategy_sha256": doc["strategy_sha256"],
            "sealed_content_sha256": doc["sealed_content_sha256"],
            "input_fields": _strings(doc["input_fields"], "input_fields", source),
            "batching": dict(batching),
            "parameters": _strings(doc["parameters"], "parameters", source),
            "zcbench_version": doc["zcbench_version"],
            "lock_sha256": doc["lock_sha256"],
            "runtime_sha256": doc["runtime_sha256"],
            "source_date_epoch": doc["source_date_epoch"],
            "payload": doc["payload"],
            "seal_alg": seal["alg"],
            "ledger_requirement": doc.get("ledger_requirement"),
        }
        try:
            return cls(**values)
        except DataError as exc:
            raise DataError(str(exc).replace(MANIFEST_SCHEMA, source, 1)) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BundleManifest:
        """Read and parse the manifest file at ``path``."""
        return cls.from_json(read_bounded(path, what="manifest"), source=os.fspath(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {
            "schema": MANIFEST_SCHEMA,
            "strategy": self.strategy,
            "strategy_class": self.strategy_class,
            "strategy_sha256": self.strategy_sha256,
            "sealed_content_sha256": self.sealed_content_sha256,
            "input_fields": list(self.input_fields),
            "batching": dict(self.batching),
            "parameters": list(self.parameters),
            "zcbench_version": self.zcbench_version,
            "lock_sha256": self.lock_sha256,
            "runtime_sha256": self.runtime_sha256,
            "payload": self.payload,
            "seal": {"alg": self.seal_alg},
            "source_date_epoch": self.source_date_epoch,
        } | ({} if self.ledger_requirement is None
             else {"ledger_requirement": self.ledger_requirement})

    def to_json(self) -> bytes:
        """The file's bytes: sorted keys, two-space indent, ASCII, a final newline."""
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True)
        return (text + "\n").encode()
