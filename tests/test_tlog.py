"""The ledger as a transparency log, on both stores: checkpoints, inclusion and consistency proofs
through the CLI, checked with the RFC verifiers and a naive tree; a log rewritten with the
workspace's own key no longer extends its old checkpoints."""

from __future__ import annotations

import base64
import json

import pytest
from test_ledger import PostgresStorage, SqliteStorage, _cli, storage, workspace  # noqa: F401 - fixtures
from test_merkle import naive_mth

from faceswap.cli import main
from faceswap.hashing import canonical_json
from faceswap.ledger import LedgerTampered, RegistrarKey, entry_hash_of, open_ledger
from faceswap.ledger.chain import Entry, head_message
from faceswap.ledger.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from faceswap.ledger.note import Checkpoint, NoteVerifier, open_checkpoint, sign_note
from faceswap.ledger.tlog import leaf_text, origin_of
from faceswap.ledger.witness import Witness
from faceswap.workspace import default_state_dir

NOTES = 9


@pytest.fixture
def ledger(workspace):  # noqa: F811 - the fixture imported above
    led = open_ledger(workspace)
    for i in range(NOTES):
        led.append("ledger.note", {"i": i})
    return led


def _run(capsys, workspace, *args):  # noqa: F811
    code = main(_cli(workspace, *args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _verifier(led) -> NoteVerifier:
    """The log key from the genesis entry's public key, not from the code under test."""
    rows = led.entries()
    return NoteVerifier(origin_of(rows[0]), base64.b64decode(rows[0].data["public_key"]))


def _checkpoint(capsys, workspace, led, tmp_path, name="c.txt"):  # noqa: F811
    out = tmp_path / name
    code, _, _ = _run(capsys, workspace, "ledger", "checkpoint", "--out", str(out))
    assert code == 0
    checkpoint, _ = open_checkpoint(out.read_text(), [_verifier(led)])
    return out, checkpoint


def test_checkpoint_commits_to_every_entry_as_the_rfc_defines(capsys, workspace, ledger, tmp_path):  # noqa: F811
    code, out, _ = _run(capsys, workspace, "ledger", "checkpoint", "--json")
    assert code == 0
    printed = json.loads(out)
    rows = ledger.entries()
    checkpoint, _ = open_checkpoint(printed["checkpoint"], [_verifier(ledger)])
    assert checkpoint.size == len(rows) == printed["tree_size"] == NOTES + 1
    assert checkpoint.root == naive_mth([leaf_text(e).encode() for e in rows])
    assert checkpoint.origin == origin_of(rows[0]) == printed["origin"]
    assert printed["log_key"] == _verifier(ledger).vkey
    code, text, _ = _run(capsys, workspace, "ledger", "checkpoint")
    assert code == 0 and text == printed["checkpoint"]  # Ed25519 is deterministic: one head, one note


def test_every_entry_has_an_inclusion_proof_against_the_current_and_an_older_head(
    capsys,
    workspace,  # noqa: F811
    ledger,
    tmp_path,
):
    old_path, old = _checkpoint(capsys, workspace, ledger, tmp_path)
    ledger.append("ledger.note", {"after": True})
    rows = ledger.entries()
    _, current = _checkpoint(capsys, workspace, ledger, tmp_path, "now.txt")
    for seq in range(1, len(rows) + 1):
        code, out, _ = _run(capsys, workspace, "ledger", "prove", str(seq), "--json")
        assert code == 0
        proof = json.loads(out)
        assert proof["leaf"] == leaf_text(rows[seq - 1]) and Entry.from_json(proof["entry"]) == rows[seq - 1]
        path = [base64.b64decode(h) for h in proof["inclusion_path"]]
        verify_inclusion(seq - 1, current.size, leaf_hash(proof["leaf"].encode()), path, current.root)
    code, out, _ = _run(capsys, workspace, "ledger", "prove", "3", "--checkpoint", str(old_path), "--json")
    proof = json.loads(out)
    assert code == 0 and proof["tree_size"] == old.size
    path = [base64.b64decode(h) for h in proof["inclusion_path"]]
    verify_inclusion(2, old.size, leaf_hash(proof["leaf"].encode()), path, old.root)
    assert _run(capsys, workspace, "ledger", "prove", str(len(rows) + 1))[0] == 2
    assert _run(capsys, workspace, "ledger", "prove", "0")[0] == 2


def test_todays_log_extends_an_old_checkpoint(capsys, workspace, ledger, tmp_path):  # noqa: F811
    old_path, old = _checkpoint(capsys, workspace, ledger, tmp_path)
    for i in range(5):
        ledger.append("ledger.note", {"later": i})
    code, out, _ = _run(capsys, workspace, "ledger", "consistency", str(old_path), "--json")
    assert code == 0
    proof = json.loads(out)
    new, _ = open_checkpoint(proof["checkpoint"], [_verifier(ledger)])
    assert (proof["old_size"], new.size) == (old.size, old.size + 5)
    verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(h) for h in proof["consistency_path"]])
    code, out, _ = _run(capsys, workspace, "ledger", "consistency", str(old_path))
    assert code == 0 and out.startswith(f"consistent: the log at tree size {new.size} extends")


