"""A run's log as C2SP tlog-tiles: a writer that follows the log, a reader that recomputes roots.

Layout under a tile folder (https://c2sp.org/tlog-tiles)::

    checkpoint                      the newest checkpoint note (written last)
    tile/<L>/<N>[.p/<W>]            hash tiles: 256 (or W) hashes of level L, 32 bytes each
    tile/entries/<N>[.p/<W>]        entry bundles: each record as uint16 BE length ‖ bytes

``<N>`` is written in 3-digit path elements, ``x`` before all but the last (1234067 is
``x001/x234/067``). A level-L hash is the RFC 9162 tree hash of one full tile of level L-1;
partial tiles are written for every checkpointed size and never hashed upward.

:class:`TileWriter` is fed one entry at a time and keeps O(log n) state: for each level the hashes
of its unfinished tile (at most 255), the unfinished bundle, and the compact range. Every file is
written to a temporary name, fsynced and renamed; tiles and bundles of a checkpoint are made
durable (their folders fsynced) before the ``checkpoint`` file is replaced, so a reader never sees
a checkpoint whose tiles are missing. :class:`RunTiles` glues it to a
:class:`~zcbench.auditlog.follow.LogFollower`: each :meth:`RunTiles.sync` reads only what the run
appended, checks every checkpoint's root (computed over the records, then compared) and its
signature by the key of the log's boot record, and publishes the newest one with its partial
tiles, and the partial tiles of the earlier ones of the same sync that lie in tiles still
unfinished (tlog-tiles asks for partial tiles of every checkpointed size; one whose full tile
exists may be gone, and readers then take the full tile's first hashes).

An entry bundle holds entries of at most 65,535 bytes (the uint16 length). A record larger than
that (a very large IN batch) cannot be put in a bundle: that bundle is not written, the hash tiles
still are, and the reader of such a record gets it from a slice export instead.

:class:`TileReader` takes a ``fetch(path) -> bytes`` (files, HTTP) and recomputes any root of
the tree from tiles alone, taking every hash from the tiles of one tree size (so the roots it
computes for two sizes prove their consistency); it trusts nothing it is told besides the tiles.
A partial tile or bundle that is not there is read from the full one when that exists (what
tlog-tiles lets a log do once the full tile is written).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from zcbench.auditlog.checkpoint import Checkpoint, CheckpointVerifier, parse_checkpoint_note
from zcbench.auditlog.follow import FollowedRecord, LogFollower
from zcbench.auditlog.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, node_hash, root
from zcbench.auditlog.records import decode_record
from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError, ZcbenchError

__all__ = [
    "MAX_ENTRY",
    "TILE_WIDTH",
    "LedgerTiles",
    "RunTiles",
    "TileError",
    "TilePath",
    "TileReader",
    "TileWriter",
    "boot_log_key",
    "encode_bundle",
    "entries_path",
    "file_fetch",
    "parse_bundle",
    "parse_tile_path",
    "read_checkpoint",
    "tile_path",
]

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
MAX_ENTRY: Final = 0xFFFF
_U16: Final = struct.Struct(">H")
_MAX_LEVEL: Final = 8  # 2**64 leaves need levels 0..7; one more for the right edge


class TileError(DataError):
    """A tile or bundle that is missing, malformed or inconsistent (says which path and why)."""


def _index_path(n: int) -> str:
    if n < 0:
        raise ValueError(f"tile index {n} is negative")
    text = f"{n % 1000:03d}"
    while n >= 1000:
        n //= 1000
        text = f"x{n % 1000:03d}/{text}"
    return text


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>`` for a full tile, ``tile/<L>/<N>.p/<W>`` for a partial one."""
    if not 0 <= level < _MAX_LEVEL or not 0 < width <= TILE_WIDTH:
        raise ValueError(f"no tile at level {level} of width {width}")
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{_index_path(index)}{suffix}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``: the bundle of entries ``[256 N, 256 N + W)``."""
    if not 0 < width <= TILE_WIDTH:
        raise ValueError(f"no bundle of width {width}")
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/entries/{_index_path(index)}{suffix}"


@dataclass(frozen=True, slots=True)
class TilePath:
    """A parsed tile path: ``level`` is None for an entry bundle."""

    level: int | None
    index: int
    width: int


def parse_tile_path(path: str) -> TilePath | None:
    """The tile a request path names (``tile/...``), or None when it is no canonical tile path.

    Strict: only the forms :func:`tile_path` and :func:`entries_path` write are accepted, so
    one tile has one path (no leading zeros beyond three digits, no ``x`` on the last element,
    widths 1..255 for partial tiles).
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile" or len(path) > 200:
        return None
    head = parts[1]
    if head == "entries":
        level: int | None = None
    elif len(head) == 1 and head.isdigit() and int(head) < _MAX_LEVEL:
        level = int(head)
    else:
        return None
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not w.isdigit() or w != str(int(w)) or not 0 < int(w) < TILE_WIDTH:
            return None
        width = int(w)
        rest = [*rest[:-2], rest[-2][:-2]]
    index = 0
    for position, element in enumerate(rest):
        last = position == len(rest) - 1
        digits = element if last else element[1:]
        if (not last and not element.startswith("x")) or len(digits) != 3 or not (
            digits.isascii() and digits.isdigit()
        ):
            return None
        index = index * 1000 + int(digits)
    if _index_path(index) != "/".join(
        [*rest[:-1], rest[-1]]
    ):  # e.g. x000/005 is not the canonical 005
        return None
    return TilePath(level, index, width)


