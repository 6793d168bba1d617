"""An output's transparency-log proof, checked with nothing but files, checkpoints and proofs: no
ledger, no workspace.

One file proves on its own that the log, at the size its checkpoint names, held this output's leaf
(its claim: token, producer, model, consent records, signing keys) as its newest entry, and through
that leaf's prev_hash every entry before it; the checkpoint is signed by the log key the file's
Content Credentials name, so it is as trusted as they are. A later checkpoint cannot be in the file:
tracing a file into one needs a proof from the log (`faceswap ledger prove SEQ` or `ledger
consistency`). Between heads (files' and checkpoints'), equal sizes must have equal roots, complete
subtrees two files both know must agree, and proofs link the rest; any disagreement is a rewrite.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from faceswap.errors import BadInput, ExitCode
from faceswap.ledger.keys import key_id_of
from faceswap.ledger.merkle import (
    MerkleTree,
    ProofError,
    left_siblings,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from faceswap.ledger.note import NoteError, NoteVerifier, open_checkpoint, read_note
from faceswap.ledger.tlog import (
    ASSERTION_SCHEMA,
    CONSISTENCY_TYPE,
    INCLUSION_TYPE,
    claim_leaf,
    leaf_hash_of,
    output_claim,
)
from faceswap.provenance.credentials.reader import CredentialReport

MAX_PROOF_BYTES = 1 << 20
PROVEN, ABSENT, INVALID = "proven", "absent", "invalid"


@dataclass(frozen=True)
class Head:
    """A signed tree head: where it came from, and what it says."""

    source: str
    origin: str
    size: int
    root: bytes

    @property
    def key(self) -> tuple[str, int, bytes]:
        return (self.origin, self.size, self.root)

    def describe(self) -> str:
        return f"{self.source} (tree size {self.size})"


@dataclass(frozen=True)
class FileProof:
    """What a file's Content Credentials prove about its place in the log."""

    source: str
    state: str  # proven | absent | invalid
    problem: str | None = None
    head: Head | None = None
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    path: tuple[bytes, ...] = ()
    verifier: NoteVerifier | None = None

    def to_json(self) -> dict[str, Any]:
        head = self.head
        return {
            "state": self.state,
            "problem": self.problem,
            "origin": head.origin if head else None,
            "leaf_index": self.leaf_index,
            "tree_size": head.size if head else None,
            "root_hash": _b64(head.root) if head else None,
            "log_key": self.verifier.vkey if self.verifier else None,
        }


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _hashes(values: Any) -> tuple[bytes, ...]:
    if not isinstance(values, list):
        raise ValueError("a list of hashes was expected")
    return tuple(base64.b64decode(str(v), validate=True) for v in values)


def check_file_proof(source: str, report: CredentialReport | None) -> FileProof:
    """The proof in trusted Content Credentials: the leaf is what the manifest states, it is the
    last leaf of the checkpoint, and the checkpoint is signed by the log key the manifest names."""
    data = report.transparency if report is not None and report.ok else None
    if data is None:
        return FileProof(source, ABSENT)
    try:
        return _check(source, report, data)
    except (NoteError, ProofError, ValueError, TypeError, KeyError, binascii.Error) as error:
        return FileProof(source, INVALID, f"its transparency proof fails: {error}")


