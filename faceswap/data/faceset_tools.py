"""`faceset stats` and `faceset clean`: look at a faceset, and move weak faces aside (never delete)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.data.faceset import FaceEntry, Faceset
from faceswap.errors import BadInput

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


def _reasons(faceset: Faceset, min_blur: float | None, max_yaw: float | None, dedupe: bool) -> dict[str, str]:
    """Which crops to set aside, and why (blurry, too turned, near-duplicates)."""
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
    return reasons


def clean(
    store: Any, subject_id: str, min_blur: float | None = None, max_yaw: float | None = None, dedupe: bool = False
) -> dict[str, Any]:
    """Move rejects to rejected/ (never deletes) and record the new faceset in the ledger; the index
    and the crops change inside the ledger transaction, so a refused append changes nothing."""
    if min_blur is not None and min_blur < 0:
        raise BadInput("--min-blur must not be negative")
    if max_yaw is not None and not 0 <= max_yaw <= 90:
        raise BadInput("--max-yaw must be between 0 and 90 degrees")
    faceset = Faceset.load(faceset_folder(store.workspace, subject_id))
    faceset.recorded_in(store.ledger.entries("faceset.built"))
    reasons = _reasons(faceset, min_blur, max_yaw, dedupe)
    if not reasons:
        return {"moved": 0, "kept": len(faceset.faces), "reasons": {}, "ledger_seq": None}
    moved = [e for e in faceset.faces if e.file in reasons]
    cleaned = Faceset(faceset.folder, faceset.header, [e for e in faceset.faces if e.file not in reasons])
    rejected = faceset.folder / REJECTED

    def apply(_entry: Any) -> None:
        rejected.mkdir(exist_ok=True)
        with open(rejected / "rejected.jsonl", "a", encoding="utf-8") as log:
            for entry in moved:
                log.write(json.dumps({**asdict(entry), "reason": reasons[entry.file]}, sort_keys=True) + "\n")
        cleaned.save()  # the JSONL index (text); crops are inputs (the subject's own footage), only moved
        for entry in moved:
            source = faceset.folder / entry.file
            if source.exists():
                source.replace(rejected / entry.file)

    entry = store.ledger.append(
        "faceset.built",
        {
            "subject_id": faceset.header.subject_id,
            "record_id": faceset.header.record_id,
            "faceset_sha256": cleaned.digest(),
            "faces": len(cleaned.faces),
            "operation": "clean",
            "moved_to_rejected": len(moved),
        },
        on_commit=apply,
    )
    return {"moved": len(moved), "kept": len(cleaned.faces), "reasons": reasons, "ledger_seq": entry.seq}


def faceset_folder(workspace, subject_id: str) -> Path:
    return workspace.facesets_dir / subject_id