def encode_bundle(entries: list[bytes]) -> bytes:
    """An entry bundle: each entry as uint16 big-endian length, then its bytes."""
    return b"".join(_U16.pack(len(e)) + e for e in entries)


def parse_bundle(data: bytes, width: int) -> list[bytes]:
    """Exactly ``width`` entries from a bundle; raises :class:`TileError` otherwise."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError(f"entry bundle ends inside the length of entry {len(out)}")
        (length,) = _U16.unpack_from(data, offset)
        end = offset + 2 + length
        if end > len(data):
            raise TileError(f"entry {len(out)} of the bundle runs past its end")
        out.append(data[offset + 2 : end])
        offset = end
        if len(out) > width:
            break
    if len(out) != width:
        raise TileError(f"entry bundle holds {len(out)} entries, expected {width}")
    return out


# -- writing ---------------------------------------------------------------------------------


class _Durable:
    """Atomic file writes into one tile folder (:func:`zcbench.durable.write_atomically`:
    a temporary name, fsync, rename, the folder fsynced), skipping files already written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, relative: str, data: bytes, *, replace: bool = False) -> None:
        path = self.folder / relative
        if not replace and path.is_file() and path.read_bytes() == data:
            return  # written before (a restarted writer); a tile of one log never changes
        # otherwise (re)write it: a folder reused for another log must not keep its tiles
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, 0o644)


class TileWriter:
    """Tiles, bundles and the checkpoint of one growing log in ``folder``; O(log n) state.

    Start it empty and :meth:`append` every entry from the first; :meth:`publish` a checkpoint
    of the current size. Files that already exist are not rewritten (they are immutable), so a
    writer restarted over the same log rewrites only what a crash left out.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._out = _Durable(self.folder)
        self._levels: list[list[bytes]] = [[]]
        self._full: list[int] = [0]  # full tiles written per level
        self._bundle: list[bytes] = []
        self._bundle_fits = True
        self._compact = CompactRange()
        self.published: Checkpoint | None = None

    @property
    def size(self) -> int:
        """Entries appended so far."""
        return self._compact.size

    def root(self) -> bytes:
        """The tree root over the entries appended so far."""
        return self._compact.root()

    def append(self, entry: bytes, leaf: bytes) -> None:
        """Add the next entry and its leaf hash (full tiles and bundles are written here)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        self._compact.append(leaf)
        self._bundle.append(entry)
        self._bundle_fits &= len(entry) <= MAX_ENTRY
        if len(self._bundle) == TILE_WIDTH:
            if self._bundle_fits:
                self._out.write(entries_path(self.size // TILE_WIDTH - 1),
                                encode_bundle(self._bundle))
            self._bundle = []
            self._bundle_fits = True
        self._push(0, leaf)

    def _push(self, level: int, value: bytes) -> None:
        if level >= len(self._levels):
            self._levels.append([])
            self._full.append(0)
        hashes = self._levels[level]
        hashes.append(value)
        if len(hashes) == TILE_WIDTH:
            self._out.write(tile_path(level, self._full[level]), b"".join(hashes))
            self._full[level] += 1
            self._levels[level] = []
            self._push(level + 1, root(hashes))

    def publish(self, note: bytes, checkpoint: Checkpoint, *,
                older: Iterable[int] = ()) -> None:
        """Write the partial tiles of the current size, then ``note`` as ``checkpoint``.

        The caller checked ``note`` (root and signature); its size must be the current size.
        ``older`` are the sizes of earlier checkpoints not published on their own (several in
        one sync): their partial tiles are written too where they lie in a tile still
        unfinished (a prefix of its current hashes), so a client holding such a checkpoint
        finds the tiles of its size (C2SP tlog-tiles: partial tiles for every checkpointed
        size; one whose full tile exists already may be gone, and a client reads the full one).
        """
        if checkpoint.size != self.size:
            raise ValueError(f"checkpoint of size {checkpoint.size}, the tiles hold {self.size}")
        for size in sorted(set(older)):
            if 0 < size < self.size:
                self._write_partials(size)
        self._write_partials(self.size)
        # every file above is durable (fsynced, its folder fsynced) before the checkpoint
        self._out.write("checkpoint", note, replace=True)
        self.published = checkpoint

    def _write_partials(self, size: int) -> None:
        """The partial tiles and bundle of a tree of ``size`` that lie in unfinished tiles."""
        for level, hashes in enumerate(self._levels):
            index, width = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
            if width and index == self._full[level]:
                self._out.write(tile_path(level, index, width), b"".join(hashes[:width]))
        index, width = divmod(size, TILE_WIDTH)
        bundle = self._bundle[:width]
        if width and index == self.size // TILE_WIDTH and all(
                len(e) <= MAX_ENTRY for e in bundle):
            self._out.write(entries_path(index, width), encode_bundle(bundle))


