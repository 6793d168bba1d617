"""Training fidelity, as an ablation: which part of the training recipe holds the demo's swap to A.

    PYTHONPATH=. python scripts/bench_training_fidelity.py --root DIR [--variants a,b,...]
        [--steps 150 300 600] [--seeds 0] [--masks full,mouth,...] [--json OUT.json] [--threads N]

Every variant trains the demo's model (`faceswap demo`'s subjects, facesets and smoke preset, through
the same `faceswap train` path) with its options over the demo's, for each step count from scratch,
then converts demo-b's clip as the demo does, once for each of --masks (what conversion keeps of B:
nothing, its mouth, its mouth opening; default the demo's), and measures:
- identity on the output, with the demo's embedding (the consent records' dlib backend: share of
  frames nearer A, mean similarities) and with dlib's own descriptor (`faceswap.eval.independent`:
  raw euclidean distance to A's and B's reference photos; 0.6 = dlib's same-person line);
- the mouth: correlation of the output's mouth opening with the input's and with the drawn truth;
- held-out reconstruction (L1 and DSSIM inside the face hull) of each subject's frames rendered
  from the continuation of its motion, 10-14 s after its clip ends, each kept only when its pose is
  at least one unit (5 deg yaw, 3 deg roll, 0.15 mouth opening, ...) from every training frame's.

Everything lands under --root (workspaces, models, outputs, one JSON row per run): a run already
measured is not run again, so the bench can be stopped and resumed. Variants that extract their
facesets differently (alignment) get a workspace of their own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap.demo.run import DemoOptions

HELDOUT_SPAN = 4.0  # seconds of held-out motion, from two clip lengths on (past the dub plate's)
HELDOUT_EVERY = 3  # frames
POSE_UNITS = {"yaw": 5.0, "roll": 3.0, "scale": 0.02, "cx": 15.0, "cy": 8.0, "mouth": 0.15, "light": 0.05}


@dataclass(frozen=True)
class Variant:
    cause: str  # the candidate cause or idea this variant tests
    train: tuple[str, ...] = ()  # `faceswap train` overrides over the demo's
    align_on: str | None = None  # facesets extracted on other points (a workspace of their own)


BF16 = ("--trainer.precision", "bf16-mixed")  # the same figures for half the CPU (the "bf16" row)


def _bf16(cause: str, *train: str, align_on: str | None = None) -> Variant:
    """A variant over the bfloat16 recipe (every row but "current" and "bf16" itself)."""
    return Variant(cause, (*BF16, *train), align_on)


VARIANTS: dict[str, Variant] = {
    "current": Variant("the library's defaults (float32; eyes-and-nose alignment)"),
    "demo": Variant("`faceswap demo`'s recipe (float32; its facesets' alignment)", align_on=DemoOptions().align_on),
    "bf16": _bf16("precision: bfloat16 autocast"),
    "warp-0.12": _bf16("warp strength", "--data.warp_strength", "0.12"),
    "warp-off": _bf16("warp strength", "--data.random_warp", "false"),
    "colour-off": _bf16("colour-transfer match", "--data.colour_transfer", "0"),
    "region-hull": _bf16("trained region", "--data.loss_region", "hull"),
    "priority-off": _bf16("loss weights", "--model.weight_priority", "0"),
    "align-five": _bf16("alignment", align_on="five"),
    "liae": _bf16("architecture", "--model.architecture", "liae"),
    "lr-cosine": _bf16("learning-rate schedule", "--model.lr_warmup", "30", "--model.lr_decay", "cosine"),
    "true-face": _bf16("true-face discriminator", "--model.true_face_power", "0.01"),
    "priority-ramp": _bf16("eye-and-mouth priority ramp", "--model.priority_ramp", "0.5"),
    "five-liae": _bf16("architecture, on five keypoints", "--model.architecture", "liae", align_on="five"),
}


# ---------------------------------------------------------------- workspaces


def prepare(root: Path, align_on: str | None, seconds: float):
    """A demo workspace with subjects, consent and facesets (made once, then reused)."""
    from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets, make_subjects, register_consent
    from faceswap.workspace import Workspace

    folder = root / f"ws-{align_on or 'default'}"
    run = DemoRun(Workspace(folder).ensure(), DemoOptions(seconds=seconds))
    base = root / "ws-default"
    if align_on and not (folder / "subjects").exists() and (base / "subjects").exists():
        shutil.copytree(base / "subjects", folder / "subjects")
    from faceswap.demo.subjects import existing_subjects

    found = existing_subjects(folder / "subjects", seconds, dub_pair=False)
    if found is None:
        make_subjects(run)
    else:
        run.files = {f.subject: f for f in found}
        run.report["subjects"] = {s.subject: {"references": [str(p) for p in s.references]} for s in found}
    register_consent(run)
    if not (run.workspace.facesets_dir / "demo-b" / "faceset.jsonl").exists():
        _extract(run, align_on)
    return run


def _extract(run, align_on: str | None) -> None:
    from faceswap.data.extract import ExtractOptions, extract

    for subject, f in run.files.items():
        extract(run.store, f.clip, subject, ExtractOptions(every=run.options.every, size=128, align_on=align_on))


# ---------------------------------------------------------------- held-out faces


def _pose_vector(pose) -> np.ndarray:
    return np.array([getattr(pose, k) / unit for k, unit in POSE_UNITS.items()])


def heldout_frames(seed: int, seconds: float, taken: set[int]) -> tuple[list[float], float]:
    """Times past the clip whose pose is at least one unit from every training frame's, and the
    smallest such distance found."""
    from faceswap.demo.subjects import FPS, pose_at

    train = np.stack([_pose_vector(pose_at(i / FPS, seed)) for i in sorted(taken)])
    start = 2 * seconds  # the dub plate continues demo-a's motion for one clip length
    times, nearest = [], []
    for i in range(0, int(HELDOUT_SPAN * FPS), HELDOUT_EVERY):
        t = start + i / FPS
        distance = float(np.abs(train - _pose_vector(pose_at(t, seed))).max(axis=1).min())
        if distance >= 1.0:
            times.append(t)
            nearest.append(distance)
    return times, min(nearest)


def heldout_crops(run, cache: Path) -> dict[str, dict]:
    """Per subject: crops of held-out frames at the facesets' size, their landmarks and keypoints."""
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {s: {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(s + "/")} for s in ("a", "b")}
    from faceswap.data.faceset import Faceset
    from faceswap.demo.clip import backdrop
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import HAIR, SIZE, _light, pose_at
    from faceswap.demo.clip import composite
    from faceswap.faces.align import alignment_matrix, crop_face, transform_points
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.faces.identity import IdentityMatcher

    analyzer = FaceAnalyzer("dlib")
    identities = {i.name: i for i in build_identities(analyzer)[0]}
    snapshot = run.store.load()
    out: dict[str, dict] = {}
    for subject, key, seed in (("demo-a", "a", 1), ("demo-b", "b", 2)):
        faceset = Faceset.load(run.workspace.facesets_dir / subject)
        times, nearest = heldout_frames(seed, run.options.seconds, {e.frame for e in faceset.faces})
        record = next(r for r in snapshot.for_subject(subject) if snapshot.status(r) == "active")
        matcher = IdentityMatcher(record.reference_embeddings, analyzer.name)
        crops, lms, kps = [], [], []
        base = backdrop(*SIZE, seed=seed)
        size, alignment = faceset.header.size, faceset.header.alignment
        for t in times:
            pose = pose_at(t, seed)
            frame = base.copy()
            composite(frame, identities[subject], pose, HAIR[subject])
            image = _light(frame, pose.light)
            faces = [f for f in analyzer.analyze(image) if matcher.matches(f.embedding)]
            if not faces:
                continue
            face = faces[0]
            matrix = alignment_matrix(face.kps5, size, alignment, face.landmarks, face.landmark_scheme)
            crops.append(crop_face(image, matrix, size))
            lms.append(transform_points(face.landmarks, matrix))
            kps.append(transform_points(face.kps5, matrix))
        out[key] = {
            "crops": np.stack(crops),
            "landmarks": np.stack(lms),
            "kps": np.stack(kps),
            "nearest_pose": np.array(nearest),
        }
    np.savez(cache, **{f"{s}/{k}": v for s, d in out.items() for k, v in d.items()})
    return out


