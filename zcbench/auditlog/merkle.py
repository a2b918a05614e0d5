"""RFC 9162 Merkle trees: hashes, roots, proofs, their verification, and a compact range.

This module owns the tree arithmetic of the audit log and nothing else: no records, no files, no
keys. Generation follows the recursive definitions of RFC 9162 §2.1; verification is the iterative
walk of §2.1.3.2 and §2.1.4.2, split as *compute* (``root_from_*``) then *compare*
(``verify_*``), so a mismatch names the expected and the computed root.

Rules written down (DESIGN.md, "consistency proofs"): :func:`verify_consistency` follows
transparency-dev — an old size of 0 is always refused (the first checkpoint of a run is checked
against the boot record instead); equal sizes need an empty proof and equal roots. Every hash a
verifier is given must be exactly 32 bytes, except that equal-size consistency compares the roots
as given (the probes require it).

A proof does not bind a size to a root: take both from one verified checkpoint, never from two
places.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from zcbench.auditlog._errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "ProofError",
    "consistency_proof",
    "consistency_proof_from",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "split",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""The root of the empty tree, SHA-256 of the empty string."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): an inner node."""
    return _sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``): where MTH splits."""
    if n < 2:
        raise ValueError(f"split needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"{what} is {len(value)} bytes, a SHA-256 hash is {HASH_SIZE}",
            check=f"{what}_length",
            expected=HASH_SIZE,
            actual=len(value),
        )


# -- generation ------------------------------------------------------------------------------


class MerkleTree:
    """All complete subtrees of a list of leaf hashes, for O(log² n) proofs and subtree roots.

    ``levels[l][i]`` is the root of the perfect subtree of 2**l leaves starting at ``i << l``;
    ranges that are not perfect (the right edge) are composed from those on demand.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        for i, h in enumerate(leaf_hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} is {len(h)} bytes, not {HASH_SIZE}")
        level = list(leaf_hashes)
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)
        self.size = len(leaf_hashes)

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for any ``0 <= start < end <= size`` that the definitions reach."""
        if not 0 <= start < end <= self.size:
            raise ValueError(f"range [{start}, {end}) outside a tree of {self.size}")
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return self.levels[width.bit_length() - 1][start // width]
        k = split(width)
        return node_hash(self.subtree_root(start, start + k), self.subtree_root(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all by default)."""
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"size {n} outside a tree of {self.size}")
        return EMPTY_ROOT if n == 0 else self.subtree_root(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        n = self.size if size is None else size
        if not 0 <= index < n <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {n} (of {self.size})")
        path: list[bytes] = []
        start, end = 0, n
        # Walk down from the root; each level adds its sibling, so the path comes out root first.
        while end - start > 1:
            k = split(end - start)
            if index < start + k:
                path.append(self.subtree_root(start + k, end))
                end = start + k
            else:
                path.append(self.subtree_root(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the first ``old_size`` leaves are a prefix of the first ``new_size``."""
        n = self.size if new_size is None else new_size
        if not 0 < old_size <= n <= self.size:
            raise ValueError(f"no consistency proof from {old_size} to {n} (of {self.size})")
        path: list[bytes] = []
        start, end, m, complete = 0, n, old_size, True
        while m != end - start:
            k = split(end - start)
            if m <= k:
                path.append(self.subtree_root(start + k, end))
                end = start + k
            else:
                path.append(self.subtree_root(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            path.append(self.subtree_root(start, end))
        path.reverse()
        return path


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves: the tree root (SHA-256("") when empty)."""
    compact = CompactRange()
    for h in leaf_hashes:
        compact.append(h)
    return compact.root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 inclusion proof (audit path) for leaf ``index``, leaf level first."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The RFC 9162 consistency proof from the first ``old_size`` leaves to all of them."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def consistency_proof_from(old: CompactRange, later: Sequence[bytes]) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of ``old.size`` leaves to the tree of
    ``old.size + len(later)``, from the old tree's compact range and the leaf hashes after it.

    Every node such a proof takes inside the old tree is one of the perfect subtrees the
    compact range holds, and every other one lies wholly after it, so the prefix itself is not
    needed: a proof to a grown log costs the hashes of what it grew by, not of the whole log.
    """
    m, n = old.size, old.size + len(later)
    if m <= 0:
        raise ValueError("no consistency proof from the empty tree")
    if m == n:
        return []
    held: dict[tuple[int, int], bytes] = {}
    start = 0
    for height in range(m.bit_length() - 1, -1, -1):
        if m >> height & 1:
            held[(start, start + (1 << height))] = old.hashes[len(held)]
            start += 1 << height
    tree = MerkleTree(later)

    def node(lo: int, hi: int) -> bytes:
        if lo >= m:
            return tree.subtree_root(lo - m, hi - m)
        return held[(lo, hi)]  # RFC 9162's proof takes nothing else inside the old tree

    path: list[bytes] = []
    lo, hi, k_old, complete = 0, n, m, True
    while k_old != hi - lo:
        k = split(hi - lo)
        if k_old <= k:
            path.append(node(lo + k, hi))
            hi = lo + k
        else:
            path.append(node(lo, lo + k))
            lo, k_old, complete = lo + k, k_old - k, False
    if not complete:
        path.append(node(lo, hi))
    path.reverse()
    return path


# -- verification ----------------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size``.

    Raises :class:`ProofError` when the inputs cannot describe such a tree (index out of range,
    a hash of the wrong length, a path too short or too long for the size).
    """
    _check_hash(leaf, "leaf_hash")
    if not 0 <= index < size:
        raise ProofError(
            f"leaf index {index} is outside a tree of size {size}",
            check="inclusion_index",
            expected=f"0 <= index < {size}",
            actual=index,
        )
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof_hash")
        if sn == 0:
            raise ProofError(
                f"inclusion proof is longer than a tree of size {size} is tall",
                check="inclusion_proof_length",
                actual=len(proof),
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # RFC 9162 §2.1.3.2 step 4b.ii: climb past levels where the edge has no sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof is too short for a tree of size {size}",
            check="inclusion_proof_length",
            actual=len(proof),
        )
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises :class:`ProofError`; returns nothing on success.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} gives another root",
            check="inclusion_root",
            expected=root.hex(),
            actual=computed.hex(),
        )


def verify_subtree_inclusion(
    leaf_hash: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check ``leaf_hash`` at ``index`` against the root of the subtree ``[start, end)``.

    The range must be a subtree of some tree: ``start`` a multiple of the smallest power of two
    at least ``end - start``. Raises :class:`ProofError`.
    """
    width = end - start
    if start < 0 or width <= 0 or start % (1 << (width - 1).bit_length()) != 0:
        raise ProofError(
            f"[{start}, {end}) is not a subtree",
            check="subtree_range",
            actual=f"[{start}, {end})",
        )
    if not start <= index < end:
        raise ProofError(
            f"leaf index {index} is outside the subtree [{start}, {end})",
            check="inclusion_index",
            expected=f"{start} <= index < {end}",
            actual=index,
        )
    verify_inclusion(leaf_hash, index - start, width, proof, root)


def root_from_consistency_proof(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes
) -> bytes:
    """The new root that ``proof`` implies, after checking it reproduces ``old_root``.

    Needs ``0 < old_size < new_size``; raises :class:`ProofError`.
    """
    if not 0 < old_size < new_size:
        raise ProofError(
            f"no consistency proof computes a root from size {old_size} to {new_size}",
            check="consistency_sizes",
            expected="0 < old_size < new_size",
            actual=f"{old_size} -> {new_size}",
        )
    _check_hash(old_root, "old_root")
    for p in proof:
        _check_hash(p, "proof_hash")
    if not proof:
        raise ProofError(
            "consistency proof is empty", check="consistency_proof_length", actual=0
        )
    seeded = list(proof)
    if old_size & (old_size - 1) == 0:
        seeded.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = seeded[0]
    for c in seeded[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof is too long for {old_size} -> {new_size}",
                check="consistency_proof_length",
                actual=len(proof),
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"consistency proof is too short for {old_size} -> {new_size}",
            check="consistency_proof_length",
            actual=len(proof),
        )
    if fr != old_root:
        raise ProofError(
            f"consistency proof does not reproduce the root of size {old_size}",
            check="consistency_old_root",
            expected=old_root.hex(),
            actual=fr.hex(),
        )
    return sr


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    transparency-dev's rules: old size 0 is refused; equal sizes need an empty proof and equal
    roots. Raises :class:`ProofError`.
    """
    if old_size <= 0 or new_size < old_size:
        raise ProofError(
            f"no consistency between size {old_size} and size {new_size}"
            + (" (a proof from the empty tree is meaningless)" if old_size == 0 else ""),
            check="consistency_sizes",
            expected="0 < old_size <= new_size",
            actual=f"{old_size} -> {new_size}",
        )
    if old_size == new_size:
        if proof:
            raise ProofError(
                "consistency between equal sizes needs an empty proof",
                check="consistency_proof_length",
                expected=0,
                actual=len(proof),
            )
        if old_root != new_root:
            raise ProofError(
                f"two different roots for size {old_size}",
                check="consistency_equal_size_root",
                expected=old_root.hex(),
                actual=new_root.hex(),
            )
        return
    _check_hash(new_root, "new_root")
    computed = root_from_consistency_proof(old_size, new_size, proof, old_root)
    if computed != new_root:
        raise ProofError(
            f"consistency proof {old_size} -> {new_size} gives another new root",
            check="consistency_new_root",
            expected=new_root.hex(),
            actual=computed.hex(),
        )


# -- compact range ---------------------------------------------------------------------------


class CompactRange:
    """The O(log n) state of a growing tree: the roots of its perfect subtrees, left to right.

    What the enclave keeps: ``append(leaf_hash)`` per entry, ``root()`` per checkpoint. The
    stack holds one hash per set bit of ``size`` (largest subtree first).
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} holds {bin(size).count('1')} hashes")
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"compact range hash is {len(h)} bytes, not {HASH_SIZE}")
        self.size = size
        self._stack = list(hashes)

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, largest first (to persist or resume the range)."""
        return tuple(self._stack)

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
        stack = self._stack
        h = leaf_hash
        n = self.size
        while n & 1:
            h = node_hash(stack.pop(), h)
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """The tree root of everything appended so far."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self.size, self._stack)
