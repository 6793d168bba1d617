"""The model marks its own faces (faceswap/model/mark.py): a copied model folder run by hand, with no
sink, no frame watermark and no entry, renders faces that `verify` reads for the model's mark; an
unmarked twin's faces and faces no model made are not traced, and the bound holds on them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceswap.cli import main
from faceswap.faces.align import Alignment, align_face, paste_back
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.ledger import open_ledger, watermark_keys
from faceswap.media import iter_video_frames
from faceswap.model import mark
from faceswap.model.networks import ModelConfig, build_network
from faceswap.model.weights import read_weights
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace


def _crops(root: Path, subject: str, size: int = mark.SIZE) -> np.ndarray:
    """A faceset's crops, RGB in [0, 1], (N, size, size, 3)."""
    paths = sorted((root / "facesets" / subject).glob("*.png"))
    crops = [cv2.resize(cv2.imread(str(p)), (size, size), interpolation=cv2.INTER_AREA) for p in paths]
    return np.stack(crops)[..., ::-1].astype(np.float32) / 255.0


def test_an_unmarked_face_reads_as_chance_under_any_key(facesets_template):
    """The bound is the Gaussian tail only if, under a key that did not make it, a face's score is a
    standard normal: the spread computed from the face must be its readings' real spread, one face
    alone and many faces of one person summed (their readings covary; a spread that ignored that
    would make a clip of one face look sqrt(N) times more marked than it is)."""
    faces = np.concatenate([_crops(facesets_template, s) for s in ("demo-a", "demo-b")])
    alone, summed = [], []
    for i in range(100):
        key = mark.ModelMark(bytes([i]) * 32)
        soft, spread = key.read(faces)
        alone.append(key.score(soft, spread))
        summed.append(key.score(soft[:40].sum(axis=0), spread[:40].sum(axis=0))[0])
    alone = np.concatenate(alone)
    assert len(alone) >= 5000 and abs(alone.mean()) < 0.25 and 0.93 < alone.std() < 1.08  # one person's faces: few
    assert 0.75 < np.std(summed) < 1.3  # independent draws, so the mean is loose and the spread is not
    assert max(np.abs(alone).max(), np.abs(summed).max()) < mark.z_needed(1e-6)
    assert (
        mark.false_positive_bound(mark.z_needed(1e-6)) <= 1e-6 < mark.false_positive_bound(mark.z_needed(1e-6) - 0.01)
    )
    assert mark.z_needed(1e-6, trials=10) > mark.z_needed(1e-6) > 5