def heldout_reconstruction(model_dir: Path, heldout: dict[str, dict], faceset_size: int) -> dict[str, float]:
    import torch

    from faceswap.faces.align import resize_crop
    from faceswap.faces.masks import landmark_mask
    from faceswap.model.losses import ssim_map
    from faceswap.model.networks import ModelConfig, build_network
    from faceswap.model.weights import read_weights

    state, hparams, _ = read_weights(model_dir)
    network = build_network(ModelConfig.from_hparams(hparams))
    network.load_state_dict(state)
    network.eval()
    res = network.config.resolution
    scale = res / faceset_size
    out: dict[str, float] = {}
    for key, data in heldout.items():
        l1s, dssims = [], []
        for crop, lms, kps in zip(data["crops"], data["landmarks"], data["kps"], strict=True):
            hull = landmark_mask(lms * scale, "68", kps * scale, "full", (res, res))
            x = torch.from_numpy(np.ascontiguousarray(resize_crop(crop, res)[..., ::-1])).permute(2, 0, 1)[None]
            x = x.float() / 255
            m = torch.from_numpy(hull)[None, None]
            with torch.no_grad():
                pred = network.reconstruct(x, key)[0]
            l1s.append(float(((pred - x).abs() * m).sum() / (m.sum() * 3)))
            dssims.append(float((((1 - ssim_map(pred, x)) / 2) * m).sum() / (m.sum() * 3)))
        out[f"heldout_l1_{key}"] = float(np.mean(l1s))
        out[f"heldout_dssim_{key}"] = float(np.mean(dssims))
        out[f"heldout_frames_{key}"] = len(l1s)
    return out


# ---------------------------------------------------------------- one run


