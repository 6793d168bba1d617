"""`faceswap demo --occlusion`: the occlusion workflow on the synthetic subjects, in one command.

subjects (with demo-b's occluded clip: a hand or a microphone passing in front of the face) ->
consent -> extract (demo-b's occluded clip too) -> label a handful of frames from the first part of
that clip as a person would (LabelMe polygons of the face and the occluder, on the frames) and import
them -> train the segmenter -> the swap model (`demo-smoke`, reused when it loads) -> convert the
rest of the clip, which the segmenter never saw, with and without `--mask occlusion` -> verify ->
measure -> workspace/demo/occlusion-report.json. Same workspace and facesets as `faceswap demo`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.demo.occlusion_measures import HELD_OUT_GAP, REPORT_NAME, covers_face, cut
from faceswap.demo.run import (
    CONFIGS,
    MODEL_NAME,
    PURPOSE,
    DemoOptions,
    DemoRun,
    extract_facesets,
    make_subjects,
    register_consent,
    run_steps,
    train_model,
)
from faceswap.demo.subjects import OccludedClip, existing_occluded_clip, existing_subjects
from faceswap.errors import FaceswapError
from faceswap.workspace import Workspace

SEGMENTER_NAME = "demo-occlusion-mask"


@dataclass(frozen=True)
class OcclusionDemoOptions(DemoOptions):
    occluder: str = "hand"
    labelled: int = 30  # frames a person labels
    mask_steps: int = 300  # the segmenter's training steps (configs/mask/smoke.yaml)


@dataclass
class OcclusionRun(DemoRun):
    occluded: OccludedClip | None = None
    rows: list[dict] | None = None
    segmenter_dir: Path | None = None
    outputs: dict[str, Path] | None = None


def subjects(run: OcclusionRun) -> None:
    """The demo subjects and demo-b's occluded clip: made unless this workspace already has them."""
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import make_occluded_clip
    from faceswap.faces.analyzer import FaceAnalyzer

    out, kind = run.workspace.root / "subjects", run.options.occluder
    found = existing_subjects(out, run.options.seconds, dub_pair=False)
    if found is None:
        make_subjects(run)
    else:
        run.files = {f.subject: f for f in found}
    run.occluded = existing_occluded_clip(out, kind, run.options.seconds)
    if run.occluded is None:
        identities, _ = build_identities(FaceAnalyzer("dlib"))
        run.occluded = make_occluded_clip(out, {i.name: i for i in identities}["demo-b"], kind, run.options.seconds)
    run.rows = json.loads(run.occluded.truth.read_text())["frames"]
    run.report["occluded_clip"] = {"clip": str(run.occluded.clip), "truth": str(run.occluded.truth), "kind": kind}


def extract(run: OcclusionRun) -> None:
    """Both subjects' clips, and demo-b's occluded clip into demo-b's faceset."""
    from faceswap.data.extract import ExtractOptions
    from faceswap.data.extract import extract as extract_faces

    assert run.occluded is not None
    extract_facesets(run)
    done = extract_faces(run.store, run.occluded.clip, "demo-b", ExtractOptions(every=run.options.every, size=128))
    run.report["extract"]["demo-b-occluded"] = {
        "kept": done.kept,
        "already_present": done.already_present,
        "dropped_other_identity": done.dropped_other_identity,
        "faces": done.total_faces,
    }


def label(run: OcclusionRun) -> None:
    """A person's handful: frames from the first part of the clip that are in the faceset, most with
    the occluder on the face, some without; labelled on the frames, imported onto the crops."""
    from faceswap.data.faceset import Faceset
    from faceswap.data.faceset_labels import label_faceset
    from faceswap.demo.labelling import label_frames

    assert run.occluded is not None and run.rows is not None
    faceset = Faceset.load(run.workspace.facesets_dir / "demo-b")
    cropped = {e.frame for e in faceset.faces if e.source == run.occluded.clip.name}
    candidates = [r["frame"] for r in run.rows if r["frame"] < cut(run.rows) and r["frame"] in cropped]
    covered = [f for f in candidates if covers_face(run.rows[f])]
    clear = [f for f in candidates if f not in covered]
    wanted = run.options.labelled
    chosen = _spread(covered, round(wanted * 0.8)) + _spread(clear, wanted - round(wanted * 0.8))
    folder = run.workspace.root / "labels" / run.occluded.clip.stem
    label_frames(run.occluded.truth, sorted(chosen), folder, run.occluded.clip.name)
    imported = label_faceset(run.store, "demo-b", folder)
    run.report["labels"] = {
        "folder": str(folder),
        "frames": sorted(chosen),
        "occluded_frames": len([f for f in chosen if f in covered]),
        "crops_labelled": imported.crops_labelled,
        "ledger_seq": imported.ledger_seq,
    }


