"""The occlusion segmenter's training data: the labelled crops of both subjects' facesets.

The consent decision is the caller's (`train_mask`): it authorises once (data/authorised.py: the
grant, and both facesets extracted under its records and matching their ledger entries), then
`authorise_labels` adds their labels, each matching its own entry; the data module is handed the
result and only loads it. Every sample is a
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

from faceswap.consent.gate import ConsentGrant
from faceswap.consent.registry import ConsentStore
from faceswap.data.augment import warp_maps
from faceswap.data.authorised import AuthorisedData
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


@dataclass(frozen=True)
class AuthorisedLabels:
    """What a segmenter may learn from: the authorised facesets that hold labels, each with its
    labels (checked against their ledger entries)."""

    authorised: AuthorisedData
    sources: dict[str, tuple[Faceset, FacesetLabels]]  # subject -> (faceset, labels)

    @property
    def grant(self) -> ConsentGrant:
        return self.authorised.grant


def authorise_labels(store: ConsentStore, authorised: AuthorisedData) -> AuthorisedLabels:
    """The labels of the authorised facesets, each matching its `faceset.built` entry; BadInput when
    fewer than MIN_LABELLED crops are labelled in all."""
    built = store.ledger.entries("faceset.built")
    sources = {}
    for faceset in authorised.facesets.values():
        labels = FacesetLabels.load(faceset)
        if labels.crops:
            labels.recorded_in(built)
            sources[faceset.header.subject_id] = (faceset, labels)
    labelled = sum(len(labels.usable(fs)) for fs, labels in sources.values())
    if labelled < MIN_LABELLED:
        grant = authorised.grant
        raise BadInput(
            f"{labelled} labelled crop(s) in the facesets of '{grant.subject_a}' and '{grant.subject_b}'; a "
            f"segmenter needs at least {MIN_LABELLED} (about 30 is a good start): `faceswap faceset label`"
        )
    return AuthorisedLabels(authorised, sources)


class OcclusionDataModule(pl.LightningDataModule):
    """The labelled crops the caller authorised (`authorise_labels`), of either subject's faceset."""

    def __init__(
        self,
        labelled: AuthorisedLabels,
        resolution: int = 128,
        batch_size: int = 8,
        num_workers: int = 0,
        samples_per_epoch: int = 2000,
        seed: int = 0,
        random_warp: bool = True,
    ) -> None:
        """labelled: what the caller's consent check granted (the options below come from the config
        and flags; who and under which consent never do)."""
        super().__init__()
        self.save_hyperparameters(ignore=["labelled"])
        self.labelled = labelled
        self.sources = dict(labelled.sources)
        self.crops: LabelledCrops | None = None

    @property
    def grant(self) -> ConsentGrant:
        return self.labelled.grant

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