def train(run, name: str, variant: Variant, steps: int, seed: int) -> Path:
    from faceswap.demo.run import train_model

    folder = run.workspace.models_dir / name
    if (folder / "model.safetensors").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    run.options = type(run.options)(seconds=run.options.seconds, steps=steps)
    train_model(run, name, (*variant.train, "--seed_everything", str(seed)))
    return folder


def measure(run, model_dir: Path, mask: str) -> dict[str, float]:
    """The swap of demo-b's clip converted with `mask`: identity on both embeddings and the mouth."""
    from faceswap.convert.pipeline import convert
    from faceswap.convert.settings import ConvertOptions
    from faceswap.eval.run import run_eval

    files = run.files["demo-b"]
    output = run.workspace.root / "output" / f"{model_dir.name}-{mask}.mp4"
    output.unlink(missing_ok=True)
    started = time.process_time()
    convert(run.store, model_dir, files.clip, output, ConvertOptions(mask=mask))
    report, _ = run_eval(run.store, model_dir, files.clip, output, files.truth, mask, 2, 0, _reference_photos(run))
    ev = report.to_json()
    ind = ev.get("independent") or {}
    row = {
        "nearer_a_share": ev["nearer_a_share"],
        "sim_a": ev["identity_sim_a_mean"],
        "sim_b": ev["identity_sim_b_mean"],
        "mouth_corr_input": ev["mouth_correlation_input"],
        "mouth_corr_truth": ev["mouth_correlation_truth"],
        "dlib_dist_a": ind.get("dist_a"),
        "dlib_dist_b": ind.get("dist_b"),
        "dlib_margin": ind.get("margin"),
        "dlib_nearer_a_share": ind.get("nearer_a_share"),
        "eval_cpu_s": round(time.process_time() - started, 1),
    }
    return row


def model_figures(run, model_dir: Path, heldout: dict[str, dict]) -> dict[str, float]:
    """What depends on the weights alone (the same under every mask): held-out reconstruction and the
    last training losses."""
    from faceswap.data.faceset import Faceset

    size = Faceset.load(run.workspace.facesets_dir / "demo-a").header.size
    row = heldout_reconstruction(model_dir, heldout, size)
    losses = json.loads((model_dir / "model.json").read_text()).get("losses", {})
    row.update({k: losses.get(k) for k in ("recon_a_last50", "recon_b_last50")})
    return row


def _reference_photos(run) -> tuple[list[Path], list[Path]]:
    return list(run.files["demo-a"].references), list(run.files["demo-b"].references)


def _record(path: Path, key: str, row: dict) -> None:
    """Adds one run's row to the results file (read again first: several benches may share a root)."""
    rows = json.loads(path.read_text()) if path.exists() else {}
    rows[key] = row
    path.write_text(json.dumps(rows, indent=2))


# ---------------------------------------------------------------- the table


METRICS = (
    ("nearer_a_share", "nearer A (demo embedding)"),
    ("dlib_nearer_a_share", "nearer A (dlib)"),
    ("dlib_dist_a", "dlib dist A"),
    ("dlib_dist_b", "dlib dist B"),
    ("dlib_margin", "dlib margin"),
    ("mouth_corr_input", "mouth vs input"),
    ("heldout_l1_a", "held-out L1 A"),
    ("heldout_l1_b", "held-out L1 B"),
)


def print_table(rows: dict[str, dict]) -> None:
    header = f"{'run':40s}" + "".join(f"{label[:14]:>15s}" for _, label in METRICS)
    print(header)
    for name, row in rows.items():
        cells = "".join(f"{row[k]:15.3f}" if row.get(k) is not None else f"{'n/a':>15s}" for k, _ in METRICS)
        print(f"{name:40s}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, nargs="+", default=[150, 300, 600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--masks",
        default=DemoOptions().mask,
        help="convert's --mask values to measure each model with (comma-separated)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.root.mkdir(parents=True, exist_ok=True)
    results_path = args.root / "results.json"
    rows = json.loads(results_path.read_text()) if results_path.exists() else {}
    masks = args.masks.split(",")
    for name in args.variants.split(","):
        variant = VARIANTS[name]
        run = prepare(args.root, variant.align_on, args.seconds)
        heldout = heldout_crops(run, args.root / f"heldout-{variant.align_on or 'default'}.npz")
        for steps in args.steps:
            for seed in args.seeds:
                name_at = f"{name}@{steps}" + (f"/s{seed}" if seed else "")
                keys = {mask: f"{name_at} --mask {mask}" for mask in masks}
                if all(key in rows for key in keys.values()):
                    continue
                started = time.process_time()
                model_dir = train(run, name_at.replace("@", "-").replace("/", "-"), variant, steps, seed)
                train_cpu_s = round(time.process_time() - started, 1)
                per_model = model_figures(run, model_dir, heldout)
                for mask, key in keys.items():
                    if key in rows:
                        continue
                    row = {
                        "variant": name,
                        "cause": variant.cause,
                        "steps": steps,
                        "seed": seed,
                        "mask": mask,
                        "train_cpu_s": train_cpu_s,
                    }
                    row.update(measure(run, model_dir, mask))
                    row.update(per_model)
                    rows[key] = row
                    _record(results_path, key, row)
                    print_table({key: row})
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
