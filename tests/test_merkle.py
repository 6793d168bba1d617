"""The RFC 9162 Merkle core against published test vectors and against a deliberately different,
naive implementation written straight from the RFC's recursive definitions."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from faceswap.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    leaf_hash,
    left_siblings,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc9162_vectors.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# The naive reference: RFC 9162 section 2.1.1, 2.1.3.1 and 2.1.4.1 as written, over the leaf data
# itself, recomputing every subtree from the leaves each time (no stored nodes, no bit arithmetic).


def naive_mth(data: list[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + data[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:]))


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, data[:k]) + [naive_mth(data[k:])]
    return naive_path(m - k, data[k:]) + [naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if whole else [naive_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return naive_subproof(m, data[:k], whole) + [naive_mth(data[k:])]
    return naive_subproof(m - k, data[k:], False) + [naive_mth(data[:k])]


def tree_of(data: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    for item in data:
        tree.append(leaf_hash(item))
    return tree


def test_hashes_match_the_published_hasher_vectors():
    expected = {k: bytes.fromhex(v) for k, v in VECTORS["hasher"].items()}
    assert EMPTY_ROOT == expected["empty_root"] == MerkleTree().root()
    assert leaf_hash(b"") == expected["empty_leaf"]
    assert leaf_hash(b"L123456") == expected["leaf_L123456"]
    assert node_hash(b"N123", b"N456") == expected["node_N123_N456"]


def test_roots_match_certificate_transparency_vectors():
    tree = MerkleTree()
    for size, (leaf, root_hex) in enumerate(zip(LEAVES, VECTORS["roots_hex"], strict=True), 1):
        tree.append(leaf_hash(leaf))
        assert tree.root() == bytes.fromhex(root_hex) == naive_mth(LEAVES[:size])
        assert all(tree.root(s) == bytes.fromhex(VECTORS["roots_hex"][s - 1]) for s in range(1, size + 1))


@pytest.mark.parametrize("probe", VECTORS["inclusion"], ids=lambda p: p["file"])
def test_inclusion_probes(probe):
    args = (probe["leafIdx"], probe["treeSize"], _b64(probe["leafHash"]), [_b64(p) for p in probe["proof"] or []])
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args, _b64(probe["root"]))
    else:
        verify_inclusion(*args, _b64(probe["root"]))


@pytest.mark.parametrize("probe", VECTORS["consistency"], ids=lambda p: p["file"])
def test_consistency_probes(probe):
    args = (probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]))
    proof = [_b64(p) for p in probe["proof"] or []]
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args, proof)
    else:
        verify_consistency(*args, proof)


def test_our_proofs_equal_the_published_happy_paths():
    """The vectors' proofs were made by transparency-dev/merkle over CT's eight leaves: ours must be
    byte-identical, not merely verify."""
    tree = tree_of(LEAVES)
    inclusion = [p for p in VECTORS["inclusion"] if p["desc"] == "happy path" and p["treeSize"] <= 8]
    consistency = [p for p in VECTORS["consistency"] if p["desc"] == "happy path" and 0 < p["size1"]]
    assert len(inclusion) >= 5 and len(consistency) >= 4
    for probe in inclusion:
        assert tree.root(probe["treeSize"]) == _b64(probe["root"])
        assert tree.inclusion_proof(probe["leafIdx"], probe["treeSize"]) == [_b64(p) for p in probe["proof"] or []]
    for probe in consistency:
        proof = tree.consistency_proof(probe["size1"], probe["size2"])
        assert proof == [_b64(p) for p in probe["proof"] or []]


N = 33


@pytest.fixture(scope="module")
def data():
    return [f"leaf {i}".encode() for i in range(N)]


def test_every_size_and_index_agrees_with_the_naive_rfc_definitions(data):
    tree = tree_of(data)
    for size in range(1, N + 1):
        root = naive_mth(data[:size])
        assert tree.root(size) == root
        for index in range(size):
            path = tree.inclusion_proof(index, size)
            assert path == naive_path(index, data[:size])
            verify_inclusion(index, size, leaf_hash(data[index]), path, root)
            assert left_siblings(index, size, path) == tree.inclusion_proof(index, index + 1)


def test_every_pair_of_sizes_has_a_consistency_proof_that_verifies(data):
    tree = tree_of(data)
    for size in range(1, N + 1):
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == naive_subproof(old, data[:size], True)
            verify_consistency(old, size, tree.root(old), tree.root(size), proof)


def _tamperings(path: list[bytes]):
    for i in range(len(path)):
        flipped = bytearray(path[i])
        flipped[i % 32] ^= 0x01
        yield path[:i] + [bytes(flipped)] + path[i + 1 :]
        yield path[:i] + path[i + 1 :]
    yield path + [path[0] if path else b"\x00" * 32]
    yield [b"\x00" * 32] + path
    yield path[::-1] if len(set(path)) > 1 else path + [b"\x01" * 32]


def test_tampered_inclusion_proofs_are_refused(data):
    tree = tree_of(data)
    for size in (1, 2, 5, 8, 13, 33):
        root = tree.root(size)
        for index in range(size):
            path, leaf = tree.inclusion_proof(index, size), leaf_hash(data[index])
            for bad in _tamperings(path):
                with pytest.raises(ProofError):
                    verify_inclusion(index, size, leaf, bad, root)
            # (a neighbouring size can share the path's shape: the signed checkpoint binds size to root)
            for other_index, other_size in ((index + 1, size), (index - 1, size), (index, size * 2)):
                if (other_index, other_size) != (index, size) and 0 <= other_index:
                    with pytest.raises(ProofError):
                        verify_inclusion(other_index, other_size, leaf, path, root)
            with pytest.raises(ProofError):
                verify_inclusion(index, size, leaf_hash(b"another leaf"), path, root)


def test_tampered_consistency_proofs_are_refused(data):
    tree = tree_of(data)
    for size in (2, 3, 7, 8, 9, 33):
        for old in range(1, size):
            proof, old_root, root = tree.consistency_proof(old, size), tree.root(old), tree.root(size)
            for bad in _tamperings(proof):
                with pytest.raises(ProofError):
                    verify_consistency(old, size, old_root, root, bad)
            with pytest.raises(ProofError):
                verify_consistency(old, size, root, old_root, proof)
            with pytest.raises(ProofError):
                verify_consistency(old, size, _sha(b"rewritten"), root, proof)


def test_a_rewritten_history_has_no_consistency_proof(data):
    """Change one early leaf: the new tree's proof from the old size does not verify against the
    old root, whatever size it is asked for."""
    honest = tree_of(data[:20])
    rewritten = tree_of(data[:5] + [b"rewritten"] + data[6:])
    for old in range(6, 21):
        with pytest.raises(ProofError):
            verify_consistency(old, N, honest.root(old), rewritten.root(), rewritten.consistency_proof(old))


def test_bad_requests_are_refused(data):
    tree = tree_of(data[:4])
    for call in (
        lambda: tree.root(5),
        lambda: tree.inclusion_proof(4, 4),
        lambda: tree.inclusion_proof(0, 0),
        lambda: tree.consistency_proof(0, 3),
        lambda: tree.consistency_proof(4, 3),
        lambda: root_from_inclusion(0, 1, b"short", []),
    ):
        with pytest.raises(ProofError):
            call()


def test_the_next_leafs_path_is_known_before_the_leaf(data):
    """What the sink relies on: the path of the leaf about to be appended is the current tree's
    complete subtrees, so a proof can be signed before the entry exists."""
    tree = MerkleTree()
    for size, item in enumerate(data, 1):
        path = tree.next_path()
        tree.append(leaf_hash(item))
        assert path == tree.inclusion_proof(size - 1, size)
        assert root_from_inclusion(size - 1, size, leaf_hash(item), path) == tree.root()
