"""Watermark benchmark: quality, robustness, false positives and speed, against the reference code.

    .venv/bin/python scripts/bench_watermark.py [--marked 24] [--unmarked 1000] [--out bench-results]

Marked set: real photos that packages ship (scikit-image, insightface), as 1280x720 frames. Each is
marked with a fresh token, attacked, and checked. Video attacks encode a 6-frame pan of the marked
frame with FFmpeg (yuv420p). Unmarked set: crops, rescales, flips and JPEG copies of the same photos
plus frames of a clip, none ever marked. Speed: our embed/decode vs imwatermark's own classes for the
same method and payload, in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from faceswap.faces.samples import insightface_t1
from faceswap.provenance import dwtdctsvd, riva
from faceswap.provenance.payload import encode_token
from faceswap.provenance.watermark import FALSE_POSITIVE_BOUND, SYNC_BITS, Watermarker, format_token, new_token

PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "page.png",
    "coins.png",
    "color.png",
    "cell.png",
    "microaneurysms.png",
    "text.png",
]


def sources() -> list[tuple[str, np.ndarray]]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = [("t1", cv2.imread(str(insightface_t1())))]
    for name in PHOTOS:
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is not None:
            out.append((name.split(".")[0], image))
    return out


def frame_of(image: np.ndarray, size=(1280, 720)) -> np.ndarray:
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0])
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y : y + h, x : x + w])


def jpeg(image, quality):
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    return cv2.imdecode(cv2.imencode(".jpg", image, params)[1], cv2.IMREAD_COLOR)


def codec_roundtrip(frames: list[np.ndarray], codec: str, crf: int, workdir: Path) -> list[np.ndarray]:
    path = workdir / f"attack-{codec}-{crf}.mp4"
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        if codec == "libx265":
            stream.options["x265-params"] = "log-level=none"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as src:
        return [f.to_ndarray(format="bgr24") for f in src.decode(src.streams.video[0])]


def image_attacks(x: np.ndarray) -> dict[str, np.ndarray]:
    h, w = x.shape[:2]
    ch, cw = int(round(h * 0.894)), int(round(w * 0.894))
    y0, x0 = (h - ch) // 3, (w - cw) // 3
    return {
        "none": x,
        "jpeg90": jpeg(x, 90),
        "jpeg75": jpeg(x, 75),
        "jpeg50": jpeg(x, 50),
        "resize0.5": cv2.resize(cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h)),
        "crop80": np.ascontiguousarray(x[y0 : y0 + ch, x0 : x0 + cw]),
        "blur": cv2.GaussianBlur(x, (5, 5), 1.0),
        "bright+20": np.clip(x.astype(np.int16) + 20, 0, 255).astype(np.uint8),
        "bright-20": np.clip(x.astype(np.int16) - 20, 0, 255).astype(np.uint8),
    }


VIDEO_ATTACKS = {"h264-crf23": ("libx264", 23), "h264-crf28": ("libx264", 28), "h265-crf28": ("libx265", 28)}


def pan(frame: np.ndarray, n: int = 6) -> list[np.ndarray]:
    return [np.roll(frame, 2 * i, axis=1) for i in range(n)]


def bench_robustness(wm: Watermarker, frames: list[tuple[str, np.ndarray]], workdir: Path) -> tuple[dict, list]:
    stats: dict[str, dict[str, int]] = {}
    psnrs, ssims = [], []
    from skimage.metrics import structural_similarity

    for name, frame in frames:
        token = new_token()
        clip = pan(frame)
        marked_clip = wm.embed(clip, token)
        marked = marked_clip[0]
        psnrs.append(cv2.PSNR(frame, marked))
        ssims.append(structural_similarity(frame, marked, channel_axis=2))
        trials = {k: [v] for k, v in image_attacks(marked).items()}
        for attack, (codec, crf) in VIDEO_ATTACKS.items():
            trials[attack] = codec_roundtrip(marked_clip, codec, crf, workdir)
        for attack, attacked in trials.items():
            found = wm.detect(attacked)
            row = stats.setdefault(attack, {"n": 0, "detected": 0, "token": 0})
            row["n"] += 1
            row["detected"] += int(found.marked)
            row["token"] += int(found.token == format_token(token))
        print(f"  {name}: psnr {psnrs[-1]:.1f} dB", flush=True)
    quality = {"psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)), "ssim_mean": float(np.mean(ssims))}
    return quality, [{"attack": k, **v} for k, v in stats.items()]


def unmarked_set(photos: list[tuple[str, np.ndarray]], count: int, workdir: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(2026)
    out: list[np.ndarray] = []
    clip_frames = codec_roundtrip(
        [frame_of(p, (640, 360)) for _, p in photos[:8] for _ in range(5)], "libx264", 23, workdir
    )
    out += clip_frames
    while len(out) < count:
        image = photos[int(rng.integers(len(photos)))][1]
        h, w = image.shape[:2]
        scale = float(rng.uniform(0.5, 2.0))
        view = cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        )
        vh, vw = view.shape[:2]
        ch, cw = int(rng.integers(min(256, vh), vh + 1)), int(rng.integers(min(256, vw), vw + 1))
        y, x = int(rng.integers(0, vh - ch + 1)), int(rng.integers(0, vw - cw + 1))
        crop = view[y : y + ch, x : x + cw]
        if crop.shape[0] * crop.shape[1] < 256 * 256:
            continue
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:
            crop = jpeg(crop, int(rng.integers(50, 95)))
        out.append(np.ascontiguousarray(crop))
    return out[:count]


def bench_false_positives(wm: Watermarker, images: list[np.ndarray]) -> dict:
    agreements, hits, tokens = [], 0, 0
    for image in images:
        found = wm.detect([image])
        agreements.append(found.sync_agreement)
        hits += int(found.marked)
        tokens += int(found.token is not None)
    return {
        "images": len(images),
        "false_positives": hits,
        "false_tokens": tokens,
        "sync_agreement_max": int(max(agreements)),
        "sync_agreement_mean": float(np.mean(agreements)),
    }


def timed(fn, repeat: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000.0


def bench_speed(wm: Watermarker, photo: np.ndarray) -> list[dict]:
    rows: list[dict] = []
    bits = encode_token(new_token())
    for label, size in (("512x512", (512, 512)), ("1080p", (1920, 1080))):
        rows += _speed_rows(wm, frame_of(photo, size), label, bits)
    return rows


def _speed_rows(wm: Watermarker, frame: np.ndarray, label: str, bits: np.ndarray) -> list[dict]:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    rows: list[dict] = []
    encoder = WatermarkEncoder()
    encoder.set_by_bits(list(bits))
    upstream_svd = encoder.encode(frame, "dwtDctSvd")
    rows.append(
        {
            "size": label,
            "layer": "dwtDctSvd (128 bits)",
            "reference_embed_ms": timed(lambda: encoder.encode(frame, "dwtDctSvd"), 2),
            "ours_embed_ms": timed(lambda: dwtdctsvd.embed(frame, bits)),
            "reference_decode_ms": timed(lambda: WatermarkDecoder("bits", 128).decode(upstream_svd, "dwtDctSvd"), 2),
            "ours_decode_ms": timed(lambda: dwtdctsvd.soft_bits(upstream_svd, 128)),
        }
    )
    from imwatermark.rivaGan import RivaWatermark

    RivaWatermark.loadModel()
    reference = RivaWatermark(list(SYNC_BITS), 32)
    small = cv2.resize(frame, riva.WORK_SIZE, interpolation=cv2.INTER_AREA)
    rows.append(
        {
            "size": label,
            "layer": "rivaGan (32 bits), reference at full frame",
            "reference_embed_ms": timed(lambda: reference.encode(frame), 1),
            "reference_decode_ms": timed(lambda: reference.decode(frame), 1),
        }
    )
    rows.append(
        {
            "size": label,
            "layer": f"rivaGan (32 bits) at {riva.WORK_SIZE[0]}x{riva.WORK_SIZE[1]}",
            "reference_embed_ms": timed(lambda: reference.encode(small), 2),
            "ours_embed_ms": timed(lambda: riva.residuals(wm.models, [frame], SYNC_BITS)),
            "reference_decode_ms": timed(lambda: reference.decode(small), 2),
            "ours_decode_ms": timed(lambda: riva.logits(wm.models, [frame])),
        }
    )
    batch = [frame] * 8
    rows.append(
        {
            "size": label,
            "layer": "whole mark (both layers), batch of 8",
            "ours_embed_ms": timed(lambda: wm.embed(batch, 1), 1) / 8,
            "ours_decode_ms": timed(lambda: wm.detect([frame])),
        }
    )
    return rows


def _ms_formatter(row: dict):
    return lambda key: f"{row[key]:.0f}" if key in row else "-"


def markdown(report: dict) -> str:
    lines = [
        f"Quality: PSNR {report['quality']['psnr_mean']:.1f} dB mean ({report['quality']['psnr_min']:.1f} min), "
        f"SSIM {report['quality']['ssim_mean']:.4f}; {report['marked_frames']} marked 1280x720 frames.",
        "",
        "| attack | detected | token recovered |",
        "|---|---|---|",
    ]
    for row in report["robustness"]:
        lines.append(
            f"| {row['attack']} | {row['detected']}/{row['n']} ({row['detected'] / row['n']:.2f}) | "
            f"{row['token']}/{row['n']} ({row['token'] / row['n']:.2f}) |"
        )
    fp = report["false_positives"]
    lines += [
        "",
        f"Unmarked: {fp['false_positives']} false positives and {fp['false_tokens']} false tokens on "
        f"{fp['images']} images/frames (sync agreement max {fp['sync_agreement_max']}/32, mean "
        f"{fp['sync_agreement_mean']:.1f}); stated bound per file {report['false_positive_bound']:.1e}.",
        "",
        "| size | layer | reference embed ms | ours embed ms | reference decode ms | ours decode ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["speed"]:
        fmt = _ms_formatter(row)
        lines.append(
            f"| {row['size']} | {row['layer']} | {fmt('reference_embed_ms')} | {fmt('ours_embed_ms')} | "
            f"{fmt('reference_decode_ms')} | {fmt('ours_decode_ms')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marked", type=int, default=24)
    parser.add_argument("--unmarked", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wm = Watermarker()
    photos = sources()
    frames = [(name, frame_of(image)) for name, image in photos]
    frames = (frames * (args.marked // len(frames) + 1))[: args.marked]
    frames = [(f"{n}#{i}", np.roll(f, 37 * i, axis=1)) for i, (n, f) in enumerate(frames)]
    print(f"robustness on {len(frames)} marked frames", flush=True)
    quality, robustness = bench_robustness(wm, frames, args.out)
    print(f"false positives on {args.unmarked} unmarked images", flush=True)
    false_positives = bench_false_positives(wm, unmarked_set(photos, args.unmarked, args.out))
    print("speed", flush=True)
    speed = bench_speed(wm, photos[0][1])
    report = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
        "marked_frames": len(frames),
        "quality": quality,
        "robustness": robustness,
        "false_positives": false_positives,
        "false_positive_bound": FALSE_POSITIVE_BOUND,
        "speed": speed,
    }
    (args.out / "watermark.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "watermark.md").write_text(table)
    for path in args.out.glob("attack-*.mp4"):
        path.unlink()
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
