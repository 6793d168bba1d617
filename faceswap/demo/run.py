"""`faceswap demo`: the whole mission on synthetic subjects, in one command, on whatever device exists.

subjects -> consent (synthetic) -> extract -> train smoke-64 -> convert B's clip -> verify -> eval
-> workspace/demo/report.json. The demo keeps its own workspace (keys, ledger, consent) in
workspace/demo so it never mixes with real records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import faceswap
from faceswap.atomic import write_atomic
from faceswap.errors import ExitCode
from faceswap.workspace import Workspace

CONFIGS = Path(faceswap.__file__).resolve().parents[1] / "configs"
PURPOSE = "dubbing-research"
MODEL_NAME = "demo-smoke"
REPORT_NAME = "report.json"
EVIDENCE_TEXT = (
    "Synthetic subjects made by `faceswap demo subjects`: caricatured morphs of several faces that "
    "installed packages ship, so neither is any one real person. Registered as --synthetic.\n"
)


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 10.0
    steps: int = 300
    every: int = 2
    # the swap keeps only what shows between B's lips: a CPU-trained decoder barely opens A's mouth, and
    # B's lips and the skin around them would carry B's identity (docs/training.md)
    mask: str = "mouth-opening"
    align_on: str | None = "five"  # new facesets' alignment points (None: the library's default)


@dataclass
class DemoRun:
    """What the steps hand to each other, and what the report is made of."""

    workspace: Workspace
    options: DemoOptions
    store: Any = None
    files: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    output: Path | None = None


def make_subjects(run: DemoRun) -> None:
    from faceswap.demo.subjects import make_demo_subjects
    from faceswap.faces.analyzer import FaceAnalyzer

    out, seconds = run.workspace.root / "subjects", run.options.seconds
    files, identity = make_demo_subjects(out, FaceAnalyzer("dlib"), seconds, dub_pair=False)
    run.files = {f.subject: f for f in files}
    run.report["subjects"] = {
        s: {"references": [str(p) for p in f.references], "clip": str(f.clip), "truth": str(f.truth)}
        for s, f in run.files.items()
    }
    run.report["identity"] = {k: v for k, v in identity.items() if k != "recipes"}


def register_consent(run: DemoRun) -> None:
    """Both synthetic subjects, for dubbing research and evaluation, unless already active."""
    from faceswap.consent.registry import ConsentStore, Registration

    run.store = ConsentStore(run.workspace)
    evidence = run.workspace.root / "synthetic-consent.txt"
    write_atomic(evidence, EVIDENCE_TEXT)
    snapshot = run.store.load()
    expires = (date.today() + timedelta(days=90)).isoformat()
    for subject, f in run.files.items():
        if any(snapshot.status(r) == "active" for r in snapshot.for_subject(subject)):
            continue
        run.store.register(
            Registration(
                subject,
                f"Synthetic {subject}",
                f.references,
                [PURPOSE, "evaluation"],
                expires,
                evidence,
                synthetic=True,
                backend="dlib",
            )
        )


def extract_facesets(run: DemoRun) -> None:
    """Both subjects at 128 px. New facesets are aligned on `options.align_on`: the demo's conversion
    keeps the target's mouth opening, and with the five keypoints the mouth corners sit where the
    decoder draws A's (docs/training.md, "What holds the demo's identity"). A faceset already in
    the workspace keeps its own alignment (one faceset, one framing); the report names it."""
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.data.faceset import Faceset

    run.report["extract"] = {}
    for subject, f in run.files.items():
        folder = run.workspace.facesets_dir / subject
        align_on = None if (folder / "faceset.jsonl").exists() else run.options.align_on
        done = extract(run.store, f.clip, subject, ExtractOptions(every=run.options.every, size=128, align_on=align_on))
        run.report["extract"][subject] = {
            "kept": done.kept,
            "dropped_other_identity": done.dropped_other_identity,
            "faces": done.total_faces,
            "alignment": Faceset.load(folder).header.alignment.name,
        }


def train_model(run: DemoRun, name: str = MODEL_NAME, options: tuple[str, ...] = ()) -> None:
    """The smoke preset on the demo's facesets, `options` over it."""
    from faceswap.train import TrainRequest, run_training

    overrides = ["--trainer.max_steps", str(run.options.steps), "--trainer.enable_progress_bar", "false", *options]
    config = CONFIGS / "train" / "smoke.yaml"
    trained = run_training(TrainRequest(run.workspace, config, "demo-a", "demo-b", PURPOSE, name, overrides))
    run.model_dir = trained.model_dir
    run.report["model"] = {
        "dir": str(trained.model_dir),
        "steps": trained.steps,
        "fingerprint": trained.fingerprint,
        "losses": trained.losses,
        "previews": trained.previews,
        "smoke_run": trained.smoke,
    }