class RunTiles:
    """The tiles of one run folder, kept up to date by :meth:`sync` as the run's log grows.

    Any audit log folder with a ``log/`` can be followed, whatever its record type: a run's
    checkpoints are checked under the key its boot record names, another log's (the ledger's)
    under the ``verifier`` given.
    """

    def __init__(self, run_dir: Path, tiles_dir: Path, *,
                 boot_key: Callable[[bytes], tuple[bytes, str]] | None = None,
                 verifier: CheckpointVerifier | None = None) -> None:
        self.run_dir = Path(run_dir)
        self._boot_key = boot_key or boot_log_key
        self.tiles_dir = Path(tiles_dir)
        self._follower = LogFollower(self.run_dir / "log")
        self._writer = TileWriter(self.tiles_dir)
        self._fixed_key = verifier is not None
        self._verifier: CheckpointVerifier | None = verifier
        self.origin: str | None = None
        self.error: str | None = None
        self._unpublished: list[int] = []  # sizes checked but not published on their own

    @property
    def published(self) -> Checkpoint | None:
        """The newest checkpoint written to the tile folder by this object."""
        return self._writer.published

    def sync(self, *, max_records: int = 1 << 16) -> Checkpoint | None:
        """Follow the log once: append what it wrote, check every checkpoint, publish the newest.

        Returns the newest published checkpoint. Raises :class:`TileError` when a checkpoint
        does not match the records or is not signed by the boot record's key; the object then
        refuses further syncs (``error`` says why).
        """
        if self.error is not None:
            raise TileError(self.error)
        try:
            return self._sync(max_records)
        except ZcbenchError as exc:
            self.error = f"{self.run_dir}: {exc}"
            raise TileError(self.error) from None

    def _sync(self, max_records: int) -> Checkpoint | None:
        step = self._follower.poll(max_records=max_records)
        records = iter(step.records)
        newest: tuple[bytes, Checkpoint] | None = None
        for note, checkpoint in step.checkpoints:
            if checkpoint.size == 0:
                continue  # the empty tree has no tiles
            while self._writer.size < checkpoint.size:
                self._append(next(records))
            if self._writer.size != checkpoint.size:
                raise TileError(f"checkpoint of size {checkpoint.size} is out of order (the "
                                f"tiles hold {self._writer.size} entries)")
            computed = self._writer.root()
            if computed != checkpoint.root:
                raise TileError(
                    f"checkpoint of size {checkpoint.size} has root {checkpoint.root.hex()}, "
                    f"the records hash to {computed.hex()}"
                )
            if self._verifier is None:
                raise TileError("a checkpoint before the boot record")
            self._verifier.verify(note)
            self.origin = checkpoint.origin
            if newest is not None:
                self._unpublished.append(newest[1].size)
            newest = (note, checkpoint)
        for record in records:  # past the newest checkpoint: kept for the next one
            self._append(record)
        if newest is not None and newest[1].size == self._writer.size:
            # only the newest checkpoint of a round is published as the checkpoint; the earlier
            # ones get the partial tiles of their sizes that still lie in unfinished tiles
            self._writer.publish(*newest, older=self._unpublished)
            self._unpublished = []
        elif newest is not None:
            self._unpublished.append(newest[1].size)
        return self._writer.published

    def _append(self, record: FollowedRecord) -> None:
        if record.index == 0 and not self._fixed_key:
            self._verifier = self._verifier_for(record.data)
        self._writer.append(record.data, record.leaf_hash)

    def _verifier_for(self, record_bytes: bytes) -> CheckpointVerifier:
        record = decode_record(record_bytes)
        if record.kind != "boot":
            raise TileError("record 0 is not a boot record")
        public_key, origin = self._boot_key(record.body)
        return CheckpointVerifier(public_key, origin)


