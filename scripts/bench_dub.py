"""Dubbing models compared on the demo's dub pair: which framing and recipe lets the output's lips
follow the performance (`faceswap eval --dub`'s lip sync, measured on the written output).

    PYTHONPATH=. python scripts/bench_dub.py --root DIR [--variants a,b] [--steps 600] [--dubs N]
        [--align-on eyes-nose|five] [--threads N]

Each variant trains a dubbing model on `faceswap demo --dub`'s subjects and facesets (whole-face,
extracted at --size, so the tighter framings are cut without upscaling) with its options over the
smoke preset, dubs demo-a's plate with demo-b's performance exactly as the dub demo does (offset
found from the audio), and measures the output. Each dub carries a new watermark token, which moves
the lip sync read on a soft 64 px mouth by a few hundredths: --dubs N dubs each model N times and
reports the mean, the least and each reading. Rows land in DIR/dub-results.json; a run already
measured is not run again.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

FACESET_SIZE = 160  # whole-face crops from which a 64 px mouth framing (zoom 2.5) is cut at 1:1


@dataclass(frozen=True)
class Variant:
    train: tuple[str, ...]


VARIANTS: dict[str, Variant] = {
    "whole": Variant(("--data.face_type", "whole")),
    "lower": Variant(("--data.face_type", "lower")),
    "lower-bf16": Variant(("--data.face_type", "lower", "--trainer.precision", "bf16-mixed")),
    "mouth-bf16": Variant(("--data.face_type", "mouth", "--trainer.precision", "bf16-mixed")),
    "mouth-bf16-cosine": Variant(
        ("--data.face_type", "mouth", "--trainer.precision", "bf16-mixed", "--model.lr_warmup", "30",
         "--model.lr_decay", "cosine")
    ),
}


def prepare(root: Path, seconds: float, align_on: str | None = None):
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.demo.dub import DubRun, subjects
    from faceswap.demo.run import DemoOptions, register_consent
    from faceswap.workspace import Workspace

    run = DubRun(Workspace(root / "ws").ensure(), DemoOptions(seconds=seconds))
    subjects(run)
    register_consent(run)
    for subject, f in run.files.items():
        if not (run.workspace.facesets_dir / subject / "faceset.jsonl").exists():
            options = ExtractOptions(every=run.options.every, size=FACESET_SIZE, align_on=align_on)
            extract(run.store, f.clip, subject, options)
    return run


def alignment(run) -> str:
    """The facesets' alignment (a root keeps the facesets it was first made with)."""
    from faceswap.data.faceset import Faceset

    return Faceset.load(run.workspace.facesets_dir / "demo-a").header.alignment.name


def one(run, name: str, variant: Variant, steps: int, dubs: int = 1) -> dict:
    from faceswap.demo.dub import dub_plate, evaluate_dub
    from faceswap.demo.run import DemoOptions, train_model

    run.options = DemoOptions(seconds=run.options.seconds, steps=steps)
    folder = run.workspace.models_dir / name
    started = time.process_time()
    if not (folder / "model.safetensors").exists():
        train_model(run, name, variant.train)
    run.model_dir = folder
    trained = time.process_time() - started
    readings = []
    for _ in range(dubs):
        dub_plate(run)
        evaluate_dub(run)
        readings.append(run.report["metrics"])
    m = readings[-1]
    lip = [r["lip_sync_performance"] for r in readings]
    return {
        "steps": steps,
        "alignment": alignment(run),
        "train_cpu_s": round(trained, 1),
        **{k: m[k] for k in ("lip_sync_plate", "av_sync_lag_frames", "nearer_a_share", "seam_ratio",
                             "psnr_outside_db", "frames_measured")},
        "lip_sync_performance": round(float(sum(lip) / len(lip)), 4) if None not in lip else None,
        "lip_sync_least": min(lip) if None not in lip else None,
        "lip_sync_each": lip,
        "passed": m["passed"],
        "lip_sync_met": sum(r["passed"]["lip_sync"] for r in readings),
        "dubs": dubs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, nargs="+", default=[600])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dubs", type=int, default=1, help="dubs per model, each with its own token")
    parser.add_argument(
        "--align-on", choices=("eyes-nose", "five"), default=None, help="new facesets' alignment (the demo's: five)"
    )
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.root.mkdir(parents=True, exist_ok=True)
    path = args.root / "dub-results.json"
    run = prepare(args.root, args.seconds, args.align_on)
    for name in args.variants.split(","):
        for steps in args.steps:
            key = f"{name}-{steps}" + (f"-x{args.dubs}" if args.dubs > 1 else "")
            rows = json.loads(path.read_text()) if path.exists() else {}
            if key in rows:
                continue
            row = one(run, f"{name}-{steps}", VARIANTS[name], steps, args.dubs)
            rows = json.loads(path.read_text()) if path.exists() else {}
            rows[key] = row
            path.write_text(json.dumps(rows, indent=2))
            print(key, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
