"""C2SP signed notes and checkpoints against the published examples: golang.org/x/mod/sumdb/note's
test key and signature (note_test.go, BSD licence) and the signed-note spec's example (c2sp.org)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from faceswap.ledger.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint, open_note, sign_note

# golang.org/x/mod sumdb/note/note_test.go (TestSign, TestOpen)
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
# c2sp.org/signed-note, "Example"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def _peter_private() -> Ed25519PrivateKey:
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_signing_reproduces_the_published_signature():
    private = _peter_private()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert NoteVerifier("PeterNeumann", public).vkey == PETER_VKEY
    assert sign_note(TEXT, "PeterNeumann", public, private.sign) == TEXT + "\n" + PETER_SIG


def test_published_notes_open_with_their_keys():
    peter, enoch = NoteVerifier.from_vkey(PETER_VKEY), NoteVerifier.from_vkey(ENOCH_VKEY)
    assert open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter]).signed_by == (PETER_VKEY,)
    assert open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter, enoch]).signed_by == (PETER_VKEY, ENOCH_VKEY)
    assert open_note(SPEC_NOTE, [NoteVerifier.from_vkey(SPEC_VKEY)]).text == "This is an example message.\n"


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],  # a known key's signature that fails
        TEXT.replace("answer", "solution") + "\n" + PETER_SIG,  # the text was changed
        TEXT + "\n" + ENOCH_SIG,  # signed only by a key we do not know
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_unknown_or_forged_notes_are_refused(note):
    with pytest.raises(NoteError):
        open_note(note, [NoteVerifier.from_vkey(PETER_VKEY)])


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys_are_refused(vkey):
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(vkey)


def test_checkpoints_round_trip_and_are_strict():
    spec = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.parse(spec)
    assert (checkpoint.origin, checkpoint.size, checkpoint.text) == ("example.com/behind-the-sofa", 20852163, spec)
    for bad in (
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
        "origin\n12\n\n",
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    ):
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)


def test_a_checkpoint_must_be_signed_by_its_origins_key():
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    text = Checkpoint("example.com/log", 3, b"\x07" * 32).text
    note = sign_note(text, "example.com/log", public, private.sign)
    checkpoint, _ = open_checkpoint(note, [NoteVerifier("example.com/log", public)])
    assert checkpoint.size == 3 and checkpoint.root == b"\x07" * 32
    other = sign_note(text, "example.com/other", public, private.sign)
    with pytest.raises(NoteError, match="not signed by that log's key"):
        open_checkpoint(other, [NoteVerifier("example.com/other", public)])