def _spread(items: list[int], count: int) -> list[int]:
    if count <= 0 or not items:
        return []
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))]


def train_segmenter(run: OcclusionRun) -> None:
    from faceswap.train_mask import MaskTrainRequest, run_mask_training

    overrides = ["--trainer.max_steps", str(run.options.mask_steps), "--trainer.enable_progress_bar", "false"]
    config = CONFIGS / "mask" / "smoke.yaml"
    request = MaskTrainRequest(run.workspace, config, "demo-a", "demo-b", PURPOSE, SEGMENTER_NAME, overrides)
    begun = time.process_time()
    trained = run_mask_training(request)
    run.segmenter_dir = trained.model_dir
    run.report["segmenter"] = {
        "dir": str(trained.model_dir),
        "steps": trained.steps,
        "fingerprint": trained.fingerprint,
        "metrics": trained.metrics,
        "labelled": trained.labelled,
        "ledger_seq": trained.ledger_seq,
        "cpu_seconds": round(time.process_time() - begun, 1),
    }


def swap_model(run: OcclusionRun) -> None:
    """`demo-smoke` when it loads (the ledger knows it, its consent holds); else trained now."""
    from faceswap.convert.model_io import load_model

    folder = run.workspace.models_dir / MODEL_NAME
    reused = False
    if folder.is_dir():
        try:
            found = load_model(run.store, folder)
            run.model_dir, reused = folder, True
            run.report["model"] = {"steps": found.entry.data.get("steps"), "fingerprint": found.fingerprint}
        except FaceswapError:
            reused = False
    if not reused:
        train_model(run)
    run.report["model"] = {**run.report["model"], "dir": str(run.model_dir), "reused": reused}


def convert_held_out(run: OcclusionRun) -> None:
    """The frames the segmenter never saw, with --mask occlusion and without; cost per frame of each."""
    from faceswap.convert.pipeline import convert
    from faceswap.convert.settings import ConvertOptions

    assert run.occluded is not None and run.rows is not None and run.model_dir is not None
    frames = (cut(run.rows) + HELD_OUT_GAP, len(run.rows) - 1)
    kind = run.occluded.kind
    run.outputs = {
        "occlusion": run.workspace.root / "output" / f"demo-b-{kind}-occlusion.mp4",
        "full": run.workspace.root / "output" / f"demo-b-{kind}-full.mp4",
    }
    masks = {"occlusion": ("occlusion", run.segmenter_dir), "full": ("full", None)}
    run.report["convert"] = {"frames": list(frames)}
    for name, output in run.outputs.items():
        output.unlink(missing_ok=True)
        mask, model = masks[name]
        begun = time.process_time()
        done = convert(
            run.store,
            run.model_dir,
            run.occluded.clip,
            output,
            ConvertOptions(mask=mask, mask_model=model, frames=frames),
        )
        cpu = time.process_time() - begun
        run.report["convert"][name] = {
            **{
                k: v
                for k, v in done.to_json().items()
                if k in ("output", "frames", "frames_swapped", "seconds", "token", "ledger_seq")
            },
            "seconds_per_frame": round(done.seconds / max(done.frames, 1), 4),
            "cpu_seconds_per_frame": round(cpu / max(done.frames, 1), 4),
        }
    run.output = run.outputs["occlusion"]


def verify_output(run: OcclusionRun) -> None:
    from faceswap.provenance.verify.verifier import LedgerView, Verifier

    assert run.output is not None
    view = LedgerView.from_ledger(run.store.ledger, run.store.workspace.keys_dir)
    run.report["verify"] = Verifier(view).verify(run.output).to_json()


def measure(run: OcclusionRun) -> None:
    """Segmenter IoU, occluder kept, the unoccluded face unchanged, identity, on the held-out frames."""
    from faceswap.demo.occlusion_measures import measure_run

    run.report["metrics"] = measure_run(run)


STEPS = (
    ("subjects", subjects),
    ("consent", register_consent),
    ("extract", extract),
    ("label", label),
    ("train-mask", train_segmenter),
    ("model", swap_model),
    ("convert", convert_held_out),
    ("verify", verify_output),
    ("measure", measure),
)


def run_occlusion_demo(
    root: Workspace, options: OcclusionDemoOptions, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Each step in order, timed; occlusion-report.json is written when all are done."""
    return run_steps(OcclusionRun(Workspace(root.demo_dir).ensure(), options), STEPS, REPORT_NAME, say)