class LedgerTiles(RunTiles):
    """The tiles of a strategy's ledger folder: its log (ledger entries as the record type)
    followed like a run's, each checkpoint checked under the ledger key of ``ledger.json``.

    When the ledger's witnessed ``checkpoint`` (the same checkpoint with the witnesses'
    cosignatures) is the newest one published, it is published in its place, so tlog-tiles
    clients read the cosignatures too.
    """

    def __init__(self, ledger_dir: Path, tiles_dir: Path) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from zcbench.auditlog.note import parse_vkey
        from zcbench.ledger.store import read_ledger_file

        origin, vkey = read_ledger_file(Path(ledger_dir))
        spki = parse_vkey(vkey).public_key.public_bytes(Encoding.DER,
                                                         PublicFormat.SubjectPublicKeyInfo)
        super().__init__(ledger_dir, tiles_dir, verifier=CheckpointVerifier(spki, origin))
        self.origin = origin
        self.vkey = vkey
        self._cosigned: bytes | None = None

    def _sync(self, max_records: int) -> Checkpoint | None:
        published = super()._sync(max_records)
        if published is None:
            return None
        from zcbench.ledger.store import WITNESSED_FILE

        try:
            note = (self.run_dir / WITNESSED_FILE).read_bytes()
        except FileNotFoundError:
            return published
        if note == self._cosigned:
            return published
        assert self._verifier is not None
        try:
            witnessed = self._verifier.verify(note)
        except ZcbenchError:
            return published  # not the ledger key's: the signed checkpoint stays
        if (witnessed.size, witnessed.root) == (published.size, published.root):
            self._writer.publish(note, witnessed)
            self._cosigned = note
        return self._writer.published


