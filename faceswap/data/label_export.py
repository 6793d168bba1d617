"""`faceswap faceset export ID --out DIR`: crops to label in any annotation tool.

The crops are copied byte for byte (checked against the faceset's index first): they are the
subject's own footage, aligned, not generated pixels, so nothing is encoded. A manifest says which
faceset and consent they came from and how to label them. The subject's consent must be active,
since the crops leave the workspace.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.data.faceset import FaceEntry, Faceset
from faceswap.data.faceset_labels import EXPORT_MANIFEST, FACE_LABELS, FacesetLabels, checked_faceset
from faceswap.errors import BadInput
from faceswap.hashing import sha256_hex

HOW_TO_LABEL = (
    "Open this folder in LabelMe (or upload it to CVAT and export COCO). On each crop draw the face as "
    "a polygon labelled 'face' (forehead to chin, as far as it is visible) and every object in front of "
    "it (a hand, a microphone, hair, glasses) as a polygon with its own label; a hole is a second polygon "
    "of the same object (LabelMe: the same group id) inside the first. Then: faceswap faceset label "
    "{subject} --from THIS_FOLDER (or --from the COCO file)."
)


@dataclass
class ExportReport:
    subject_id: str
    out: str
    exported: int = 0
    skipped_labelled: int = 0
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def export_for_labelling(
    store: ConsentStore, subject_id: str, out: Path, include_labelled: bool = False, count: int | None = None
) -> ExportReport:
    """consent -> faceset (as its ledger entry says) -> the crops not labelled yet (or all), `count`
    of them spread evenly over the faceset -> OUT, with a manifest."""
    if count is not None and count < 1:
        raise BadInput(f"--count must be 1 or more, got {count}")
    _check_out(store, out)
    record, _ = ConsentGate(store).authorize_subject(subject_id)
    faceset = checked_faceset(store, subject_id, record.record_id)
    labels = FacesetLabels.load(faceset)
    if labels.crops:
        labels.recorded_in(store.ledger.entries("faceset.built"))
    labelled = {entry.file for entry, _ in labels.usable(faceset)}
    chosen = [e for e in faceset.faces if include_labelled or e.file not in labelled]
    report = ExportReport(subject_id, str(out), skipped_labelled=len(faceset.faces) - len(chosen))
    if count is not None and count < len(chosen):
        chosen = [chosen[i] for i in np.unique(np.linspace(0, len(chosen) - 1, count).round().astype(int))]
    out.mkdir(parents=True, exist_ok=True)
    for entry in chosen:
        write_atomic(out / entry.file, crop_bytes(faceset, entry))
        report.files.append(entry.file)
    report.exported = len(chosen)
    write_atomic(out / EXPORT_MANIFEST, json.dumps(_manifest(faceset, chosen), indent=1))
    return report


def crop_bytes(faceset: Faceset, entry: FaceEntry) -> bytes:
    """The crop's file, after checking it is the one the index names."""
    path = faceset.folder / entry.file
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"{path}: unreadable crop ({error.strerror})") from None
    if sha256_hex(data) != entry.sha256:
        raise BadInput(f"{path}: the crop differs from the one its faceset index names (edited by hand?)")
    return data


def _check_out(store: ConsentStore, out: Path) -> None:
    """Not into the workspace's consent, keys or ledger, nor into a faceset."""
    target = out.expanduser().absolute()
    for protected in (*store.workspace.protected_paths(), store.workspace.facesets_dir):
        guarded = protected.absolute()
        if target == guarded or guarded in target.parents:
            raise BadInput(f"--out {out}: inside {guarded}; export to a folder of its own")
    if target.exists() and not target.is_dir():
        raise BadInput(f"--out {out}: exists and is not a folder")


def _manifest(faceset: Faceset, chosen: list[FaceEntry]) -> dict[str, Any]:
    header = faceset.header
    return {
        "type": "faceset-export",
        "subject_id": header.subject_id,
        "record_id": header.record_id,
        "faceset_sha256": faceset.digest(),
        "crop_size": header.size,
        "alignment": header.template,
        "face_labels": list(FACE_LABELS),
        "how_to_label": HOW_TO_LABEL.format(subject=header.subject_id),
        "crops": [{"file": e.file, "sha256": e.sha256, "source": e.source, "frame": e.frame} for e in chosen],
    }
