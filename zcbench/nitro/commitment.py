"""The measurement commitment (``commitment.json``): one type, one reader, one writer.

What a fund hands an LP (DESIGN.md, contracts table); the packager writes it with
:meth:`Commitment.to_json`, and every reader (``zcbench verify``, ``run``, ``report``, the
widgets, the demo) goes through :meth:`Commitment.load` or :meth:`Commitment.from_json`::

    {"schema": "zcbench.commitment/1", "strategy": name, "pcrs": {"0": hex, "1": hex, "2": hex},
     "strategy_sha256": hex, "sealed_content_sha256": hex, "lock_sha256": hex,
     "bundle_sha256": hex, "zcbench_version": str, "source_date_epoch": int,
     "image": str, "measurement": str, "builder": {str: str},
     "research": {"n_trials": int, "records": [{"digest": hex, ...}], ...}}

``research`` (optional) is what ``zcbench package --research`` commits of the trials behind the
packaged parameters (:func:`zcbench.backtest.research_summary`); its other keys are kept as
given.

Schema 2 (``zcbench.commitment/2``) names the TEE the image runs on and, for TEEs other than
Nitro, its measured fields by their TEE's names instead of PCRs::

    {"schema": "zcbench.commitment/2", "tee": "sev-snp" | "tdx" | "sgx" | "nitro",
     "measurements": {"measurement" | "mrtd" | "mrenclave": hex, other fields: hex}, ...}

The TEE's launch measurement is required (SEV-SNP ``measurement``, TDX ``mrtd``, SGX
``mrenclave``); other fields (``rtmr0``..``rtmr3``, ``mrsigner``, ``host_data``, ...) are
checked when present, and the TEE's verifier refuses a name it does not know. A Nitro commitment
keeps its ``pcrs`` (and is still written as schema 1, which every reader keeps reading).

Only ``schema`` and ``pcrs`` are required (a verifier needs no more; hand-written commitments
carry just those); every other known field is type-checked when present, and fields this version
does not know are kept as they are (:attr:`Commitment.unrecognized`) so a newer packager's facts
survive a round trip. The PCRs are 32, 48 or 64 bytes of hex (either case) under decimal index
keys 0..31 (ASCII digits only). Every field is a pure function of the measured build: nothing
about the sealing key or the machine is committed.

Errors: a missing file is a :class:`~zcbench.errors.UsageError` (exit 2: a wrong input path),
malformed content a :class:`~zcbench.errors.DataError` (exit 1) naming the file and the field,
an unreadable file an :class:`~zcbench.errors.EnvError` (exit 3).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from zcbench.errors import DataError, EnvError, UsageError

__all__ = [
    "COMMITMENT_SCHEMA",
    "COMMITMENT_SCHEMA_V2",
    "PRIMARY_MEASUREMENT",
    "Commitment",
    "load_commitment_pcrs",
    "parse_commitment_pcrs",
    "pcr_index",
    "read_bounded",
    "read_json_object",
]

COMMITMENT_SCHEMA: Final = "zcbench.commitment/1"
COMMITMENT_SCHEMA_V2: Final = "zcbench.commitment/2"
PRIMARY_MEASUREMENT: Final = {"sev-snp": "measurement", "tdx": "mrtd", "sgx": "mrenclave"}
"""The launch measurement's name in a schema-2 commitment, per TEE other than Nitro."""
_FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}\Z", re.ASCII)

_INDEX: Final = re.compile(r"(?:0|[1-9][0-9]?)\Z", re.ASCII)
_HEX: Final = re.compile(r"[0-9a-fA-F]*\Z", re.ASCII)
_SHA256: Final = re.compile(r"[0-9a-f]{64}\Z", re.ASCII)
_MAX_BYTES: Final = 1 << 20
_DIGESTS: Final = ("strategy_sha256", "sealed_content_sha256", "lock_sha256", "bundle_sha256")
_TEXTS: Final = ("strategy", "zcbench_version", "image", "measurement")
_KNOWN: Final = frozenset(
    {"schema", "pcrs", "source_date_epoch", "builder", "research", "tee", "measurements",
     *_DIGESTS, *_TEXTS}
)


def pcr_index(text: str) -> int | None:
    """The PCR index written in ``text`` (ASCII decimal 0..31, no sign, space or leading zero),
    or ``None``: the one rule for commitment keys and command-line ``N=HEX`` arguments.

    ``str.isdigit`` and ``int`` accept other scripts' digits ("²", Arabic-Indic "٠"); an index
    is only ever ASCII.
    """
    if not isinstance(text, str) or not _INDEX.match(text):
        return None
    index = int(text)
    return index if index <= 31 else None


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def read_json_object(raw: str | bytes, *, source: str, what: str) -> dict[str, Any]:
    """A JSON object from ``raw``, strictly: no duplicate keys, an object at the top."""
    try:
        doc = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except DataError as exc:
        raise DataError(f"{source} ({what}): {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{source} must be a JSON object")
    return doc


