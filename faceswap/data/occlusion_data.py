"""The occlusion segmenter's training data: the labelled crops of both subjects' facesets.

The consent decision is the caller's (`train_mask`): the data module is handed the grant (plain
data) and only loads what it allows: the facesets of the grant's two subjects, extracted under its
records and matching their ledger entries, and their labels, matching theirs. Every sample is a
labelled crop, augmented in geometry (flip, affine, a random grid warp, the same for the mask) and
in colour and quality (the image only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from faceswap.consent.gate import ConsentGrant, ConsentRefused
from faceswap.data.augment import warp_maps
from faceswap.data.faceset import Faceset
from faceswap.data.faceset_labels import FacesetLabels
from faceswap.errors import BadInput
from faceswap.faces.align import resize_crop

MIN_LABELLED = 4  # fewer labelled crops than this cannot teach a segmenter anything


@dataclass
class LabelledCrops:
    """Labelled crops in memory at the segmenter's resolution."""

    images: np.ndarray  # (N, R, R, 3) uint8 BGR
    visible: np.ndarray  # (N, R, R) uint8 0/1

    def __len__(self) -> int:
        return int(self.images.shape[0])


def geometry_pipeline():
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.85, 1.15), rotate=(-15, 15), translate_percent=(-0.06, 0.06), border_mode=2, p=0.9),
        ]
    )


def appearance_pipeline():
    import albumentations as A

    return A.Compose(
        [
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.2),
            A.ImageCompression(quality_range=(40, 95), p=0.3),
        ]
    )


class OcclusionDataset(Dataset):
    def __init__(self, crops: LabelledCrops, length: int, seed: int = 0, warp: bool = True) -> None:
        self.crops, self.length, self.seed, self.warp = crops, length, seed, warp
        self.geometry, self.appearance = geometry_pipeline(), appearance_pipeline()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        import cv2

        rng = np.random.default_rng((self.seed, index, int(torch.randint(0, 2**62, (1,)).item())))
        py_random = random.Random(int(rng.integers(2**62)))
        self.geometry.set_random_state(rng, py_random)
        self.appearance.set_random_state(rng, py_random)
        i = int(rng.integers(len(self.crops)))
        out = self.geometry(image=self.crops.images[i], mask=self.crops.visible[i])
        image, mask = out["image"], out["mask"]
        if self.warp and rng.random() < 0.5:
            map_x, map_y = warp_maps(image.shape[0], rng, 0.15)
            image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        image = self.appearance(image=image)["image"]
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        return {
            "image": torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0),
            "visible": torch.from_numpy(np.ascontiguousarray(mask))[None].float(),
        }


class OcclusionDataModule(pl.LightningDataModule):
    """The labelled crops a consent grant allows (the grant is decided by the caller): those of
    either subject's faceset (a faceset without labels adds nothing)."""

    def __init__(
        self,
        grant: dict[str, Any],
        workspace: str | None = None,
        resolution: int = 128,
        batch_size: int = 8,
        num_workers: int = 0,
        samples_per_epoch: int = 2000,
        seed: int = 0,
        random_warp: bool = True,
    ) -> None:
        """grant: a ConsentGrant as JSON (from ConsentGate.authorize, by the caller)."""
        super().__init__()
        from faceswap.consent.registry import ConsentStore
        from faceswap.workspace import Workspace

        self.save_hyperparameters()
        try:
            self.grant = ConsentGrant.from_json(grant)
        except (KeyError, TypeError):
            raise BadInput("the segmenter's data needs a consent grant (from the consent gate)") from None
        self.workspace = Workspace.resolve(workspace)
        store = ConsentStore(self.workspace)
        built = store.ledger.entries("faceset.built")
        subjects = (self.grant.subject_a, self.grant.subject_b)
        found = {
            s: self._checked(s, built) for s in subjects if (self.workspace.facesets_dir / s / "faceset.jsonl").exists()
        }
        self.sources = {s: pair for s, pair in found.items() if pair[1].crops}  # facesets with labels
        labelled = sum(len(labels.usable(fs)) for fs, labels in self.sources.values())
        if labelled < MIN_LABELLED:
            raise BadInput(
                f"{labelled} labelled crop(s) in the facesets of '{self.grant.subject_a}' and "
                f"'{self.grant.subject_b}'; a segmenter needs at least {MIN_LABELLED} (about 30 is a good start): "
                "`faceswap faceset label`"
            )
        self.crops: LabelledCrops | None = None

    def _checked(self, subject: str, built: list[Any]) -> tuple[Faceset, FacesetLabels]:
        folder = self.workspace.facesets_dir / subject
        faceset = Faceset.load(folder)
        granted = self.grant.record_for(subject)
        if faceset.header.subject_id != subject or faceset.header.record_id != granted.record_id:
            raise ConsentRefused(
                f"faceset {folder} was extracted under consent record {faceset.header.record_id}, "
                f"but the grant for '{subject}' is record {granted.record_id}"
            )
        faceset.recorded_in(built)
        labels = FacesetLabels.load(faceset)
        if labels.crops:
            labels.recorded_in(built)
        return faceset, labels

    @property
    def alignment(self) -> str:
        """How the labelled crops were made (both facesets must agree: one segmenter, one framing)."""
        made = {fs.header.alignment for fs, labels in self.sources.values() if labels.usable(fs)}
        if len(made) != 1:
            raise BadInput("the two facesets hold crops of different alignments: extract both the same way")
        return made.pop().name

    @property
    def labels_summary(self) -> dict[str, dict[str, Any]]:
        """What the segmenter learns from, per subject (its ledger entry records it)."""
        return {
            subject: {
                "faceset_sha256": fs.digest(),
                "labels_sha256": labels.digest(),
                "labelled_crops": len(labels.usable(fs)),
            }
            for subject, (fs, labels) in self.sources.items()
        }

    def setup(self, stage: str | None = None) -> None:
        if self.crops is not None:
            return
        import cv2

        size = self.hparams.resolution
        images, visible = [], []
        for faceset, labels in self.sources.values():
            for entry, label in labels.usable(faceset):
                images.append(resize_crop(faceset.load_crop(entry), size))
                mask = cv2.resize(label.mask(), (size, size), interpolation=cv2.INTER_AREA)
                visible.append((mask >= 0.5).astype(np.uint8))
        self.crops = LabelledCrops(np.stack(images), np.stack(visible))

    def train_dataloader(self) -> DataLoader:
        assert self.crops is not None
        hp = self.hparams
        dataset = OcclusionDataset(self.crops, hp.samples_per_epoch, hp.seed, hp.random_warp)
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=False,
            num_workers=hp.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=hp.num_workers > 0,
            drop_last=True,
        )
