"""Bearer-token readers of the proof service: who may read what; tokens stored hashed.

The readers file (``zcbench serve --readers FILE``)::

    {"schema": "zcbench.readers/1",
     "readers": [{"name": "lp-a", "token_sha256": "<hex>", "runs": ["*"] | ["run-..."],
                  "bodies": true | false}]}

``runs`` names the run ids a reader may read entry bundles of and attest (``"*"``: all);
``bodies`` false means market-data bodies are withheld: IN records come as empty entries
(their leaf hashes are in the public hash tiles), everything else whole. A token is a random
string handed to the reader once (:func:`add_reader`); only its SHA-256 is kept, so the file
holds no secret. The file is read strictly (unknown keys, duplicates, bad hashes refused).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError, UsageError

__all__ = ["READERS_SCHEMA", "Reader", "Readers", "add_reader", "token_hash"]

READERS_SCHEMA: Final = "zcbench.readers/1"
_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RUN: Final = re.compile(r"\*|[A-Za-z0-9._-]{1,64}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_MAX_FILE: Final = 1 << 20
_TOKEN_PREFIX: Final = "zcbr_"  # noqa: S105 - a prefix that marks tokens, not a secret


def token_hash(token: str) -> str:
    """The hex SHA-256 a token is stored as."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reader:
    """One reader: a name for the access log, and a scope."""

    name: str
    token_sha256: str
    runs: tuple[str, ...]
    bodies: bool

    def may_read(self, run_id: str) -> bool:
        """Whether this reader's scope covers ``run_id``."""
        return "*" in self.runs or run_id in self.runs

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "token_sha256": self.token_sha256, "runs": list(self.runs),
                "bodies": self.bodies}


def _reader(item: object, where: str) -> Reader:
    if not isinstance(item, dict) or set(item) != {"name", "token_sha256", "runs", "bodies"}:
        raise DataError(f"{where}: a reader is {{name, token_sha256, runs, bodies}}")
    name, digest, runs, bodies = item["name"], item["token_sha256"], item["runs"], item["bodies"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(f"{where}: reader name {name!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise DataError(f"{where}: token_sha256 of {name} is not 64 lowercase hex digits")
    if (not isinstance(runs, list) or not runs
            or not all(isinstance(r, str) and _RUN.fullmatch(r) for r in runs)):
        raise DataError(f"{where}: runs of {name} must be a non-empty list of run ids or '*'")
    if not isinstance(bodies, bool):
        raise DataError(f"{where}: bodies of {name} must be true or false")
    return Reader(name, digest, tuple(runs), bodies)


class Readers:
    """The readers of one server; :meth:`authenticate` maps a bearer token to its reader."""

    def __init__(self, readers: Sequence[Reader] = ()) -> None:
        self._by_hash: dict[str, Reader] = {}
        names: set[str] = set()
        for reader in readers:
            if reader.name in names or reader.token_sha256 in self._by_hash:
                raise DataError(f"reader {reader.name} is listed twice (name or token)")
            names.add(reader.name)
            self._by_hash[reader.token_sha256] = reader

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def readers(self) -> tuple[Reader, ...]:
        return tuple(self._by_hash.values())

    @classmethod
    def load(cls, path: Path) -> Readers:
        """Read a readers file (missing: usage error; malformed: data error)."""
        try:
            raw = Path(path).read_bytes()[: _MAX_FILE + 1]
        except FileNotFoundError:
            raise UsageError(f"readers file {path} does not exist") from None
        except OSError as exc:
            raise EnvError(f"cannot read readers file {path}: {exc}") from None
        if len(raw) > _MAX_FILE:
            raise DataError(f"readers file {path} is larger than {_MAX_FILE} bytes")

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in pairs:
                if k in out:
                    raise DataError(f"readers file {path}: key {k!r} appears twice")
                out[k] = v
            return out

        try:
            doc = json.loads(raw, object_pairs_hook=no_duplicates)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"readers file {path} is not JSON: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != {"schema", "readers"}:
            raise DataError(f"readers file {path} must be {{schema, readers}}")
        if doc["schema"] != READERS_SCHEMA:
            raise DataError(f"readers file {path} has schema {doc['schema']!r}, expected "
                            f"{READERS_SCHEMA}")
        if not isinstance(doc["readers"], list):
            raise DataError(f"readers file {path}: readers must be a list")
        return cls([_reader(item, str(path)) for item in doc["readers"]])

    def authenticate(self, token: str) -> Reader | None:
        """The reader holding ``token``, or None."""
        digest = token_hash(token)
        reader = self._by_hash.get(digest)
        # the dict lookup is keyed by a hash of the token; compare once more in constant time
        if reader is None or not hmac.compare_digest(reader.token_sha256, digest):
            return None
        return reader


def add_reader(path: Path, name: str, *, runs: Sequence[str] = ("*",),
               bodies: bool = False) -> str:
    """Add a reader to the readers file at ``path`` (made if missing); returns its new token.

    The token is shown once: only its hash is written. The file is replaced atomically.
    """
    path = Path(path)
    current = Readers.load(path).readers if path.exists() else ()
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        reader = _reader({"name": name, "token_sha256": token_hash(token), "runs": list(runs),
                          "bodies": bodies}, "new reader")
    except DataError as exc:
        raise UsageError(str(exc)) from None
    if any(r.name == name for r in current):
        raise UsageError(f"a reader named {name} exists in {path}")
    Readers([*current, reader])
    body = json.dumps({"schema": READERS_SCHEMA,
                       "readers": [r.to_json() for r in (*current, reader)]}, indent=2) + "\n"
    try:
        write_atomically(path, body.encode(), 0o600)
    except OSError as exc:
        raise EnvError(f"cannot write readers file {path}: {exc}") from None
    return token
