"""What informed embedding buys and costs (docs/watermark.md, "Informed embedding", quotes it).

    PYTHONPATH=. .venv/bin/python scripts/bench_informed.py --out bench-results [--secrets 100]

Three parts, each picture marked under a fresh secret and token:
1. margin against a lossless read: textures and photos from 320x240 to 1080x1080 marked at the plain
   strength and at 1.3x the mask's ceiling, their `tiles.margin` and whether the token reads back from
   the frame as written, counted per margin band (where BIT_MARGIN comes from);
2. smooth colour noise at 640x360 (8-pixel cells, what tests/test_fuzz_inputs.py writes): lossless
   read-back failures over `--secrets` secrets, plain against informed;
3. by frame size, 10 package photos: how many the marker raised and the mean and least PSNR, plain
   against informed;
4. speed: ms per frame to mark insightface's group photo at 640x480 and 1920x1080 (not raised: the
   read-back alone) and scikit-image's grass at 640x480 (raised), plain against informed.
Prints the tables and writes OUT/bench_informed.json (`--speed-only`: part 4 alone).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from bench_pictures import fill, photo

from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import Watermarker, format_token, new_token
from faceswap.provenance.watermark.payload import encode_token_v2

TEXTURES = ["grass.png", "gravel.png"]
PHOTOS = ["t1", "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png", "coins.png"]
SIZE_PHOTOS = ["t1", "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
               "camera.png", "hubble_deep_field.jpg", "ihc.png", "coins.png"]  # fmt: skip
SIZES = [(256, 256), (320, 240), (400, 300), (480, 360), (640, 480), (1280, 720)]
BANDS = np.round(np.arange(0.6, 1.61, 0.1), 1)


def smooth_noise(height: int = 360, width: int = 640, seed: int = 7) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def plain_mark(marker: Watermarker, image: np.ndarray, token: int, boost: float = 1.0) -> np.ndarray:
    return tiles.add_luma(image, tiles.delta(image, marker.pattern(image.shape, token), boost=boost))


def reads(marker: Watermarker, image: np.ndarray, token: int) -> bool:
    return marker.detect([image], legacy=False).token == format_token(token)


def margin_bands(rounds: int) -> list[dict]:
    pictures = [fill(photo(n), s) for n in TEXTURES for s in [(640, 480), (854, 480), (1080, 1080)]]
    pictures += [fill(photo(n), s) for n in PHOTOS for s in [(320, 240), (400, 300), (480, 360)]]
    pictures.append(smooth_noise())
    found: list[tuple[float, bool]] = []
    for _ in range(rounds):
        for picture in pictures:
            key, token = secrets.token_bytes(32), new_token()
            marker = Watermarker(key=key, key_id="bench")
            for boost in (1.0, 1.3):
                marked = plain_mark(marker, picture, token, boost)
                found.append((tiles.margin(marked, encode_token_v2(token), key), reads(marker, marked, token)))
    rows = []
    for low in BANDS[:-1]:
        inside = [ok for m, ok in found if low <= m < low + 0.1]
        if inside:
            rows.append({"margin": f"{low:.1f}-{low + 0.1:.1f}", "frames": len(inside), "read": int(sum(inside))})
    return rows


def noise_failures(count: int) -> dict:
    picture = smooth_noise()
    failed = {"plain": 0, "informed": 0}
    for _ in range(count):
        token = new_token()
        marker = Watermarker(key=secrets.token_bytes(32), key_id="bench")
        failed["plain"] += not reads(marker, plain_mark(marker, picture, token), token)
        failed["informed"] += not reads(marker, marker.embed([picture], token)[0], token)
    return {"secrets": count, "failed": failed}


def by_size() -> list[dict]:
    pictures = {name: photo(name) for name in SIZE_PHOTOS}
    rows = []
    for size in SIZES:
        plain, informed, raised = [], [], 0
        for picture in pictures.values():
            image = fill(picture, size)
            token = new_token()
            marker = Watermarker(key=secrets.token_bytes(32), key_id="bench")
            before, after = plain_mark(marker, image, token), marker.embed([image], token)[0]
            plain.append(cv2.PSNR(before, image))
            informed.append(cv2.PSNR(after, image))
            raised += not np.array_equal(before, after)
        rows.append({
            "size": f"{size[0]}x{size[1]}", "photos": len(pictures), "raised": raised,
            "psnr_plain": round(float(np.mean(plain)), 1), "psnr_informed": round(float(np.mean(informed)), 1),
            "psnr_informed_least": round(float(np.min(informed)), 1),
        })  # fmt: skip
    return rows


def milliseconds(mark: Callable[[], object], repeats: int) -> float:
    mark()  # the pattern is built once per output
    start = time.perf_counter()
    for _ in range(repeats):
        mark()
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def speed(repeats: int = 20) -> list[dict]:
    rows = []
    for name, size in (("t1", (640, 480)), ("t1", (1920, 1080)), ("grass.png", (640, 480))):
        image, token = fill(photo(name), size), new_token()
        marker = Watermarker(key=secrets.token_bytes(32), key_id="bench")
        rows.append({
            "picture": f"{name}@{size[0]}x{size[1]}",
            "ms_plain": milliseconds(partial(plain_mark, marker, image, token), repeats),
            "ms_informed": milliseconds(partial(marker.embed, [image], token), repeats),
        })  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--secrets", type=int, default=100, help="secrets for the smooth-noise read-back count")
    parser.add_argument("--rounds", type=int, default=3, help="fresh secrets per picture for the margin bands")
    parser.add_argument("--speed-only", action="store_true", help="only time marking, plain against informed")
    args = parser.parse_args()
    timed = speed()
    print(f"{'picture':>20} {'ms plain':>9} {'ms informed':>12}")
    for row in timed:
        print(f"{row['picture']:>20} {row['ms_plain']:>9} {row['ms_informed']:>12}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        (args.out / "bench_informed_speed.json").write_text(json.dumps({"speed": timed}, indent=2))
        return 0
    bands = margin_bands(args.rounds)
    print(f"{'margin':>8} {'lossless reads':>15}")
    for row in bands:
        print(f"{row['margin']:>8} {row['read']:>11}/{row['frames']:<3}", flush=True)
    noise = noise_failures(args.secrets)
    print(
        f"smooth noise 640x360, {noise['secrets']} secrets: read-back failed plain {noise['failed']['plain']}, "
        f"informed {noise['failed']['informed']}",
        flush=True,
    )
    sizes = by_size()
    print(f"{'size':>9} {'raised':>7} {'PSNR plain':>10} {'PSNR informed':>13} {'least':>6}")
    for row in sizes:
        print(
            f"{row['size']:>9} {row['raised']:>4}/{row['photos']:<2} {row['psnr_plain']:>10} "
            f"{row['psnr_informed']:>13} {row['psnr_informed_least']:>6}"
        )
    report = {"margin_bands": bands, "smooth_noise": noise, "by_size": sizes, "speed": timed}
    (args.out / "bench_informed.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
