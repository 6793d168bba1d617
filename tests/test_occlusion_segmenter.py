"""The occlusion segmenter: consent-gated and logged like any model (its own `model.trained` entry,
safetensors, found by fingerprint), refused when altered, revoked or handed over with a pickle, and,
trained on the demo's labels, it keeps the occluder in front of the swap in a converted frame."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from conftest import private_copy
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.consent.gate import ConsentGate, ConsentRefused
from faceswap.convert.model_io import load_model
from faceswap.errors import BadInput
from faceswap.model.occlusion import load_segmenter
from faceswap.model.weights import fingerprint, read_weights
from faceswap.train_mask import MaskTrainRequest, run_mask_training
from faceswap.workspace import Workspace

CONFIG = Path(__file__).parents[1] / "configs" / "mask" / "smoke.yaml"
FAST = ["--model.resolution", "64", "--model.base", "8", "--model.depth", "3", "--trainer.enable_progress_bar", "false"]
LABELLED_SHARE = 0.6


@pytest.fixture(scope="module")
def occluded(tmp_path_factory):
    """demo-b's 3 s clip with a hand passing in front of the face, and its truth rows."""
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import make_occluded_clip
    from faceswap.faces.analyzer import FaceAnalyzer

    identities, _ = build_identities(FaceAnalyzer("dlib"))
    out = tmp_path_factory.mktemp("occluded")
    clip = make_occluded_clip(out, {i.name: i for i in identities}["demo-b"], "hand", 3.0)
    return clip, json.loads(clip.truth.read_text())["frames"]


@pytest.fixture(scope="module")
def labelled_template(tmp_path_factory, trained_template, occluded) -> Path:
    """The trained workspace ('tiny', for evaluation) with the occluded clip extracted into demo-b's
    faceset and its first 60% labelled on the frames from the truth, as `faceswap demo --occlusion` does."""
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.data.faceset import Faceset
    from faceswap.data.faceset_labels import label_faceset
    from faceswap.demo.labelling import label_frames

    clip, rows = occluded
    root = tmp_path_factory.mktemp("occlusion-ws") / "workspace"
    shutil.copytree(trained_template, root)
    store = store_at(root)
    extract(store, clip.clip, "demo-b", ExtractOptions(every=2, size=128))
    faceset = Faceset.load(root / "facesets" / "demo-b")
    frames = sorted(
        e.frame for e in faceset.faces if e.source == clip.clip.name and e.frame < LABELLED_SHARE * len(rows)
    )
    label_frames(clip.truth, frames, root.parent / "labels", clip.clip.name)
    label_faceset(store, "demo-b", root.parent / "labels")
    return root


def _train(root: Path, name: str = "mask", steps: int = 4, purpose: str = "evaluation", fast: bool = True) -> object:
    """A few steps of a tiny segmenter (fast), or the CPU preset as `faceswap demo --occlusion` runs it."""
    overrides = [*(FAST if fast else ["--trainer.enable_progress_bar", "false"]), "--trainer.max_steps", str(steps)]
    return run_mask_training(MaskTrainRequest(Workspace(root), CONFIG, "demo-a", "demo-b", purpose, name, overrides))


@pytest.fixture(scope="module")
def masked_template(tmp_path_factory, labelled_template) -> Path:
    root = tmp_path_factory.mktemp("masked-ws") / "workspace"
    shutil.copytree(labelled_template, root)
    _train(root)
    return root


@pytest.fixture
def masked(tmp_path, masked_template) -> Path:
    return private_copy(masked_template, tmp_path)


def _grant(root: Path, purpose: str = "evaluation"):
    return ConsentGate(store_at(root)).authorize("demo-a", "demo-b", purpose)


# consent and the ledger


def test_refused_without_consent_and_nothing_is_made(labelled_template, tmp_path):
    root = private_copy(labelled_template, tmp_path)
    store = store_at(root)
    entries = len(store.ledger.entries())
    store.revoke("demo-b", "withdrawn")
    with pytest.raises(ConsentRefused, match="demo-b"):
        _train(root)
    assert not (root / "models" / "mask").exists()
    assert len(store.ledger.entries()) == entries + 1  # the revocation only


def test_refused_for_a_purpose_not_consented(labelled_template, tmp_path, capsys):
    root = private_copy(labelled_template, tmp_path)
    store_at(root).revoke("demo-a", "narrowed")
    code = main(
        [
            "train-mask",
            "--workspace",
            str(root),
            "--config",
            str(CONFIG),
            "--subject-a",
            "demo-a",
            "--subject-b",
            "demo-b",
            "--purpose",
            "vfx-prototyping",
            "--name",
            "m",
            *FAST,
        ]
    )
    assert code == 1 and "demo-a" in capsys.readouterr().err
    assert not (root / "models" / "m").exists()