def test_training_and_verify_read_a_face_alike_and_a_mirror_the_same(facesets_template):
    faces = _crops(facesets_template, "demo-a")[:8]
    key = mark.ModelMark(secrets.token_bytes(32))
    from_numpy, spread = key.read(faces)
    from_torch = mark.read_torch(key, torch.from_numpy(faces).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(from_torch, from_numpy, atol=1e-4)
    mirrored, mirrored_spread = key.read(faces[:, :, ::-1])
    np.testing.assert_allclose(mirrored, from_numpy, atol=1e-4)
    np.testing.assert_allclose(mirrored_spread, spread, atol=1e-5)


def test_a_face_found_a_few_pixels_off_is_read_at_the_cut_that_puts_it_back(facesets_template):
    """Verify's keypoints land up to a few pixels from where the model rendered the face: the cuts
    must undo the offset (not double it) and read the face about as well as its exact alignment does
    (a whole-pixel offset alike; a half-pixel one through an interpolation that softens the band)."""
    key = mark.ModelMark(bytes(range(32)))
    face = _crops(facesets_template, "demo-a")[0]
    marked = np.clip(face + 0.5 * np.tensordot(key.signs, key.carriers, axes=1)[..., None], 0, 1)
    canvas = np.full((128, 128, 3), 128, np.uint8)
    canvas[32:96, 32:96] = (marked[..., ::-1] * 255).round().astype(np.uint8)
    exact = key.score(*key.read(canvas[None, 32:96, 32:96, ::-1] / 255.0))[0]
    assert exact > 4
    for dx, dy, kept in ((-3.0, 1.0, 0.99), (2.0, -1.5, 0.8)):
        z = key.score(*key.read_found(canvas, np.array([[1.0, 0.0, dx - 32], [0.0, 1.0, dy - 32]])))
        assert mark.CUTS[int(np.argmax(z))] == (-dx, -dy)
        assert z.max() > kept * exact and z[mark.CUTS.index((0.0, 0.0))] < exact / 2


def _network(folder: Path):
    state, hparams, _ = read_weights(folder)
    network = build_network(ModelConfig.from_hparams(hparams))
    network.load_state_dict(state)
    return network.eval(), hparams


def _swap_by_hand(network, hparams: dict, clip: Path, out: Path, frames: int = 12) -> Path:
    """What someone with the model folder writes in a few lines: no sink, no mark, no entry."""
    analyzer, alignment, size = FaceAnalyzer("dlib"), Alignment.parse(hparams["alignment"]), hparams["resolution"]
    written = []
    for decoded in iter_video_frames(clip, limit=frames):
        frame = decoded.image
        face = max(analyzer.analyze(frame), key=lambda f: f.bbox[2] - f.bbox[0])
        aligned = align_face(frame, face.kps5, size, alignment, face.landmarks, face.landmark_scheme)
        x = torch.from_numpy(aligned.crop[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            rgb, face_mask = network(x, "a")
        crop = (rgb[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
        written.append(paste_back(frame, crop, aligned.matrix, cv2.GaussianBlur(face_mask[0, 0].numpy(), (0, 0), 2)))
    return write_input_clip(out, written, 25, crf=28)


def _verify(capsys, root: Path, path: Path) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["verify", str(path), "--workspace", str(root), "--json"])
    return code, json.loads(capsys.readouterr().out)["files"][0]


@pytest.mark.slow
def test_a_marked_models_raw_swaps_are_read_for_it_and_nothing_unmarked_is_traced(
    trained_workspace, demo_subjects, tmp_path, capsys
):
    """A model trained with its marking stage records the mark (never the secret) in its entry, and
    its folder run by hand (H.264 at CRF 28) is traced to it by verify (z 6.85 when this was written,
    5.70 needed for 1e-6); 'tiny' (the same architecture on the same faces, trained without the
    stage) and the unconverted clip, read for the marked model too, are never named."""
    from faceswap.train import TrainRequest, run_training

    files, _ = demo_subjects
    config = Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml"
    options = ["--trainer.max_steps", "60", "--trainer.enable_progress_bar", "false", "--model.mark_decoder", "true"]
    run_training(TrainRequest(Workspace(trained_workspace), config, "demo-a", "demo-b", "evaluation", "own", options))
    entries = open_ledger(Workspace(trained_workspace), writable=False).entries("model.trained")
    tiny, own = entries[-2], entries[-1]
    assert "mark" not in tiny.data and tiny.data["hparams"]["mark_decoder"] is False
    recorded = own.data["mark"]
    assert recorded["version"] == mark.VERSION and recorded["steps"] == 60 and own.data["hparams"]["mark_decoder"]
    assert recorded["agreeing_after"] > recorded["agreeing_before"] + 8 and recorded["psnr_to_unmarked_db"] > 25
    keys = watermark_keys.load(open_ledger(Workspace(trained_workspace), writable=False).entries(), None)
    assert keys is None or keys.by_id(recorded["key_id"]) is None  # the secret stays in keys/, not the ledger

    network, hparams = _network(trained_workspace / "models" / "own")
    code, found = _verify(
        capsys, trained_workspace, _swap_by_hand(network, hparams, files["demo-b"].clip, tmp_path / "own.mp4")
    )
    reading = found["model_mark"]
    assert not found["marked"] and reading["model"] == "own" and reading["ledger_seq"] == own.seq
    assert reading["faces"] >= 6 and reading["models_tried"] == 1
    assert reading["traced"] and reading["z"] >= mark.z_needed(1e-6) and code == 3

    network, hparams = _network(trained_workspace / "models" / "tiny")
    twin = _swap_by_hand(network, hparams, files["demo-b"].clip, tmp_path / "twin.mp4")
    readings = []
    for path in (twin, files["demo-b"].clip):
        code, found = _verify(capsys, trained_workspace, path)
        readings.append(found["model_mark"])  # None: no face found (tiny's 30-step faces may not be)
        assert code == 1 and (readings[-1] is None or readings[-1]["z"] < mark.z_needed(1e-6))
    assert readings[-1] is not None and readings[-1]["faces"] >= 6 and not readings[-1]["traced"]


def test_a_crowd_costs_verify_no_more_than_a_two_shot(facesets_template):
    """Reading model marks takes about 0.03 s per face and model: a picture of many faces is read on
    its largest two, so a stranger's crowd photo cannot hold verify past its time bound."""
    from faceswap.provenance.verify import model_marks

    crops = [cv2.imread(str(p)) for p in sorted((facesets_template / "facesets" / "demo-a").glob("*.png"))[:6]]
    crowd = np.concatenate([np.concatenate(crops[:3], axis=1), np.concatenate(crops[3:], axis=1)], axis=0)
    analyzer = FaceAnalyzer("dlib")
    assert len(analyzer.analyze(crowd)) >= 4
    entry = open_ledger(Workspace(facesets_template), writable=False).entries()[-1]
    model = model_marks.MarkedModel(entry, mark.ModelMark(secrets.token_bytes(32)), Alignment("whole", "five"))
    reading = model_marks.read_model_marks([crowd], [model], analyzer.analyze)
    assert reading is not None and reading.faces == model_marks.FACES_PER_FRAME == 2
