"""The occlusion demo's measurements, on the frames the segmenter never saw (faceswap.eval.occlusion),
and its summary for people."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceswap.eval.occlusion import kept_shares, segmenter_iou

LABELLED_SHARE = 0.6  # frames are labelled from the first 60% of the clip ...
HELD_OUT_GAP = 10  # ... and measured from 10 frames after that on: frames the segmenter never saw
REPORT_NAME = "occlusion-report.json"
TARGETS = {"occluder_kept": 0.95, "segmenter_iou_occluded": 0.9}


def cut(rows: list[dict[str, Any]]) -> int:
    """The first frame after the part of the clip that may be labelled."""
    return int(len(rows) * LABELLED_SHARE)


def covers_face(row: dict[str, Any], shape: tuple[int, int] = (480, 640), share: float = 0.02) -> bool:
    from faceswap.eval.occlusion import truth_masks

    face, occluder = truth_masks(row, shape)
    return bool((face & occluder).sum() > share * face.sum())


def measure_run(run) -> dict[str, Any]:
    """IoU of the segmenter, occluder kept with and without the mask, the unoccluded face's change
    between the two outputs and each output's identity."""
    from faceswap.convert.model_io import load_model
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.faces.identity import IdentityMatcher
    from faceswap.model.occlusion import load_segmenter

    rows, clip = run.rows, run.occluded.clip
    first = cut(rows) + HELD_OUT_GAP
    held = set(range(first, len(rows)))
    model = load_model(run.store, run.model_dir)
    snapshot = run.store.load()
    refs = {s: snapshot.by_id(model.grant.record_for(s).record_id).reference_embeddings for s in ("demo-a", "demo-b")}
    analyzer = FaceAnalyzer("dlib")
    segmenter = load_segmenter(run.store, run.segmenter_dir, model.grant)
    ious = segmenter_iou(segmenter, analyzer, IdentityMatcher(refs["demo-b"], "dlib"), clip, rows, held)
    occluded = {f: v for f, v in ious.items() if covers_face(rows[f])}
    kept = kept_shares(clip, run.outputs, rows, {f for f in held if covers_face(rows[f])}, first)
    metrics = {
        "held_out_frames": [first, len(rows) - 1],
        "frames_occluded": sum(1 for f in held if covers_face(rows[f])),
        "segmenter_iou_mean": _mean(ious.values()),
        "segmenter_iou_occluded": _mean(occluded.values()),
        "segmenter_iou_min": round(min(ious.values()), 4) if ious else None,
        "frames_segmented": len(ious),
        "occluder_kept": _round(kept["shares"]["occlusion"]),
        "occluder_kept_without_mask": _round(kept["shares"]["full"]),
        "background_kept": _round(kept["shares"]["background"]),
        "unoccluded_difference": _round(kept["difference"]),
        "unoccluded_agree": _round(kept["agree"]),
        "unoccluded_interior_agree": _round(kept["interior_agree"]),
        "swap_change": _round(kept["swap_change"]),
        "identity": identity(analyzer, clip, run.outputs, refs, sorted(held)[::3], first),
    }
    metrics["met"] = {name: metrics[name] is not None and metrics[name] >= bar for name, bar in TARGETS.items()}
    return metrics


def identity(analyzer, clip, outputs: dict, refs: dict, frames: list[int], first: int) -> dict[str, Any]:
    """Per output, on the frames where every output shows a face: the share nearer A than B, and
    the mean similarities."""
    from faceswap.eval.metrics import measure_pairs
    from faceswap.eval.occlusion import frames_of

    inputs = dict(frames_of(clip, set(frames)))
    measured = {}
    for name, path in outputs.items():
        made = {index + first: image for index, image in frames_of(path, {f - first for f in frames})}
        pairs = [(f, inputs[f], made[f]) for f in frames if f in inputs and f in made]
        measured[name] = {m.frame: m for m in measure_pairs(analyzer, pairs, refs["demo-a"], refs["demo-b"])}
    common = sorted(set.intersection(*(set(found) for found in measured.values())))
    out: dict[str, Any] = {"frames": len(common)}
    for name, found in measured.items():
        chosen = [found[f] for f in common]
        out[name] = {
            "nearer_a_share": _round(np.mean([m.sim_a > m.sim_b for m in chosen]) if chosen else None),
            "sim_a_mean": _mean(m.sim_a for m in chosen),
            "sim_b_mean": _mean(m.sim_b for m in chosen),
        }
    return out


def _mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 4) if values else None


def _round(value) -> float | None:
    return None if value is None else round(float(value), 4)


def summary(report: dict[str, Any]) -> str:
    m, verify, conv = report["metrics"], report["verify"], report["convert"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ident, labels, cost = m["identity"], report["labels"], (conv["occlusion"], conv["full"])
    met = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in m["met"].items())
    lines = [
        f"faceswap demo --occlusion: a {report['occluded_clip']['kind']} in front of demo-b's face, kept in front "
        "of the swap",
        f"  labels      {len(labels['frames'])} frames labelled on the frames ({labels['occluded_frames']} "
        f"occluded), {labels['crops_labelled']} crops",
        f"  segmenter   {report['segmenter']['dir']} ({report['segmenter']['steps']} steps, "
        f"{report['segmenter']['cpu_seconds']} CPU s)",
        f"  held out    frames {m['held_out_frames'][0]}-{m['held_out_frames'][1]} ({m['frames_occluded']} occluded)",
        f"  IoU         {fmt(m['segmenter_iou_mean'])} mean, {fmt(m['segmenter_iou_occluded'])} on occluded frames, "
        f"{fmt(m['segmenter_iou_min'])} lowest",
        f"  occluder    {fmt(m['occluder_kept'])} of its pixels on the face kept (without the mask "
        f"{fmt(m['occluder_kept_without_mask'])}; background {fmt(m['background_kept'])})",
        f"  unoccluded  with and without the mask {fmt(m['unoccluded_agree'])} of the visible face agrees "
        f"({fmt(m['unoccluded_interior_agree'])} inside its rim; mean difference {fmt(m['unoccluded_difference'])} "
        f"levels, the swap's own change {fmt(m['swap_change'])})",
        f"  identity    similarity to A {fmt(ident['occlusion']['sim_a_mean'])} vs {fmt(ident['full']['sim_a_mean'])}, "
        f"nearer A {fmt(ident['occlusion']['nearer_a_share'])} vs {fmt(ident['full']['nearer_a_share'])} "
        f"({ident['frames']} frames with a face in both)",
        f"  cost        {fmt(cost[0]['cpu_seconds_per_frame'])} vs {fmt(cost[1]['cpu_seconds_per_frame'])} "
        "CPU s per frame with and without the mask",
        f"  verify      {'MARKED' if verify['marked'] else 'NOT MARKED'}, ledger {verify['ledger']}",
        f"  bars        {met}",
        f"  time        {report['timings_s']['total']} s  "
        + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items() if k != "total"),
        f"  report      {report['workspace']}/{REPORT_NAME}",
    ]
    return "\n".join(lines)
