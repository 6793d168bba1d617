"""The watermark secret: created with the workspace's keys, pinned by commitment in the ledger, rotated,
carried to other workspaces and verifiers only as the operator chooses, never made twice."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from media_helpers import panning_frames

from faceswap.cli import main
from faceswap.errors import CheckFailed
from faceswap.ledger import Ledger, RegistrarKey, ledger_backend, open_ledger, watermark_keys
from faceswap.ledger.witness import Witness
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import FALSE_POSITIVE_BOUND, Watermarker
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="test")


def _verify(capsys, root, *paths) -> tuple[int, list[dict]]:
    code = main(["verify", *map(str, paths), "--workspace", str(root), "--json"])
    return code, json.loads(capsys.readouterr().out)["files"]


def test_a_new_workspace_gets_a_private_secret_the_ledger_pins_by_commitment_only(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    ledger = open_ledger(workspace)
    (secret_file,) = watermark_keys.folder(workspace.keys_dir).iterdir()
    assert secret_file.stat().st_mode & 0o777 == 0o600 and secret_file.parent.stat().st_mode & 0o777 == 0o700
    secret = base64.b64decode(secret_file.read_bytes().strip())
    (pin,) = watermark_keys.pins(ledger.entries())
    assert pin.seq == 1 and pin.commitment == watermark_keys.commitment_of(secret) and secret_file.stem == pin.key_id
    rows = "".join(e.body for e in ledger.entries())
    assert secret.hex() not in rows and base64.b64encode(secret).decode() not in rows


def test_derived_keys_are_separate_per_label_and_never_the_public_constant(tmp_path):
    keys = watermark_keys.load(open_ledger(Workspace(tmp_path / "ws")).entries(), tmp_path / "ws" / "keys")
    tiles_key = keys.derive(watermark_keys.TILES_LABEL)
    assert len(tiles_key) == 32 and tiles_key != tiles.KEY and tiles_key != keys.derive(b"faceswap/model/some-model")
    assert keys.derive(b"x") == keys.active.derive(b"x")


def test_an_older_workspace_gets_its_secret_on_first_need_and_keeps_it(tmp_path):
    """A ledger from before watermark secrets: the first sink makes one and pins it in a signed entry."""
    workspace = Workspace(tmp_path / "ws").ensure()
    key = RegistrarKey.generate()
    key.install(workspace.keys_dir)
    Ledger(ledger_backend(workspace), key, Witness(workspace.state_dir)).write_genesis("made before watermark secrets")
    first = OutputSink.for_workspace(workspace)
    second = OutputSink.for_workspace(workspace)
    pins = watermark_keys.pins(first.ledger.entries())
    assert len(pins) == 1 and first.marks.key_id == second.marks.key_id == pins[0].key_id
    kinds = [e.kind for e in first.ledger.entries()]
    assert kinds.count("watermark.key") == 1 and kinds[pins[0].seq - 1] == "watermark.key"


def test_rotation_marks_new_outputs_with_the_new_secret_and_old_ones_still_verify(tmp_path, capsys):
    root = tmp_path / "ws"
    before = OutputSink.for_workspace(Workspace(root)).write_image(tmp_path / "before.png", panning_frames(1)[0], CONTEXT)
    assert main(["keys", "rotate", "--workspace", str(root)]) == 0
    assert "watermark secret rotated" in capsys.readouterr().out
    after = OutputSink.for_workspace(Workspace(root)).write_image(tmp_path / "after.png", panning_frames(2)[1], CONTEXT)
    old_id, new_id = before.entry.data["watermark"]["key_id"], after.entry.data["watermark"]["key_id"]
    assert old_id != new_id and len(list(watermark_keys.folder(Workspace(root).keys_dir).glob("*.secret"))) == 2
    for written, key_id in ((before, old_id), (after, new_id)):
        shared = tmp_path / f"shared-{key_id}.jpg"
        import cv2

        cv2.imwrite(str(shared), cv2.imread(str(written.path)), [cv2.IMWRITE_JPEG_QUALITY, 80])  # credentials gone
        code, (verdict,) = _verify(capsys, root, shared)
        assert code == 0 and verdict["detection"]["key_id"] == key_id and verdict["ledger_seq"] == written.entry.seq


def test_a_missing_secret_is_never_replaced_and_marks_nothing(tmp_path, capsys):
    root = tmp_path / "ws"
    written = OutputSink.for_workspace(Workspace(root)).write_image(tmp_path / "a.png", panning_frames(1)[0], CONTEXT)
    shutil.rmtree(watermark_keys.folder(Workspace(root).keys_dir))
    with pytest.raises(CheckFailed, match="import-watermark"):
        OutputSink.for_workspace(Workspace(root))
    assert not watermark_keys.folder(Workspace(root).keys_dir).exists()
    code, (verdict,) = _verify(capsys, root, written.path)  # its credentials still name it, unchanged
    assert code == 0 and verdict["matched_by"] == "credentials" and not verdict["marked"]
    assert verdict["unreadable_keys"] == [written.entry.data["watermark"]["key_id"]]


def test_a_secret_file_that_does_not_match_its_commitment_is_not_used(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    ledger = open_ledger(workspace)
    (secret_file,) = watermark_keys.folder(workspace.keys_dir).iterdir()
    secret_file.write_bytes(base64.b64encode(b"\x01" * 32) + b"\n")
    keys = watermark_keys.load(ledger.entries(), workspace.keys_dir)
    assert keys.keys == () and keys.missing == (secret_file.stem,)
    with pytest.raises(CheckFailed, match="not in keys/watermark"):
        OutputSink.for_workspace(workspace)


def test_a_bundle_restores_the_pinned_secret_and_a_strangers_is_refused(tmp_path, capsys):
    root, other = tmp_path / "ws", tmp_path / "other"
    OutputSink.for_workspace(Workspace(root))
    open_ledger(Workspace(other))
    bundle, strangers = tmp_path / "bundle.jsonl", tmp_path / "strangers.jsonl"
    assert main(["ledger", "export", str(bundle), "--with-watermark-keys", "--workspace", str(root)]) == 0
    assert main(["ledger", "export", str(strangers), "--with-watermark-keys", "--workspace", str(other)]) == 0
    shutil.rmtree(watermark_keys.folder(Workspace(root).keys_dir))
    capsys.readouterr()
    assert main(["keys", "import-watermark", str(strangers), "--workspace", str(root)]) == 1
    assert "not pinned" in capsys.readouterr().err
    assert main(["keys", "import-watermark", str(bundle), "--workspace", str(root)]) == 0
    OutputSink.for_workspace(Workspace(root))  # marks again, with the same secret


def test_a_plain_export_carries_no_secret(tmp_path):
    root = tmp_path / "ws"
    OutputSink.for_workspace(Workspace(root))
    assert main(["ledger", "export", str(tmp_path / "plain.jsonl"), "--workspace", str(root)]) == 0
    header = json.loads((tmp_path / "plain.jsonl").read_text().splitlines()[0])
    assert "watermark_keys" not in header
    secret = (next(watermark_keys.folder(Workspace(root).keys_dir).iterdir())).read_text().strip()
    assert secret not in (tmp_path / "plain.jsonl").read_text()


def test_reading_with_several_keys_keeps_the_files_false_positive_bound(t1_image, astronaut_image):
    """Each key tried splits the sync budget, so the bound per file does not grow with rotations."""
    keys = tuple(watermark_keys.WatermarkKey.generate() for _ in range(3))
    pinned = watermark_keys.WatermarkKeys(keys, keys[-1].key_id)
    reader = Watermarker.reading(pinned)
    found = reader.detect([astronaut_image])
    tiles_layers = [e for e in found.layers if e.layer == "tiles"]
    assert len(tiles_layers) == 4 and not found.marked  # 3 secrets and the public key, nothing found
    assert found.false_positive_bound <= FALSE_POSITIVE_BOUND
    assert all(e.threshold > tiles.z_threshold(e.tries) for e in tiles_layers)
    marked = Watermarker.marking(watermark_keys.WatermarkKeys(keys[:1], keys[0].key_id)).embed([t1_image], 77)[0]
    assert reader.detect([marked]).key_id == keys[0].key_id


def test_workspaces_on_one_postgresql_ledger_share_its_one_secret(postgres_url, tmp_path, capsys):
    """Every workspace appending to a shared ledger holds its registrar key (a copy of keys/) and with it
    the one pinned watermark secret: each reads the others' outputs. A workspace given keys/ without
    the secret refuses to mark until it is imported from a bundle."""
    import cv2

    first, second, third = (Workspace(tmp_path / name, postgres_url) for name in ("a", "b", "c"))
    made_first = OutputSink.for_workspace(first).write_image(tmp_path / "a.png", panning_frames(1)[0], CONTEXT)
    shutil.copytree(first.keys_dir, second.keys_dir)
    made_second = OutputSink.for_workspace(second).write_image(tmp_path / "b.png", panning_frames(2)[1], CONTEXT)
    assert made_first.entry.data["watermark"] == made_second.entry.data["watermark"]
    for written, reader in ((made_first, second), (made_second, first)):
        shared = tmp_path / f"shared-{written.path.stem}.jpg"
        cv2.imwrite(str(shared), cv2.imread(str(written.path)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        code = main(["verify", str(shared), "--workspace", str(reader.root), "--ledger-url", postgres_url, "--json"])
        assert code == 0 and json.loads(capsys.readouterr().out)["files"][0]["ledger_seq"] == written.entry.seq
    shutil.copytree(first.keys_dir, third.keys_dir, ignore=shutil.ignore_patterns(watermark_keys.FOLDER))
    with pytest.raises(CheckFailed, match="not in keys/watermark"):
        OutputSink.for_workspace(third)
    bundle = tmp_path / "bundle.jsonl"
    assert main(["ledger", "export", str(bundle), "--with-watermark-keys", "--workspace", str(first.root),
                 "--ledger-url", postgres_url]) == 0  # fmt: skip
    assert main(["keys", "import-watermark", str(bundle), "--workspace", str(third.root),
                 "--ledger-url", postgres_url]) == 0  # fmt: skip
    assert OutputSink.for_workspace(third).marks.key_id == made_first.entry.data["watermark"]["key_id"]
