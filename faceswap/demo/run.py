"""`faceswap demo`: the whole mission on synthetic subjects, in one command, on whatever device exists.

subjects -> consent (synthetic) -> extract -> train smoke-64 -> convert B's clip -> verify -> eval
-> workspace/demo/report.json. The demo keeps its own workspace (keys, ledger, consent) in
workspace/demo so it never mixes with real records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
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
EVIDENCE_TEXT = (
    "Synthetic subjects made by `faceswap demo subjects`: caricatured morphs of several faces that "
    "installed packages ship, so neither is any one real person. Registered as --synthetic.\n"
)


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 10.0
    steps: int = 300
    every: int = 2
    mask: str = "mouth"


def run_demo(root: Workspace, options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    from faceswap.consent.registry import ConsentStore, Registration
    from faceswap.convert.pipeline import ConvertOptions, convert
    from faceswap.data.extract import ExtractOptions, extract
    from faceswap.demo.subjects import make_demo_subjects
    from faceswap.eval.run import run_eval
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.ledger import open_ledger
    from faceswap.provenance.verify import LedgerView, Verifier
    from faceswap.train import TrainRequest, run_training

    workspace = Workspace(root.demo_dir).ensure()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str):
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)
        say(f"[{sum(timings.values()):6.1f} s] {name} done")

    subjects_dir = workspace.root / "subjects"
    files, identity = make_demo_subjects(subjects_dir, FaceAnalyzer("dlib"), seconds=options.seconds)
    by_subject = {f.subject: f for f in files}
    step("subjects")

    store = ConsentStore(workspace)
    evidence = workspace.root / "synthetic-consent.txt"
    evidence.write_text(EVIDENCE_TEXT)
    snapshot = store.load()
    for subject, f in by_subject.items():
        if not any(snapshot.status(r) == "active" for r in snapshot.for_subject(subject)):
            store.register(
                Registration(
                    subject,
                    f"Synthetic {subject}",
                    f.references,
                    [PURPOSE, "evaluation"],
                    (date.today() + timedelta(days=90)).isoformat(),
                    evidence,
                    synthetic=True,
                    backend="dlib",
                )
            )
    step("consent")

    extracted = {}
    for subject, f in by_subject.items():
        report = extract(store, f.clip, subject, ExtractOptions(every=options.every, size=128))
        extracted[subject] = {
            "kept": report.kept,
            "dropped_other_identity": report.dropped_other_identity,
            "faces": report.total_faces,
        }
    step("extract")

    trained = run_training(
        TrainRequest(
            workspace,
            CONFIGS / "train" / "smoke.yaml",
            "demo-a",
            "demo-b",
            PURPOSE,
            MODEL_NAME,
            ["--trainer.max_steps", str(options.steps), "--trainer.enable_progress_bar", "false"],
        )
    )
    step("train")

    output = workspace.root / "output" / "demo-b-as-demo-a.mp4"
    if output.exists():
        output.unlink()
    converted = convert(store, trained.model_dir, by_subject["demo-b"].clip, output, ConvertOptions(mask=options.mask))
    step("convert")

    verdict = Verifier(LedgerView.from_ledger(open_ledger(workspace))).verify(output)
    step("verify")

    metrics, _ = run_eval(
        store,
        trained.model_dir,
        by_subject["demo-b"].clip,
        output,
        by_subject["demo-b"].truth,
        options.mask,
        every=2,
        compare_frames=80,
    )
    step("eval")

    ledger = open_ledger(workspace)
    finding = ledger.verify()
    report = {
        "workspace": str(workspace.root),
        "subjects": {
            s: {"references": [str(p) for p in f.references], "clip": str(f.clip), "truth": str(f.truth)}
            for s, f in by_subject.items()
        },
        "identity": {k: v for k, v in identity.items() if k != "recipes"},
        "extract": extracted,
        "model": {
            "dir": str(trained.model_dir),
            "steps": trained.steps,
            "fingerprint": trained.fingerprint,
            "losses": trained.losses,
            "previews": trained.previews,
            "smoke_run": trained.smoke,
        },
        "input": str(by_subject["demo-b"].clip),
        "mask": options.mask,
        "output": str(output),
        "convert": {k: v for k, v in converted.to_json().items() if k != "swaps"},
        "verify": verdict.to_json(),
        "eval": metrics.to_json(),
        "ledger": {"path": str(ledger.path), "entries": len(ledger.entries()), "valid": finding is None},
        "timings_s": {**timings, "total": round(time.perf_counter() - started, 1)},
    }
    write_atomic(workspace.root / "report.json", json.dumps(report, indent=2, default=str))
    return report


def demo_exit_code(report: dict[str, Any]) -> ExitCode:
    """0 when the demo's output verifies as marked and traced and its ledger is sound."""
    ok = report["verify"]["exit_code"] == 0 and report["ledger"]["valid"]
    return ExitCode.OK if ok else ExitCode.REFUSED


def summary(report: dict[str, Any]) -> str:
    ev, verify = report["eval"], report["verify"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    consent = ", ".join(f"{c['record_id']} {c['status']}" for c in verify["consent"])
    lines = [
        "faceswap demo: synthetic subject A's face on synthetic subject B's clip",
        f"  output      {report['output']}  ({report['convert']['frames']} frames, audio kept)",
        f"  verify      {'MARKED' if verify['marked'] else 'NOT MARKED'}, token {verify['detection']['token']}, "
        f"ledger {verify['ledger']}, consent {consent}",
        f"  identity    nearer A than B in {fmt(ev['nearer_a_share'])} of frames",
        f"  mouth       correlation with the input {fmt(ev['mouth_correlation_input'])}, with truth "
        f"{fmt(ev['mouth_correlation_truth'])} (--mask {report['mask']})",
        f"  jitter      {fmt(ev['jitter_smoothing_on'])} smoothed vs {fmt(ev['jitter_without_smoothing'])} unsmoothed "
        f"(keypoint motion beyond the {ev['jitter_reference']}'s, per frame, in eye distances); "
        f"alignment {fmt(ev['alignment_jitter_smoothing_on'])} vs {fmt(ev['alignment_jitter_without_smoothing'])}",
        f"  model       {report['model']['dir']} ({report['model']['steps']} steps, previews in previews/)",
        f"  ledger      {report['ledger']['path']} ({report['ledger']['entries']} entries, "
        f"{'valid' if report['ledger']['valid'] else 'TAMPERED'})",
        f"  time        {report['timings_s']['total']} s  "
        + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items() if k != "total"),
        f"  report      {report['workspace']}/report.json",
    ]
    return "\n".join(lines)
