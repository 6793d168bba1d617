"""Content binding against a sibling swap: what a leaked secret lets someone credit (docs/watermark.md).

    PYTHONPATH=. .venv/bin/python scripts/bench_sibling_swap.py --out bench-results [--seed 7 --steps 60]

The demo's subjects (3 s), the smoke model trained 30 steps ("ours"), and a second one trained like it
on the same facesets with another seed for 60 steps (`--seed`, `--steps`; "sibling": a swap of the
same shot made elsewhere by someone who has the same footage and faces). Ours converts demo-b's first
25 frames through the CLI; its entry records the binding. Then, with the workspace's watermark secret
as a thief would hold it, the output's token is stamped on every frame of (a) the sibling's
conversion of the same frames and (b) the unconverted clip, and each file goes through `faceswap
verify`. Genuine copies (as written, and cropped 15 % a side at CRF 28) are the other side of the
bar. Each file is also checked against a binding recorded by version 1's detector from the output's
decoded frames, to show what the detector changed.
Prints a table and writes OUT/bench_sibling_swap.json. About 4 minutes on 2 cores at 60 steps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from faceswap.cli import main as cli_main
from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets, make_subjects, register_consent, train_model
from faceswap.ledger import open_ledger, watermark_keys
from faceswap.media import iter_video_frames
from faceswap.provenance import binding
from faceswap.provenance.watermark.marker import Watermarker
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace

FRAMES = 25


def cli_json(argv: list[str]) -> tuple[int, dict]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli_main(argv)
    out = buffer.getvalue()
    return code, json.loads(out[out.find("{") :])


def frames_of(path: Path, limit: int = FRAMES) -> list[np.ndarray]:
    return [f.image for f in iter_video_frames(path, limit=limit)]


def cropped_copy(source: Path, out: Path, share: float, crf: int) -> Path:
    """Cut `share` from each side and encode again at `crf`, as a platform would (no credentials survive)."""
    frames = frames_of(source)
    h, w = frames[0].shape[:2]
    top, left = int(h * share), int(w * share)
    height, width = (h - 2 * top) // 2 * 2, (w - 2 * left) // 2 * 2
    cut = [np.ascontiguousarray(f[top : top + height, left : left + width]) for f in frames]
    return write_input_clip(out, cut, 25, crf=crf)


def convert(root: Path, model: str, clip: Path, out: Path) -> dict:
    argv = ["convert", "--workspace", str(root), "--model", str(root / "models" / model), "--json"]
    code, report = cli_json([*argv, "--frames", f"0-{FRAMES - 1}", "--input", str(clip), "--output", str(out)])
    if code != 0:
        raise SystemExit(f"convert with {model} failed: {report}")
    return report


def verdict(root: Path, path: Path) -> dict:
    code, report = cli_json(["verify", "--workspace", str(root), "--json", str(path)])
    found = report["files"][0]
    checked = found.get("binding") or {}
    return {
        "exit": code,
        "agreeing": checked.get("frames_agreeing"),
        "checked": checked.get("frames_checked"),
        "problem": found.get("binding_problem"),
    }


def judged(check: binding.BindingCheck) -> str:
    counted = [f for f in check.frames if f.verdict != "blank"]
    return f"{sum(f.verdict == 'output' for f in counted)}/{len(counted)} ({'agrees' if check.agrees else 'refused'})"


def run(out: Path, seed: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="sibling-") as tmp:
        root = Path(tmp) / "workspace"
        demo = DemoRun(Workspace(root), DemoOptions(seconds=3.0, steps=30, align_on=None))
        for step in (make_subjects, register_consent, extract_facesets):
            step(demo)
        train_model(demo, "ours")
        train_model(demo, "sibling", ("--seed_everything", str(seed), "--trainer.max_steps", str(steps)))
        clip = demo.files["demo-b"].clip
        files = Path(tmp) / "files"
        files.mkdir()
        ours = files / "ours.mp4"
        token = int(convert(root, "ours", clip, ours)["token"], 16)
        convert(root, "sibling", clip, files / "sibling-plain.mp4")

        ledger = open_ledger(Workspace(root), writable=False)
        thief = Watermarker.marking(watermark_keys.load(ledger.entries(), Workspace(root).keys_dir))
        source_frames = frames_of(clip)
        stamped = {
            "a sibling swap, the output's token stamped": frames_of(files / "sibling-plain.mp4"),
            "the unconverted clip, the output's token stamped": source_frames,
        }
        cases = {
            "the output as written": ours,
            "the output, 15 % a side cropped, CRF 28": cropped_copy(ours, files / "cropped.mp4", 0.15, 28),
        }
        for name, frames in stamped.items():
            path = files / f"stamped-{len(cases)}.mp4"
            cases[name] = write_input_clip(path, [thief.embed([f], token)[0] for f in frames], 25)

        version_1 = binding.KeyFrames(binding.KEY_FRAMES, binding.FRAME_POINTS, version=1)
        for index, (frame, original) in enumerate(zip(frames_of(ours), source_frames, strict=True)):
            version_1.offer(index, frame, original)
        record_1 = version_1.record("video")
        rows = {}
        for name, path in cases.items():
            rows[name] = {**verdict(root, path), "version 1": judged(binding.check(record_1, frames_of(path)))}
    sibling = {"seed": seed, "steps": steps}
    report = {"frames": FRAMES, "binding_version": binding.VERSION, "sibling": sibling, "cases": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sibling_swap.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seed", type=int, default=7, help="the sibling's seed (ours: the smoke preset's 0)")
    parser.add_argument("--steps", type=int, default=60, help="the sibling's training steps (ours: 30)")
    args = parser.parse_args()
    report = run(args.out, args.seed, args.steps)
    print(f"| file | verify exit | binding (version {report['binding_version']}) | version 1 detector |")
    print("|---|---|---|---|")
    for name, row in report["cases"].items():
        shown = "not needed (credentials)" if row["checked"] is None else f"{row['agreeing']}/{row['checked']}"
        print(f"| {name} | {row['exit']} | {shown} | {row['version 1']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