def _check(source: str, report: CredentialReport, data: dict[str, Any]) -> FileProof:
    if data.get("schema") != ASSERTION_SCHEMA:
        raise ValueError(f"unknown proof schema {data.get('schema')!r}")
    verifier = NoteVerifier.from_vkey(data["log_key"])
    provenance = report.provenance or {}
    if key_id_of(verifier.public) != provenance.get("registrar_key_id"):
        raise ValueError("the log key is not the registrar key these Content Credentials name")
    checkpoint, _ = open_checkpoint(str(data["checkpoint"]), [verifier])
    index, size, path = int(data["leaf_index"]), int(data["tree_size"]), _hashes(data["inclusion_path"])
    claim = json.loads(data["leaf"]).get("claim") or {}
    expected = claim_leaf(
        provenance["seq"],
        provenance["prev_hash"],
        output_claim(
            report.token or "",
            provenance["producer"],
            provenance["model_fingerprint"],
            provenance["consent_record_ids"],
            provenance["registrar_key_id"],
            str(claim.get("credentials_root")),
        ),
    )
    if data["leaf"] != expected:
        raise ValueError("the leaf is not the one these Content Credentials state")
    if report.trust_anchor is not None and claim.get("credentials_root") != report.trust_anchor:
        raise ValueError("the leaf names another Content Credentials root than the trust anchor")
    if (index, size) != (provenance["seq"] - 1, provenance["seq"]) or checkpoint.size != size:
        raise ValueError(f"leaf {index} of tree size {size} is not this entry's place (seq {provenance['seq']})")
    leaf = leaf_hash_of(data["leaf"])
    verify_inclusion(index, size, leaf, path, checkpoint.root)
    head = Head(source, checkpoint.origin, checkpoint.size, checkpoint.root)
    return FileProof(source, PROVEN, None, head, index, leaf, path, verifier)


def against_log(proof: FileProof, origin: str | None, tree: MerkleTree) -> FileProof:
    """A proven file checked against a ledger at hand (of the same log): the ledger must still
    have the head the file carries."""
    if proof.state != PROVEN or proof.head is None or proof.head.origin != origin:
        return proof
    head = proof.head
    if head.size > tree.size or tree.root(head.size) != head.root:
        return replace(
            proof,
            state=INVALID,
            problem=f"the ledger no longer has the head this file carries (tree size {head.size}): it was rewritten "
            "after the file was made",
        )
    return proof


@dataclass
class Link:
    """How two heads relate: linked (one history), forked (proof of a rewrite), unproven."""

    a: str
    b: str
    status: str  # linked | forked | unproven
    detail: str
    required: bool = False  # a file against a checkpoint it was asked to trace into

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "status": self.status, "detail": self.detail, "required": self.required}


@dataclass
class Trace:
    """The heads gathered from files, checkpoints and proofs, and what was proven between them."""

    files: list[FileProof]
    checkpoints: list[Head] = field(default_factory=list)
    edges: set[tuple[tuple[str, int, bytes], tuple[str, int, bytes]]] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        failed = self.problems or any(
            link.status == "forked" or (link.required and link.status != "linked") for link in self.links
        )
        return ExitCode.UNTRACED if failed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoints": [{"source": h.source, "origin": h.origin, "tree_size": h.size} for h in self.checkpoints],
            "links": [link.to_json() for link in self.links],
            "problems": list(self.problems),
            "exit_code": int(self.exit_code),
        }

    def lines(self) -> list[str]:
        words = {"linked": "LINKED", "forked": "REWRITTEN", "unproven": "NOT LINKED"}
        lines = [f"{link.a} / {link.b}: {words[link.status]}: {link.detail}" for link in self.links]
        return lines + [f"NOT TRACED: {problem}" for problem in self.problems]

    def extends(self, small: Head, big: Head) -> bool:
        """Is `big`'s tree proven to extend `small`'s (equal heads included)?"""
        seen, todo = {small.key}, [small.key]
        while todo:
            here = todo.pop()
            if here == big.key:
                return True
            for a, b in self.edges:
                if a == here and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return False


def read_checkpoints(paths: list[Path], files: list[FileProof]) -> tuple[list[Head], list[str]]:
    """Checkpoint files, each opened with the log keys the files' trusted credentials name."""
    verifiers = {f.verifier for f in files if f.verifier is not None}
    heads, problems = [], []
    for path in paths:
        if not verifiers:
            read_note(path)  # an unreadable file is still bad input
            problems.append(
                f"{path}: no file carries a transparency proof to check it against (Content Credentials stripped, "
                "untrusted, or made before the log)"
            )
            continue
        try:
            checkpoint, _ = open_checkpoint(read_note(path), verifiers)
        except NoteError as error:
            if type(error) is NoteError:
                raise BadInput(f"{path}: not a checkpoint ({error})") from None
            problems.append(f"{path}: not signed by the log key any verified file names ({error})")
            continue
        heads.append(Head(str(path), checkpoint.origin, checkpoint.size, checkpoint.root))
    return heads, problems


