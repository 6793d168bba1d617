"""The security review's cases (issue: consent and provenance must hold against someone who edits
the workspace or hands over a model file), each with a variant."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import torch
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.consent.gate import ConsentRefused
from faceswap.convert.model_io import load_model
from faceswap.convert.pipeline import ConvertReport, convert
from faceswap.convert.settings import ConvertOptions
from faceswap.media import probe_video


class _RunsCode:
    """A pickle that runs a shell command when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _convert(root: Path, model: Path, clip: Path, output: Path, *extra: str) -> int:
    return main(
        [
            "convert",
            "--workspace",
            str(root),
            "--model",
            str(model),
            "--input",
            str(clip),
            "--output",
            str(output),
            "--json",
            *extra,
        ]
    )


def _outputs(root: Path) -> int:
    return len(store_at(root).ledger.entries("output.written"))


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("faceswap: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def model_dir(trained_workspace) -> Path:
    return trained_workspace / "models" / "tiny"


# 1. loading a model or checkpoint file never runs code


@pytest.mark.parametrize("alongside_safetensors", [False, True])
def test_pickle_payload_in_a_model_file_never_runs(
    trained_workspace, model_dir, demo_subjects, tmp_path, capsys, alongside_safetensors
):
    files, _ = demo_subjects
    marker = tmp_path / "pwned"
    handed = trained_workspace / "models" / "handed-over"
    handed.mkdir()
    torch.save({"hparams": {}, "state_dict": _RunsCode(marker)}, handed / "model.pt")
    if alongside_safetensors:  # the real weights beside a booby-trapped legacy file: only tensors are read
        shutil.copy(model_dir / "model.safetensors", handed)
    code = _convert(trained_workspace, handed, files["demo-b"].references[0], tmp_path / "out.png")
    assert not marker.exists()
    if alongside_safetensors:
        assert code == 0
    else:
        assert code == 2 and "weights-only" in _error(capsys)


def test_pickle_payload_in_a_checkpoint_never_runs_on_resume(trained_workspace, tmp_path, capsys):
    marker = tmp_path / "pwned"
    checkpoints = trained_workspace / "models" / "trap" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"global_step": 5, "state_dict": _RunsCode(marker)}, checkpoints / "last.ckpt")
    code = main(
        [
            "train",
            "--workspace",
            str(trained_workspace),
            "--config",
            str(Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml"),
            "--subject-a",
            "demo-a",
            "--subject-b",
            "demo-b",
            "--purpose",
            "evaluation",
            "--name",
            "trap",
            "--trainer.max_steps",
            "2",
        ]
    )
    assert code == 2 and not marker.exists() and "weights-only" in _error(capsys)


# 2. a model's consent comes from its signed model.trained entry, never from model.json


@pytest.mark.parametrize("lie", ["other-records", "no-records", "null-grant", "no-model-json"])
def test_model_json_cannot_change_a_models_consent(trained_workspace, model_dir, demo_subjects, tmp_path, capsys, lie):
    files, _ = demo_subjects
    copy = trained_workspace / "models" / "copied"
    copy.mkdir()
    shutil.copy(model_dir / "model.safetensors", copy)
    info = json.loads((model_dir / "model.json").read_text())
    if lie == "other-records":
        for record in info["consent_grant"]["records"]:
            record["record_id"] = "someone-else-20260101-00000000"
    elif lie == "no-records":
        info["consent_grant"]["records"] = []
    elif lie == "null-grant":
        info["consent_grant"] = None
    if lie != "no-model-json":
        (copy / "model.json").write_text(json.dumps(info))
    store = store_at(trained_workspace)
    trained_ids = store.ledger.entries("model.trained")[-1].data["consent_record_ids"]
    still = files["demo-b"].references[0]
    assert _convert(trained_workspace, copy, still, tmp_path / "ok.png") == 0
    written = store.ledger.entries("output.written")[-1]
    assert written.data["consent_record_ids"] == trained_ids  # the ledger's records, not the file's
    capsys.readouterr()
    store.revoke("demo-a", "withdrawn")
    assert _convert(trained_workspace, copy, still, tmp_path / "refused.png") == 1
    assert "revoked" in _error(capsys) and not (tmp_path / "refused.png").exists()


def test_perturbed_weights_with_a_recomputed_fingerprint_are_refused(
    trained_workspace, model_dir, demo_subjects, tmp_path, capsys
):
    from safetensors.torch import load_file, save_file

    from faceswap.model.weights import fingerprint

    files, _ = demo_subjects
    state = load_file(model_dir / "model.safetensors")
    name = sorted(state)[-1]
    state[name] = state[name] * 1.001
    save_file(state, model_dir / "model.safetensors")
    info = json.loads((model_dir / "model.json").read_text())
    info["fingerprint"] = fingerprint(state)
    (model_dir / "model.json").write_text(json.dumps(info))
    before = _outputs(trained_workspace)
    assert _convert(trained_workspace, model_dir, files["demo-b"].clip, tmp_path / "x.mp4") == 1
    assert "no model.trained ledger entry" in _error(capsys) and _outputs(trained_workspace) == before


# 3. revocation cannot be erased


@pytest.mark.parametrize("erase", ["last-row", "whole-table"])
def test_erased_revocation_stops_conversion(trained_workspace, model_dir, demo_subjects, tmp_path, capsys, erase):
    files, _ = demo_subjects
    store = store_at(trained_workspace)
    store.revoke("demo-a", "withdrawn").path.unlink()
    conn = sqlite3.connect(trained_workspace / "ledger.sqlite")
    conn.execute(
        "DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)" if erase == "last-row" else "DELETE FROM ledger"
    )
    conn.commit()
    conn.close()
    assert _convert(trained_workspace, model_dir, files["demo-b"].clip, tmp_path / "x.mp4") == 1
    assert not (tmp_path / "x.mp4").exists()
    capsys.readouterr()
    assert main(["ledger", "verify", "--workspace", str(trained_workspace)]) == 1
    assert main(["consent", "verify", "--workspace", str(trained_workspace)]) == 1


# 6. revoking during a conversion stops it: no file, no entry


@pytest.mark.parametrize("when", ["mid-run", "last-frame"])
def test_revocation_during_a_conversion_stops_it(trained_workspace, model_dir, demo_subjects, tmp_path, when):
    files, _ = demo_subjects
    clip = files["demo-b"].clip
    output = tmp_path / "racing.mp4"
    total = probe_video(clip).frames
    revoke_at = 10 if when == "mid-run" else total  # at the last frame only the in-transaction check can see it
    options = ConvertOptions(consent_check_seconds=0.01 if when == "mid-run" else 3600.0)
    revoked = threading.Event()

    def progress(done: int, _total: int) -> None:
        if done == revoke_at and not revoked.is_set():
            store_at(trained_workspace).revoke("demo-a", "withdrawn mid-conversion")
            revoked.set()

    before = _outputs(trained_workspace)
    threads = threading.active_count()
    with pytest.raises(ConsentRefused, match="revoked"):
        convert(store_at(trained_workspace), model_dir, clip, output, options, progress=progress)
    assert revoked.is_set() and not output.exists()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads  # the decoding thread stopped with the conversion
    assert not [p for p in tmp_path.iterdir() if "racing" in p.name]  # no partial file either
    entries = store_at(trained_workspace).ledger.entries()
    assert _outputs(trained_workspace) == before and entries[-1].kind == "consent.revoked"


# 8. paths


def test_output_that_is_the_input_is_refused(trained_workspace, model_dir, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    clip = tmp_path / "plate.mp4"
    shutil.copy(files["demo-b"].clip, clip)
    original = clip.read_bytes()
    assert _convert(trained_workspace, model_dir, clip, clip) == 2
    assert "overwrite an input" in _error(capsys)
    os.link(clip, tmp_path / "hardlink.mp4")
    assert _convert(trained_workspace, model_dir, clip, tmp_path / "hardlink.mp4") == 2
    capsys.readouterr()
    weights = model_dir / "model.safetensors"
    assert _convert(trained_workspace, model_dir, clip, weights.with_suffix(".png")) in (1, 2)  # not a video path
    assert clip.read_bytes() == original


@pytest.mark.parametrize(
    "target", ["consent/zz.json", "consent/zz", "keys/out.png", "ledger.head.json", "staging/out.png"]
)
def test_outputs_never_land_in_the_workspace_state(
    trained_workspace, model_dir, demo_subjects, tmp_path, capsys, target
):
    files, _ = demo_subjects
    still = files["demo-b"].references[0]
    destination = trained_workspace / target
    extra = ("--sequence", "png") if "." not in Path(target).name or target.endswith(".json") else ()
    assert _convert(trained_workspace, model_dir, files["demo-b"].clip if extra else still, destination, *extra) == 2
    assert "workspace" in _error(capsys)
    assert not destination.exists() or target == "ledger.head.json"
    assert main(["consent", "verify", "--workspace", str(trained_workspace)]) == 0  # later work is unaffected
    assert _convert(trained_workspace, model_dir, still, tmp_path / "fine.png") == 0


def test_planted_links_are_replaced_never_followed(trained_workspace, model_dir, demo_subjects, tmp_path):
    files, _ = demo_subjects
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    final = tmp_path / "out.png"
    final.symlink_to(victim)
    leftover = tmp_path / ".out.png.faceswap-partial-999999-deadbeef.png"  # a killed writer's name, as a link
    leftover.symlink_to(victim)
    assert _convert(trained_workspace, model_dir, files["demo-b"].references[0], final) == 0
    assert victim.read_text() == "precious"
    assert not final.is_symlink() and not leftover.exists() and not leftover.is_symlink()


# 9. bad options are refused before anything is written


@pytest.mark.parametrize(
    "args",
    [["--every", "0"], ["--every", "-1"], ["--size", "32"], ["--min-face", "0"]],
    ids=["every0", "every-1", "size32", "minface0"],
)
def test_bad_extract_options_exit_2_and_write_nothing(demo_workspace, demo_subjects, capsys, args):
    files, _ = demo_subjects
    code = main(
        ["extract", str(files["demo-a"].clip), "--subject", "demo-a", "--workspace", str(demo_workspace), *args]
    )
    assert code == 2 and _error(capsys)
    assert not (demo_workspace / "facesets" / "demo-a").exists()


@pytest.mark.parametrize(
    "args",
    [["--batch", "0"], ["--blur", "-0.1"], ["--erode", "-1"], ["--smoothing", "-1"], ["--alpha"]],
    ids=["batch0", "blur-", "erode-", "smoothing-", "alpha-without-sequence"],
)
def test_bad_convert_options_exit_2_and_write_nothing(
    trained_workspace, model_dir, demo_subjects, tmp_path, capsys, args
):
    files, _ = demo_subjects
    before = _outputs(trained_workspace)
    assert _convert(trained_workspace, model_dir, files["demo-b"].clip, tmp_path / "x.mp4", *args) == 2
    assert _error(capsys) and not (tmp_path / "x.mp4").exists() and _outputs(trained_workspace) == before


# 10. the library's own API: no model without consent


def test_pixels_from_the_library_api_are_marked_even_when_written_by_hand(
    trained_workspace, model_dir, demo_subjects, tmp_path, capsys
):
    """The review's 14 lines: load_model + Swapper.run + cv2.imwrite. The pixels come out marked
    with a token no ledger entry names, so verify says: made here, not logged (exit 3)."""
    import cv2

    from faceswap.convert.pipeline import Swapper
    from faceswap.convert.source import FrameIn
    from faceswap.media import iter_video_frames

    files, _ = demo_subjects
    store = store_at(trained_workspace)
    model = load_model(store, model_dir)
    references = store.load().by_id(model.grant.record_for("demo-b").record_id).reference_embeddings
    swapper = Swapper(model, references, "dlib", ConvertOptions(), 25.0)
    frames = [FrameIn(f.index, f.image) for f in iter_video_frames(files["demo-b"].clip, limit=12)]
    _, image, _ = list(swapper.run(frames, ConvertReport("", "", "")))[6]
    cv2.imwrite(str(tmp_path / "by-hand.png"), image)
    assert main(["verify", str(tmp_path / "by-hand.png"), "--workspace", str(trained_workspace), "--json"]) == 3
    verdict = json.loads(capsys.readouterr().out)["files"][0]
    assert verdict["marked"] and verdict["ledger"] == "missing"


def test_library_api_refuses_a_model_after_revocation(trained_workspace, model_dir):
    store = store_at(trained_workspace)
    model = load_model(store, model_dir)
    assert model.grant.subject_a == "demo-a" and model.entry.kind == "model.trained"
    store.revoke("demo-a", "withdrawn")
    with pytest.raises(ConsentRefused, match="revoked"):
        load_model(store_at(trained_workspace), model_dir)


# 11. an emptied or deleted ledger is never silently recreated


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_deleted_ledger_is_not_recreated(trained_workspace, model_dir, demo_subjects, tmp_path, capsys, damage):
    files, _ = demo_subjects
    ledger_path = trained_workspace / "ledger.sqlite"
    head = (trained_workspace / "ledger.head.json").read_bytes()
    if damage == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(str(ledger_path) + suffix).unlink(missing_ok=True)
    else:
        conn = sqlite3.connect(ledger_path)
        conn.execute("DELETE FROM ledger")
        conn.commit()
        conn.close()
    output = tmp_path / "out"
    assert _convert(trained_workspace, model_dir, files["demo-b"].clip, output / "x.mp4") == 1
    assert "is missing or empty; a ledger is never recreated where its key exists" in _error(capsys)
    assert not output.exists() or not any(output.iterdir())  # no output, no temporary left
    assert (trained_workspace / "ledger.head.json").read_bytes() == head  # the old signed head, not a new one
    if damage == "deleted":
        assert not ledger_path.exists()
    else:  # no genesis written into the emptied file
        conn = sqlite3.connect(ledger_path)
        assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone() == (0,)
        conn.close()