def convert_clip(run: DemoRun) -> None:
    from faceswap.convert.pipeline import convert
    from faceswap.convert.settings import ConvertOptions

    assert run.model_dir is not None
    run.output = run.workspace.root / "output" / "demo-b-as-demo-a.mp4"
    run.output.unlink(missing_ok=True)
    clip = run.files["demo-b"].clip
    converted = convert(run.store, run.model_dir, clip, run.output, ConvertOptions(mask=run.options.mask))
    run.report.update(
        input=str(clip),
        mask=run.options.mask,
        output=str(run.output),
        convert=converted.to_json(),
    )


def verify_output(run: DemoRun) -> None:
    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    assert run.output is not None
    view = LedgerView.from_ledger(run.store.ledger, run.store.workspace.keys_dir)
    run.report["verify"] = Verifier(view).verify(run.output).to_json()


def evaluate_output(run: DemoRun) -> None:
    from faceswap.eval.run import run_eval

    f = run.files["demo-b"]
    photos = (list(run.files["demo-a"].references), list(f.references))
    metrics, _ = run_eval(run.store, run.model_dir, f.clip, run.output, f.truth, run.options.mask, 2, 80, photos)
    run.report["eval"] = metrics.to_json()


STEPS = (
    ("subjects", make_subjects),
    ("consent", register_consent),
    ("extract", extract_facesets),
    ("train", train_model),
    ("convert", convert_clip),
    ("verify", verify_output),
    ("eval", evaluate_output),
)


def run_demo(root: Workspace, options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Each step in order, timed; the report is written when all are done."""
    return run_steps(DemoRun(Workspace(root.demo_dir).ensure(), options), STEPS, REPORT_NAME, say)


def run_steps(run: DemoRun, steps: tuple, report_name: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The demo's steps in order, each timed; then the ledger's state, and the report written."""
    from faceswap.ledger import open_ledger

    run.report["workspace"] = str(run.workspace.root)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name, step in steps:
        begun = time.perf_counter()
        step(run)
        timings[name] = round(time.perf_counter() - begun, 1)
        say(f"[{time.perf_counter() - started:6.1f} s] {name} done")
    ledger = open_ledger(run.workspace)
    run.report["ledger"] = {"path": ledger.location, "entries": len(ledger.rows()), "valid": ledger.verify() is None}
    run.report["timings_s"] = {**timings, "total": round(time.perf_counter() - started, 1)}
    write_atomic(run.workspace.root / report_name, json.dumps(run.report, indent=2, default=str))
    return run.report


def demo_exit_code(report: dict[str, Any]) -> ExitCode:
    """0 when the demo's output (of any workflow) verifies as marked and traced and its ledger is sound."""
    ok = report["verify"]["exit_code"] == 0 and report["ledger"]["valid"]
    return ExitCode.OK if ok else ExitCode.REFUSED


def independent_line(figures: dict[str, Any] | None) -> str:
    """dlib's own descriptor's figures, as the summary prints them."""
    if not figures or not figures.get("frames"):
        return "dlib's own descriptor: no face measured"
    return (
        f"dlib's own descriptor: nearer A in {figures['nearer_a_share']:.3f} of {figures['frames']} frames, "
        f"distance to A {figures['dist_a']:.3f} / to B {figures['dist_b']:.3f} (margin {figures['margin']:.3f}; "
        "0.6 = same person)"
    )


def summary(report: dict[str, Any]) -> str:
    ev, verify = report["eval"], report["verify"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    consent = ", ".join(f"{c['record_id']} {c['status']}" for c in verify["consent"])
    lines = [
        "faceswap demo: synthetic subject A's face on synthetic subject B's clip",
        f"  output      {report['output']}  ({report['convert']['frames']} frames, audio kept)",
        f"  verify      {'MARKED' if verify['marked'] else 'NOT MARKED'}, token {verify['detection']['token']}, "
        f"ledger {verify['ledger']}, consent {consent}",
        f"  identity    nearer A than B in {fmt(ev['nearer_a_share'])} of frames (the consent records' embedding)",
        f"  identity    {independent_line(ev.get('independent'))}",
        f"  mouth       correlation with the input {fmt(ev['mouth_correlation_input'])}, with truth "
        f"{fmt(ev['mouth_correlation_truth'])} (--mask {report['mask']})",
        f"  jitter      {fmt(ev['jitter_smoothing_on'])} smoothed vs {fmt(ev['jitter_without_smoothing'])} unsmoothed "
        f"(keypoint motion beyond the {ev['jitter_reference']}'s, per frame, in eye distances); "
        f"alignment {fmt(ev['alignment_jitter_smoothing_on'])} vs {fmt(ev['alignment_jitter_without_smoothing'])}, "
        f"decoder flicker {fmt(ev.get('decoder_flicker'))}",
        f"  model       {report['model']['dir']} ({report['model']['steps']} steps, previews in previews/)",
        f"  ledger      {report['ledger']['path']} ({report['ledger']['entries']} entries, "
        f"{'valid' if report['ledger']['valid'] else 'TAMPERED'})",
        f"  time        {report['timings_s']['total']} s  "
        + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items() if k != "total"),
        f"  report      {report['workspace']}/{REPORT_NAME}",
    ]
    return "\n".join(lines)