def read_proof(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PROOF_BYTES + 1)
        if len(data) > MAX_PROOF_BYTES:
            raise ValueError(f"larger than {MAX_PROOF_BYTES} bytes")
        proof = json.loads(data)
        if not isinstance(proof, dict) or proof.get("type") not in (INCLUSION_TYPE, CONSISTENCY_TYPE):
            raise ValueError("not a faceswap inclusion or consistency proof")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise BadInput(f"{path}: not a readable proof ({error})") from None
    return proof


def trace(files: list[FileProof], checkpoints: list[Path], proofs: list[Path]) -> Trace:
    """Everything the files, checkpoints and proofs establish together; see the module's docstring."""
    result = Trace([f for f in files if f.state == PROVEN])
    result.checkpoints, result.problems = read_checkpoints(checkpoints, result.files)
    verifiers = {f.verifier for f in result.files if f.verifier is not None}
    for path in proofs:
        _apply_proof(result, str(path), read_proof(path), verifiers)
    heads = [f.head for f in result.files if f.head is not None] + result.checkpoints
    _equal_sizes(result, heads)
    _shared_subtrees(result)
    _link_files_and_checkpoints(result)
    return result


def _apply_proof(result: Trace, source: str, proof: dict[str, Any], verifiers: set[NoteVerifier]) -> None:
    """A proof from the log: its own checkpoint must be signed by the log key; what it proves
    becomes edges between heads, and a leaf it shows at a file's index must be that file's."""
    try:
        checkpoint, _ = open_checkpoint(str(proof["checkpoint"]), verifiers)
        head = Head(f"{source}'s checkpoint", checkpoint.origin, checkpoint.size, checkpoint.root)
        if proof["type"] == CONSISTENCY_TYPE:
            old_size, old_root = int(proof["old_size"]), base64.b64decode(proof["old_root"], validate=True)
            verify_consistency(old_size, head.size, old_root, head.root, _hashes(proof["consistency_path"]))
            result.edges.add(((head.origin, old_size, old_root), head.key))
            return
        index, leaf = int(proof["leaf_index"]), leaf_hash_of(str(proof["leaf"]))
        path = _hashes(proof["inclusion_path"])
        verify_inclusion(index, head.size, leaf, path, head.root)
    except NoteError as error:
        result.problems.append(f"{source}: its checkpoint is not signed by the log key the files name ({error})")
        return
    except (ProofError, ValueError, TypeError, KeyError, binascii.Error) as error:
        result.problems.append(f"{source}: the proof does not verify ({error})")
        return
    for file in result.files:
        if file.head is not None and file.head.origin == head.origin and file.leaf_index == index:
            _file_in_head(result, file, head, leaf, left_siblings(index, head.size, path))


def _file_in_head(result: Trace, file: FileProof, head: Head, leaf: bytes, siblings: list[bytes]) -> None:
    assert file.head is not None
    if leaf != file.leaf_hash:
        result.links.append(
            Link(
                file.source,
                head.source,
                "forked",
                f"the log's leaf {file.leaf_index} is another entry than this file's: its entry was removed or "
                f"replaced after its checkpoint (tree size {file.head.size}) was signed",
            )
        )
    elif siblings != list(file.path):
        result.links.append(
            Link(
                file.source,
                head.source,
                "forked",
                "the entries before this file's differ from those its checkpoint committed to: the log was rewritten",
            )
        )
    else:
        result.edges.add((file.head.key, head.key))


