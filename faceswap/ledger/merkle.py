"""RFC 9162 Merkle trees: leaf and node hashes with domain separation, the Merkle Tree Hash,
inclusion and consistency proofs (section 2.1.3.1/2.1.4.1) and their verification (2.1.3.2/2.1.4.2).

`MerkleTree` is append-only and keeps the hash of every complete subtree, so a root, an inclusion
proof or a consistency proof for any tree size costs O(log n) hashes once the leaves are in; adding a
leaf costs one hash per completed subtree (amortised two). The verification functions need nothing
but the proof: they are what a verifier without the ledger runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or a request no proof can answer."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2): where RFC 9162 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree over leaf hashes. `levels[k][i]` is the hash of the complete subtree over
    leaves [i * 2**k, (i + 1) * 2**k)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf_hash_: bytes) -> None:
        self.levels[0].append(leaf_hash_)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level][-2:]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    def next_path(self) -> list[bytes]:
        """The inclusion path a leaf appended now will have in the tree that ends with it: the
        complete subtrees that partition the current leaves, smallest first."""
        path, start = [], 0
        for level in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> level & 1:
                path.append(self.levels[level][start >> level])
                start += 1 << level
        return path[::-1]

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC's recursion visits: `start` is a multiple of the
        largest power of two not above end - start, so the left part is always a stored subtree."""
        size = end - start
        if size == 0:
            return EMPTY_ROOT
        if size & (size - 1) == 0:
            return self.levels[size.bit_length() - 1][start // size]
        k = _split(size)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return self.subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]): the audit path, bottom-up (RFC 9162 2.1.3.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        k = _split(end - start)
        if index < start + k:
            return self._path(index, start, start + k) + [self.subtree(start + k, end)]
        return self._path(index, start + k, end) + [self.subtree(start, start + k)]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:size]) (RFC 9162 2.1.4.1); empty when the sizes are equal."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 < old_size <= size:
            raise ProofError(f"no consistency proof from tree size {old_size} to {size}")
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self.subtree(start, end)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, start + k, whole) + [self.subtree(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.subtree(start, start + k)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is beyond the {self.size} leaves held")


def _checked(hashes: Sequence[bytes], what: str) -> list[bytes]:
    out = list(hashes)
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in out):
        raise ProofError(f"{what} holds a value that is not a {HASH_SIZE}-byte hash")
    return out


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion path leads to (RFC 9162 2.1.3.2, steps 1-4); ProofError when the
    path cannot belong to leaf `index` of a tree of `size` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    (result,) = _checked([leaf], "the leaf hash")
    fn, sn = index, size - 1
    for p in _checked(path, "the inclusion path"):
        if sn == 0:
            raise ProofError("the inclusion path is longer than a tree of this size allows")
        if fn & 1 or fn == sn:
            result = node_hash(p, result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion path is shorter than a tree of this size needs")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> None:
    """ProofError unless `path` proves leaf hash `leaf` at `index` in the tree of `size` with `root`."""
    if root_from_inclusion(index, size, leaf, path) != root:
        raise ProofError(f"the inclusion path for leaf {index} does not lead to the root of tree size {size}")


def left_siblings(index: int, size: int, path: Sequence[bytes]) -> list[bytes]:
    """The path's hashes that sit left of the leaf, bottom-up: the complete subtrees that partition
    leaves [0, index), the same in every tree that holds the leaf. Assumes a verified path."""
    fn, sn, found = index, size - 1, []
    for p in path:
        if fn & 1 or fn == sn:
            found.append(p)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        fn, sn = fn >> 1, sn >> 1
    return found


def verify_consistency(old_size: int, size: int, old_root: bytes, root: bytes, proof: Sequence[bytes]) -> None:
    """ProofError unless `proof` shows the tree (`size`, `root`) extends (`old_size`, `old_root`)
    (RFC 9162 2.1.4.2). A proof from an empty tree proves nothing and is refused."""
    if old_size > size:
        raise ProofError(f"tree size {old_size} cannot be extended by the smaller size {size}")
    if old_size == 0:
        raise ProofError("a consistency proof from an empty tree proves nothing")
    if old_size == size:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if old_root != root:
            raise ProofError(f"two different roots for tree size {size}")
        return
    path = _checked(proof, "the consistency proof")
    if not path:
        raise ProofError("the consistency proof is empty")
    if old_size & (old_size - 1) == 0:
        path = [old_root] + path
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than these sizes allow")
        if fn & 1 or fn == sn:
            first, second = node_hash(c, first), node_hash(c, second)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than these sizes need")
    if first != old_root:
        raise ProofError(f"the consistency proof does not lead to the old root (tree size {old_size})")
    if second != root:
        raise ProofError(f"the consistency proof does not lead to the new root (tree size {size})")
