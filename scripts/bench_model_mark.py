"""The model's own mark (faceswap/model/mark.py) on swaps rendered by the raw network, outside the sink.

    PYTHONPATH=. .venv/bin/python scripts/bench_model_mark.py --out bench-results \
        [--steps 300 --mark-steps 60 --lr 1e-3]

The demo's subjects (`--seconds`), the smoke model trained `--steps` steps as the demo trains it, then
a copy of it marked (`--mark-steps` steps under a fresh random key). Each network is loaded as someone
who copied the model folder would (`read_weights` + `build_network`), and swaps demo-b's first
`--frames` frames by hand: dlib finds the face, the crop is aligned as the model's faces were, the
network renders it, OpenCV pastes it back through the network's own mask. No sink, no mark, no entry.
Each copy (as written; H.264 CRF 28; half size at CRF 28; cropped to half the area around the face;
mirrored; JPEG 75) is read back by finding the faces again (`ModelMark.read_found`). With `--keys N`,
N - 1 more fresh keys each mark their own copy, and the clip as written is read for each: how many
keys' clips are traced.

Prints, per copy: each face's z (the best of the mark's cuts; mean and least); the share of single
frames traced at a bound of 1e-6 (the Gaussian tail times the cuts); the clip's z (readings and
spreads summed over the faces) and its bound. The unmarked model's frames are read under the marked
model's key and `--null-keys` random keys: their z should be chance's (the best of 25 overlapping
cuts of a standard normal). The cost: PSNR of the marked network's faces to the unmarked one's, and
held-out reconstruction PSNR of A's faces, both networks side by side.
Writes OUT/bench_model_mark.json. About 8 minutes on 2 cores at the defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets, make_subjects, register_consent, train_model
from faceswap.faces.align import Alignment, align_face, paste_back, resize_crop
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.media import iter_video_frames
from faceswap.model import mark
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace

BOUND = 1e-6


def crops_of(faceset: Path, size: int) -> np.ndarray:
    """A faceset's crops at the model's size, RGB in [0, 1], (N, 3, R, R)."""
    images = [resize_crop(cv2.imread(str(p)), size) for p in sorted(faceset.glob("*.png"))]
    return np.stack(images)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def largest_face(analyzer: FaceAnalyzer, frame: np.ndarray):
    faces = analyzer.analyze(frame)
    return max(faces, key=lambda f: f.bbox[2] - f.bbox[0]) if faces else None


def render_by_hand(network, frames: list[np.ndarray], analyzer: FaceAnalyzer, alignment: Alignment, size: int):
    """What someone with the model folder and a few lines of OpenCV writes: no sink, no mark."""
    import torch

    out = []
    for frame in frames:
        face = largest_face(analyzer, frame)
        if face is None:
            out.append(frame)
            continue
        aligned = align_face(frame, face.kps5, size, alignment, face.landmarks, face.landmark_scheme)
        x = torch.from_numpy(aligned.crop[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            rgb, face_mask = network(x, "a")
        crop = (rgb[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
        out.append(paste_back(frame, crop, aligned.matrix, cv2.GaussianBlur(face_mask[0, 0].numpy(), (0, 0), 2)))
    return out


def through_h264(frames: list[np.ndarray], path: Path, crf: int) -> list[np.ndarray]:
    write_input_clip(path, frames, 25, crf=crf)
    return [f.image for f in iter_video_frames(path)]


def copies(frames: list[np.ndarray], folder: Path) -> dict[str, Callable[[], list[np.ndarray]]]:
    h, w = frames[0].shape[:2]
    half = [cv2.resize(f, (w // 4 * 2, h // 4 * 2), interpolation=cv2.INTER_AREA) for f in frames]
    side = 0.5**0.5
    top, left = int(h * (1 - side) / 2), int(w * (1 - side) / 2)

    def jpeg(f: np.ndarray) -> np.ndarray:
        return cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 75])[1], cv2.IMREAD_COLOR)

    return {
        "as written": lambda: frames,
        "H.264 CRF 28": lambda: through_h264(frames, folder / "crf28.mp4", 28),
        "half size, CRF 28": lambda: through_h264(half, folder / "half.mp4", 28),
        "half the area, cropped": lambda: [np.ascontiguousarray(f[top : h - top, left : w - left]) for f in frames],
        "mirrored": lambda: [np.ascontiguousarray(f[:, ::-1]) for f in frames],
        "JPEG 75": lambda: [jpeg(f) for f in frames],
    }


def read_back(frames: list[np.ndarray], analyzer: FaceAnalyzer, alignment: Alignment, keys: list[mark.ModelMark]):
    """Per key, the (soft, spread) readings of every face found again: [key][face] -> (cuts, ...)."""
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in keys]
    for frame in frames:
        face = largest_face(analyzer, frame)
        if face is None:
            continue
        matrix = align_face(frame, face.kps5, mark.SIZE, alignment, face.landmarks, face.landmark_scheme).matrix
        for i, key in enumerate(keys):
            found[i].append(key.read_found(frame, matrix))
    return found


def scores(key: mark.ModelMark, readings: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, float]:
    """Each face's z (its best cut) and the clip's (readings and spreads summed, then its best cut)."""
    per_face = np.array([float(key.score(soft, spread).max()) for soft, spread in readings])
    soft = np.sum([r[0] for r in readings], axis=0)
    spread = np.sum([r[1] for r in readings], axis=0)
    return per_face, float(key.score(soft, spread).max())


def traced(key: mark.ModelMark, readings: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    per_face, clip = scores(key, readings)
    return {
        "faces": len(per_face),
        "z_mean": round(float(per_face.mean()), 2),
        "z_min": round(float(per_face.min()), 2),
        "frames_traced": round(float((per_face >= mark.z_needed(BOUND)).mean()), 3),
        "clip_z": round(clip, 2),
        "clip_bound": mark.false_positive_bound(clip),
    }


def other_keys(plain, drawn, held: np.ndarray, frames, analyzer, alignment, size: int, args) -> list[dict]:
    """`--keys` - 1 more fresh keys, each marking its own copy of the model: the clip as written, read
    for it (the trace rate over keys), and what that marking cost in held-out PSNR."""
    import torch

    rows = []
    for _ in range(args.keys - 1):
        key = mark.ModelMark(secrets.token_bytes(32), alignment.face_type)
        marked = copy.deepcopy(plain)
        mark.mark_decoder(marked, torch.from_numpy(drawn), key, mark.MarkingSettings(steps=args.mark_steps, lr=args.lr))
        marked.eval()
        rendered = render_by_hand(marked, frames, analyzer, alignment, size)
        row = traced(key, read_back(rendered, analyzer, alignment, [key])[0])
        with torch.no_grad():
            row["heldout_drop_db"] = round(
                psnr(plain(torch.from_numpy(held), "a")[0].numpy(), held)
                - psnr(marked(torch.from_numpy(held), "a")[0].numpy(), held),
                2,
            )
        rows.append(row)
        print(f"another key: {row}", flush=True)
    return rows


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def demo_workspace(root: Path, seconds: float, steps: int) -> tuple[Path, Path]:
    """The demo's subjects, facesets and its model trained unmarked: (model folder, demo-b's clip)."""
    demo = DemoRun(Workspace(root), DemoOptions(seconds=seconds, steps=steps))
    for step in (make_subjects, register_consent, extract_facesets):
        step(demo)
    train_model(demo, "plain", ("--model.mark_decoder", "false"))
    return root / "models" / "plain", demo.files["demo-b"].clip


def run(args: argparse.Namespace) -> dict:
    import torch

    from faceswap.model.networks import ModelConfig, build_network
    from faceswap.model.weights import read_weights

    out, mark_steps, frame_count, null_keys = args.out, args.mark_steps, args.frames, args.null_keys
    with tempfile.TemporaryDirectory(prefix="model-mark-") as tmp:
        if args.workspace is not None:
            root = args.workspace
            folder, clip = root / "models" / args.model, root / "subjects" / "demo-b" / "clip.mp4"
        else:
            root = Path(tmp) / "workspace"
            folder, clip = demo_workspace(root, args.seconds, args.steps)
        state, hparams, _ = read_weights(folder)
        steps = json.loads((folder / "model.json").read_text()).get("steps")
        size, alignment = int(hparams["resolution"]), Alignment.parse(hparams["alignment"])
        plain = build_network(ModelConfig.from_hparams(hparams))
        plain.load_state_dict(state)
        faces = {s: crops_of(root / "facesets" / s, size) for s in ("demo-a", "demo-b")}
        held = {s: f[1::4] for s, f in faces.items()}  # every 4th face, from 1: never drawn by marking
        drawn = np.concatenate([np.delete(f, np.s_[1::4], axis=0) for f in faces.values()])
        key = mark.ModelMark(secrets.token_bytes(32), alignment.face_type)
        marked = copy.deepcopy(plain)
        settings = mark.MarkingSettings(steps=mark_steps, lr=args.lr)
        report = mark.mark_decoder(marked, torch.from_numpy(drawn), key, settings)
        plain.eval()
        marked.eval()
        analyzer = FaceAnalyzer("dlib")
        frames = [f.image for f in iter_video_frames(clip, limit=frame_count)]
        others = [mark.ModelMark(secrets.token_bytes(32), alignment.face_type) for _ in range(null_keys)]
        rows: dict[str, dict] = {}
        started = time.monotonic()
        for name, network in (("marked", marked), ("unmarked", plain)):
            folder = Path(tmp) / name
            folder.mkdir()
            rendered = render_by_hand(network, frames, analyzer, alignment, size)
            for copy_name, make in copies(rendered, folder).items():
                keys = [key, *others] if name == "unmarked" and copy_name == "as written" else [key]
                found = read_back(make(), analyzer, alignment, keys)
                row = traced(key, found[0])
                if len(keys) > 1:
                    null = [scores(k, found[i]) for i, k in enumerate(keys)]
                    faces_z = np.concatenate([per_face for per_face, _ in null])
                    row["null_keys"] = {
                        "keys": len(keys),
                        "face_z_mean": round(float(faces_z.mean()), 2),
                        "face_z_max": round(float(faces_z.max()), 2),
                        "clip_z_max": round(max(clip for _, clip in null), 2),
                    }
                rows[f"{name}: {copy_name}"] = row
                print(f"{name}: {copy_name}: {row}", flush=True)
        with torch.no_grad():
            a = torch.from_numpy(held["demo-a"])
            b = torch.from_numpy(held["demo-b"])
            cost = {
                "swap_psnr_marked_to_unmarked_db": psnr(marked(b, "a")[0].numpy(), plain(b, "a")[0].numpy()),
                "heldout_psnr_a_unmarked_db": psnr(plain(a, "a")[0].numpy(), held["demo-a"]),
                "heldout_psnr_a_marked_db": psnr(marked(a, "a")[0].numpy(), held["demo-a"]),
            }
        more = other_keys(plain, drawn, held["demo-a"], frames, analyzer, alignment, size, args)
    result = {
        "steps": steps,
        "resolution": size,
        "alignment": alignment.name,
        "marking": report.to_json(),
        "z_needed": round(mark.z_needed(BOUND), 2),
        "cost": {k: round(v, 2) for k, v in cost.items()},
        "reading_seconds": round(time.monotonic() - started, 1),
        "copies": rows,
        "other_keys": more,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_model_mark.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the demo subjects' clips")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the model (the demo's 300)")
    parser.add_argument("--mark-steps", type=int, default=mark.MarkingSettings().steps)
    parser.add_argument("--lr", type=float, default=mark.MarkingSettings().lr, help="the marking's learning rate")
    parser.add_argument("--frames", type=int, default=40, help="frames of demo-b's clip swapped by hand")
    parser.add_argument("--null-keys", type=int, default=20, help="random keys the unmarked frames are read with")
    parser.add_argument("--keys", type=int, default=1, help="fresh keys marked, the first read on every copy")
    parser.add_argument("--workspace", type=Path, help="a demo workspace already made (its model unmarked)")
    parser.add_argument("--model", default="plain", help="the model's name in --workspace")
    args = parser.parse_args()
    result = run(args)
    print(f"marking: {result['marking']}; cost: {result['cost']}")
    print(f"a frame or a clip is traced at 1e-6 with z >= {result['z_needed']} ({len(mark.CUTS)} cuts)")
    print("| copy | faces | z per face (mean, least) | frames traced | clip: z (bound) |")
    print("|---|---:|---|---:|---|")
    for name, row in result["copies"].items():
        print(
            f"| {name} | {row['faces']} | {row['z_mean']}, {row['z_min']} | {row['frames_traced']} "
            f"| {row['clip_z']} ({row['clip_bound']:.1e}) |"
        )
        if "null_keys" in row:
            print(f"|   {row['null_keys']['keys']} keys on the unmarked frames | | {row['null_keys']} | | |")
    for row in result["other_keys"]:
        print(
            f"| another key, as written | {row['faces']} | {row['z_mean']}, {row['z_min']} | {row['frames_traced']} "
            f"| {row['clip_z']} ({row['clip_bound']:.1e}); held-out PSNR -{row['heldout_drop_db']} dB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
