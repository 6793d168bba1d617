"""`faceset stats` and `faceset clean`: look at a faceset, and move weak faces aside (never delete)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.data.faceset import FaceEntry, Faceset

REJECTED = "rejected"


def _histogram(values: list[float], bins: list[float]) -> list[dict[str, Any]]:
    counts, edges = np.histogram(values, bins=bins)
    return [
        {"from": float(a), "to": float(b), "count": int(c)}
        for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def stats(faceset: Faceset) -> dict[str, Any]:
    faces = faceset.faces
    blur = [f.blur for f in faces]
    yaw = [f.yaw for f in faces]
    sims = [f.identity_similarity for f in faces]
    sources: dict[str, int] = {}
    for f in faces:
        sources[f.source] = sources.get(f.source, 0) + 1
    return {
        "subject_id": faceset.header.subject_id,
        "record_id": faceset.header.record_id,
        "backend": faceset.header.backend,
        "size": faceset.header.size,
        "faces": len(faces),
        "sources": sources,
        "faceset_sha256": faceset.digest(),
        "identity_similarity": {"min": min(sims), "max": max(sims), "threshold": faceset.header.threshold}
        if sims
        else None,
        "blur_histogram": _histogram(blur, [0, 25, 50, 100, 200, 400, 800, 1e9]) if faces else [],
        "yaw_histogram": _histogram(yaw, [-90, -45, -30, -15, 0, 15, 30, 45, 90]) if faces else [],
        "rejected": len(list((faceset.folder / REJECTED).glob("*.png"))) if (faceset.folder / REJECTED).is_dir() else 0,
    }


def render_stats(info: dict[str, Any]) -> str:
    lines = [
        f"faceset {info['subject_id']} ({info['faces']} faces, {info['size']} px, {info['backend']}, "
        f"consent {info['record_id']}, {info['rejected']} rejected)",
        f"sha256 {info['faceset_sha256']}",
    ]
    if info["identity_similarity"]:
        sim = info["identity_similarity"]
        lines.append(f"identity similarity {sim['min']:.3f} .. {sim['max']:.3f} (threshold {sim['threshold']})")
    for title, key, fmt in (
        ("blur (variance of Laplacian)", "blur_histogram", "{:>6.0f}-{:<6.0f}"),
        ("yaw (degrees)", "yaw_histogram", "{:>4.0f}..{:<4.0f}"),
    ):
        lines.append(title)
        peak = max((b["count"] for b in info[key]), default=1) or 1
        for b in info[key]:
            label = fmt.format(b["from"], min(b["to"], 99999))
            lines.append(f"  {label} {'#' * int(round(30 * b['count'] / peak)):<30} {b['count']}")
    lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in info["sources"].items()))
    return "\n".join(lines)


def _tiny(faceset: Faceset, entry: FaceEntry) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(faceset.load_crop(entry), cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)


def clean(
    faceset: Faceset, min_blur: float | None = None, max_yaw: float | None = None, dedupe: bool = False
) -> dict[str, Any]:
    """Move rejects (blurry, too turned, near-duplicates) to rejected/; returns what moved and why."""
    reasons: dict[str, str] = {}
    for entry in faceset.faces:
        if min_blur is not None and entry.blur < min_blur:
            reasons[entry.file] = f"blur {entry.blur:.1f} < {min_blur}"
        elif max_yaw is not None and abs(entry.yaw) > max_yaw:
            reasons[entry.file] = f"|yaw| {abs(entry.yaw):.1f} > {max_yaw}"
    if dedupe:
        kept: list[np.ndarray] = []
        for entry in faceset.faces:
            if entry.file in reasons:
                continue
            tiny = _tiny(faceset, entry)
            if any(float(np.abs(tiny - other).mean()) < 2.0 for other in kept[-50:]):
                reasons[entry.file] = "near-duplicate of an earlier face"
            else:
                kept.append(tiny)
    if not reasons:
        return {"moved": 0, "kept": len(faceset.faces), "reasons": {}}
    rejected = faceset.folder / REJECTED
    rejected.mkdir(exist_ok=True)
    moved = [e for e in faceset.faces if e.file in reasons]
    with open(rejected / "rejected.jsonl", "a", encoding="utf-8") as log:
        for entry in moved:
            log.write(json.dumps({**asdict(entry), "reason": reasons[entry.file]}, sort_keys=True) + "\n")
    faceset.faces = [e for e in faceset.faces if e.file not in reasons]
    faceset.save()  # the JSONL index, not pixels
    for entry in moved:
        source = faceset.folder / entry.file
        if source.exists():
            source.replace(rejected / entry.file)
    return {"moved": len(moved), "kept": len(faceset.faces), "reasons": reasons}


def faceset_folder(workspace, subject_id: str) -> Path:
    return workspace.facesets_dir / subject_id
