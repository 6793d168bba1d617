"""The occlusion segmenter: a small U-Net that finds the visible face in an aligned crop (what
DeepFaceLab's XSeg does), and opening a trained one for use. No Lightning here: conversion loads it.

A segmenter is a model like the swap model: `model.safetensors` (tensors only) and a `model.trained`
ledger entry with `model_type: occlusion`, its weights' fingerprint, the labels it learned from and
the consent it was trained under. What it is comes from that signed entry, never from model.json.
It is used only with a swap model of the same two subjects and purpose, so one consent grant
covers the swap and its mask, and is re-checked for both while a conversion runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceswap.consent.gate import ConsentGate, ConsentGrant, ConsentRefused
from faceswap.consent.registry import ConsentStore
from faceswap.errors import BadInput
from faceswap.faces.align import Alignment, crop_face, track_alignment
from faceswap.ledger import Entry
from faceswap.model.weights import OCCLUSION, find_trained, model_type

ARCHITECTURE = "occlusion-unet"


@dataclass(frozen=True)
class SegmenterConfig:
    resolution: int = 128
    base: int = 16  # channels of the first level; each level down doubles them
    depth: int = 4  # levels down (the crop shrinks 2**depth times)

    def check(self) -> None:
        if self.depth < 1 or self.resolution % (2**self.depth):
            raise ValueError(f"resolution {self.resolution} must be divisible by 2**depth ({2**self.depth})")
        if not 32 <= self.resolution <= 1024 or not 4 <= self.base <= 128:
            raise ValueError("resolution must be 32-1024 px and base 4-128 channels")


class _Block(nn.Sequential):
    def __init__(self, inputs: int, outputs: int) -> None:
        groups = max(1, outputs // 8)
        super().__init__(
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.GroupNorm(groups, outputs),
            nn.SiLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.GroupNorm(groups, outputs),
            nn.SiLU(inplace=True),
        )


class OcclusionNet(nn.Module):
    """RGB crop in [0, 1] -> logit of "visible face" per pixel, at the crop's size."""

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        config.check()
        widths = [config.base * 2**level for level in range(config.depth + 1)]
        self.stem = _Block(3, widths[0])
        self.down = nn.ModuleList(_Block(widths[i], widths[i + 1]) for i in range(config.depth))
        self.up = nn.ModuleList(_Block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x * 2.0 - 1.0)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = block(
                torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)
            )
        return self.head(y)


def config_of(hparams: dict[str, Any]) -> SegmenterConfig:
    return SegmenterConfig(int(hparams["resolution"]), int(hparams["base"]), int(hparams["depth"]))


def crops_to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    """BGR uint8 crops -> (N, 3, R, R) RGB float in [0, 1]."""
    return torch.from_numpy(np.stack(crops)[..., ::-1].copy()).permute(0, 3, 1, 2).float().div_(255)


@dataclass(frozen=True)
class Segmenter:
    """A segmenter whose weights a signed `model.trained` entry (model_type occlusion) names, under
    consent that holds now."""

    folder: Path
    weights_path: Path
    entry: Entry
    grant: ConsentGrant
    fingerprint: str
    network: OcclusionNet  # eval mode, on `device`
    device: str

    @property
    def name(self) -> str:
        return str(self.entry.data.get("name", self.folder.name))

    @property
    def resolution(self) -> int:
        return int(self.entry.data["resolution"])

    @property
    def alignment(self) -> Alignment:
        return Alignment.parse(str(self.entry.data["alignment"]))

    def visible(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, R, R) float32 in [0, 1]: how surely each pixel of each aligned crop is visible face."""
        if not crops:
            return np.zeros((0, self.resolution, self.resolution), np.float32)
        with torch.no_grad():
            logits = self.network(crops_to_tensor(crops).to(self.device))
        return torch.sigmoid(logits.float())[:, 0].cpu().numpy()

    def on_crop(self, crop: np.ndarray) -> np.ndarray:
        """The visible face of a crop made with the segmenter's alignment (at any size), at its size."""
        import cv2

        from faceswap.faces.align import resize_crop

        size = crop.shape[0]
        visible = self.visible([resize_crop(crop, self.resolution)])[0]
        return cv2.resize(visible, (size, size), interpolation=cv2.INTER_LINEAR)

    def predict(self, faces: list[tuple[np.ndarray, Any, np.ndarray]]) -> list[Occlusion]:
        """The visible face of each (image, face, smoothed kps5), in one batch: each face cropped the
        segmenter's own way (its alignment, its resolution)."""
        matrices = [track_alignment(face, kps, self.resolution, self.alignment) for _, face, kps in faces]
        crops = [crop_face(image, m, self.resolution) for (image, _, _), m in zip(faces, matrices, strict=True)]
        return [Occlusion(v, m) for v, m in zip(self.visible(crops), matrices, strict=True)]


@dataclass(frozen=True)
class Occlusion:
    """A segmenter's answer for one face: the visible face in the segmenter's crop, and that crop's
    matrix (image -> crop)."""

    visible: np.ndarray  # (R, R) float32 in [0, 1]
    matrix: np.ndarray  # 2x3


def load_segmenter(store: ConsentStore, folder: Path, grant: ConsentGrant, device: str | None = None) -> Segmenter:
    """The segmenter in `folder`, if the ledger knows its weights as an occlusion segmenter, its
    consent holds and it serves `grant`'s subjects and purpose (the swap model's); else refused."""
    from faceswap.model.weights import fingerprint, read_weights

    if not folder.is_dir():
        raise BadInput(f"{folder}: not a model folder (--mask-model)")
    state, _, weights_path = read_weights(folder)
    weights_id = fingerprint(state)
    entries = store.ledger.entries()
    entry = find_trained(entries, weights_id, folder)
    if model_type(entry.data) != OCCLUSION:
        raise BadInput(
            f"{folder}: a {model_type(entry.data)} model, not an occlusion segmenter (`faceswap train-mask`)"
        )
    own = ConsentGate(store).authorize_model(entry, entries)
    if (own.subject_a, own.subject_b, own.purpose) != (grant.subject_a, grant.subject_b, grant.purpose):
        raise ConsentRefused(
            f"{folder}: the segmenter was trained for subjects {own.subject_a}/{own.subject_b} and purpose "
            f"'{own.purpose}'; this job is for {grant.subject_a}/{grant.subject_b} and '{grant.purpose}' "
            "(train a segmenter under the same consent)"
        )
    network = _build(entry, state, folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Segmenter(folder, weights_path, entry, own, weights_id, network.to(device).eval(), device)


def _build(entry: Entry, state: dict[str, torch.Tensor], folder: Path) -> OcclusionNet:
    try:
        network = OcclusionNet(config_of(entry.data.get("hparams") or {}))
        network.load_state_dict(state, strict=True)
        Alignment.parse(str(entry.data["alignment"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadInput(f"{folder}: the weights do not fit the recorded segmenter ({first})") from None
    return network
