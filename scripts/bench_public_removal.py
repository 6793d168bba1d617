"""How often a keyed mark survives someone subtracting the public pattern, over many workspace secrets
(docs/watermark.md, "Attacks", and tests/test_keyed_marks.py quote it).

    PYTHONPATH=. .venv/bin/python scripts/bench_public_removal.py --out bench-results [--workspaces 100]

Each fresh workspace (its own secret) writes the same 20-frame 640x480 clip (a pan over insightface's
group photo, H.264) through the sink; the attacker decodes it, subtracts from every frame exactly the
pattern the public key would have added for the file's token (`watermark_attacks.exact_removal`
with `tiles.KEY`: what anyone can compute), and encodes it again; `verify` reads it with the workspace.
The public tile and the keyed tile share the chip lattice, so the subtraction adds a tile-periodic
pattern of the mark's own power: how much it takes depends on how the secret lays out its tile.
`--no-removal` is the baseline: the same decode and encode without the subtraction (written to
OUT/bench_public_removal_baseline.json). Prints each secret's exit, sync z and corrected code bits,
then how many were still traced to their entry (exit 0) and how many by their own token, and writes
OUT/bench_public_removal.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceswap.cli import main as cli
from faceswap.media import iter_video_frames
from faceswap.provenance.output.sink import OutputContext, OutputSink
from faceswap.provenance.watermark import tiles
from faceswap.synthetic import write_input_clip
from faceswap.workspace import Workspace

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from media_helpers import make_clip  # noqa: E402  (the clip tests/test_keyed_marks.py uses)
from watermark_attacks import exact_removal  # noqa: E402

CONTEXT = OutputContext(producer="bench_public_removal", consent_record_ids=("rec-a",))


def verify(root: Path, path: Path) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(["verify", str(path), "--workspace", str(root), "--json"])
    return code, json.loads(out.getvalue())["files"][0]


def one_secret(folder: Path, plate: list[np.ndarray], removal: bool = True) -> dict[str, object]:
    root = folder / "workspace"
    video = OutputSink.for_workspace(Workspace(root)).write_video(
        folder / "out.mp4", iter(plate), Fraction(25), CONTEXT
    )
    token = int(video.token, 16)
    frames = [f.image for f in iter_video_frames(video.path)]
    frames = exact_removal(frames, tiles.KEY, token) if removal else frames
    code, verdict = verify(root, write_input_clip(folder / "stripped.mp4", frames, 25))
    detection = verdict.get("detection") or {}
    tiles_z = [e["score"] for e in detection.get("layers", []) if e["layer"] == "tiles"]
    return {
        "traced": code == 0 and verdict.get("ledger_seq") == video.entry.seq,
        "token_read": detection.get("token") == video.token,
        "exit": code,
        "marked": bool(verdict.get("marked")),
        "sync_z": max(tiles_z) if tiles_z else None,
        "sync_threshold": next((e["threshold"] for e in detection.get("layers", []) if e["layer"] == "tiles"), None),
        "corrected_bits": detection.get("token_corrected_bits"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--no-removal", action="store_true", help="the baseline: decoded and encoded again only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plate = [f.image for f in iter_video_frames(make_clip(Path(folder) / "plate.mp4", count=20, size=(640, 480)))]
    rows = []
    print(f"{'secret':>6} {'exit':>4} {'traced':>6} {'token':>5} {'sync z':>6} {'bits fixed':>10}")
    for i in range(args.workspaces):
        with tempfile.TemporaryDirectory() as folder:
            row = one_secret(Path(folder), plate, removal=not args.no_removal)
        rows.append(row)
        z = "-" if row["sync_z"] is None else f"{row['sync_z']:.2f}"
        bits = "-" if row["corrected_bits"] is None else str(row["corrected_bits"])
        traced, token = ("yes" if row[k] else "NO" for k in ("traced", "token_read"))
        print(f"{i:>6} {row['exit']:>4} {traced:>6} {token:>5} {z:>6} {bits:>10}", flush=True)
    traced = sum(bool(r["traced"]) for r in rows)
    token_read = sum(bool(r["token_read"]) for r in rows)
    fixed = [int(r["corrected_bits"]) for r in rows if r["corrected_bits"] is not None]
    zs = [float(r["sync_z"]) for r in rows if r["sync_z"] is not None]
    summary = {
        "removal": not args.no_removal,
        "workspaces": len(rows),
        "traced": traced,
        "token_read": token_read,
        "marked": sum(bool(r["marked"]) for r in rows),
        "corrected_bits_median": float(np.median(fixed)) if fixed else None,
        "corrected_bits_max": max(fixed) if fixed else None,
        "sync_z_median": float(np.median(zs)) if zs else None,
        "sync_z_min": min(zs) if zs else None,
    }
    print(
        f"of {len(rows)} secrets: traced to their entry {traced}, by their own token {token_read}; "
        + ", ".join(f"{k} {v}" for k, v in summary.items())
    )
    args.out.mkdir(parents=True, exist_ok=True)
    name = "bench_public_removal.json" if not args.no_removal else "bench_public_removal_baseline.json"
    (args.out / name).write_text(json.dumps({**summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
