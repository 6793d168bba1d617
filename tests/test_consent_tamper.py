"""Hand edits to consent files are caught by `consent verify`, which names each bad file."""

from __future__ import annotations

import json

import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.consent.gate import ConsentGate, ConsentRefused


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
    with pytest.raises(ConsentRefused, match="revocation file is missing"):
        ConsentGate(store_at(workspace_root)).authorize("astro", "hanks", "evaluation")


def test_deleted_record_is_caught(workspace_root, capsys):
    path = _record_path(workspace_root, "hanks")
    path.unlink()
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 1 and path.name in bad[0] and "missing" in bad[0]


def test_replaced_key_is_caught(workspace_root, capsys):
    (workspace_root / "keys" / "registrar.key").unlink()
    bad = _bad_files(workspace_root, capsys)
    assert len(bad) == 2 and all("not this workspace's registrar key" in b for b in bad)
    assert main(["ledger", "verify", "--workspace", str(workspace_root)]) == 1
    assert "seq 1" in capsys.readouterr().out


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
