"""How long after a revocation each job stops: extract, train, convert, dub and convert-batch, each
run as a user runs it (`faceswap ...` in its own process), revoked from a second process
(`faceswap consent revoke`) once the job is visibly working.

    .venv/bin/python scripts/bench_revocation.py [--root DIR] [--repeats 3] [--seconds 12]
        [--jobs extract train convert dub convert-batch] [--out bench-results/revocation.json]

The workspace is the demo's, made once under ROOT (subjects with clips of `--seconds`, consent,
facesets, a briefly trained smoke model); each run works on a fresh copy of it. "Stopped after" is
the job's exit time minus the revocation entry's own signed timestamp (the moment the revocation
committed), so it includes the watch's detection, the job's way to its next boundary, its clean-up
and the process's exit. Also recorded: exit code, the error line, whether any entry was appended
after the revocation, what was left behind, and the machine's load average at the time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faceswap.demo.run import DemoOptions, DemoRun, extract_facesets, make_subjects, register_consent, train_model
from faceswap.ledger import open_ledger
from faceswap.workspace import STATE_ENV, Workspace

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "train" / "smoke.yaml"
MODEL = "demo-smoke"


def prepare(root: Path, seconds: float) -> Path:
    """The demo's workspace and model, made once (its witness in ROOT/state, not the user's)."""
    workspace = root / "template"
    if (workspace / "models" / MODEL / "model.safetensors").exists():
        return workspace
    run = DemoRun(Workspace(workspace, state_dir=root / "state").ensure(), DemoOptions(seconds=seconds, steps=20))
    make_subjects(run)
    register_consent(run)
    extract_facesets(run)
    train_model(run)
    return workspace


def clips(workspace: Path) -> dict[str, Path]:
    """Footage the jobs have not seen (extraction would keep nothing from frames already extracted)."""
    folder = workspace / "subjects"
    return {"plate": folder / "demo-a" / "plate.mp4", "performance": folder / "demo-b" / "dub.mp4"}


def job_command(job: str, ws: Path, inputs: dict[str, Path], out: Path) -> tuple[list[str], Callable[[], bool]]:
    """The command, and when it is visibly working (the moment to revoke)."""
    model = str(ws / "models" / MODEL)
    partial = lambda: any(out.glob(".*faceswap-partial-*"))  # noqa: E731 - the sink is writing frames
    if job == "extract":
        staged = ws / "staging"
        return ["extract", str(inputs["plate"]), "--subject", "demo-a", "--size", "128"], lambda: any(
            staged.rglob("*.png")
        )
    if job == "train":
        args = ["train", "--config", str(SMOKE), "--subject-a", "demo-a", "--subject-b", "demo-b"]
        args += ["--purpose", "dubbing-research", "--name", "bench", "--trainer.max_steps", "100000"]
        args += ["--model.preview_every", "25", "--trainer.enable_progress_bar", "false"]
        return args, lambda: (ws / "models" / "bench" / "previews").is_dir()
    if job == "convert":
        return [
            "convert",
            "--model",
            model,
            "--input",
            str(inputs["performance"]),
            "--output",
            str(out / "c.mp4"),
        ], partial
    if job == "dub":
        args = ["dub", "--model", model, "--plate", str(inputs["plate"]), "--performance", str(inputs["performance"])]
        return [*args, "--offset", "0", "--output", str(out / "d.mp4")], partial
    shots = out / "shots.csv"
    rows = [f"{model},{inputs['performance']},{out / f'shot{i}.mp4'}" for i in range(2)]
    shots.write_text("model,input,output\n" + "\n".join(rows) + "\n")
    return ["convert-batch", str(shots), "--workers", "2"], partial


def revoked_at(ws: Path) -> float:
    entry = next(
        e for e in open_ledger(Workspace(ws, state_dir=ws.parent / "state")).entries() if e.kind == "consent.revoked"
    )
    stamp = datetime.strptime(entry.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def after_revocation(ws: Path) -> list[str]:
    """Kinds of the entries appended after the revocation (none is the promise)."""
    entries = open_ledger(Workspace(ws, state_dir=ws.parent / "state")).entries()
    at = next(e.seq for e in entries if e.kind == "consent.revoked")
    return [e.kind for e in entries[at:]]


def left_behind(ws: Path, out: Path) -> list[str]:
    """Weights, checkpoints, staged work or outputs still on disk after the refused job."""
    found = [p for p in ws.rglob("*") if p.suffix in (".ckpt", ".safetensors") and MODEL not in p.parts]
    found += [p for p in (ws / "staging").rglob("*")] if (ws / "staging").exists() else []
    found += [p for p in out.rglob("*") if p.is_file() and p.suffix != ".csv"]
    return sorted(str(p) for p in found)


def measure(job: str, template: Path, scratch: Path) -> dict[str, Any]:
    """One run in its own copy of the workspace, with its own (empty) state folder for the witness."""
    ws, out, state = scratch / "ws", scratch / "out", scratch / "state"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(template, ws)
    out.mkdir(parents=True)
    args, working = job_command(job, ws, clips(ws), out)
    env = {**os.environ, "PYTHONPATH": str(REPO), STATE_ENV: str(state)}
    cli = [sys.executable, "-m", "faceswap.cli"]
    proc = subprocess.Popen(
        [*cli, *args, "--workspace", str(ws)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    started = time.time()
    while not working():
        if proc.poll() is not None:
            raise RuntimeError(f"{job} ended before it was revoked: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the work
    load = os.getloadavg()[0]
    revoking = [*cli, "consent", "revoke", "demo-a", "--reason", "bench", "--workspace", str(ws)]
    revoke = subprocess.Popen(revoking, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:  # the job's own exit time, whenever the revoking process exits
        time.sleep(0.02)
    ended = time.time()
    assert revoke.wait(timeout=600) == 0, "the revocation failed"
    _, err = proc.communicate()
    lines = [line for line in err.splitlines() if line.startswith("faceswap: error:")]
    return {
        "job": job,
        "stopped_after_s": round(ended - revoked_at(ws), 2),
        "ran_before_revocation_s": round(revoked_at(ws) - started, 1),
        "exit_code": proc.returncode,
        "error": lines[-1] if lines else err.strip().splitlines()[-1:],
        "entries_after_revocation": after_revocation(ws),
        "left_behind": left_behind(ws, out),
        "load_average_1min": round(load, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO / "bench-results" / "revocation-work")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the demo clips")
    parser.add_argument("--jobs", nargs="+", default=["extract", "train", "convert", "dub", "convert-batch"])
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "revocation.json")
    args = parser.parse_args()
    template = prepare(args.root, args.seconds)
    runs = [measure(job, template, args.root / f"run-{job}-{i}") for job in args.jobs for i in range(args.repeats)]
    print(f"{'job':<14} {'stopped after (s)':<28} {'exit':<6} {'entries after':<14} {'left':<6} load")
    for job in args.jobs:
        mine = [r for r in runs if r["job"] == job]
        times = [r["stopped_after_s"] for r in mine]
        summary = f"median {statistics.median(times):.2f} (max {max(times):.2f})"
        exits = ",".join(str(r["exit_code"]) for r in mine)
        after = sum(len(r["entries_after_revocation"]) for r in mine)
        left = sum(len(r["left_behind"]) for r in mine)
        load = max(r["load_average_1min"] for r in mine)
        print(f"{job:<14} {summary:<28} {exits:<6} {after:<14} {left:<6} {load}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "repeats": args.repeats, "seconds": args.seconds}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
