"""Registering, listing and revoking consent; every bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from consent_helpers import in_days, registration, store_at

from faceswap.cli import main
from faceswap.consent.records import schema_errors
from faceswap.errors import BadInput
from faceswap.faces.samples import insightface_t1


def _snapshot_files(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm", ".lock")):
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def test_registered_record_is_signed_schema_valid_and_logged(workspace_root):
    store = store_at(workspace_root)
    snapshot = store.load()
    assert not snapshot.problems
    astro = snapshot.for_subject("astro")[0]
    assert schema_errors(astro.document) == []
    assert astro.signature_valid(store.ledger.public)
    assert astro.backend == "dlib" and astro.reference_embeddings.shape == (1, 128)
    assert snapshot.status(astro) == "active"
    entries = store.ledger.find("consent.registered", record_id=astro.record_id)
    assert len(entries) == 1 and entries[0].data["record_sha256"] == astro.sha256
    assert store.verify() == []


def test_cli_register_list_show_revoke_verify(tmp_path, reference_photos, capsys):
    ws = str(tmp_path / "ws")
    args = [
        "consent",
        "register",
        "--workspace",
        ws,
        "--subject",
        "astro-cli",
        "--name",
        "Astro",
        "--reference",
        str(reference_photos["astronaut"]),
        "--purpose",
        "evaluation",
        "--expires",
        in_days(30),
        "--evidence",
        str(reference_photos["evidence"]),
        "--backend",
        "dlib",
    ]
    assert main(args) == 0
    assert "registered astro-cli-" in capsys.readouterr().out
    assert main(["consent", "list", "--workspace", ws, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["records"]
    assert [r["status"] for r in listed] == ["active"]
    assert main(["consent", "revoke", "--workspace", ws, "astro-cli", "--reason", "withdrawn"]) == 0
    capsys.readouterr()
    assert main(["consent", "show", "--workspace", ws, "astro-cli", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "revoked" and shown["revoked"]["reason"] == "withdrawn"
    assert main(["consent", "verify", "--workspace", ws]) == 0
    assert main(["ledger", "verify", "--workspace", ws]) == 0
    # a revoked subject may register again
    assert main(args) == 0


BAD_INPUTS = {
    "no face": ("noise", {}, "exactly one face, found 0"),
    "two faces": ("t1", {}, "exactly one face, found 6"),
    "missing evidence": ("astronaut", {"evidence": Path("/nonexistent/form.pdf")}, "does not exist"),
    "past expiry": ("astronaut", {"expires_at": in_days(-1)}, "not in the future"),
    "expiry too far": ("astronaut", {"expires_at": in_days(3 * 366 + 2)}, "more than 3 years"),
    "bad date": ("astronaut", {"expires_at": "next year"}, "not a date"),
    "duplicate subject": ("astronaut", {"subject_id": "astro"}, "already has an active consent record"),
    "bad slug": ("astronaut", {"subject_id": "Not A Slug"}, "must be a slug"),
    "bad purpose": ("astronaut", {"purposes": ["advertising"]}, "purpose must be one of"),
    "unreadable photo": ("text", {}, "not a readable image"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_registration_writes_nothing(workspace_root, reference_photos, tmp_path, case):
    photo_kind, overrides, message = BAD_INPUTS[case]
    overrides = dict(overrides)
    evidence = overrides.pop("evidence", reference_photos["evidence"])
    photos = {"astronaut": reference_photos["astronaut"], "t1": insightface_t1()}
    if photo_kind == "noise":
        photos["noise"] = tmp_path / "noise.png"
        cv2.imwrite(str(photos["noise"]), np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    if photo_kind == "text":
        photos["text"] = tmp_path / "photo.jpg"
        photos["text"].write_text("this is not a photo")
    before = _snapshot_files(workspace_root)
    request = registration(overrides.pop("subject_id", "newcomer"), photos[photo_kind], evidence, **overrides)
    with pytest.raises(BadInput, match=message):
        store_at(workspace_root).register(request)
    assert _snapshot_files(workspace_root) == before


def test_cli_bad_input_is_one_line_exit_2(workspace_root, reference_photos, capsys):
    code = main(
        [
            "consent",
            "register",
            "--workspace",
            str(workspace_root),
            "--subject",
            "group",
            "--name",
            "G",
            "--reference",
            str(insightface_t1()),
            "--purpose",
            "evaluation",
            "--expires",
            in_days(10),
            "--evidence",
            str(reference_photos["evidence"]),
            "--backend",
            "dlib",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t1.jpg must show exactly one face, found 6" in err[0]


def test_unknown_subject_exit_2(workspace_root, capsys):
    assert main(["consent", "show", "--workspace", str(workspace_root), "nobody"]) == 2
    assert main(["consent", "revoke", "--workspace", str(workspace_root), "nobody", "--reason", "x"]) == 2
    assert "no consent record or subject 'nobody'" in capsys.readouterr().err


def test_corrupt_json_blocks_registration_and_is_named_by_verify(workspace_root, reference_photos, capsys):
    bad = workspace_root / "consent" / "broken.json"
    bad.write_text("{ not json")
    before = _snapshot_files(workspace_root)
    with pytest.raises(BadInput, match="broken.json: corrupt JSON"):
        store_at(workspace_root).register(
            registration("newcomer", reference_photos["astronaut"], reference_photos["evidence"])
        )
    assert _snapshot_files(workspace_root) == before
    assert main(["consent", "verify", "--workspace", str(workspace_root)]) == 1
    assert "broken.json: corrupt JSON" in capsys.readouterr().out
