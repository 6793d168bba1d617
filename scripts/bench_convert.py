"""Conversion speed, end to end through `faceswap convert`'s own pipeline and output sink, old and
new face analysis side by side in one run, with where the time goes.

    .venv/bin/python scripts/bench_convert.py [--workspace DIR] [--frames 100] [--sizes 640x480 1920x1080]
        [--out bench-results/convert.json]

The workspace is the demo's (`faceswap demo` makes one; without it the bench makes the demo's
subjects, consent, facesets and a briefly trained smoke model itself). Each size converts the
same demo-b frames rescaled to that size, once with `--detect-every 1` (detect and identify every
frame: the old analysis) and once with the default tracking. Outputs go through the sink (marked,
signed, logged) like any conversion. Stage times come from timers around the pipeline's own steps.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceswap.convert.pipeline import Swapper, convert
from faceswap.convert.settings import ConvertOptions
from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets, make_subjects, register_consent, train_model
from faceswap.faces.tracking import DETECT_EVERY, FaceTracker
from faceswap.media import iter_video_frames
from faceswap.provenance.output import writers
from faceswap.provenance.watermark.marker import Watermarker
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace

TIMED = {
    "analyse": (FaceTracker, "step"),
    "swap": (Swapper, "swap"),
    "watermark": (Watermarker, "embed"),
    "encode": (writers.VideoWriter, "add"),
}


def demo_run(root: Path, steps: int) -> DemoRun:
    """The demo's workspace with its trained model (made here when missing)."""
    run = DemoRun(Workspace(root).ensure(), DemoOptions(seconds=6, steps=steps))
    model = run.workspace.models_dir / "demo-smoke"
    make_subjects(run)
    register_consent(run)
    if not (model / "model.safetensors").exists():
        extract_facesets(run)
        train_model(run)
    run.model_dir = model
    return run


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to the target height keeping the aspect ratio, then pad the width (faces stay unstretched)."""
    w, h = size
    scaled = cv2.resize(image, (int(round(image.shape[1] * h / image.shape[0])), h), interpolation=cv2.INTER_CUBIC)
    pad = max(0, w - scaled.shape[1])
    return np.ascontiguousarray(cv2.copyMakeBorder(scaled, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT)[:, :w])


def timed(totals: dict[str, float]) -> Callable[[], None]:
    """Wrap the pipeline's steps with timers; returns the function that unwraps them."""
    originals = {name: getattr(owner, attr) for name, (owner, attr) in TIMED.items()}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timer(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

        return timer

    for name, (owner, attr) in TIMED.items():
        setattr(owner, attr, wrap(name, originals[name]))

    def restore() -> None:
        for name, (owner, attr) in TIMED.items():
            setattr(owner, attr, originals[name])

    return restore


def bench(run: DemoRun, clip: Path, output: Path, detect_every: int) -> dict[str, Any]:
    totals: dict[str, float] = {}
    restore = timed(totals)
    try:
        output.unlink(missing_ok=True)
        report = convert(run.store, run.model_dir, clip, output, ConvertOptions(detect_every=detect_every))
    finally:
        restore()
    return {
        "detect_every": detect_every,
        "frames": report.frames,
        "faces_swapped": report.faces_swapped,
        "key_frames": report.key_frames,
        "fps": report.fps,
        "ms_per_frame": {k: round(v / max(report.frames, 1) * 1000, 1) for k, v in sorted(totals.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace/demo"))
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1920x1080"])
    parser.add_argument("--steps", type=int, default=150, help="training steps when the bench trains its own model")
    parser.add_argument("--out", type=Path, default=Path("bench-results/convert.json"))
    args = parser.parse_args()
    run = demo_run(args.workspace, args.steps)
    frames = [f.image for f in iter_video_frames(run.files["demo-b"].clip, limit=args.frames)]
    rows = []
    work = args.workspace / "bench-convert"
    work.mkdir(parents=True, exist_ok=True)
    for label in args.sizes:
        size = tuple(int(v) for v in label.split("x"))
        clip = write_input_clip(work / f"input-{label}.mp4", (fit(f, size) for f in frames), 25)
        for every in (1, DETECT_EVERY):
            rows.append({"size": label, **bench(run, clip, work / f"output-{label}-{every}.mp4", every)})
            print(json.dumps(rows[-1]), flush=True)
    stages = sorted({k for r in rows for k in r["ms_per_frame"]})
    print("| size | analysis | frames/s | key frames | " + " | ".join(f"{s} ms" for s in stages) + " |")
    print("|---|---|---|---|" + "---|" * len(stages))
    for r in rows:
        analysis = "every frame (old)" if r["detect_every"] == 1 else f"tracked, detect every {r['detect_every']}"
        cells = " | ".join(str(r["ms_per_frame"].get(s, 0)) for s in stages)
        print(f"| {r['size']} | {analysis} | {r['fps']} | {r['key_frames']}/{r['frames']} | {cells} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
