"""Training fidelity of a finished demo run: how near subject A its output is, and how well the model
reconstructs faces it never trained on.

    PYTHONPATH=. python scripts/bench_training_fidelity.py before=WS1 after=WS2 [--json OUT.json]

Each WS is a workspace `faceswap demo --workspace WS` filled (WS/demo/report.json). Per run:
- dlib_dist_a / dlib_dist_b: dlib's euclidean descriptor distance (raw 128-d, as face_recognition
  uses it; 0.6 is dlib's same-person line) from the output's face to subject A's and B's reference
  photos, mean over every 2nd output frame and the references;
- heldout_l1 / heldout_dssim: reconstruction of each subject's clip frames that the faceset did not
  take (the odd frames; the demo extracts every 2nd), undistorted, inside the face hull, cropped
  the way that run's own training cropped (its faceset header names the alignment);
- the demo's own eval figures (identity share and similarities, mouth correlations).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


class Dlib:
    """dlib's detector, 68-point predictor and ResNet descriptor, raw (not normalised)."""

    def __init__(self) -> None:
        import dlib

        from faceswap.faces.dlib_backend import MODEL_NAME, models_dir

        root = models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(root / "shape_predictor_68_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(root / f"{MODEL_NAME}.dat"))

    def faces(self, image_bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(centre, descriptor, 68 landmarks) of every face."""
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        out = []
        for rect in self.detector(rgb, 0):  # demo faces are ~150 px: no upsampling needed
            shape = self.shape(rgb, rect)
            descriptor = np.asarray(self.encoder.compute_face_descriptor(rgb, shape), np.float64)
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            out.append((np.array([rect.center().x, rect.center().y], np.float64), descriptor, landmarks))
        return out


def _references(dlib_models: Dlib, paths: list[str]) -> np.ndarray:
    from faceswap.media import read_image

    return np.stack([dlib_models.faces(read_image(Path(p)))[0][1] for p in paths])


def identity_distances(report: dict, dlib_models: Dlib, every: int = 2) -> dict[str, float]:
    """dlib distances of the output's face to A's and B's references, and its mouth opening against
    the clip's drawn truth."""
    from faceswap.eval.metrics import mouth_ratio
    from faceswap.media import iter_video_frames

    truth = json.loads(Path(report["subjects"]["demo-b"]["truth"]).read_text())["frames"]
    mouth_out, mouth_true = [], []
    refs = {s: _references(dlib_models, report["subjects"][s]["references"]) for s in ("demo-a", "demo-b")}
    dist_a, dist_b, nearer_a = [], [], []
    frames = zip(
        iter_video_frames(Path(report["input"]), every=every),
        iter_video_frames(Path(report["output"]), every=every),
        strict=False,
    )
    for before, after in frames:
        found = dlib_models.faces(before.image)
        if not found:
            continue
        centre_b = min(found, key=lambda f: np.linalg.norm(refs["demo-b"] - f[1], axis=1).mean())[0]
        out = [f for f in dlib_models.faces(after.image) if np.linalg.norm(f[0] - centre_b) < 40]
        if not out:
            continue
        descriptor = out[0][1]
        mouth_out.append(mouth_ratio(out[0][2], "68"))
        mouth_true.append(truth[before.index]["mouth_ratio"])
        a = float(np.linalg.norm(refs["demo-a"] - descriptor, axis=1).mean())
        b = float(np.linalg.norm(refs["demo-b"] - descriptor, axis=1).mean())
        dist_a.append(a)
        dist_b.append(b)
        nearer_a.append(a < b)
    return {
        "dlib_frames": len(dist_a),
        "dlib_dist_a": float(np.mean(dist_a)),
        "dlib_dist_b": float(np.mean(dist_b)),
        "dlib_nearer_a_share": float(np.mean(nearer_a)),
        "dlib_mouth_corr_truth": float(np.corrcoef(mouth_out, mouth_true)[0, 1]),
    }


def _crop(template: str, image: np.ndarray, face, faceset_size: int, resolution: int):
    """The crop and image->crop matrix at `resolution` that training of that faceset would have used."""
    import cv2

    from faceswap.faces.align import (
        LEGACY_TEMPLATE,
        WHOLE_FACE_TEMPLATE,
        Alignment,
        alignment_matrix,
        crop_face,
        resize_crop,
        umeyama,
    )

    scale = resolution / faceset_size
    if template == LEGACY_TEMPLATE:  # five points, cubic extraction, INTER_AREA resize (the code before)
        matrix = umeyama(face.kps5, WHOLE_FACE_TEMPLATE * faceset_size)
        big = cv2.warpAffine(image, matrix, (faceset_size,) * 2, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        return cv2.resize(big, (resolution,) * 2, interpolation=cv2.INTER_AREA), matrix * scale
    matrix = alignment_matrix(face.kps5, faceset_size, Alignment.parse(template), face.landmarks, face.landmark_scheme)
    return resize_crop(crop_face(image, matrix, faceset_size), resolution), matrix * scale


def heldout_reconstruction(report: dict, workspace: Path) -> dict[str, float]:
    import torch

    from faceswap.data.faceset import Faceset
    from faceswap.faces.align import transform_points
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.faces.identity import cosine_similarities
    from faceswap.faces.masks import landmark_mask
    from faceswap.media import iter_video_frames, read_image
    from faceswap.model.losses import ssim_map
    from faceswap.model.networks import ModelConfig, build_network
    from faceswap.model.weights import read_weights

    model_dir = Path(report["model"]["dir"])
    state, hparams, _ = read_weights(model_dir)
    network = build_network(ModelConfig.from_hparams(hparams))
    network.load_state_dict(state)
    network.eval()
    res = network.config.resolution
    analyzer = FaceAnalyzer("dlib")
    out: dict[str, float] = {}
    for subject, key in (("demo-a", "a"), ("demo-b", "b")):
        faceset = Faceset.load(workspace / "demo" / "facesets" / subject)
        taken = {entry.frame for entry in faceset.faces}
        photos = report["subjects"][subject]["references"]
        refs = np.stack([analyzer.analyze(read_image(Path(p)))[0].embedding for p in photos])
        l1s, dssims = [], []
        for frame in iter_video_frames(Path(report["subjects"][subject]["clip"])):
            if frame.index in taken:
                continue
            faces = [f for f in analyzer.analyze(frame.image) if cosine_similarities(f.embedding, refs).max() >= 0.93]
            if not faces or faces[0].landmarks is None:
                continue
            face = faces[0]
            crop, matrix = _crop(faceset.header.template, frame.image, face, faceset.header.size, res)
            hull = landmark_mask(
                transform_points(face.landmarks, matrix), "68", transform_points(face.kps5, matrix), "full", (res, res)
            )
            x = torch.from_numpy(np.ascontiguousarray(crop[..., ::-1])).permute(2, 0, 1)[None].float() / 255
            m = torch.from_numpy(hull)[None, None]
            with torch.no_grad():
                pred = network.reconstruct(x, key)[0]
            l1s.append(float(((pred - x).abs() * m).sum() / (m.sum() * 3)))
            dssims.append(float((((1 - ssim_map(pred, x)) / 2) * m).sum() / (m.sum() * 3)))
        out[f"heldout_frames_{key}"] = len(l1s)
        out[f"heldout_l1_{key}"] = float(np.mean(l1s))
        out[f"heldout_dssim_{key}"] = float(np.mean(dssims))
    return out


def measure(workspace: Path, dlib_models: Dlib) -> dict[str, float]:
    report = json.loads((workspace / "demo" / "report.json").read_text())
    ev = report["eval"]
    row = {
        "steps": report["model"]["steps"],
        "nearer_a_share": ev["nearer_a_share"],
        "sim_a": ev["identity_sim_a_mean"],
        "sim_b": ev["identity_sim_b_mean"],
        "mouth_corr_input": ev["mouth_correlation_input"],
        "mouth_corr_truth": ev["mouth_correlation_truth"],
        "train_recon_a_last50": report["model"]["losses"]["recon_a_last50"],
        "train_recon_b_last50": report["model"]["losses"]["recon_b_last50"],
    }
    row.update(identity_distances(report, dlib_models))
    row.update(heldout_reconstruction(report, workspace))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=WORKSPACE")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dlib_models = Dlib()
    rows = {}
    for item in args.runs:
        label, _, path = item.partition("=")
        rows[label] = measure(Path(path), dlib_models)
    keys = list(next(iter(rows.values())))
    print(f"{'metric':24s}" + "".join(f"{label:>12s}" for label in rows))
    for key in keys:
        print(f"{key:24s}" + "".join(f"{rows[label][key]:12.4f}" for label in rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
