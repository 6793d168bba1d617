"""Turned and stretched videos, re-encoded: does the tiles' reader find the lattice (docs/watermark.md,
"Geometry", quotes it).

    PYTHONPATH=. .venv/bin/python scripts/bench_geometry.py --out bench-results [--secrets 16]

Each row: a 640x480 output of 8 panning frames (the demo's size, marked as the sink marks it) under
SECRETS different workspace secrets, turned about its centre and zoomed to fill the frame (a
straightening tool), shown at another aspect ratio, or seen in perspective (keystone: the top edge
narrower, as a phone filming a screen from below), then written as H.264 CRF 23 and read as
`verify` reads a video. Prints a table and writes OUT/bench_geometry.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from faceswap.faces.samples import insightface_t1
from faceswap.media import read_image
from faceswap.provenance.verify.verifier import read_sample
from faceswap.provenance.watermark.marker import Watermarker, format_token
from faceswap.synthetic import write_input_clip

TOKEN = 0x6E0A11C0FFEE


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    t = np.radians(abs(degrees))
    zoom = max((w * np.cos(t) + h * np.sin(t)) / w, (w * np.sin(t) + h * np.cos(t)) / h)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, zoom)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def keystone(image: np.ndarray, share: float) -> np.ndarray:
    """A picture of the screen taken from below: the top edge `share` narrower on each side."""
    h, w = image.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = np.float32([[w * share, 0], [w * (1 - share), 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(corners, moved)
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def shown_as(image: np.ndarray, aspect: float) -> np.ndarray:
    h = image.shape[0]
    return cv2.resize(image, (int(round(h * aspect / 2)) * 2, h), interpolation=cv2.INTER_AREA)


EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda f: f,
    "rotate -5 deg": lambda f: rotate(f, -5.0),
    "rotate -3.5 deg": lambda f: rotate(f, -3.5),
    "rotate -2 deg": lambda f: rotate(f, -2.0),
    "rotate +2 deg": lambda f: rotate(f, 2.0),
    "rotate +5 deg": lambda f: rotate(f, 5.0),
    "4:3 shown as 16:9": lambda f: shown_as(f, 16 / 9),
    "4:3 shown as 1:1": lambda f: shown_as(f, 1.0),
    "rotate +8 deg": lambda f: rotate(f, 8.0),
    "rotate -12 deg": lambda f: rotate(f, -12.0),
    "rotate +15 deg": lambda f: rotate(f, 15.0),
    "keystone 2%": lambda f: keystone(f, 0.02),
    "keystone 5%": lambda f: keystone(f, 0.05),
    "keystone 10%": lambda f: keystone(f, 0.10),
}


def clip(scene: np.ndarray, watermarker: Watermarker) -> list[np.ndarray]:
    return watermarker.embed(
        [np.ascontiguousarray(scene[30 + i : 510 + i, 40 + 4 * i : 680 + 4 * i]) for i in range(8)], TOKEN
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--secrets", type=int, default=16)
    args = parser.parse_args()
    t1 = read_image(insightface_t1())
    scale = max(720 / t1.shape[1], 540 / t1.shape[0])
    big = cv2.resize(t1, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    y, x = (big.shape[0] - 540) // 2, (big.shape[1] - 720) // 2
    scene = np.ascontiguousarray(big[y : y + 540, x : x + 720])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, edit in EDITS.items():
            traced, zs, seconds = 0, [], []
            for s in range(args.secrets):
                watermarker = Watermarker(key=hashlib.sha256(b"bench-geometry/%d" % s).digest())
                path = write_input_clip(
                    Path(tmp) / "edited.mp4", [edit(f) for f in clip(scene, watermarker)], 25, crf=23
                )
                start = time.process_time()
                sample = read_sample(path)
                found = watermarker.detect(sample.frames, intra=sample.intra)
                seconds.append(time.process_time() - start)
                traced += found.token == format_token(TOKEN)
                zs.append(max((e.score for e in found.layers if e.layer == "tiles"), default=0.0))
            rows.append(
                {
                    "edit": name,
                    "traced": traced,
                    "secrets": args.secrets,
                    "min_z": round(min(zs), 2),
                    "cpu_s_per_file": round(float(np.mean(seconds)), 2),
                }
            )
            print(f"{name:<20} {traced:>3}/{args.secrets:<3} min z {min(zs):5.2f}  {np.mean(seconds):.2f} CPU s/file")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_geometry.json").write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
