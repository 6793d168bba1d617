"""`faceswap demo --dub`: the dubbing workflow on the synthetic subjects, in one command.

subjects (with the dub pair; kept when already made) -> consent -> extract and train a lower-face
model `demo-dub` (or reuse it, when it exists and its consent holds) -> dub the plate with the
performance (--offset auto) -> verify -> eval --dub -> workspace/demo/dub-report.json. Same workspace
and facesets as `faceswap demo`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceswap.demo.run import (
    DemoOptions,
    DemoRun,
    extract_facesets,
    make_subjects,
    register_consent,
    run_steps,
)
from faceswap.demo.run import train_model as train_demo_model
from faceswap.demo.subjects import DubPair, ensure_dub_pair, existing_subjects
from faceswap.errors import FaceswapError
from faceswap.workspace import Workspace

REPORT_NAME = "dub-report.json"
OUTPUT_NAME = "demo-a-dubbed-by-demo-b.mp4"
MODEL_NAME = "demo-dub"
# a dubbing model renders the mouth only: cut lower-face crops from the demo's whole-face facesets,
# so the 64 px model spends its pixels on the lips and jaw (docs/training.md, "Face types")
TRAIN_OPTIONS = ("--data.face_type", "lower")
DUB_STEPS = 600  # the mouth follows the performance from ~500 CPU steps on (README, "Dubbing")


@dataclass
class DubRun(DemoRun):
    pair: DubPair | None = None
    model_reused: bool = False


def subjects(run: DubRun) -> None:
    """The demo subjects and the dub pair: made unless this workspace already has them."""
    from faceswap.faces.analyzer import FaceAnalyzer

    out = run.workspace.root / "subjects"
    found = existing_subjects(out, run.options.seconds, dub_pair=False)
    if found is None:
        make_subjects(run)
    else:
        run.files = {f.subject: f for f in found}
    run.pair = ensure_dub_pair(out, FaceAnalyzer("dlib"), run.options.seconds)


def model(run: DubRun) -> None:
    """The demo's dubbing model when it loads (the ledger knows it, its consent holds, it is for
    dubbing); else extract both subjects and train it on lower-face crops."""
    from faceswap.convert.dub import authorize

    folder = run.workspace.models_dir / MODEL_NAME
    if folder.is_dir():
        try:
            found = authorize(run.store, folder)
        except FaceswapError:
            found = None
        if found is not None:
            run.model_dir, run.model_reused = folder, True
            run.report["model"] = {"steps": found.entry.data.get("steps"), "fingerprint": found.fingerprint}
    if not run.model_reused:
        extract_facesets(run)
        train_demo_model(run, MODEL_NAME, TRAIN_OPTIONS)
    run.report["model"] = {**run.report["model"], "dir": str(run.model_dir), "reused": run.model_reused}


def dub_plate(run: DubRun) -> None:
    from faceswap.convert.dub import DubOptions, dub

    assert run.pair is not None and run.model_dir is not None
    run.output = run.workspace.root / "output" / OUTPUT_NAME
    run.output.unlink(missing_ok=True)
    done = dub(run.store, run.model_dir, run.pair.plate, run.pair.performance, run.output, DubOptions(offset="auto"))
    truth_offset = json.loads(run.pair.performance_truth.read_text()).get("dub_pair", {}).get("offset_s", 0.0)
    run.report.update(
        plate=str(run.pair.plate),
        performance=str(run.pair.performance),
        plate_truth=str(run.pair.plate_truth),
        performance_truth=str(run.pair.performance_truth),
        output=str(run.output),
        dub=done.to_json(),
        offset={"found_s": done.offset_s, "truth_s": truth_offset, "error_s": round(done.offset_s - truth_offset, 4)},
    )


def verify_dub(run: DubRun) -> None:
    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    assert run.output is not None
    view = LedgerView.from_ledger(run.store.ledger, run.store.workspace.keys_dir)
    run.report["verify"] = Verifier(view).verify(run.output).to_json()


def evaluate_dub(run: DubRun) -> None:
    from faceswap.eval.dub import run_dub_eval

    assert run.pair is not None and run.model_dir is not None and run.output is not None
    metrics = run_dub_eval(
        run.store,
        run.model_dir,
        run.pair.plate,
        run.output,
        run.pair.performance,
        run.pair.plate_truth,
        run.pair.performance_truth,
    )
    run.report["metrics"] = metrics.to_json()


STEPS = (
    ("subjects", subjects),
    ("consent", register_consent),
    ("model", model),
    ("dub", dub_plate),
    ("verify", verify_dub),
    ("eval", evaluate_dub),
)


def run_dub_demo(root: Workspace, options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Each step in order, timed; dub-report.json is written when all are done."""
    return run_steps(DubRun(Workspace(root.demo_dir).ensure(), options), STEPS, REPORT_NAME, say)


def summary(report: dict[str, Any]) -> str:
    m, d, verify = report["metrics"], report["dub"], report["verify"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    bars = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in m["passed"].items())
    lines = [
        "faceswap demo --dub: demo-a's shot re-voiced with demo-b's performance",
        f"  output      {report['output']}  ({d['frames']} frames, {d['frames_dubbed']} dubbed, audio from "
        f"{d['audio_source']})",
        f"  offset      {d['offset_s']:+.3f} s found ({d['offset_mode']}, confidence {fmt(d['offset_confidence'])}); "
        f"truth {report['offset']['truth_s']:+.3f} s",
        f"  verify      {'MARKED' if verify['marked'] else 'NOT MARKED'}, token {verify['detection']['token']}, "
        f"ledger {verify['ledger']}, producer {verify.get('producer')}",
        f"  lip sync    {fmt(m['lip_sync_performance'])} with the performance, {fmt(m['lip_sync_plate'])} with the "
        "plate's own mouth",
        f"  a/v sync    best lag {m['av_sync_lag_frames']} frame(s)",
        f"  identity    nearer A in {fmt(m['nearer_a_share'])} of key frames",
        f"  seam        {fmt(m['seam_ratio'])}x the plate's gradient energy along the region's edge",
        f"  outside     PSNR {fmt(m['psnr_outside_db'])} dB against the plate",
        f"  bars        {bars}",
        f"  model       {report['model']['dir']} ({'reused' if report['model']['reused'] else 'trained now'})",
        f"  time        {report['timings_s']['total']} s  "
        + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items() if k != "total"),
        f"  report      {report['workspace']}/{REPORT_NAME}",
    ]
    return "\n".join(lines)
