"""Builders for consent tests: real photos written to disk, real registrations in a real workspace."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import cv2

from faceswap.consent.registry import ConsentStore, Registration
from faceswap.faces.samples import insightface_tom_hanks, skimage_astronaut
from faceswap.media import read_image
from faceswap.workspace import Workspace


def write_reference_photos(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    hanks = cv2.copyMakeBorder(read_image(insightface_tom_hanks()), 56, 56, 56, 56, cv2.BORDER_REFLECT)
    paths = {"astronaut": folder / "astronaut.png", "hanks": folder / "hanks.png"}
    cv2.imwrite(str(paths["astronaut"]), read_image(skimage_astronaut()))
    cv2.imwrite(str(paths["hanks"]), hanks)
    evidence = folder / "signed-form.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed consent form (test fixture)\n")
    paths["evidence"] = evidence
    return paths


def in_days(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def registration(subject: str, photo: Path, evidence: Path, **overrides) -> Registration:
    fields = dict(
        subject_id=subject,
        name=f"Test subject {subject}",
        references=[photo],
        purposes=["evaluation", "vfx-prototyping"],
        expires_at=in_days(200),
        evidence=evidence,
        synthetic=False,
        backend="dlib",
    )
    fields.update(overrides)
    return Registration(**fields)


def store_at(root: Path) -> ConsentStore:
    return ConsentStore(Workspace(root))