def _equal_sizes(result: Trace, heads: list[Head]) -> None:
    """Two signed heads of one log and one size with different roots are a rewrite, proven."""
    for i, a in enumerate(heads):
        for b in heads[i + 1 :]:
            if a.origin == b.origin and a.size == b.size and a.root != b.root:
                result.links.append(
                    Link(a.source, b.source, "forked", f"two signed heads of tree size {a.size} with different roots")
                )


def _blocks(file: FileProof) -> dict[tuple[int, int], bytes]:
    """The complete subtrees a file's proof reveals: those partitioning leaves [0, index), its leaf,
    and what merging them towards the right gives (the partition of [0, size))."""
    assert file.leaf_index is not None and file.leaf_hash is not None
    blocks, start = {}, 0
    for width_bits, digest in zip(_widths(file.leaf_index), reversed(file.path), strict=True):
        blocks[(start, 1 << width_bits)] = digest
        start += 1 << width_bits
    run = [(file.leaf_index, 1, file.leaf_hash)]
    for (begin, width), digest in sorted(blocks.items(), reverse=True):
        top = run[-1]
        if width == top[1] and begin + width == top[0]:
            run.append((begin, width * 2, node_hash(digest, top[2])))
    return {**blocks, **{(b, w): d for b, w, d in run}}


def _widths(index: int) -> list[int]:
    return [bit for bit in range(index.bit_length() - 1, -1, -1) if index >> bit & 1]


def _shared_subtrees(result: Trace) -> None:
    """Complete subtrees both files reveal must agree: a difference proves a rewrite."""
    for i, a in enumerate(result.files):
        for b in result.files[i + 1 :]:
            if a.head is None or b.head is None or a.head.origin != b.head.origin:
                continue
            ours, theirs = _blocks(a), _blocks(b)
            differ = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
            if differ:
                start, width = differ[0]
                result.links.append(
                    Link(
                        a.source,
                        b.source,
                        "forked",
                        f"they disagree on entries {start + 1}..{start + width}: "
                        "the log was rewritten between their checkpoints",
                    )
                )


def _link_files_and_checkpoints(result: Trace) -> None:
    """Each file against each checkpoint given (must be linked), and the files among themselves."""
    forked = {(link.a, link.b) for link in result.links if link.status == "forked"}
    for file in result.files:
        assert file.head is not None
        for checkpoint in result.checkpoints:
            if (file.source, checkpoint.source) in forked or (checkpoint.source, file.source) in forked:
                continue
            link = _relate(result, file.head, checkpoint)
            link.required = True
            result.links.append(link)
    for i, a in enumerate(result.files):
        for b in result.files[i + 1 :]:
            if (a.source, b.source) not in forked and a.head and b.head and a.head.origin == b.head.origin:
                result.links.append(_relate(result, a.head, b.head))


def _relate(result: Trace, a: Head, b: Head) -> Link:
    if a.origin != b.origin:
        return Link(a.source, b.source, "unproven", f"{b.source} is a checkpoint of another log ({b.origin})")
    small, big = (a, b) if a.size <= b.size else (b, a)
    if result.extends(small, big):
        return Link(a.source, b.source, "linked", f"{big.describe()} extends {small.describe()}")
    shared = [h for h in _all_heads(result) if result.extends(small, h) and result.extends(big, h)]
    if shared:
        return Link(a.source, b.source, "linked", f"both lie on the history of {shared[0].describe()}")
    need = "`faceswap ledger prove SEQ`" if small is a else "`faceswap ledger consistency`"
    return Link(
        a.source,
        b.source,
        "unproven",
        f"no proof links tree size {small.size} to tree size {big.size}; the log gives one ({need}, --proof FILE)",
    )


def _all_heads(result: Trace) -> list[Head]:
    keys = {key for edge in result.edges for key in edge}
    return [Head(f"the head of tree size {size}", origin, size, root) for origin, size, root in sorted(keys)]
