"""Conversion speed at 640x480, 1280x720 and 1920x1080 with a per-stage breakdown.

    .venv/bin/python scripts/bench_convert.py [--frames 24] [--model WORKSPACE/models/NAME]
        [--out bench-results/convert.json]

Input: a demo-subject clip (made on the fly) rescaled to each size. Without --model an untrained
smoke-64 network is used (same cost as a trained one). Stages: decode, analyse (detect + landmarks +
embed), align + infer + mask/colour/blend (the swap), watermark, encode (H.264, through PyAV).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from faceswap.convert.model_io import LoadedModel, load_model
from faceswap.convert.pipeline import ConvertOptions, ConvertReport, FrameIn, Swapper
from faceswap.demo.subjects import make_demo_subjects
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.media import iter_video_frames, read_image
from faceswap.model.module import weights_fingerprint
from faceswap.model.networks import ModelConfig, SwapNetwork
from faceswap.provenance.watermark import Watermarker

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def untrained_model() -> LoadedModel:
    network = SwapNetwork(ModelConfig("df", 64, 24, 96, 24, 8)).eval()
    info = {"name": "untrained-smoke-64", "resolution": 64, "fingerprint": weights_fingerprint(network)}
    return LoadedModel(Path("."), info, network, "cpu", torch.float32)


class Clock:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds


def bench_size(frames: list[np.ndarray], size: tuple[int, int], model: LoadedModel, refs: np.ndarray, workdir: Path):
    clock = Clock()
    source = workdir / f"src-{size[0]}.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(_fit(image, size), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    swapper = Swapper(model, refs, "dlib", ConvertOptions(), 25.0)
    analyze = swapper.analyzer.analyze
    timed_analyze = _timed(clock, "analyse", analyze)
    swapper.analyzer.analyze = timed_analyze  # type: ignore[method-assign]
    watermarker = Watermarker()
    report = ConvertReport("", "", "")
    start = time.perf_counter()
    t = time.perf_counter()
    decoded = [FrameIn(f.index, f.image) for f in iter_video_frames(source)]
    clock.add("decode", time.perf_counter() - t)
    t = time.perf_counter()
    outputs = [img for _, img, _ in swapper.run(decoded, report)]
    clock.add("swap (align+infer+blend)", time.perf_counter() - t - clock.totals.get("analyse", 0.0))
    t = time.perf_counter()
    marked = []
    for i in range(0, len(outputs), 8):
        marked += watermarker.embed(outputs[i : i + 8], 1)
    clock.add("watermark", time.perf_counter() - t)
    t = time.perf_counter()
    with av.open(str(workdir / f"out-{size[0]}.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "18"}
        for i, image in enumerate(marked):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    clock.add("encode", time.perf_counter() - t)
    total = time.perf_counter() - start
    n = len(frames)
    return {
        "size": f"{size[0]}x{size[1]}",
        "frames": n,
        "faces_swapped": report.faces_swapped,
        "fps_serial": round(n / total, 2),
        "ms_per_frame": {k: round(v / n * 1000, 1) for k, v in clock.totals.items()},
    }


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to the target height keeping the aspect ratio, then pad the width (faces stay unstretched)."""
    w, h = size
    scaled = cv2.resize(image, (int(round(image.shape[1] * h / image.shape[0])), h), interpolation=cv2.INTER_CUBIC)
    pad = max(0, w - scaled.shape[1])
    padded = cv2.copyMakeBorder(scaled, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT)
    return np.ascontiguousarray(padded[:, :w])


def _timed(clock: Clock, stage: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.add(stage, time.perf_counter() - t)

    return wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results/convert.json"))
    args = parser.parse_args()
    model = load_model(args.model) if args.model else untrained_model()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        analyzer = FaceAnalyzer("dlib")
        files, _ = make_demo_subjects(workdir / "subjects", analyzer, seconds=args.frames / 25)
        target = {f.subject: f for f in files}["demo-b"]
        refs = np.stack([analyzer.analyze(read_image(p))[0].embedding for p in target.references])
        frames = [f.image for f in iter_video_frames(target.clip, limit=args.frames)]
        rows = [bench_size(frames, size, model, refs, workdir) for size in SIZES.values()]
    stages = sorted({k for r in rows for k in r["ms_per_frame"]})
    print("| size | frames/s (serial) | " + " | ".join(f"{s} ms" for s in stages) + " |")
    print("|---|---|" + "---|" * len(stages))
    for r in rows:
        print(
            f"| {r['size']} | {r['fps_serial']} | "
            + " | ".join(str(r["ms_per_frame"].get(s, 0)) for s in stages)
            + " |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": model.device, "model": model.info["name"], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
