"""What raising the texture mask's ceiling would buy and cost (docs/watermark.md, "Where a cell
misses, and why", quotes it): the token on stochastic textures after the hardest sharing edits, and
the PSNR every photo pays.

    PYTHONPATH=. .venv/bin/python scripts/bench_texture_ceiling.py --out bench-results

`tiles.strength_map` scales the mark by local detail between a floor and a ceiling (`tiles.CEILING`, 1.6, is what the
sink uses; the marker's informed boost, where a picture's own read asks for it, scales it further on
every row). For each ceiling, each picture is marked under a fresh secret at each size; PSNR is the
marked picture against the original; a read counts when the token comes back after the edit.
Textures: scikit-image's `grass` and `gravel` (where the sharing table's misses are); photos:
insightface's group photo and scikit-image's astronaut, cat and coffee. Prints a table and writes
OUT/bench_texture_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from bench_pictures import fill, jpeg, photo

from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import Watermarker, format_token, new_token

CEILINGS = (1.6, 2.2, 3.0)
TEXTURES = ["grass.png", "gravel.png"]
PHOTOS = ["t1", "astronaut.png", "chelsea.png", "coffee.png"]
SIZES = [(640, 480), (1080, 1080)]


def keep_half_area(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    k = 0.5**0.5
    ch, cw = int(h * k), int(w * k)
    return np.ascontiguousarray(image[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw])


EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "keep 50% area, JPEG 75": lambda m: jpeg(keep_half_area(m), 75),
    "half size, JPEG 60": lambda m: jpeg(
        cv2.resize(m, (m.shape[1] // 2, m.shape[0] // 2), interpolation=cv2.INTER_AREA), 60
    ),
}


def measure(ceiling: float, pictures: dict[str, np.ndarray]) -> dict[str, object]:
    original = tiles.CEILING
    tiles.CEILING = ceiling  # what the sink would mark with at this ceiling
    try:
        psnr: dict[str, list[float]] = {"textures": [], "photos": []}
        read = {group: dict.fromkeys(EDITS, 0) for group in psnr}
        count = dict.fromkeys(psnr, 0)
        for name, picture in pictures.items():
            group = "textures" if name in TEXTURES else "photos"
            for size in SIZES:
                plain = fill(picture, size)
                marker, token = Watermarker(key=secrets.token_bytes(32)), new_token()
                marked = marker.embed([plain], token)[0]
                psnr[group].append(float(cv2.PSNR(marked, plain)))
                count[group] += 1
                for edit, change in EDITS.items():
                    read[group][edit] += marker.detect([change(marked)]).token == format_token(token)
    finally:
        tiles.CEILING = original
    return {
        "ceiling": ceiling,
        "pictures": count,
        "psnr_mean": {g: round(float(np.mean(v)), 2) for g, v in psnr.items()},
        "read": read,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    pictures = {name: photo(name) for name in TEXTURES + PHOTOS}
    rows = []
    edits = list(EDITS)
    print(
        f"{'ceiling':>7} {'PSNR photos':>11} {'PSNR textures':>13} "
        + " ".join(f"{'textures: ' + e:>32}" for e in edits)
    )
    for ceiling in CEILINGS:
        row = measure(ceiling, pictures)
        rows.append(row)
        n = row["pictures"]["textures"]
        reads = " ".join(f"{row['read']['textures'][e]:>29}/{n:<2}" for e in edits)
        print(
            f"{ceiling:>7.1f} {row['psnr_mean']['photos']:>11.2f} {row['psnr_mean']['textures']:>13.2f} {reads}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_texture_ceiling.json").write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
