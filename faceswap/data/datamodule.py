"""The training data: two facesets, handed in already authorised (data/authorised.py). No grant, no
data module: it is built from the grant, and only loads what the grant covers."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from faceswap.consent.gate import ConsentGrant
from faceswap.data.augment import WARP_STRENGTH, input_pipeline, random_warp, reinhard, shared_pipeline
from faceswap.data.authorised import AuthorisedData
from faceswap.data.faceset import Faceset
from faceswap.errors import BadInput
from faceswap.faces.align import (
    FACE_TYPES,
    Alignment,
    crop_face,
    reframe_fits,
    reframe_matrix,
    resize_crop,
    transform_points,
)
from faceswap.faces.masks import eye_mask, landmark_mask, training_weight

Visibility = Callable[[np.ndarray], np.ndarray]  # a faceset crop -> its visible face, float (S, S) in [0, 1]
YAW_BINS = 16  # uniform-yaw sampling: faces are drawn from yaw bins of equal width, each bin alike
LOSS_REGIONS = ("blend", "hull")  # where the loss trains: the hull and conversion's feathered ring, or the hull


@dataclass
class FaceSamples:
    """A faceset in memory at the model's resolution, with its landmark masks."""

    images: np.ndarray  # (N, R, R, 3) uint8 BGR
    full: np.ndarray  # (N, R, R): the landmark hull (the learned mask's target)
    weight: np.ndarray  # (N, R, R): where the loss trains (the hull and conversion's feathered ring)
    priority: np.ndarray  # (N, R, R): eye regions and mouth
    yaw: np.ndarray  # (N,) degrees
    # masks are float in [0, 1] or, as `load` keeps them (a quarter of the memory), uint8 in [0, 255]

    @classmethod
    def load(
        cls,
        faceset: Faceset,
        resolution: int,
        face_type: str | None = None,
        loss_region: str = "blend",
        visible: Visibility | None = None,
    ) -> FaceSamples:
        """`face_type`: another framing cut from the faceset's crops (default: theirs); `loss_region`:
        one of LOSS_REGIONS. `visible`: the visible face of a faceset crop (an occlusion segmenter's);
        what it finds in front of the face is left out of the loss (its weight and priority are 0 there)."""
        if loss_region not in LOSS_REGIONS:
            raise BadInput(f"--data.loss_region must be one of {', '.join(LOSS_REGIONS)} (got {loss_region})")
        matrix = _reframe(faceset, resolution, face_type)
        shape = (resolution, resolution)
        images, full, weight, priority = [], [], [], []
        for entry in faceset.faces:
            crop = faceset.load_crop(entry)
            images.append(resize_crop(crop, resolution) if face_type is None else crop_face(crop, matrix, resolution))
            shown = (
                np.ones(shape, np.float32)
                if visible is None
                else np.clip(crop_face(visible(crop), matrix, resolution), 0, 1)
            )
            if entry.landmarks is None or entry.landmark_scheme is None:
                full.append(np.ones(shape, np.float32))
                weight.append(shown)
                priority.append(np.zeros(shape, np.float32))
                continue
            lms = transform_points(entry.landmarks, matrix).astype(np.float32)
            kps = transform_points(entry.kps, matrix).astype(np.float32)
            hull = landmark_mask(lms, entry.landmark_scheme, kps, "full", shape)
            full.append(landmark_mask(lms, entry.landmark_scheme, kps, "full", shape, feather=resolution / 64))
            weight.append((training_weight(hull) if loss_region == "blend" else hull) * shown)
            mouth = landmark_mask(lms, entry.landmark_scheme, kps, "mouth", shape)
            priority.append(np.maximum(mouth, eye_mask(lms, entry.landmark_scheme, kps, shape)) * shown)
        return cls(
            np.stack(images),
            _to_u8(np.stack(full)),
            _to_u8(np.stack(weight)),
            _to_u8(np.stack(priority)),
            np.array([entry.yaw for entry in faceset.faces], np.float32),
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _reframe(faceset: Faceset, resolution: int, face_type: str | None) -> np.ndarray:
    """Faceset crop -> training crop (2x3); refused where it would upscale or reach outside the crop."""
    size, made = faceset.header.size, FACE_TYPES[faceset.header.alignment.face_type]
    target = made if face_type is None else FACE_TYPES[face_type]
    if not reframe_fits(made, target):
        raise BadInput(
            f"faceset {faceset.folder} holds {made.name}-face crops, which do not contain a {target.name}-face "
            "framing: extract with --face-type whole"
        )
    matrix = reframe_matrix(made, size, target, resolution)
    if matrix[0, 0] > 1 + 1e-6:
        needed = int(np.ceil(size * matrix[0, 0]))
        raise BadInput(
            f"faceset {faceset.folder} holds {size} px crops; a {resolution} px {target.name}-face model would "
            f"train on upscaled (blurred) faces: extract with --size {needed} or larger"
        )
    return matrix


class FacePicker:
    """Draws a face index: uniformly, or uniformly over yaw (SAEHD's uniform yaw distribution), so
    the few profile faces of a mostly frontal faceset are trained as often as the frontal ones."""

    def __init__(self, yaw: np.ndarray, uniform_yaw: bool, bins: int = YAW_BINS) -> None:
        self.count = len(yaw)
        self.bins: list[np.ndarray] = []
        if uniform_yaw and self.count:
            edges = np.linspace(float(yaw.min()), float(yaw.max()) + 1e-6, bins + 1)
            which = np.clip(np.digitize(yaw, edges) - 1, 0, bins - 1)
            self.bins = [np.flatnonzero(which == b) for b in range(bins) if (which == b).any()]

    def __call__(self, rng: np.random.Generator) -> int:
        if not self.bins:
            return int(rng.integers(self.count))
        members = self.bins[int(rng.integers(len(self.bins)))]
        return int(members[int(rng.integers(len(members)))])


class PairDataset(Dataset):
    """Each item: one augmented sample of A (coloured toward a B face) and one of B.

    warp: the random grid warp of the input (turn it off for a last, sharpening stage, as SAEHD
    does), its jitter `warp_strength` in cell widths; colour_transfer: the share of A samples given a
    random B face's colour statistics."""

    def __init__(
        self,
        a: FaceSamples,
        b: FaceSamples,
        length: int,
        seed: int = 0,
        warp: bool = True,
        uniform_yaw: bool = False,
        colour_transfer: float = 0.5,
        warp_strength: float = WARP_STRENGTH,
    ) -> None:
        self.a, self.b, self.length, self.seed = a, b, length, seed
        self.warp, self.warp_strength, self.colour_transfer = warp, warp_strength, colour_transfer
        self.pick = {"a": FacePicker(a.yaw, uniform_yaw), "b": FacePicker(b.yaw, uniform_yaw)}
        self.shared = shared_pipeline()
        self.degrade = input_pipeline()

    def __len__(self) -> int:
        return self.length

    def _sample(self, subject: str, rng: np.random.Generator) -> dict:
        faces = self.a if subject == "a" else self.b
        i = self.pick[subject](rng)
        image = faces.images[i]
        if subject == "a" and rng.random() < self.colour_transfer:
            j = self.pick["b"](rng)  # conversion colours A's face toward the B frame it lands on
            image = reinhard(image, self.b.images[j], _unit(faces.full[i]), _unit(self.b.full[j]))
        out = self.shared(image=image, mask=faces.full[i], mask_weight=faces.weight[i], mask_priority=faces.priority[i])
        target = out["image"]
        warped = random_warp(target, rng, self.warp_strength) if self.warp else target
        return {
            "input": _tensor(self.degrade(image=warped)["image"]),
            "target": _tensor(target),
            "mask": _mask_tensor(out["mask"]),
            "weight": _mask_tensor(out["mask_weight"]),
            "priority": _mask_tensor(out["mask_priority"]),
        }

    def __getitem__(self, index: int) -> dict:
        # drawn from torch's generator: seeded by seed_everything and per worker, new every epoch
        rng = np.random.default_rng((self.seed, index, int(torch.randint(0, 2**62, (1,)).item())))
        # albumentations otherwise draws from its own unseeded state: runs would not repeat
        py_random = random.Random(int(rng.integers(2**62)))
        self.shared.set_random_state(rng, py_random)
        self.degrade.set_random_state(rng, py_random)
        return {"a": self._sample("a", rng), "b": self._sample("b", rng)}


def _to_u8(masks: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(masks, 0.0, 1.0) * 255).astype(np.uint8)


def _unit(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) / 255.0 if mask.dtype == np.uint8 else mask


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(_unit(mask)))[None].float()


