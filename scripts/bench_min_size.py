"""The smallest pictures that carry a keyed mark: tokens read by frame size, as written and after the
sharing edits small files meet (docs/watermark.md, "Frame size", quotes it).

    PYTHONPATH=. .venv/bin/python scripts/bench_min_size.py --out bench-results

Photos that packages ship (insightface's group photo and scikit-image's), each cut to every size,
marked under a fresh secret (`Watermarker(key=...)`, what the sink marks with) and read back as
written (PNG), after JPEG 90 and 75, and halved then JPEG 75. Prints, per size, the photos whose
token read of those marked, and writes OUT/bench_min_size.json.
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

from faceswap.provenance.watermark.marker import Watermarker, format_token, new_token

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
          "hubble_deep_field.jpg", "ihc.png", "coins.png"]  # fmt: skip
SIZES = [(256, 256), (320, 240), (384, 288), (400, 300), (480, 360), (640, 480)]


def halved(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as written": lambda m: m,
    "JPEG 90": lambda m: jpeg(m, 90),
    "JPEG 75": lambda m: jpeg(m, 75),
    "half size, JPEG 75": lambda m: jpeg(halved(m), 75),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    pictures = {name: photo(name) for name in ["t1", *PHOTOS]}
    rows = []
    print(f"{'size':>9} " + " ".join(f"{edit:>18}" for edit in EDITS))
    for size in SIZES:
        read = dict.fromkeys(EDITS, 0)
        for picture in pictures.values():
            marker, token = Watermarker(key=secrets.token_bytes(32)), new_token()
            marked = marker.embed([fill(picture, size)], token)[0]
            for edit, change in EDITS.items():
                read[edit] += marker.detect([change(marked)]).token == format_token(token)
        rows.append({"size": f"{size[0]}x{size[1]}", "photos": len(pictures), "read": read})
        print(f"{size[0]:>4}x{size[1]:<4} " + " ".join(f"{read[e]:>15}/{len(pictures):<2}" for e in EDITS), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_min_size.json").write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
