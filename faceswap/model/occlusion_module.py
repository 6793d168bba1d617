"""The occlusion segmenter's LightningModule: the network, its loss (binary cross-entropy plus soft
Dice on the visible face), the optimiser and its schedule. Checkpoints carry the consent grant."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from faceswap.errors import BadInput
from faceswap.faces.align import Alignment
from faceswap.model.occlusion import ARCHITECTURE, OcclusionNet, SegmenterConfig


def soft_dice(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Dice per image, averaged: the loss of a mask's overlap, whatever its size."""
    dims = (1, 2, 3)
    overlap = (probability * target).sum(dims)
    return (1 - (2 * overlap + 1) / (probability.sum(dims) + target.sum(dims) + 1)).mean()


def batch_iou(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    predicted, truth = probability >= 0.5, target >= 0.5
    union = (predicted | truth).sum().clamp_min(1)
    return (predicted & truth).sum() / union


class OcclusionModule(pl.LightningModule):
    def __init__(
        self,
        resolution: int = 128,
        base: int = 16,
        depth: int = 4,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        weight_dice: float = 1.0,
        warmup: float = 0.05,
        alignment: str | None = None,
    ) -> None:
        """lr: the peak learning rate (a warmup over the `warmup` share of max_steps, then a cosine
        down to 5%); weight_dice: the soft Dice term beside binary cross-entropy; alignment: how
        the crops must have been made (None: take the facesets'; the segmenter records it and
        conversion crops the same way)."""
        super().__init__()
        self.save_hyperparameters()
        self.config = SegmenterConfig(resolution, base, depth)
        try:
            self.network = OcclusionNet(self.config)
        except ValueError as error:
            raise BadInput(f"--model: {error}") from None
        if alignment is not None:
            Alignment.parse(alignment)
        self.architecture = ARCHITECTURE
        self.grant_json: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        self.grant_json = datamodule.grant.to_json()
        made = datamodule.alignment
        if self.hparams.alignment not in (None, made):
            raise BadInput(f"the segmenter is set to {self.hparams.alignment} crops but the facesets hold {made} crops")
        self.hparams.alignment = made

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.network(batch["image"])
        target = batch["visible"]
        bce = F.binary_cross_entropy_with_logits(logits.float(), target)
        probability = torch.sigmoid(logits.float())
        dice = soft_dice(probability, target)
        loss = bce + self.hparams.weight_dice * dice
        self.log("bce", bce.detach(), on_step=True)
        self.log("dice", dice.detach(), on_step=True)
        self.log("loss", loss.detach(), on_step=True, prog_bar=True)
        self.log("iou", batch_iou(probability.detach(), target), on_step=True, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = int(self.trainer.max_steps) if self.trainer.max_steps and self.trainer.max_steps > 0 else 1000
        warmup = max(1, int(self.hparams.warmup * steps))

        def scale(step: int) -> float:
            """A linear warmup, then a cosine down to 5% at max_steps (and 5% after, when resumed)."""
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, steps - warmup))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, scale)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["consent_grant"] = self.grant_json

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.grant_json = checkpoint.get("consent_grant")