def _tensor(image: np.ndarray) -> torch.Tensor:
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


class SwapDataModule(pl.LightningDataModule):
    """Built from an authorised grant (its facesets already checked against it and the ledger)."""

    def __init__(
        self,
        authorised: AuthorisedData,
        resolution: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        samples_per_epoch: int = 4096,
        seed: int = 0,
        random_warp: bool = True,
        uniform_yaw: bool = False,
        colour_transfer: float = 0.5,
        warp_strength: float = WARP_STRENGTH,
        face_type: str | None = None,
        loss_region: str = "blend",
    ) -> None:
        """authorised: what the caller's consent check granted (the data options below come from
        the config and flags; who and under which consent never do). random_warp: warp the inputs
        (off for SAEHD's last, sharpening stage); warp_strength: its control-point jitter in cell
        widths; uniform_yaw: draw faces uniformly over head yaw; colour_transfer: share of A samples
        coloured like a B face; face_type: train on another framing cut from the facesets' crops
        (`lower` for a dubbing model; default: theirs); loss_region: where the loss trains, `blend`
        (the hull and conversion's feathered ring around it) or `hull`."""
        super().__init__()
        if face_type is not None and face_type not in FACE_TYPES:
            raise BadInput(f"--data.face_type must be one of {', '.join(FACE_TYPES)} (got {face_type})")
        self.save_hyperparameters(ignore=["authorised"])
        self.authorised = authorised
        self.facesets: dict[str, Faceset] = dict(authorised.facesets)
        self.samples: dict[str, FaceSamples] = {}
        self.visible: Visibility | None = None  # set by the caller to leave occluders out of the loss

    @property
    def grant(self) -> ConsentGrant:
        return self.authorised.grant

    @property
    def alignment(self) -> str:
        """How both facesets' crops were made (they must agree: one model learns one framing)."""
        made = {key: fs.header.alignment for key, fs in self.facesets.items()}
        if made["a"] != made["b"]:
            raise BadInput(
                f"faceset of '{self.grant.subject_a}' holds {made['a'].name} crops and that of "
                f"'{self.grant.subject_b}' {made['b'].name} crops: extract both with the same "
                "--face-type and --align-on"
            )
        face_type = self.hparams.face_type or made["a"].face_type
        return Alignment(face_type, made["a"].points).name

    @property
    def faceset_hashes(self) -> dict[str, str]:
        return {key: fs.digest() for key, fs in self.facesets.items()}

    def setup(self, stage: str | None = None) -> None:
        if not self.samples:
            res = self.hparams.resolution
            face_type = self.hparams.face_type
            region = self.hparams.loss_region
            self.samples = {
                key: FaceSamples.load(fs, res, face_type, region, self.visible) for key, fs in self.facesets.items()
            }

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        dataset = PairDataset(
            self.samples["a"],
            self.samples["b"],
            hp.samples_per_epoch,
            hp.seed,
            warp=hp.random_warp,
            uniform_yaw=hp.uniform_yaw,
            colour_transfer=hp.colour_transfer,
            warp_strength=hp.warp_strength,
        )
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
