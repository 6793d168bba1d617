"""Splices against content binding: an output of which a part is replaced by other footage, beside
genuine shared copies of the same output (docs/watermark.md, "Splices").

    PYTHONPATH=. .venv/bin/python scripts/bench_splice.py --workspace WS --output OUT.mp4 \
        --source PLATE.mp4 [--other CLIP.mp4] --out bench-results

OUT.mp4 is a video output of the workspace (its `output.written` entry holds the binding), PLATE.mp4
the footage it was converted or dubbed from, CLIP.mp4 any other footage. After `faceswap demo --dub`:
`--workspace WS/demo --output WS/demo/output/demo-dub.mp4 --source WS/demo/subjects/demo-a/plate.mp4
--other WS/demo/subjects/demo-b/clip.mp4`. Genuine copies are made at 360p, cropped 15 % a side and
cropped to half the area, each H.264 CRF 28; splices keep the output and replace its second half,
its last quarter, its last eighth or its middle quarter with the plate (CRF 18: the attacker's own
encode) or the other clip. Each file goes through verify with the workspace's ledger and keys
`--readings` times, each drawing binding's frames with a fresh key (a verifier draws them from the
file's bytes and its own secret, so one verifier's reading of one file repeats). Prints, per file,
how many readings were right and the first reading's checked frames in the file's order (o output,
m the region is the output's but not its middle, s source, x other, . blank), and writes
OUT/bench_splice.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from faceswap.media import iter_video_frames
from faceswap.provenance.verify.verifier import Verifier, ledger_view_for, read_sample
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace

Frames = list[np.ndarray]
LETTERS = {"output": "o", "source": "s", "other": "x", "blank": "."}


def crop(share: float) -> Callable[[np.ndarray], np.ndarray]:
    """Keep the middle, `share` of the width and of the height removed on each side."""

    def cut(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return frame[int(share * h) : int((1 - share) * h), int(share * w) : int((1 - share) * w)]

    return cut


def even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])


def splice(output: Frames, other: Frames, start: float, stop: float) -> Frames:
    """The output with its frames from `start` to `stop` (shares of its length) replaced."""
    n = len(output)
    a, b = round(start * n), round(stop * n)
    size = output[0].shape[1::-1]
    replacement = [cv2.resize(other[i % len(other)], size, interpolation=cv2.INTER_AREA) for i in range(a, b)]
    return output[:a] + replacement + output[b:]


def variants(output: Frames, source: Frames, other: Frames | None) -> dict[str, tuple[Frames, int, bool]]:
    """name -> (frames, CRF, genuine)."""
    h, w = output[0].shape[:2]
    small = (round(w * 360 / h), 360)
    rows: dict[str, tuple[Frames, int, bool]] = {
        "copy 360p CRF 28": ([cv2.resize(f, small, interpolation=cv2.INTER_AREA) for f in output], 28, True),
        "copy cropped 15 % a side CRF 28": ([crop(0.15)(f) for f in output], 28, True),
        "copy cropped to half the area CRF 28": ([crop(0.146)(f) for f in output], 28, True),
    }
    spans = {
        "second half": (0.5, 1.0),
        "last quarter": (0.75, 1.0),
        "last eighth": (0.875, 1.0),
        "middle quarter": (0.375, 0.625),
    }
    for label, footage in (("plate", source), ("other clip", other)):
        if footage is None:
            continue
        for where, (start, stop) in spans.items():
            rows[f"splice: {where} is the {label}"] = (splice(output, footage, start, stop), 18, False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="a video output of the workspace")
    parser.add_argument("--source", type=Path, required=True, help="the footage it was made from")
    parser.add_argument("--other", type=Path, help="other footage")
    parser.add_argument("--readings", type=int, default=5, help="verify readings of each file")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()

    def frames_of(path: Path) -> Frames:
        return [f.image for f in iter_video_frames(path)]

    output, source = frames_of(args.output), frames_of(args.source)
    other = frames_of(args.other) if args.other else None
    verifier = Verifier(ledger_view_for(Workspace(args.workspace), None))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (frames, crf, genuine) in variants(output, source, other).items():
            path = write_input_clip(Path(folder) / "variant.mp4", [even(f) for f in frames], 25, crf=crf)
            readings = []
            for _ in range(args.readings):
                started = time.perf_counter()
                # a verifier draws binding's frames from the file's bytes and its secret: each reading
                # here draws as another verifier, or the same file with other bytes, would
                verdict = verifier.verify(path, read_sample(path, draw_key=os.urandom(32)))
                checked = verdict.binding.frames if verdict.binding else ()
                readings.append(
                    {
                        "exit": int(verdict.exit_code),
                        "checked frames": "".join("m" if c.region == "middle" else LETTERS[c.verdict] for c in checked),
                        "binding problem": verdict.binding_problem,
                        "verify s": round(time.perf_counter() - started, 2),
                    }
                )
            right = sum((r["exit"] == 0) == genuine for r in readings)
            row = {"file": name, "genuine": genuine, "right": right, "readings": readings}
            results.append(row)
            seconds = max(r["verify s"] for r in readings)
            print(f"{name:46s} {right}/{len(readings)} right  {readings[0]['checked frames']:24s}  {seconds:5.2f} s")
    right = sum(r["right"] for r in results)
    total = sum(len(r["readings"]) for r in results)
    print(f"right: {right} of {total} readings (genuine copies credited, splices refused)")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"output": str(args.output), "rows": results, "right": right}
    (args.out / "bench_splice.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
