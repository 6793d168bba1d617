"""Hand edits to consent files are caught by `consent verify`, which names each bad file."""

from __future__ import annotations

import json
import sqlite3

import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.consent.gate import ConsentGate, ConsentRefused
from faceswap.errors import CheckFailed
from faceswap.ledger import RegistrarKey


def _record_path(root, subject):
    return next(p for p in (root / "consent").glob(f"{subject}-*.json") if "revocation" not in p.name)


def _edit(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def _bad_files(root, capsys) -> list[str]:
    assert main(["consent", "verify", "--workspace", str(root), "--json"]) == 1
    return [p["file"].rsplit("/", 1)[-1] + ": " + p["problem"] for p in json.loads(capsys.readouterr().out)["problems"]]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(name="Someone Else"),
        lambda d: d.update(expires_at="2099-01-01"),
        lambda d: d["reference"]["embeddings"][0].__setitem__(0, 0.5),
        lambda d: d["purposes"].append("dubbing-research"),
    ],
    ids=["name", "expiry", "embedding", "purpose"],
)
def test_edited_record_is_named(workspace_root, capsys, change):
    path = _record_path(workspace_root, "astro")
    _edit(path, change)
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 1 and bad[0].startswith(path.name) and "signature does not verify" in bad[0]
    with pytest.raises(ConsentRefused, match="consent store is damaged"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")


def test_swapped_embedding_between_subjects_is_named(workspace_root, capsys):
    astro, hanks = _record_path(workspace_root, "astro"), _record_path(workspace_root, "hanks")
    stolen = json.loads(hanks.read_text())["reference"]
    _edit(astro, lambda d: d.update(reference=stolen))
    bad = _bad_files(workspace_root, capsys)
    assert [b.split(":")[0] for b in bad] == [astro.name]


def test_deleted_revocation_is_caught_and_still_refuses(workspace_root, capsys):
    store = store_at(workspace_root)
    revocation = store.revoke("astro", "withdrawn")
    revocation.path.unlink()
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 1 and revocation.path.name in bad[0] and "missing (ledger seq" in bad[0]
    with pytest.raises(ConsentRefused, match=r"was revoked \(ledger seq \d+: withdrawn\)"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")


def test_deleted_record_is_caught(workspace_root, capsys):
    path = _record_path(workspace_root, "hanks")
    path.unlink()
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 1 and path.name in bad[0] and "missing" in bad[0]


def test_deleted_key_is_never_replaced_silently(workspace_root, capsys):
    (workspace_root / "keys" / "registrar.key").unlink()
    assert main(["consent", "verify", "--workspace", str(workspace_root)]) == 1
    assert "registrar key" in capsys.readouterr().err
    assert not (workspace_root / "keys" / "registrar.key").exists()
    with pytest.raises(CheckFailed, match="is missing"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")


def test_records_re_signed_with_a_new_key_are_refused(workspace_root, capsys):
    """Replace the key and re-sign every record with it: the ledger pins the old key."""
    from faceswap.consent.records import signed_message

    new = RegistrarKey.generate()
    new.install(workspace_root / "keys", replace=True)
    for path in (workspace_root / "consent").glob("*.json"):
        _edit(path, lambda d: d.update(registrar_key_id=new.key_id))
        _edit(path, lambda d: d.update(signature=new.sign(signed_message(d))))
    assert main(["consent", "verify", "--workspace", str(workspace_root)]) == 1
    assert "restore the workspace's own key" in capsys.readouterr().err
    with pytest.raises(CheckFailed, match="restore the workspace's own key"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")
    assert main(["ledger", "verify", "--workspace", str(workspace_root)]) == 1


def test_erased_revocation_file_and_ledger_row_is_caught(workspace_root, capsys):
    """Revoke, then delete the revocation file and the ledger's last row: refused, and both verify
    commands say so."""
    store = store_at(workspace_root)
    revocation = store.revoke("astro", "withdrawn")
    revocation.path.unlink()
    conn = sqlite3.connect(workspace_root / "ledger.sqlite")
    conn.execute("DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)")
    conn.commit()
    conn.close()
    with pytest.raises(CheckFailed, match="ends at seq"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")
    assert main(["ledger", "verify", "--workspace", str(workspace_root)]) == 1
    assert main(["consent", "verify", "--workspace", str(workspace_root)]) == 1
    capsys.readouterr()


def test_revoked_in_the_ledger_shows_revoked_and_blocks_extraction(workspace_root, capsys, reference_photos):
    """A revocation whose file is gone still counts everywhere: list, show, the gate, extraction."""
    from faceswap.data.extract import ExtractOptions, extract

    store = store_at(workspace_root)
    store.revoke("astro", "withdrawn").path.unlink()
    assert main(["consent", "list", "--workspace", str(workspace_root), "--json"]) == 0
    rows = {r["subject_id"]: r for r in json.loads(capsys.readouterr().out)["records"]}
    assert rows["astro"]["status"] == "revoked" and rows["astro"]["revoked"]["ledger_seq"] is not None
    with pytest.raises(ConsentRefused, match="was revoked"):
        extract(store_at(workspace_root), reference_photos["astronaut"], "astro", ExtractOptions())
    assert not (workspace_root / "facesets" / "astro").exists()


def test_record_added_by_hand_has_no_ledger_entry(workspace_root, capsys):
    path = _record_path(workspace_root, "hanks")
    store = store_at(workspace_root)
    document = json.loads(path.read_text())
    from faceswap.consent.records import signed_message

    document["record_id"] = document["record_id"][:-8] + "00000000"
    document["signature"] = store.ledger.key.sign(signed_message(document))
    (path.parent / f"{document['record_id']}.json").write_text(json.dumps(document))
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 1 and "no consent.registered ledger entry" in bad[0]