class RevokeAfter(pl.Callback):
    """Revokes subject B's consent after step `step`, from this process."""

    def __init__(self, root: Path, step: int) -> None:
        self.root, self.step, self.steps_after = root, step, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps_after += trainer.global_step > self.step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            store_at(self.root).revoke("demo-b", "withdrawn during training")


def test_a_revocation_while_it_trains_stops_it_with_nothing_published(labelled_template, tmp_path):
    root = private_copy(labelled_template, tmp_path)
    revoker = RevokeAfter(root, 3)
    overrides = [*FAST, "--trainer.max_steps", "400"]
    request = MaskTrainRequest(
        Workspace(root), CONFIG, "demo-a", "demo-b", "evaluation", "mask", overrides,
        checkpoint_every=2, consent_check_seconds=0.2, callbacks=[revoker],
    )  # fmt: skip
    with pytest.raises(ConsentRefused, match="revoked"):
        run_mask_training(request)
    assert revoker.steps_after == 0  # step 4's checkpoint re-checked consent at the latest; step 5 never ran
    assert not (root / "models" / "mask" / "model.safetensors").exists()
    assert not (root / "models" / "mask" / "checkpoints").exists()  # step 2's, made before the revocation, went too
    assert not (root / "staging").exists() or list((root / "staging").iterdir()) == []
    assert not [e for e in store_at(root).ledger.entries("model.trained") if e.data.get("model_type") == "occlusion"]


def test_its_own_signed_entry_names_its_weights_labels_and_consent(masked):
    store = store_at(masked)
    [entry] = [e for e in store.ledger.entries("model.trained") if e.data.get("model_type") == "occlusion"]
    state, hparams, path = read_weights(masked / "models" / "mask")
    assert path.name == "model.safetensors" and entry.data["fingerprint"] == fingerprint(state)
    assert entry.data["subjects"] == {"a": "demo-a", "b": "demo-b"} and entry.data["purpose"] == "evaluation"
    grant = _grant(masked)
    assert entry.data["consent_record_ids"] == grant.record_ids
    labels = entry.data["labels"]["demo-b"]
    assert labels["labelled_crops"] >= 10 and len(labels["labels_sha256"]) == 64
    assert entry.data["alignment"] == "whole-face-eyes-nose" and hparams["resolution"] == 64
    segmenter = load_segmenter(store, masked / "models" / "mask", grant)
    assert segmenter.entry.seq == entry.seq and segmenter.resolution == 64
    info = json.loads((masked / "models" / "mask" / "model.json").read_text())
    assert info["model_type"] == "occlusion" and info["ledger_seq"] == entry.seq


def test_a_segmenter_is_not_a_swap_model_and_the_other_way_round(masked):
    store = store_at(masked)
    with pytest.raises(BadInput, match="segmenter, not a swap model"):
        load_model(store, masked / "models" / "mask")
    with pytest.raises(BadInput, match="not an occlusion segmenter"):
        load_segmenter(store, masked / "models" / "tiny", _grant(masked))
    with pytest.raises(BadInput, match="holds a swap model"):
        _train(masked, name="tiny")


def test_edited_weights_are_not_the_logged_segmenter(masked):
    from safetensors.torch import load_file, save_file

    path = masked / "models" / "mask" / "model.safetensors"
    state = load_file(str(path))
    name = sorted(state)[0]
    state[name] = state[name] + 0.01
    save_file(state, str(path))
    with pytest.raises(ConsentRefused, match="no model.trained ledger entry"):
        load_segmenter(store_at(masked), masked / "models" / "mask", _grant(masked))


def test_revoked_consent_or_another_purpose_refuses_the_segmenter(masked):
    store = store_at(masked)
    with pytest.raises(ConsentRefused, match="purpose"):
        load_segmenter(store, masked / "models" / "mask", _grant(masked, "dubbing-research"))
    grant = _grant(masked)
    store.revoke("demo-a", "withdrawn")
    with pytest.raises(ConsentRefused):
        load_segmenter(store, masked / "models" / "mask", grant)


