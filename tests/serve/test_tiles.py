"""The tile writer following a growing log, the tile reader, and an independent client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.auditlog.support import build_log, key
from tests.serve.support import IndependentTlogClient, fake_boot_key, folder_get
from zcbench.auditlog.checkpoint import LogSigner, parse_checkpoint_note
from zcbench.auditlog.merkle import leaf_hash, root
from zcbench.auditlog.storage import LogStore
from zcbench.serve.tiles import (
    RunTiles,
    TileError,
    TileReader,
    TileWriter,
    entries_path,
    file_fetch,
    parse_tile_path,
    tile_path,
)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_paths_follow_the_spec_and_parse_only_canonical_forms() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 7) == "tile/2/005.p/7"
    assert entries_path(1000) == "tile/entries/x001/000"
    for level, index, width in ((0, 0, 256), (1, 999, 3), (3, 1234067, 255), (0, 1000, 1)):
        parsed = parse_tile_path(tile_path(level, index, width))
        assert parsed is not None
        assert (parsed.level, parsed.index, parsed.width) == (level, index, width)
    parsed = parse_tile_path(entries_path(42, 9))
    assert parsed is not None
    assert (parsed.level, parsed.index, parsed.width) == (None, 42, 9)
    for bad in ("tile/0/5", "tile/0/x000/005", "tile/0/005.p/0", "tile/0/005.p/256",
                "tile/0/005.p/010", "tile/9/000", "tile/0/../005", "tile/0/x01/005",
                "tile/0/0050", "tile/entries/005.p/", "tile/0/005/", "tile/00/005",
                "tile/0/\uff10\uff10\uff15", "checkpoint", "tile/0"):
        assert parse_tile_path(bad) is None, bad


def _published_sizes(tmp_path: Path, sizes: set[int]) -> None:
    leaves = _leaves(max(sizes))
    writer = TileWriter(tmp_path)
    signer = LogSigner(key(3), "test/tiles")
    for i, leaf in enumerate(leaves):
        writer.append(i.to_bytes(4, "big"), leaf)
        if i + 1 in sizes:
            note = signer.sign(i + 1, writer.root())
            writer.publish(note, parse_checkpoint_note(note))
    reader = TileReader(file_fetch(tmp_path))
    for size in sorted(sizes):
        expected = root(leaves[:size])
        assert reader.root(size) == expected
        # the same root from the tiles of every larger published size (consistency)
        for later in sorted(s for s in sizes if s >= size):
            assert reader.root(size, later) == expected
    assert list(reader.iter_entries(257)) == [i.to_bytes(4, "big") for i in range(257)]
    assert not list(tmp_path.rglob("*.tmp"))


def test_reader_recomputes_every_root_of_two_levels(tmp_path: Path) -> None:
    _published_sizes(tmp_path, {1, 2, 3, 255, 256, 257, 511, 512, 513, 700})


@pytest.mark.slow
def test_reader_recomputes_every_root_of_three_levels(tmp_path: Path) -> None:
    _published_sizes(tmp_path, {1, 257, 4096, 65_535, 65_536, 65_537, 66_000})


def test_a_damaged_tile_is_refused_or_gives_another_root(tmp_path: Path) -> None:
    writer = TileWriter(tmp_path)
    signer = LogSigner(key(3), "test/tiles")
    for i, leaf in enumerate(_leaves(300)):
        writer.append(i.to_bytes(4, "big"), leaf)
    note = signer.sign(300, writer.root())
    writer.publish(note, parse_checkpoint_note(note))
    good = root(_leaves(300))
    tile = tmp_path / tile_path(0, 1, 44)
    data = bytearray(tile.read_bytes())
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    assert TileReader(file_fetch(tmp_path)).root(300) != good
    tile.write_bytes(bytes(data[:-1]))
    with pytest.raises(TileError, match="bytes, expected"):
        TileReader(file_fetch(tmp_path)).root(300)
    bundle = tmp_path / entries_path(0)
    raw = bytearray(bundle.read_bytes())
    raw[3] ^= 1
    bundle.write_bytes(bytes(raw))
    with pytest.raises(TileError, match="does not hash"):
        TileReader(file_fetch(tmp_path)).entries(0, 300)


def test_an_entry_too_large_for_a_bundle_leaves_only_that_bundle_out(tmp_path: Path) -> None:
    writer = TileWriter(tmp_path)
    signer = LogSigner(key(3), "test/tiles")
    entries = [bytes([i % 251]) * (70_000 if i == 3 else 10) for i in range(260)]
    for entry in entries:
        writer.append(entry, leaf_hash(entry))
    note = signer.sign(260, writer.root())
    writer.publish(note, parse_checkpoint_note(note))
    assert not (tmp_path / entries_path(0)).exists()
    assert (tmp_path / entries_path(1, 4)).exists()
    assert TileReader(file_fetch(tmp_path)).root(260) == root([leaf_hash(e) for e in entries])


@pytest.mark.parametrize("growth", [
    (0, 1, 20),
    pytest.param((0, 1, 60, 100), marks=pytest.mark.slow, id="past-a-full-tile"),
])
def test_run_tiles_follow_a_growing_log_and_an_independent_client_agrees(
    tmp_path: Path, growth: tuple[int, ...]
) -> None:
    built = build_log(tmp_path / "run", batches=2)
    tiles = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key)
    client = IndependentTlogClient(folder_get(tmp_path / "tiles"))
    reader = TileReader(file_fetch(tmp_path / "tiles"))
    seen: list[tuple[int, bytes]] = []
    writer = LogStore.open(built.log)
    from zcbench.auditlog.writer import HostLogWriter

    host = HostLogWriter(writer, built.signer.public_key_spki_der, built.origin)
    built.writer = host
    for grow in growth:
        built.add_batches(grow)
        published = tiles.sync()
        assert published is not None
        assert published.size == writer.size
        size, signed, computed = client.recompute_root(built.signer.public_key_spki_der)
        assert (size, computed) == (writer.size, signed)
        assert reader.root(size) == signed
        seen.append((size, signed))
    host.close()
    assert seen[-1][0] == 5 + 2 * sum(growth)
    for size, signed in seen:  # every earlier checkpoint from the newest tiles
        assert reader.root(size, seen[-1][0]) == signed
    entries = client.entries(seen[-1][0])
    assert [hashlib.sha256(b"\x00" + e).digest() for e in entries] == client.level0(seen[-1][0])
    # a second follower over the same folders rewrites nothing and agrees
    again = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key).sync()
    assert again is not None
    assert again.size == seen[-1][0]


def test_a_tile_folder_reused_for_another_log_gets_that_logs_tiles(tmp_path: Path) -> None:
    first = build_log(tmp_path / "one", batches=3, run_id="same")
    assert RunTiles(first.run, tmp_path / "tiles", boot_key=fake_boot_key).sync() is not None
    second = build_log(tmp_path / "two", batches=3, run_id="same", seed=9)
    published = RunTiles(second.run, tmp_path / "tiles", boot_key=fake_boot_key).sync()
    assert published is not None
    client = IndependentTlogClient(folder_get(tmp_path / "tiles"))
    size, signed, computed = client.recompute_root(second.signer.public_key_spki_der)
    assert (size, computed) == (published.size, signed)


def test_a_checkpoint_by_another_key_is_not_published(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=2)
    tiles = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key)
    first = tiles.sync()
    assert first is not None
    store = LogStore.open(built.log)
    intruder = LogSigner(key(99), built.origin)
    from tests.auditlog.support import batch_bodies
    from zcbench.auditlog.records import encode_record

    in_body, _, t = batch_bodies(9)
    store.append([encode_record(index=store.size, kind="note", body=in_body, time_ns=t)])
    store.sync()
    store.add_checkpoint(intruder.sign(store.size, store.root()))
    store.close()
    with pytest.raises(TileError, match="signed"):
        tiles.sync()
    assert (tmp_path / "tiles" / "checkpoint").read_bytes().startswith(built.origin.encode())
    assert parse_checkpoint_note((tmp_path / "tiles" / "checkpoint").read_bytes()) == first


def test_a_log_cut_or_rewritten_under_the_follower_is_refused(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=3)
    tiles = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key)
    assert tiles.sync() is not None
    segment = built.log / "seg-00000000.zlog"
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])
    with pytest.raises(TileError, match="shrank"):
        tiles.sync()
    with pytest.raises(TileError, match="shrank"):  # and it stays refused
        tiles.sync()
    # a record changed in place before the follower read it: its frame checksum fails
    other = build_log(tmp_path / "run2", batches=3)
    segment = other.log / "seg-00000000.zlog"
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 1
    segment.write_bytes(bytes(raw))
    with pytest.raises(TileError):
        RunTiles(other.run, tmp_path / "tiles2", boot_key=fake_boot_key).sync()
    assert not (tmp_path / "tiles2" / "checkpoint").exists()


def _checkpoints(built_log: Path) -> list[tuple[bytes, int, bytes]]:
    """Every checkpoint note the log holds: (note, size, root), oldest first."""
    from zcbench.auditlog.follow import LogFollower

    step = LogFollower(built_log).poll()
    return [(note, c.size, c.root) for note, c in step.checkpoints if c.size]


def _as_of(folder: Path, note: bytes) -> IndependentTlogClient:
    """A strict client (no full-tile fallback) holding ``note`` as its checkpoint."""
    tiles = folder_get(folder)
    return IndependentTlogClient(lambda path: note if path == "checkpoint" else tiles(path))


def test_every_checkpoint_of_one_sync_gets_its_partial_tiles(tmp_path: Path) -> None:
    # one sync over a log of seven checkpoints: a client holding any of them (an older
    # attested checkpoint, a witness's) finds the partial tiles of its own size
    built = build_log(tmp_path / "run", batches=6)
    published = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key).sync()
    assert published is not None
    notes = _checkpoints(built.log)
    assert [size for _, size, _ in notes] == [1, 3, 5, 7, 9, 11, 13]
    assert published.size == 13
    for note, size, signed in notes:
        got_size, got_root, computed = _as_of(tmp_path / "tiles", note).recompute_root(
            built.signer.public_key_spki_der)
        assert (got_size, got_root, computed) == (size, signed, signed)
        assert (tmp_path / "tiles" / entries_path(0, size)).is_file()
        assert TileReader(file_fetch(tmp_path / "tiles")).root(size) == signed


@pytest.mark.slow
def test_older_checkpoints_past_a_full_tile_are_read_from_it(tmp_path: Path) -> None:
    # 281 records: the checkpoints below 256 lie in the full tile 0/000 written in the same
    # sync; their partial tiles may be gone (tlog-tiles) and the reader takes the full tile's
    # first hashes; those from 256 on lie in unfinished tiles and are there for any client
    built = build_log(tmp_path / "run", batches=140)
    published = RunTiles(built.run, tmp_path / "tiles", boot_key=fake_boot_key).sync()
    assert published is not None
    assert published.size == 281
    reader = TileReader(file_fetch(tmp_path / "tiles"))
    first_bundle = reader.entries(0, 281)
    for note, size, signed in _checkpoints(built.log):
        assert reader.root(size) == signed
        assert reader.entries(0, size) == first_bundle[:size]
        if size >= 256:
            client = _as_of(tmp_path / "tiles", note)
            _, _, computed = client.recompute_root(built.signer.public_key_spki_der)
            assert computed == signed
