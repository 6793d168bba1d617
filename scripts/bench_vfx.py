"""VFX delivery benchmark: colour round trips, and whether the watermark survives the delivery paths.

    .venv/bin/python scripts/bench_vfx.py [--frames 12] [--size 960x540] [--out bench-results]
        [--workspace WS --model WS/models/NAME --input CLIP]

Colour: every 8-bit sRGB code value (and random 16-bit ones) taken to the output space, stored as
half float, and brought back with the inverse transform. Watermark: the photos of
scripts/bench_watermark.py as frames, written through the real sink (one token per output) as
- an EXR sequence (scene-linear Rec.709, and ACEScg), then rendered to 8-bit sRGB the way a
  compositor's viewer or a review export would (the inverse transform; also a gamma 2.2 display
  transform, a JPEG 90 of the render and a half-size render);
- a ProRes 4444 MOV from 16-bit frames, decoded as is and after an H.264 transcode (CRF 23, 28);
- a 16-bit PNG sequence (with detail below 8 bits) read back at 8 bits.
Each frame is detected on its own (the hardest case); videos also as one file (24 sampled frames).
With a workspace, model and clip: one real conversion to EXR and one to 16-bit PNG of the same frames,
the EXR taken back to sRGB with the inverse transform and compared with the PNG, and one EXR frame's
8-bit render detected (its token must be the one the EXR header names).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_watermark import STILLS, _exists, decode_all, jpeg, photo, tiles_z, write_video  # noqa: E402
from bench_watermark import fill as frame_of  # noqa: E402


def sources() -> list[tuple[str, np.ndarray]]:
    """The photos bench_watermark marks (insightface's t1 and scikit-image's natural ones)."""
    return [(name, photo(name)) for name in ["t1", *STILLS] if _exists(name)]


def codec_roundtrip(frames: list[np.ndarray], codec: str, crf: int, workdir: Path) -> list[np.ndarray]:
    """The frames after an encode at `crf` and a decode."""
    return decode_all(write_video(workdir / f"attack-{codec}-{crf}.mp4", frames, 25, codec, crf))


from faceswap.colorspace import Colour, quantise  # noqa: E402
from faceswap.media import iter_video_frames, read_exr  # noqa: E402
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame  # noqa: E402
from faceswap.provenance.output.writers import to8  # noqa: E402
from faceswap.provenance.watermark.marker import Watermarker  # noqa: E402
from faceswap.workspace import Workspace  # noqa: E402

CONTEXT = OutputContext(producer="bench")


def colour_round_trips(colour: Colour) -> list[dict]:
    v = np.arange(256, dtype=np.float32)
    a, b = np.meshgrid(v, v, indexing="ij")
    codes = np.stack([a, b, 255 - a], -1)
    deep = np.random.default_rng(0).integers(0, 65536, (256, 256, 3)).astype(np.float32)
    rows = []
    for space in (colour.linear, colour.space("ACEScg")):
        half = colour.convert(codes / 255, colour.srgb, space).astype(np.float16).astype(np.float32)
        back = colour.convert(half, space, colour.srgb) * 255
        half16 = colour.convert(deep / 65535, colour.srgb, space).astype(np.float16).astype(np.float32)
        back16 = colour.convert(half16, space, colour.srgb) * 65535
        rows.append(
            {
                "space": space,
                "8bit_max_error": float(np.abs(back - codes).max()),
                "8bit_mean_error": float(np.abs(back - codes).mean()),
                "8bit_exact_share": float((quantise(back / 255, 8) == codes).mean()),
                "16bit_max_error": float(np.abs(back16 - deep).max()),
                "16bit_mean_error": float(np.abs(back16 - deep).mean()),
            }
        )
    return rows


def rate(found: list) -> str:
    return f"{sum(found)}/{len(found)} ({sum(found) / len(found):.2f})"


def detect_each(watermarker: Watermarker, frames: list[np.ndarray], token: str) -> dict:
    results = [watermarker.detect([f]) for f in frames]
    return {
        "detected": [r.marked for r in results],
        "token": [r.token == token for r in results],
        "sync_mean": float(np.mean([tiles_z(r) or 0.0 for r in results])),
    }


def half_and_back(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def exr_paths(sink, colour, watermarker, frames, work: Path) -> list[dict]:
    rows = []
    gamma22 = colour.first_space(("Gamma 2.2 Encoded Rec.709", "g22_rec709"), "gamma 2.2")
    for space in (colour.linear, colour.space("ACEScg")):
        linear = [colour.convert(f.astype(np.float32) / 255, colour.srgb, space) for f in frames]
        folder = work / f"exr-{space.split()[0]}"
        started = time.perf_counter()
        written = sink.write_exr_sequence(
            folder,
            [SinkFrame(f, number=1001 + i) for i, f in enumerate(linear)],
            CONTEXT,
            colour.display(space),
            colour.ref,
            Fraction(24),
        )
        seconds = time.perf_counter() - started
        plates = [read_exr(p).pixels for p in sorted(written.path.glob("*.exr"))]
        renders = [quantise(colour.convert(p, space, colour.srgb), 8) for p in plates]
        attacks = {
            "sRGB render (inverse transform)": renders,
            "gamma 2.2 render": [quantise(colour.convert(p, space, gamma22), 8) for p in plates],
            "sRGB render + JPEG 90": [jpeg(r, 90) for r in renders],
            "sRGB render, half size and back": [half_and_back(r) for r in renders],
        }
        quality = float(np.mean([psnr(r, f) for r, f in zip(renders, frames, strict=True)]))
        for name, images in attacks.items():
            found = detect_each(watermarker, images, written.token)
            rows.append(
                {
                    "path": f"EXR {space} -> {name}",
                    "psnr_db": quality,
                    "seconds_per_frame": seconds / len(frames),
                    **found,
                }
            )
    return rows


def prores_paths(sink, watermarker, frames, work: Path) -> list[dict]:
    deep = [f.astype(np.uint16) * 257 for f in frames]
    matte = np.full(frames[0].shape[:2], 65535, np.uint16)
    started = time.perf_counter()
    written = sink.write_video(
        work / "shot.mov",
        [SinkFrame(f, alpha=matte) for f in deep],
        Fraction(24),
        CONTEXT,
        codec="prores4444",
        alpha=True,
        timecode="01:00:00:00",
    )
    seconds = time.perf_counter() - started
    rows = []
    decoded = [f.image for f in iter_video_frames(written.path)]
    for name, images in (
        ("ProRes 4444 decoded", decoded),
        ("ProRes 4444 -> H.264 CRF 23", codec_roundtrip(decoded, "libx264", 23, work)),
        ("ProRes 4444 -> H.264 CRF 28", codec_roundtrip(decoded, "libx264", 28, work)),
    ):
        whole = watermarker.detect(images)
        quality = float(np.mean([psnr(a, b) for a, b in zip(images, frames, strict=True)]))
        rows.append(
            {
                "path": name,
                "psnr_db": quality,
                "seconds_per_frame": seconds / len(frames),
                "video_detected": whole.marked,
                "video_token": whole.token == written.token,
                **detect_each(watermarker, images, written.token),
            }
        )
    return rows


def png16_path(sink, watermarker, frames, work: Path) -> list[dict]:
    rng = np.random.default_rng(1)
    deep = [
        np.minimum(f.astype(np.int64) * 257 + rng.integers(0, 128, f.shape), 65535).astype(np.uint16) for f in frames
    ]
    written = sink.write_sequence(work / "png16", [SinkFrame(f, number=i) for i, f in enumerate(deep)], CONTEXT)
    images = [to8(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in sorted(written.path.glob("*.png"))]
    quality = float(np.mean([psnr(a, b) for a, b in zip(images, frames, strict=True)]))
    return [
        {"path": "16-bit PNG read at 8 bits", "psnr_db": quality, **detect_each(watermarker, images, written.token)}
    ]


def conversion(workspace: Path, model: Path, clip: Path, work: Path, colour: Colour) -> dict:
    import contextlib
    import io

    from faceswap.cli import main

    def cli(argv: list[str]) -> int:
        with contextlib.redirect_stdout(io.StringIO()):
            return main(argv)

    common = ["--workspace", str(workspace), "--model", str(model), "--input", str(clip), "--alpha"]
    common += ["--frames", "20-27", "--start-frame", "1001", "--json"]
    assert cli(["convert", *common, "--output", str(work / "exr"), "--sequence", "exr"]) == 0
    assert cli(["convert", *common, "--output", str(work / "png"), "--sequence", "png", "--bits", "16"]) == 0
    errors, alpha = [], []
    pairs = zip(sorted((work / "exr").glob("*.exr")), sorted((work / "png").glob("*.png")), strict=True)
    for exr, png in pairs:
        plate = read_exr(exr)
        srgb = cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        errors.append(np.abs(colour.convert(plate.pixels, colour.linear, colour.srgb) - srgb[..., :3]) * 255)
        alpha.append(float(np.abs(plate.alpha - srgb[..., 3]).max()))
    render = quantise(colour.convert(read_exr(exr).pixels, colour.linear, colour.srgb), 8)
    found = workspace_reader(workspace).detect([render])
    verified = found.marked and found.token == str(read_exr(exr).attributes["faceswap.token"])
    stack = np.stack(errors)
    return {
        "frames": len(errors),
        "exr_vs_png16_mean_error_8bit": float(stack.mean()),
        "exr_vs_png16_p99_error_8bit": float(np.percentile(stack, 99)),
        "exr_vs_png16_max_error_8bit": float(stack.max()),
        "alpha_max_difference": max(alpha),
        "render_verified": verified,
    }


def workspace_reader(workspace: Path) -> Watermarker:
    """Reads the marks of `workspace` with its own watermark secrets."""
    from faceswap.ledger import open_ledger, watermark_keys

    ws = Workspace(workspace)
    return Watermarker.reading(watermark_keys.load(open_ledger(ws, writable=False).entries(), ws.keys_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--workspace", type=Path, default=None, help="with --model and --input: a real conversion")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--input", type=Path, default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    colour = Colour()
    photos = sources()
    frames = [frame_of(photos[i % len(photos)][1], (width, height)) for i in range(args.frames)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sink = OutputSink.for_workspace(Workspace(work / "ws"))
        watermarker = sink.watermarker
        rows = exr_paths(sink, colour, watermarker, frames, work)
        rows += prores_paths(sink, watermarker, frames, work)
        rows += png16_path(sink, watermarker, frames, work)
        converted = conversion(args.workspace, args.model, args.input, work, colour) if args.model else None
    round_trips = colour_round_trips(colour)

    print(f"Colour round trips (OCIO {colour.name}; sRGB -> space -> half float -> sRGB)")
    print("| space | 8-bit max err | 8-bit mean err | 8-bit exact | 16-bit max err | 16-bit mean err |")
    print("|---|---|---|---|---|---|")
    for r in round_trips:
        print(
            f"| {r['space']} | {r['8bit_max_error']:.3f} | {r['8bit_mean_error']:.4f} | {r['8bit_exact_share']:.4f} "
            f"| {r['16bit_max_error']:.1f} | {r['16bit_mean_error']:.2f} |"
        )
    print(f"\nWatermark survival, {args.frames} frames {width}x{height}, each detected alone")
    print("| path | PSNR dB | detected | token | tiles sync z (mean) | video (one file) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        video = ""
        if "video_detected" in r:
            video = f"{'marked' if r['video_detected'] else 'MISSED'}, token {'yes' if r['video_token'] else 'lost'}"
        print(
            f"| {r['path']} | {r['psnr_db']:.1f} | {rate(r['detected'])} | {rate(r['token'])} | {r['sync_mean']:.1f} "
            f"| {video} |"
        )
    if converted:
        print(f"\nConversion (8 frames of {args.input.name}): EXR -> sRGB vs 16-bit PNG, in 8-bit steps")
        c = converted
        print(
            f"mean {c['exr_vs_png16_mean_error_8bit']:.2f}, p99 {c['exr_vs_png16_p99_error_8bit']:.2f}, "
            f"max {c['exr_vs_png16_max_error_8bit']:.2f}; alpha max difference {c['alpha_max_difference']:.1e}; "
            f"8-bit render marked with the EXR's token: {c['render_verified']}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "frames": args.frames,
        "size": [width, height],
        "ocio_config": colour.name,
        "machine": platform.platform(),
        "colour": round_trips,
        "conversion": converted,
        "watermark": [{**r, "detected": sum(r["detected"]), "token": sum(r["token"])} for r in rows],
    }
    (args.out / "bench_vfx.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