class Payload:
    """Unpickling this runs a command: what a hostile model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("file_name", ["model.pt", "model.safetensors"])
def test_a_model_folder_with_a_pickle_does_not_run_code(masked, tmp_path, file_name):
    folder = tmp_path / "handed-over"
    folder.mkdir()
    marker = tmp_path / "ran"
    (folder / file_name).write_bytes(pickle.dumps({"state_dict": Payload(marker), "hparams": {}}))
    (folder / "model.json").write_text(json.dumps({"model_type": "occlusion", "fingerprint": "0" * 64}))
    with pytest.raises(BadInput, match="nothing in it was run|not a readable safetensors"):
        load_segmenter(store_at(masked), folder, _grant(masked))
    assert not marker.exists()
    code = main(
        [
            "convert",
            "--workspace",
            str(masked),
            "--model",
            str(masked / "models" / "tiny"),
            "--input",
            str(tmp_path / "none.png"),
            "--output",
            str(tmp_path / "o.png"),
            "--mask",
            "occlusion",
            "--mask-model",
            str(folder),
        ]
    )
    assert code == 2 and not marker.exists()


def test_labels_edited_by_hand_or_too_few_are_refused_by_training(labelled_template, tmp_path):
    root = private_copy(labelled_template, tmp_path)
    index = root / "facesets" / "demo-b" / "labels" / "labels.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(BadInput, match="no ledger entry"):
        _train(root)
    shutil.rmtree(index.parent)
    with pytest.raises(BadInput, match="needs at least"):
        _train(root)


def test_mask_options_are_checked_before_anything_is_read(masked, tmp_path, capsys):
    model = str(masked / "models" / "tiny")
    base = [
        "convert",
        "--workspace",
        str(masked),
        "--model",
        model,
        "--input",
        str(tmp_path / "x.png"),
        "--output",
        str(tmp_path / "o.png"),
    ]
    assert main([*base, "--mask", "occlusion"]) == 2
    assert "needs --mask-model" in capsys.readouterr().err
    assert main([*base, "--mask-model", str(masked / "models" / "mask")]) == 2
    assert main([*base, "--mask", "mouth+occlusion", "--mask-model", str(masked / "models" / "mask")]) == 2
    assert "x.png" in capsys.readouterr().err  # the options passed; the missing input is what stopped it


# what it does


def occluder_kept(source: np.ndarray, output: np.ndarray, row: dict, tolerance: int = 12) -> float:
    from faceswap.eval.occlusion import truth_masks

    face, occluder = truth_masks(row, source.shape[:2])
    covered = face & occluder
    diff = np.abs(output.astype(np.int16) - source.astype(np.int16)).max(axis=2)
    return float((diff[covered] <= tolerance).mean())


@pytest.mark.slow
def test_a_segmenter_trained_on_the_demo_labels_keeps_the_occluder_in_a_converted_frame(
    labelled_template, occluded, tmp_path
):
    from faceswap.eval.occlusion import truth_masks
    from faceswap.media import iter_video_frames, read_image
    from faceswap.synthetic import write_input_image

    clip, rows = occluded
    root = private_copy(labelled_template, tmp_path)
    _train(root, steps=300, fast=False)
    held_out = max(
        range(int(0.75 * len(rows)), len(rows)), key=lambda i: np.logical_and(*truth_masks(rows[i], (480, 640))).sum()
    )  # never labelled: the frame where the hand covers most of the face
    frame = next(f.image for f in iter_video_frames(clip.clip) if f.index == held_out)
    source = write_input_image(tmp_path / "frame.png", frame)
    outputs = {}
    for mask in ("full", "occlusion"):
        extra = ["--mask-model", str(root / "models" / "mask")] if mask == "occlusion" else []
        output = tmp_path / f"{mask}.png"
        assert (
            main(
                [
                    "convert",
                    "--workspace",
                    str(root),
                    "--model",
                    str(root / "models" / "tiny"),
                    "--input",
                    str(source),
                    "--output",
                    str(output),
                    "--mask",
                    mask,
                    *extra,
                ]
            )
            == 0
        )
        outputs[mask] = read_image(output)
    kept = {mask: occluder_kept(frame, image, rows[held_out]) for mask, image in outputs.items()}
    assert kept["full"] < 0.6  # the swap paints over the hand
    assert kept["occlusion"] >= 0.95  # the hand stays in front
    entry = store_at(root).ledger.entries("output.written")[-1]
    assert entry.data["settings"]["mask"] == "occlusion" and entry.data["settings"]["mask_model"] == "mask"
    face, occluder = truth_masks(rows[held_out], (480, 640))
    swapped = np.abs(outputs["occlusion"].astype(np.int16) - frame.astype(np.int16)).max(axis=2) > 12
    assert swapped[face & ~occluder].mean() > 0.3  # the visible face is still swapped


@pytest.mark.slow
def test_dub_keeps_a_microphone_in_front_of_the_actors_mouth(tmp_path, facesets_template, demo_subjects):
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.data.faceset import Faceset
    from faceswap.data.faceset_labels import label_faceset
    from faceswap.demo.faces import build_identities
    from faceswap.demo.labelling import label_frames
    from faceswap.demo.subjects import dub_pair_paths, make_occluded_clip
    from faceswap.eval.occlusion import truth_masks
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.media import iter_video_frames
    from faceswap.train import TrainRequest, run_training

    root = private_copy(facesets_template, tmp_path)
    identities, _ = build_identities(FaceAnalyzer("dlib"))
    plate = make_occluded_clip(tmp_path / "subjects", {i.name: i for i in identities}["demo-a"], "microphone", 3.0, 1)
    rows = json.loads(plate.truth.read_text())["frames"]
    store = store_at(root)
    extract(store, plate.clip, "demo-a", ExtractOptions(every=2, size=128))
    faceset = Faceset.load(root / "facesets" / "demo-a")
    frames = sorted(e.frame for e in faceset.faces if e.source == plate.clip.name and e.frame < 0.6 * len(rows))
    label_frames(plate.truth, frames, tmp_path / "labels", plate.clip.name)
    label_faceset(store, "demo-a", tmp_path / "labels")
    _train(root, steps=300, purpose="dubbing-research", fast=False)
    steps = ["--trainer.max_steps", "30", "--trainer.enable_progress_bar", "false", "--data.face_type", "lower"]
    config = Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml"
    run_training(TrainRequest(Workspace(root), config, "demo-a", "demo-b", "dubbing-research", "dubber", steps))
    performance = dub_pair_paths(demo_subjects[0]["demo-a"].folder.parent).performance
    outputs = {}
    for mask in ("region", "occlusion"):
        extra = ["--mask", "occlusion", "--mask-model", str(root / "models" / "mask")] if mask == "occlusion" else []
        outputs[mask] = tmp_path / f"dub-{mask}.mp4"
        assert (
            main(
                [
                    "dub",
                    "--workspace",
                    str(root),
                    "--model",
                    str(root / "models" / "dubber"),
                    "--plate",
                    str(plate.clip),
                    "--performance",
                    str(performance),
                    "--output",
                    str(outputs[mask]),
                    *extra,
                ]
            )
            == 0
        )
    held = range(int(0.7 * len(rows)), len(rows))
    changed = {mask: [0, 0] for mask in outputs}  # occluder-on-face pixels changed, face pixels changed
    source = {f.index: f.image for f in iter_video_frames(plate.clip) if f.index in held}
    for mask, path in outputs.items():
        for f in iter_video_frames(path):
            if f.index in held:
                face, occluder = truth_masks(rows[f.index], (480, 640))
                diff = np.abs(f.image.astype(np.int16) - source[f.index].astype(np.int16)).max(axis=2) > 12
                changed[mask][0] += int(diff[face & occluder].sum())
                changed[mask][1] += int(diff[face & ~occluder].sum())
    assert changed["region"][0] > 500  # without the mask the dubbed mouth covers part of the microphone
    assert changed["occlusion"][0] <= 0.1 * changed["region"][0]
    assert changed["occlusion"][1] > 0.5 * changed["region"][1]  # the mouth is still dubbed around it
    entry = store_at(root).ledger.entries("output.written")[-1]
    assert entry.data["producer"] == "dub" and entry.data["settings"]["mask"] == "occlusion"


def test_training_can_leave_the_occluders_out_of_the_loss(masked):
    from faceswap.data.datamodule import FaceSamples
    from faceswap.data.faceset import Faceset
    from faceswap.train import TrainRequest, run_training

    faceset = Faceset.load(masked / "facesets" / "demo-b")
    faceset.faces = faceset.faces[:3]

    def hidden_left_half(crop: np.ndarray) -> np.ndarray:
        visible = np.ones(crop.shape[:2], np.float32)
        visible[:, : crop.shape[1] // 2] = 0.0
        return visible

    plain, masked_out = FaceSamples.load(faceset, 64), FaceSamples.load(faceset, 64, visible=hidden_left_half)
    assert plain.weight[:, :, :30].max() > 0 and masked_out.weight[:, :, :30].max() == 0
    assert masked_out.priority[:, :, :30].max() == 0
    np.testing.assert_array_equal(masked_out.weight[:, :, 34:], plain.weight[:, :, 34:])
    config = Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml"
    request = TrainRequest(
        Workspace(masked), config, "demo-a", "demo-b", "evaluation", "with-mask",
        ["--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"], masked / "models" / "mask",
    )  # fmt: skip
    result = run_training(request)
    entry = store_at(masked).ledger.entries("model.trained")[-1]
    segmenter = load_segmenter(store_at(masked), masked / "models" / "mask", _grant(masked))
    assert entry.seq == result.ledger_seq and entry.data["occlusion_model"]["fingerprint"] == segmenter.fingerprint
    other = TrainRequest(
        Workspace(masked), config, "demo-a", "demo-b", "dubbing-research", "other",
        ["--trainer.max_steps", "2"], masked / "models" / "mask",
    )  # fmt: skip
    with pytest.raises(ConsentRefused, match="purpose"):
        run_training(other)  # a segmenter made under another purpose is not this run's
    assert not (masked / "models" / "other" / "model.safetensors").exists()