def boot_log_key(boot_document: bytes) -> tuple[bytes, str]:
    """The log key (DER SPKI) and origin a boot document names, *unverified*.

    The tile writer publishes only checkpoints signed by this key; whether the document is
    genuine is for the reader to verify (the server decides no trust).
    """
    from zcbench.nitro.document import parse_document

    document = parse_document(boot_document)
    if document.public_key is None:
        raise TileError("the boot document carries no log key")
    origin = None
    pcr0 = document.pcrs.get(0)
    if pcr0 is not None and document.nonce is not None:
        from zcbench.auditlog.checkpoint import log_origin

        try:
            origin = log_origin(pcr0, document.nonce.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            origin = None
    if origin is None:
        raise TileError("the boot document names no PCR0 and run id for the log's origin")
    return document.public_key, origin


# -- reading ---------------------------------------------------------------------------------


Fetch = Callable[[str], bytes]


class TileReader:
    """Hashes, roots and entries of a tiled log, from ``fetch(path)``; tiles fetched are cached.

    Every method takes the ``tree_size`` whose tiles are read (a verified checkpoint's size):
    which tiles are full and how wide the partial ones are follow from it alone.
    """

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._cache: dict[str, bytes] = {}

    def _get(self, path: str, expected: int | None) -> bytes:
        data = self._cache.get(path)
        if data is None:
            data = self._fetch(path)
            if expected is not None and len(data) != expected:
                raise TileError(f"{path} is {len(data)} bytes, expected {expected}")
            self._cache[path] = data
        return data

    def fetched(self) -> dict[str, bytes]:
        """Every tile fetched so far, by path (what a root was computed from)."""
        return dict(self._cache)

    def hashes(self, level: int, start: int, count: int, tree_size: int) -> list[bytes]:
        """Level-``level`` hashes ``[start, start + count)`` from the tiles of ``tree_size``."""
        available = tree_size >> (TILE_HEIGHT * level)
        if start < 0 or count < 0 or start + count > available:
            raise TileError(
                f"hashes [{start}, {start + count}) of level {level} are not in a tree of "
                f"{tree_size}"
            )
        out: list[bytes] = []
        i = start
        while i < start + count:
            tile = i // TILE_WIDTH
            full = available // TILE_WIDTH
            width = TILE_WIDTH if tile < full else available % TILE_WIDTH
            data = self._tile(level, tile, width)
            stop = min(start + count, (tile + 1) * TILE_WIDTH)
            for j in range(i, stop):
                k = (j - tile * TILE_WIDTH) * HASH_SIZE
                out.append(data[k : k + HASH_SIZE])
            i = stop
        return out

    def _tile(self, level: int, index: int, width: int) -> bytes:
        """Hash tile ``index`` of ``level`` of ``width`` hashes; a missing partial tile is the
        prefix of the full one when the log has grown past it."""
        if width == TILE_WIDTH:
            return self._get(tile_path(level, index), TILE_WIDTH * HASH_SIZE)
        try:
            return self._get(tile_path(level, index, width), width * HASH_SIZE)
        except TileError as missing:
            try:
                full = self._get(tile_path(level, index), TILE_WIDTH * HASH_SIZE)
            except TileError:
                raise missing from None
            return full[: width * HASH_SIZE]

    def _subtree(self, start: int, height: int, tree_size: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        return root(self.hashes(level, start >> (TILE_HEIGHT * level), 1 << rest, tree_size))

    def root(self, size: int, tree_size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves, computed from the tiles of ``tree_size``."""
        tree = size if tree_size is None else tree_size
        if not 0 <= size <= tree:
            raise TileError(f"no root of size {size} in a tree of {tree}")
        if size == 0:
            return EMPTY_ROOT
        parts: list[bytes] = []
        start = 0
        for height in range(size.bit_length() - 1, -1, -1):
            if size >> height & 1:
                parts.append(self._subtree(start, height, tree))
                start += 1 << height
        value = parts[-1]
        for left in reversed(parts[:-1]):
            value = node_hash(left, value)
        return value

    def entries(self, bundle: int, tree_size: int) -> list[bytes]:
        """The entries of bundle ``bundle``, each checked against its leaf hash in the tiles."""
        from zcbench.auditlog.merkle import leaf_hash

        available = tree_size - bundle * TILE_WIDTH
        if bundle < 0 or available <= 0:
            raise TileError(f"no bundle {bundle} in a tree of {tree_size}")
        width = min(TILE_WIDTH, available)
        try:
            entries = parse_bundle(self._get(entries_path(bundle, width), None), width)
        except TileError as missing:
            if width == TILE_WIDTH:
                raise
            try:
                entries = parse_bundle(self._get(entries_path(bundle), None),
                                       TILE_WIDTH)[:width]
            except TileError:
                raise missing from None
        leaves = self.hashes(0, bundle * TILE_WIDTH, width, tree_size)
        for offset, (entry, leaf) in enumerate(zip(entries, leaves, strict=True)):
            if leaf_hash(entry) != leaf:
                raise TileError(f"entry {bundle * TILE_WIDTH + offset} does not hash to its leaf")
        return entries

    def iter_entries(self, tree_size: int) -> Iterator[bytes]:
        """Every entry of the tree of ``tree_size``, in order, each checked."""
        for bundle in range((tree_size + TILE_WIDTH - 1) // TILE_WIDTH):
            yield from self.entries(bundle, tree_size)


def file_fetch(folder: Path) -> Fetch:
    """A ``fetch`` over a tile folder on disk (for tests and local checks)."""

    def fetch(path: str) -> bytes:
        try:
            return (Path(folder) / path).read_bytes()
        except FileNotFoundError:
            raise TileError(f"{path} is not in {folder}") from None
        except OSError as exc:
            raise EnvError(f"reading {path}: {exc}") from None

    return fetch


def read_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint published in a tile folder (unverified), or None before the first."""
    try:
        return parse_checkpoint_note((Path(folder) / "checkpoint").read_bytes())
    except FileNotFoundError:
        return None
