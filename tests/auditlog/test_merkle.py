"""Merkle tree: every vector in tests/vectors/tlog, an exhaustive sweep over all trees up to 64
leaves with corruptions of every proof, and the compact range."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.auditlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
    verify_subtree_inclusion,
)
from zcbench.errors import VerificationError


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# -- reference definitions, written independently of the module under test -----------------


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


# -- vectors ---------------------------------------------------------------------------------


def test_golden_tree(tlog_vectors: Path) -> None:
    gold = _load(tlog_vectors / "rfc6962_golden_transparency_dev.json")
    leaves = [leaf_hash(bytes.fromhex(x)) for x in gold["leaves_hex"]]
    assert [h.hex() for h in leaves] == gold["node_hashes_by_level"][0]
    tree = MerkleTree(leaves)
    for level, hashes in enumerate(gold["node_hashes_by_level"]):
        assert [h.hex() for h in tree.levels[level]] == hashes
    for size, want in gold["roots_by_size"].items():
        assert root(leaves[: int(size)]).hex() == want
        assert tree.root(int(size)).hex() == want
    assert root([]) == EMPTY_ROOT == bytes.fromhex(gold["roots_by_size"]["0"])
    for case in gold["inclusion_proofs"]:
        i, n = case["leaf_index"], case["tree_size"]
        assert inclusion_proof(leaves[:n], i) == _h(case["proof"])
        verify_inclusion(leaves[i], i, n, _h(case["proof"]), tree.root(n))
    for case in gold["consistency_proofs"]:
        m, n = case["size1"], case["size2"]
        assert consistency_proof(leaves[:n], m) == _h(case["proof"])
        assert consistency_proof_from(_range(leaves[:m]), leaves[m:n]) == _h(case["proof"])
        verify_consistency(m, n, _h(case["proof"]), tree.root(m), tree.root(n))


def test_rfc_symbolic_example(tlog_vectors: Path) -> None:
    gold = _load(tlog_vectors / "rfc6962_golden_transparency_dev.json")
    example = _load(tlog_vectors / "rfc6962_2_1_3_example.json")
    leaves = [leaf_hash(bytes.fromhex(x)) for x in gold["leaves_hex"][:7]]
    labels: dict[str, bytes] = {}

    def value(label: str) -> bytes:
        if label not in labels:
            spec = example["labels"][label]
            if spec[0] == "leaf":
                labels[label] = leaves[spec[1]]
            else:
                labels[label] = node_hash(value(spec[1]), value(spec[2]))
        return labels[label]

    assert root(leaves) == value("hash")
    for case in example["inclusion"]:
        want = [value(x) for x in case["path"]]
        assert inclusion_proof(leaves, case["leaf_index"]) == want
        verify_inclusion(leaves[case["leaf_index"]], case["leaf_index"], 7, want, value("hash"))
    for case in example["consistency"]:
        want = [value(x) for x in case["proof"]]
        assert consistency_proof(leaves, case["size1"]) == want
        verify_consistency(case["size1"], 7, want, root(leaves[: case["size1"]]), value("hash"))


def _probe_ids(kind: str) -> list[str]:
    data = _load(Path(__file__).parents[1] / "vectors" / "tlog" / "probes_transparency_dev.json")
    return [f"{i}:{p['file'].split('/', 2)[-1]}" for i, p in enumerate(data[kind])]


def _probes(kind: str) -> list[dict[str, Any]]:
    data = _load(Path(__file__).parents[1] / "vectors" / "tlog" / "probes_transparency_dev.json")
    probes: list[dict[str, Any]] = data[kind]
    return probes


@pytest.mark.parametrize("probe", _probes("inclusion"), ids=_probe_ids("inclusion"))
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            bytes.fromhex(probe["leafHash"]),
            probe["leafIdx"],
            probe["treeSize"],
            _h(probe["proof"]),
            bytes.fromhex(probe["root"]),
        )

    if probe["want_err"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


@pytest.mark.parametrize("probe", _probes("consistency"), ids=_probe_ids("consistency"))
def test_consistency_probe(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            probe["size1"],
            probe["size2"],
            _h(probe["proof"]),
            bytes.fromhex(probe["root1"]),
            bytes.fromhex(probe["root2"]),
        )

    if probe["want_err"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


@pytest.mark.parametrize(
    "probe", _probes("subtree_inclusion"), ids=_probe_ids("subtree_inclusion")
)
def test_subtree_inclusion_probe(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_subtree_inclusion(
            bytes.fromhex(probe["leafHash"]),
            probe["leafIdx"],
            probe["start"],
            probe["end"],
            _h(probe["proof"]),
            bytes.fromhex(probe["root"]),
        )

    if probe["want_err"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


def test_probe_suites_are_complete(tlog_vectors: Path) -> None:
    data = _load(tlog_vectors / "probes_transparency_dev.json")
    assert (len(data["inclusion"]), len(data["consistency"]), len(data["subtree_inclusion"])) == (
        98,
        98,
        204,
    )
    # Both outcomes occur, so a verifier that always raises or never raises fails some probe.
    for kind in ("inclusion", "consistency", "subtree_inclusion"):
        assert {p["want_err"] for p in data[kind]} == {True, False}


def test_real_certificate_transparency_proofs(tlog_vectors: Path) -> None:
    ct = _load(tlog_vectors / "ct_argon2020_golang_mod.json")
    b64 = base64.b64decode
    sth_root = b64(ct["sth"]["sha256_root_hash"])
    size = ct["sth"]["tree_size"]
    leaf = leaf_hash(b64(ct["entry"]["leaf_input"]))
    path = [b64(x) for x in ct["inclusion"]["audit_path"]]
    assert ct["inclusion"]["tree_size"] == size
    verify_inclusion(leaf, ct["entry"]["leaf_index"], size, path, sth_root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, ct["entry"]["leaf_index"] + 1, size, path, sth_root)
    cons = ct["consistency"]
    proof = [b64(x) for x in cons["consistency"]]
    verify_consistency(cons["first"], size, proof, b64(cons["first_root"]), sth_root)
    with pytest.raises(ProofError):
        verify_consistency(cons["first"], size, proof[:-1], b64(cons["first_root"]), sth_root)


# -- exhaustive ------------------------------------------------------------------------------

_MAX = 64
_LEAVES = [leaf_hash(i.to_bytes(2, "big")) for i in range(_MAX + 1)]


def _flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _expect_fail(fn: Any, *args: Any) -> None:
    with pytest.raises(ProofError):
        fn(*args)


@pytest.mark.slow
def test_exhaustive_inclusion_up_to_64() -> None:
    """Every (index, size) for size <= 64: the module's proof equals the recursive definition,
    verifies, and each corruption is refused: a flipped bit in every element (one bit position
    per element, rotating, to keep the sweep fast), leaf and root bit flips, index +-1, size +-1
    with the same root, a dropped, an extra and a duplicated element."""
    checked = 0
    for n in range(1, _MAX + 1):
        leaves = _LEAVES[:n]
        tree = MerkleTree(leaves)
        r = _mth(leaves)
        assert tree.root() == r == root(leaves)
        for i in range(n):
            proof = tree.inclusion_proof(i)
            assert proof == _path(i, leaves)
            verify_inclusion(leaves[i], i, n, proof, r)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j], (i * 7 + j * 13 + n) % 256)
                _expect_fail(verify_inclusion, leaves[i], i, n, bad, r)
            _expect_fail(verify_inclusion, _flip(leaves[i], n % 256), i, n, proof, r)
            _expect_fail(verify_inclusion, leaves[i], i, n, proof, _flip(r, i % 256))
            for k in (i - 1, i + 1):
                if 0 <= k < n + 1:
                    _expect_fail(verify_inclusion, leaves[i], k, n, proof, r)
            # Pitfall 1 of the reference: a path does not bind the size (a size-n path can
            # verify under a neighbouring size with the size-n root), so a size is only ever
            # paired with its own root; with the true root of a neighbouring size it must fail.
            if i < n - 1:
                _expect_fail(verify_inclusion, leaves[i], i, n - 1, proof, _mth(leaves[:-1]))
            _expect_fail(verify_inclusion, leaves[i], i, n + 1, proof, _mth(_LEAVES[: n + 1]))
            if proof:
                _expect_fail(verify_inclusion, leaves[i], i, n, proof[:-1], r)
                _expect_fail(verify_inclusion, leaves[i], i, n, [*proof, proof[-1]], r)
            _expect_fail(verify_inclusion, leaves[i], i, n, [*proof, r], r)
            checked += 1
    assert checked == _MAX * (_MAX + 1) // 2 == 2080


@pytest.mark.slow
def test_exhaustive_consistency_up_to_64() -> None:
    """Every 1 <= m <= n <= 64: proof equals the recursive definition, verifies, and corruptions
    (flipped bit per element, forged old or new root, sizes +-1, dropped or extra element) fail."""
    checked = 0
    for n in range(1, _MAX + 1):
        leaves = _LEAVES[:n]
        tree = MerkleTree(leaves)
        rn = tree.root()
        for m in range(1, n + 1):
            rm = tree.root(m)
            proof = tree.consistency_proof(m)
            assert proof == _subproof(m, leaves, True)
            verify_consistency(m, n, proof, rm, rn)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j], (m * 5 + j * 11 + n) % 256)
                _expect_fail(verify_consistency, m, n, bad, rm, rn)
            _expect_fail(verify_consistency, m, n, proof, _flip(rm, n % 256), rn)
            _expect_fail(verify_consistency, m, n, proof, rm, _flip(rn, m % 256))
            if m < n:
                _expect_fail(verify_consistency, m, n, proof[:-1], rm, rn)
                _expect_fail(verify_consistency, m, n, [*proof, rn], rm, rn)
                _expect_fail(verify_consistency, m, n + 1, proof, rm, _mth(_LEAVES[: n + 1]))
                if m > 1:
                    _expect_fail(verify_consistency, m - 1, n, proof, tree.root(m - 1), rn)
                if m < n - 1:
                    _expect_fail(verify_consistency, m, n - 1, proof, rm, tree.root(n - 1))
            else:
                _expect_fail(verify_consistency, m, m + 1, proof, rm, _mth(_LEAVES[: m + 1]))
            checked += 1
    assert checked == 2080


def _range(leaves: list[bytes]) -> CompactRange:
    compact = CompactRange()
    for h in leaves:
        compact.append(h)
    return compact


def test_consistency_proof_from_a_compact_range_is_the_whole_tree_s() -> None:
    """Every 1 <= m <= n <= 64: the proof built from the old tree's compact range and the
    leaves after it is the one built from every leaf (so it verifies wherever that one does)."""
    for n in range(1, _MAX + 1):
        tree = MerkleTree(_LEAVES[:n])
        for m in range(1, n + 1):
            proof = consistency_proof_from(_range(_LEAVES[:m]), _LEAVES[m:n])
            assert proof == tree.consistency_proof(m)
            verify_consistency(m, n, proof, tree.root(m), tree.root())
    with pytest.raises(ValueError, match="empty tree"):
        consistency_proof_from(CompactRange(), _LEAVES[:3])


def test_consistency_rules_written_down() -> None:
    leaves = _LEAVES[:5]
    r5 = root(leaves)
    _expect_fail(verify_consistency, 0, 5, [], EMPTY_ROOT, r5)
    _expect_fail(verify_consistency, 0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(5, 5, [], r5, r5)
    _expect_fail(verify_consistency, 5, 5, [r5], r5, r5)
    _expect_fail(verify_consistency, 5, 4, [], r5, r5)
    with pytest.raises(VerificationError) as info:
        verify_inclusion(leaves[0], 0, 5, inclusion_proof(leaves, 0), _flip(r5, 0))
    assert info.value.check == "inclusion_root"
    assert info.value.expected == _flip(r5, 0).hex()
    assert info.value.actual == r5.hex()


# -- compact range ---------------------------------------------------------------------------


def test_compact_range_matches_roots_and_stays_logarithmic() -> None:
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for n in range(1, 300):
        compact.append(_LEAVES[n % len(_LEAVES)])
        assert len(compact.hashes) == bin(n).count("1")
    leaves = [_LEAVES[n % len(_LEAVES)] for n in range(1, 300)]
    assert compact.root() == _mth(leaves)
    resumed = CompactRange(compact.size, compact.hashes)
    copy = compact.copy()
    resumed.append(_LEAVES[0])
    assert resumed.root() == _mth([*leaves, _LEAVES[0]])
    assert copy.root() == _mth(leaves)
    with pytest.raises(ValueError, match="holds"):
        CompactRange(3, compact.hashes[:1])
    with pytest.raises(ValueError, match="bytes"):
        compact.append(b"short")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=150), st.data())
def test_proofs_round_trip(items: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in items]
    tree = MerkleTree(leaves)
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    verify_inclusion(leaves[i], i, n, tree.inclusion_proof(i), root(leaves))
    verify_inclusion(leaves[i], i, max(i + 1, m), tree.inclusion_proof(i, max(i + 1, m)),
                     root(leaves[: max(i + 1, m)]))
    verify_consistency(m, n, tree.consistency_proof(m), root(leaves[:m]), root(leaves))


def test_pitfall_size_is_not_bound_by_a_proof() -> None:
    """The reference's pitfall 1, reproduced: for n <= 64 exactly 1,824 valid size-n paths also
    verify under a claimed size n+1 with the size-n root. That is why a size is only ever taken
    together with its root from one signed checkpoint (verify.py, export.py)."""
    count = 0
    for n in range(1, _MAX + 1):
        tree = MerkleTree(_LEAVES[:n])
        r = tree.root()
        for i in range(n):
            try:
                verify_inclusion(_LEAVES[i], i, n + 1, tree.inclusion_proof(i), r)
            except ProofError:
                continue
            count += 1
    assert count == 1824