def read_bounded(path: str | os.PathLike[str], *, what: str, limit: int = _MAX_BYTES) -> bytes:
    """The bytes of ``path``: missing is a usage error, too big is bad data."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{what} file {name} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} file {name} is a folder, not a file") from None
    except OSError as exc:
        raise EnvError(f"cannot read {what} file {name}: {exc.strerror}") from None
    if len(raw) > limit:
        raise DataError(f"{what} file {name} is larger than {limit // (1 << 20)} MiB")
    return raw


def _parse_pcrs(value: object, source: str) -> dict[int, bytes]:
    if not isinstance(value, dict) or not value:
        raise DataError(f"{source}: 'pcrs' must be a non-empty object of index -> hex")
    out: dict[int, bytes] = {}
    for key, pcr in value.items():
        if pcr_index(key) is None:
            raise DataError(f"{source}: PCR index {key!r} is not a decimal in 0..31")
        if not isinstance(pcr, str) or not _HEX.match(pcr) or len(pcr) not in (64, 96, 128):
            raise DataError(f"{source}: PCR{key} must be 64, 96 or 128 hex digits (32/48/64 bytes)")
        out[int(key)] = bytes.fromhex(pcr)
    return dict(sorted(out.items()))


def _parse_measurements(value: object, tee: str, source: str) -> dict[str, bytes]:
    primary = PRIMARY_MEASUREMENT[tee]
    if not isinstance(value, dict) or primary not in value:
        raise DataError(
            f"{source}: a {tee} commitment needs 'measurements' with its launch measurement "
            f"{primary!r} (hex)"
        )
    out: dict[str, bytes] = {}
    for name, digest in value.items():
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise DataError(f"{source}: measurement name {name!r} is not lowercase a-z0-9_")
        if not (isinstance(digest, str) and _HEX.match(digest) and 0 < len(digest) <= 128):
            raise DataError(f"{source}: measurement {name!r} must be 1 to 64 bytes of hex")
        if len(digest) % 2:
            raise DataError(f"{source}: measurement {name!r} has an odd number of hex digits")
        out[name] = bytes.fromhex(digest)
    return dict(sorted(out.items()))


def _schema_and_tee(doc: Mapping[str, Any], source: str) -> str:
    schema = doc.get("schema")
    if "schema" not in doc:
        raise DataError(
            f"{source} has no schema field (a commitment names {COMMITMENT_SCHEMA} or "
            f"{COMMITMENT_SCHEMA_V2}); is this a commitment.json?"
        )
    if schema == COMMITMENT_SCHEMA:
        if "tee" in doc or "measurements" in doc:
            raise DataError(
                f"{source}: 'tee' and 'measurements' need schema {COMMITMENT_SCHEMA_V2!r}"
            )
        return "nitro"
    if schema != COMMITMENT_SCHEMA_V2:
        raise DataError(
            f"{source} has schema {schema!r}; expected {COMMITMENT_SCHEMA!r} or "
            f"{COMMITMENT_SCHEMA_V2!r}"
        )
    tee = doc.get("tee")
    if tee != "nitro" and tee not in PRIMARY_MEASUREMENT:
        raise DataError(
            f"{source}: 'tee' is {tee!r}; expected one of nitro, "
            + ", ".join(PRIMARY_MEASUREMENT)
        )
    return str(tee)


@dataclass(frozen=True, slots=True)
class Commitment:
    """A parsed ``commitment.json`` (see the module docstring for the format)."""

    pcrs: Mapping[int, bytes]
    strategy: str | None = None
    strategy_sha256: str | None = None
    sealed_content_sha256: str | None = None
    lock_sha256: str | None = None
    bundle_sha256: str | None = None
    zcbench_version: str | None = None
    source_date_epoch: int | None = None
    image: str | None = None
    measurement: str | None = None
    builder: Mapping[str, str] = field(default_factory=dict)
    research: Mapping[str, Any] | None = None
    unrecognized: Mapping[str, Any] = field(default_factory=dict)
    tee: str = "nitro"
    measurements: Mapping[str, bytes] = field(default_factory=dict)

    SCHEMA: ClassVar[str] = COMMITMENT_SCHEMA

    @property
    def schema(self) -> str:
        """The schema this commitment is written in: 1 for Nitro, 2 for every other TEE."""
        return COMMITMENT_SCHEMA if self.tee == "nitro" else COMMITMENT_SCHEMA_V2

    @property
    def expected_measurement(self) -> bytes:
        """The launch measurement: PCR0 for Nitro, else the TEE's primary field."""
        if self.tee == "nitro":
            if 0 not in self.pcrs:
                raise DataError("this Nitro commitment has no PCR0 (the image measurement)")
            return self.pcrs[0]
        return self.measurements[PRIMARY_MEASUREMENT[self.tee]]

    @property
    def expected_fields(self) -> dict[str, bytes]:
        """The other measured fields (not Nitro: its PCRs are ``pcrs``)."""
        if self.tee == "nitro":
            return {}
        primary = PRIMARY_MEASUREMENT[self.tee]
        return {k: v for k, v in self.measurements.items() if k != primary}

    @classmethod
    def from_json(cls, raw: str | bytes, *, source: str = "commitment") -> Commitment:
        """Parse a commitment body; :class:`DataError` naming ``source`` and the field."""
        doc = read_json_object(raw, source=source, what="commitment")
        tee = _schema_and_tee(doc, source)
        measurements: dict[str, bytes] = {}
        if tee == "nitro":
            if "measurements" in doc:
                raise DataError(f"{source}: a Nitro commitment carries 'pcrs', not 'measurements'")
            pcrs = _parse_pcrs(doc.get("pcrs"), source)
        else:
            if "pcrs" in doc:
                raise DataError(f"{source}: a {tee} commitment has no 'pcrs' (Nitro only)")
            measurements = _parse_measurements(doc.get("measurements"), tee, source)
            pcrs = {}
        for name in _TEXTS:
            if name in doc and not isinstance(doc[name], str):
                raise DataError(f"{source}: {name!r} must be a string")
        for name in _DIGESTS:
            if name in doc and not (isinstance(doc[name], str) and _SHA256.match(doc[name])):
                raise DataError(f"{source}: {name!r} must be 64 lowercase hex digits")
        sde = doc.get("source_date_epoch")
        if sde is not None and (type(sde) is not int or sde < 0):
            raise DataError(f"{source}: 'source_date_epoch' must be a non-negative integer")
        builder = doc.get("builder", {})
        if not isinstance(builder, dict) or not all(isinstance(v, str) for v in builder.values()):
            raise DataError(f"{source}: 'builder' must be an object of strings")
        research = doc.get("research")
        if research is not None and not _is_research(research):
            raise DataError(
                f"{source}: 'research' must be an object with 'n_trials' (a positive int) and "
                "'records' (objects each with a 64-hex 'digest')"
            )
        return cls(
            pcrs=pcrs,
            builder=dict(builder),
            research=research,
            source_date_epoch=sde,
            unrecognized={k: v for k, v in doc.items() if k not in _KNOWN},
            tee=tee,
            measurements=measurements,
            **{name: doc.get(name) for name in (*_TEXTS, *_DIGESTS)},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Commitment:
        """Read and parse the commitment file at ``path`` (errors: the module docstring)."""
        return cls.from_json(read_bounded(path, what="commitment"), source=os.fspath(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields that are None left out."""
        doc: dict[str, Any] = {**self.unrecognized, "schema": self.schema}
        if self.tee == "nitro":
            doc["pcrs"] = {str(k): v.hex() for k, v in sorted(self.pcrs.items())}
        else:
            doc["tee"] = self.tee
            doc["measurements"] = {k: v.hex() for k, v in sorted(self.measurements.items())}
        for name in (*_TEXTS, *_DIGESTS, "source_date_epoch"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        if self.builder:
            doc["builder"] = dict(self.builder)
        if self.research is not None:
            doc["research"] = dict(self.research)
        return doc

    def to_json(self) -> bytes:
        """The file's bytes: sorted keys, two-space indent, ASCII, a final newline."""
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True)
        return (text + "\n").encode()


def _is_research(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    n, records = value.get("n_trials"), value.get("records")
    return (
        type(n) is int
        and n > 0
        and isinstance(records, list)
        and bool(records)
        and all(
            isinstance(r, dict) and isinstance(r.get("digest"), str) and _SHA256.match(r["digest"])
            for r in records
        )
    )


def parse_commitment_pcrs(text: str | bytes, *, source: str = "commitment") -> dict[int, bytes]:
    """The PCRs committed in a ``commitment.json`` body (:meth:`Commitment.from_json`)."""
    return _nitro_pcrs(Commitment.from_json(text, source=source), source)


def _nitro_pcrs(commitment: Commitment, source: str) -> dict[int, bytes]:
    if commitment.tee != "nitro":
        raise DataError(
            f"{source} commits a {commitment.tee} image (its measurements, no PCRs): verify "
            f"{commitment.tee} evidence against it, not a Nitro document"
        )
    return dict(commitment.pcrs)


def load_commitment_pcrs(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """Read ``path`` (a ``commitment.json``) and return its PCRs, index -> bytes."""
    return _nitro_pcrs(Commitment.load(path), os.fspath(path))