def rewrite_without(storage, led, seq: int, key: RegistrarKey) -> None:  # noqa: F811
    """What someone holding the workspace and the state folder can do: drop entry `seq`, re-chain
    and re-sign every later row and the head with the workspace's own key, forget the witness."""
    rows = led.rows()
    kept, later = rows[: seq - 1], rows[seq:]
    prev = kept[-1].entry_hash
    storage.sql("DELETE FROM ledger WHERE seq >= ?", seq)
    for offset, old in enumerate(later):
        entry_hash = entry_hash_of(prev, old.body)
        storage.sql(
            "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
            seq + offset,
            old.created_at,
            old.kind,
            old.body,
            prev,
            entry_hash,
            key.sign(entry_hash),
        )
        prev = entry_hash
    last = seq + len(later) - 1
    head = {"seq": last, "entry_hash": prev, "key_id": key.key_id, "signature": key.sign(head_message(last, prev))}
    storage.write_head(canonical_json(head))
    Witness(default_state_dir())._path(led.location).unlink(missing_ok=True)


def test_a_log_rewritten_with_its_own_key_does_not_extend_its_old_checkpoint(
    capsys,
    storage,  # noqa: F811
    workspace,  # noqa: F811
    ledger,
    tmp_path,
):
    old_path, _ = _checkpoint(capsys, workspace, ledger, tmp_path)
    rewrite_without(storage, ledger, 4, ledger.key)
    rewritten = open_ledger(workspace)
    for i in range(3):
        rewritten.append("ledger.note", {"after the rewrite": i})
    assert rewritten.verify() is None  # on its own, the re-signed ledger verifies
    code, _, err = _run(capsys, workspace, "ledger", "consistency", str(old_path))
    assert code == 1 and "the log was rewritten after that checkpoint was signed" in err
    _, new = _checkpoint(capsys, workspace, rewritten, tmp_path, "new.txt")
    old = open_checkpoint(old_path.read_text(), [_verifier(rewritten)])[0]
    proof = rewritten.tree.sync(rewritten.entries()).consistency_proof(old.size, new.size)
    with pytest.raises(ProofError):  # nor can any proof from the rewritten tree link them
        verify_consistency(old.size, new.size, old.root, new.root, proof)


def test_a_truncated_log_names_what_is_missing(capsys, storage, workspace, ledger, tmp_path):  # noqa: F811
    old_path, _ = _checkpoint(capsys, workspace, ledger, tmp_path)
    rows = ledger.rows()
    storage.sql("DELETE FROM ledger WHERE seq >= ?", len(rows) - 1)
    last = rows[-3]
    key = ledger.key
    head = {
        "seq": last.seq,
        "entry_hash": last.entry_hash,
        "key_id": key.key_id,
        "signature": key.sign(head_message(last.seq, last.entry_hash)),
    }
    storage.write_head(canonical_json(head))
    Witness(default_state_dir())._path(ledger.location).unlink(missing_ok=True)
    code, _, err = _run(capsys, workspace, "ledger", "consistency", str(old_path))
    assert code == 1 and "entries were removed since it was signed" in err


def test_checkpoints_of_other_keys_and_malformed_ones_are_refused(
    capsys,
    workspace,  # noqa: F811
    ledger,
    tmp_path,
):
    stranger = RegistrarKey.generate()
    origin = origin_of(ledger.entries()[0])
    forged = sign_note(
        Checkpoint(origin, 3, ledger.tree.sync(ledger.entries()).root(3)).text,
        origin,
        stranger.public.raw,
        lambda data: base64.b64decode(stranger.sign(data)),
    )
    (tmp_path / "forged").write_text(forged)
    code, _, err = _run(capsys, workspace, "ledger", "consistency", str(tmp_path / "forged"))
    assert code == 1 and "not one of this log's heads" in err
    (tmp_path / "junk").write_bytes(b"\xff\xfe not a note")
    assert _run(capsys, workspace, "ledger", "consistency", str(tmp_path / "junk"))[0] == 2
    assert _run(capsys, workspace, "ledger", "consistency", str(tmp_path / "absent"))[0] == 2


def test_the_tree_follows_appends_without_a_pass_over_the_ledger(workspace, monkeypatch):  # noqa: F811
    from faceswap.ledger import tlog

    led = open_ledger(workspace)
    for i in range(20):
        led.append("ledger.note", {"i": i})
    led.tree.sync(led.entries())
    computed = []
    original = tlog.leaf_text
    monkeypatch.setattr(tlog, "leaf_text", lambda entry: computed.append(entry.seq) or original(entry))
    for i in range(5):
        led.append("ledger.note", {"more": i})
    rows = led.entries()
    assert led.tree.sync(rows).root() == naive_mth([original(e).encode() for e in rows])
    assert computed == [22, 23, 24, 25, 26]  # one leaf per append, none recomputed


def test_an_entry_that_breaks_its_promised_leaf_is_not_appended(workspace):  # noqa: F811
    led = open_ledger(workspace)
    before = len(led.entries())

    def data(position):
        led.promise_leaf(position.seq, leaf_hash(b"some other leaf"))
        return {"i": 1}

    with pytest.raises(LedgerTampered, match="not the leaf its proof was signed for"):
        led.append("ledger.note", data)
    assert len(led.entries()) == before


def test_an_outputs_leaf_is_its_claim_every_other_leaf_its_entry_hash(workspace):  # noqa: F811
    led = open_ledger(workspace)
    claim = {"token": "0" * 12, "producer": "test"}
    note = led.append("ledger.note", {"claim": claim})
    output = led.append("output.written", {"claim": claim, "sha256": "ab" * 32})
    assert json.loads(leaf_text(note)) == {
        "seq": note.seq,
        "kind": "ledger.note",
        "prev_hash": note.prev_hash,
        "entry_hash": note.entry_hash,
    }
    assert json.loads(leaf_text(output)) == {
        "seq": output.seq,
        "kind": "output.written",
        "prev_hash": output.prev_hash,
        "claim": claim,
    }
