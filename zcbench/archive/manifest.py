"""The archive manifest beside a run: where every archived file went, by version, with its hash.

``RUN_DIR/archive.json``, schema ``zcbench.archive/1``, exactly::

    {"schema": "zcbench.archive/1", "run_id": str, "archives": [
       {"endpoint": str, "bucket": str, "prefix": str, "archived_at": ISO-8601 Z,
        "mode": "COMPLIANCE", "retain_until": ISO-8601 Z, "lock_probe": {...},
        "objects": [{"path": str, "key": str, "version_id": str, "sha256": hex,
                     "size": int}, ...]}, ...]}

``path`` is relative to the run folder (``log/seg-00000000.zlog``) or, for the build's files,
``build/<name>``. Each ``archive`` call appends one archive (a second upload of the same run
makes new versions; the earlier ones stay where they were). The file is replaced atomically
(written beside, fsynced, renamed, the folder fsynced), so a crash leaves the old manifest or
the new one, never a torn one. Reading is strict: unknown or missing keys, wrong types, a hash
that is not 64 hex digits are a :class:`~zcbench.errors.DataError` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA",
    "Archive",
    "ArchiveManifest",
    "ArchivedObject",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE: Final = "archive.json"
MANIFEST_SCHEMA: Final = "zcbench.archive/1"
_MAX_BYTES: Final = 16 * 1024 * 1024
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_ISO: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """One file as archived: its path in the run, the object's key and version, its SHA-256.

    These four facts (bucket from the archive) are what a ledger ``archive`` entry carries."""

    path: str
    key: str
    version_id: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "version_id": self.version_id,
                "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True, slots=True)
class Archive:
    """One upload of a run to one bucket."""

    endpoint: str
    bucket: str
    prefix: str
    archived_at: str
    mode: str
    retain_until: str
    lock_probe: Mapping[str, Any]
    objects: tuple[ArchivedObject, ...]

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "bucket": self.bucket, "prefix": self.prefix,
                "archived_at": self.archived_at, "mode": self.mode,
                "retain_until": self.retain_until, "lock_probe": dict(self.lock_probe),
                "objects": [o.to_json() for o in self.objects]}


@dataclass(frozen=True, slots=True)
class ArchiveManifest:
    """Every archive of one run, oldest first."""

    run_id: str
    archives: tuple[Archive, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema": MANIFEST_SCHEMA, "run_id": self.run_id,
                "archives": [a.to_json() for a in self.archives]}

    def in_bucket(self, bucket: str) -> tuple[Archive, ...]:
        return tuple(a for a in self.archives if a.bucket == bucket)


def _exact(value: object, keys: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataError(f"{where} is not a JSON object")
    missing = [k for k in keys if k not in value]
    extra = sorted(set(value) - set(keys))
    if missing or extra:
        raise DataError(f"{where}: missing {missing or 'nothing'}, unknown {extra or 'nothing'}")
    return value


def _text(value: object, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise DataError(f"{where} must be a non-empty string of at most 1024 characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise DataError(f"{where} {value!r} is not in the expected form {pattern.pattern}")
    return value


def _object(value: object, where: str) -> ArchivedObject:
    data = _exact(value, ("path", "key", "version_id", "sha256", "size"), where)
    size = data["size"]
    if type(size) is not int or size < 0:
        raise DataError(f"{where}.size must be a non-negative integer")
    path = _text(data["path"], f"{where}.path")
    if path.startswith("/") or ".." in Path(path).parts:
        raise DataError(f"{where}.path {path!r} must be relative, inside the run")
    return ArchivedObject(path, _text(data["key"], f"{where}.key"),
                          _text(data["version_id"], f"{where}.version_id"),
                          _text(data["sha256"], f"{where}.sha256", _HEX64), size)


def _archive(value: object, where: str) -> Archive:
    data = _exact(value, ("endpoint", "bucket", "prefix", "archived_at", "mode", "retain_until",
                          "lock_probe", "objects"), where)
    if data["mode"] != "COMPLIANCE":
        raise DataError(f"{where}.mode must be COMPLIANCE, got {data['mode']!r}")
    if not isinstance(data["lock_probe"], dict):
        raise DataError(f"{where}.lock_probe is not a JSON object")
    if not isinstance(data["objects"], list) or not data["objects"]:
        raise DataError(f"{where}.objects must be a non-empty list")
    return Archive(
        _text(data["endpoint"], f"{where}.endpoint"), _text(data["bucket"], f"{where}.bucket"),
        _text(data["prefix"], f"{where}.prefix"),
        _text(data["archived_at"], f"{where}.archived_at", _ISO), "COMPLIANCE",
        _text(data["retain_until"], f"{where}.retain_until", _ISO), dict(data["lock_probe"]),
        tuple(_object(o, f"{where}.objects[{i}]") for i, o in enumerate(data["objects"])))


def read_manifest(run_dir: Path) -> ArchiveManifest | None:
    """The manifest of ``run_dir``; None when the run was never archived."""
    path = Path(run_dir) / MANIFEST_FILE
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > _MAX_BYTES:
        raise DataError(f"{path} is over {_MAX_BYTES} bytes: not an archive manifest")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    top = _exact(data, ("schema", "run_id", "archives"), str(path))
    if top["schema"] != MANIFEST_SCHEMA:
        raise DataError(f"{path}: schema {top['schema']!r}, expected {MANIFEST_SCHEMA!r}")
    if not isinstance(top["archives"], list):
        raise DataError(f"{path}: archives must be a list")
    return ArchiveManifest(_text(top["run_id"], f"{path}: run_id"),
                           tuple(_archive(a, f"{path}: archives[{i}]")
                                 for i, a in enumerate(top["archives"])))


def write_manifest(run_dir: Path, manifest: ArchiveManifest) -> Path:
    """Replace ``run_dir/archive.json`` atomically and durably; returns its path."""
    path = Path(run_dir) / MANIFEST_FILE
    data = (json.dumps(manifest.to_json(), indent=1, sort_keys=True) + "\n").encode()
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise EnvError(f"cannot write the archive manifest {path}: "
                       f"{exc.strerror or exc}") from None
    return path
