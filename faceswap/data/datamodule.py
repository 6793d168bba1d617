"""The training data: two facesets, gated by consent. No grant, no dataset."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.data.augment import input_pipeline, lab_stats, random_warp, reinhard_transfer, shared_pipeline
from faceswap.data.faceset import Faceset
from faceswap.faces.masks import landmark_mask


@dataclass
class FaceSamples:
    """A faceset in memory at the model's resolution, with its landmark masks."""

    images: np.ndarray  # (N, R, R, 3) uint8 BGR
    full: np.ndarray  # (N, R, R) float32: the landmark hull (mask target and loss weight)
    priority: np.ndarray  # (N, R, R) float32: eyes and mouth
    lab_mean: np.ndarray
    lab_std: np.ndarray

    @classmethod
    def load(cls, faceset: Faceset, resolution: int) -> FaceSamples:
        import cv2

        scale = resolution / faceset.header.size
        images, full, priority = [], [], []
        for entry in faceset.faces:
            crop = faceset.load_crop(entry)
            images.append(cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA))
            shape = (resolution, resolution)
            if entry.landmarks is None or entry.landmark_scheme is None:
                full.append(np.ones(shape, np.float32))
                priority.append(np.zeros(shape, np.float32))
                continue
            lms = np.asarray(entry.landmarks, np.float32) * scale
            kps = np.asarray(entry.kps, np.float32) * scale
            full.append(landmark_mask(lms, entry.landmark_scheme, kps, "full", shape, feather=resolution / 64))
            priority.append(_eyes_and_mouth(lms, entry.landmark_scheme, kps, shape))
        stats = [lab_stats(img) for img in images]
        return cls(
            np.stack(images),
            np.stack(full),
            np.stack(priority),
            np.mean([s[0] for s in stats], axis=0),
            np.mean([s[1] for s in stats], axis=0),
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _eyes_and_mouth(lms: np.ndarray, scheme: str, kps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    mask = landmark_mask(lms, scheme, kps, "mouth", shape)
    radius = max(2, int(0.12 * float(np.linalg.norm(kps[1] - kps[0]))))
    for x, y in kps[:2]:
        cv2.circle(mask, (int(x), int(y)), radius, 1.0, -1, cv2.LINE_AA)
    return mask


class PairDataset(Dataset):
    """Each item: one augmented sample of A (coloured toward B) and one of B."""

    def __init__(self, a: FaceSamples, b: FaceSamples, length: int, seed: int = 0) -> None:
        self.a, self.b, self.length, self.seed = a, b, length, seed
        self.shared = shared_pipeline()
        self.degrade = input_pipeline()

    def __len__(self) -> int:
        return self.length

    def _sample(self, faces: FaceSamples, rng: np.random.Generator, toward: FaceSamples | None) -> dict:
        i = int(rng.integers(len(faces)))
        image = faces.images[i]
        if toward is not None and rng.random() < 0.5:
            image = reinhard_transfer(image, toward.lab_mean, toward.lab_std, faces.full[i])
        out = self.shared(image=image, mask=faces.full[i], mask_full=faces.full[i], mask_priority=faces.priority[i])
        target = out["image"]
        warped = self.degrade(image=random_warp(target, rng))["image"]
        return {
            "input": _tensor(warped),
            "target": _tensor(target),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask_full"]))[None].float(),
            "priority": torch.from_numpy(np.ascontiguousarray(out["mask_priority"]))[None].float(),
        }

    def __getitem__(self, index: int) -> dict:
        # drawn from torch's generator: seeded by seed_everything and per worker, new every epoch
        rng = np.random.default_rng((self.seed, index, int(torch.randint(0, 2**62, (1,)).item())))
        # albumentations otherwise draws from its own unseeded state: runs would not repeat
        py_random = random.Random(int(rng.integers(2**62)))
        self.shared.set_random_state(rng, py_random)
        self.degrade.set_random_state(rng, py_random)
        return {"a": self._sample(self.a, rng, toward=self.b), "b": self._sample(self.b, rng, toward=None)}


def _tensor(image: np.ndarray) -> torch.Tensor:
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


class SwapDataModule(pl.LightningDataModule):
    """Built from a consent grant: the gate runs in __init__, before anything else happens."""

    def __init__(
        self,
        subject_a: str,
        subject_b: str,
        purpose: str,
        workspace: str | None = None,
        resolution: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        samples_per_epoch: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from faceswap.consent.registry import ConsentStore
        from faceswap.workspace import Workspace

        self.save_hyperparameters()
        self.workspace = Workspace.resolve(workspace)
        store = ConsentStore(self.workspace)
        self.grant: ConsentGrant = ConsentGate(store).authorize(subject_a, subject_b, purpose)
        self._built = store.ledger.entries("faceset.built")
        self.facesets = {
            "a": self._checked_faceset(subject_a),
            "b": self._checked_faceset(subject_b),
        }
        self.samples: dict[str, FaceSamples] = {}

    def _checked_faceset(self, subject: str) -> Faceset:
        folder = self.workspace.facesets_dir / subject
        if not (folder / "faceset.jsonl").exists():
            raise ConsentRefused(f"no faceset for subject '{subject}': run `faceswap extract ... --subject {subject}`")
        faceset = Faceset.load(folder)
        granted = self.grant.record_for(subject)
        if faceset.header.subject_id != subject:
            raise ConsentRefused(f"faceset {folder} belongs to subject '{faceset.header.subject_id}', not '{subject}'")
        if faceset.header.record_id != granted.record_id:
            raise ConsentRefused(
                f"faceset {folder} was extracted under consent record {faceset.header.record_id}, "
                f"but the grant for '{subject}' is record {granted.record_id}"
            )
        if not faceset.faces:
            raise ConsentRefused(f"faceset {folder} is empty")
        faceset.recorded_in(self._built)
        return faceset

    @property
    def faceset_hashes(self) -> dict[str, str]:
        return {key: fs.digest() for key, fs in self.facesets.items()}

    def setup(self, stage: str | None = None) -> None:
        if not self.samples:
            res = self.hparams.resolution
            self.samples = {key: FaceSamples.load(fs, res) for key, fs in self.facesets.items()}

    def train_dataloader(self) -> DataLoader:
        dataset = PairDataset(self.samples["a"], self.samples["b"], self.hparams.samples_per_epoch, self.hparams.seed)
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            drop_last=True,
        )

    def preview_batch(self, count: int = 4) -> dict[str, torch.Tensor]:
        """Fixed, unaugmented samples for preview grids."""
        out = {}
        for key, samples in self.samples.items():
            picks = np.linspace(0, len(samples) - 1, count).astype(int)
            out[key] = torch.stack([_tensor(samples.images[i]) for i in picks])
        return out
