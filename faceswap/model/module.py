"""The LightningModule: networks, losses, optimiser, NaN guard and watermarked preview grids."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from faceswap.model.losses import LossWeights, SwapLoss
from faceswap.model.networks import ModelConfig, SwapNetwork
from faceswap.model.weights import fingerprint


def weights_fingerprint(network: torch.nn.Module) -> str:
    return fingerprint(network.state_dict())


class SwapModule(pl.LightningModule):
    def __init__(
        self,
        architecture: str = "df",
        resolution: int = 128,
        e_dims: int = 64,
        ae_dims: int = 256,
        d_dims: int = 64,
        d_mask_dims: int = 22,
        lr: float = 5e-5,
        weight_dssim: float = 10.0,
        weight_l1: float = 10.0,
        weight_priority: float = 30.0,
        weight_mask: float = 10.0,
        channels_last: bool = True,
        compile: bool = False,
        preview_every: int = 100,
        snapshot_every: int = 25,
        inject_nan_at_step: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = ModelConfig(architecture, resolution, e_dims, ae_dims, d_dims, d_mask_dims)
        self.network = SwapNetwork(self.config)
        self.loss = SwapLoss(LossWeights(weight_dssim, weight_l1, weight_priority, weight_mask), resolution)
        self._good_state: dict[str, Any] | None = None
        self.recoveries = 0
        self.grant_json: dict[str, Any] | None = None
        self.faceset_hashes: dict[str, str] = {}
        self.preview_sink = None  # set by the training run: previews go through the output sink

    def configure_model(self) -> None:
        if self.hparams.channels_last and self.device.type == "cuda":
            self.network = self.network.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            self.network = torch.compile(self.network)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.network.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999), weight_decay=0.0)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "grant"):
            self.grant_json = datamodule.grant.to_json()
            self.faceset_hashes = datamodule.faceset_hashes

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last and x.device.type == "cuda":
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int):
        total = None
        for subject in ("a", "b"):
            sample = batch[subject]
            pred, pred_mask = self.network.reconstruct(self._prepare(sample["input"]), subject)
            terms = self.loss(pred, pred_mask, sample["target"], sample["mask"], sample["priority"])
            subject_loss = sum(weighted for _, weighted in terms.values())
            for name, (raw, _) in terms.items():
                self.log(f"{subject}/{name}", raw.detach(), on_step=True, prog_bar=False)
            self.log(f"loss_{subject}", subject_loss.detach(), on_step=True, prog_bar=True)
            self.log(f"recon_{subject}", terms["dssim"][0].detach() + terms["l1"][0].detach(), on_step=True)
            total = subject_loss if total is None else total + subject_loss
        if self.hparams.inject_nan_at_step is not None and self.global_step == self.hparams.inject_nan_at_step:
            total = total * float("nan")
        if not torch.isfinite(total):
            self._recover()
            return None
        if self.global_step % self.hparams.snapshot_every == 0:
            self._snapshot()
        return total

    def _snapshot(self) -> None:
        optimizer = self.optimizers()
        self._good_state = {
            "network": {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.optimizer.state_dict()),
        }

    def _recover(self) -> None:
        """Non-finite loss: go back to the last good weights and optimiser state, halve the LR."""
        self.recoveries += 1
        optimizer = self.optimizers().optimizer
        if self._good_state is not None:
            self.network.load_state_dict(self._good_state["network"])
            optimizer.load_state_dict(self._good_state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] *= 0.5
        self.log("nan_recoveries", float(self.recoveries), on_step=True, prog_bar=True)
        self.print(
            f"non-finite loss at step {self.global_step}: restored the last good state, lr -> "
            f"{optimizer.param_groups[0]['lr']:.2e}"
        )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        every = self.hparams.preview_every
        if every and self.global_step > 0 and self.global_step % every == 0:
            self.write_preview()

    def on_train_end(self) -> None:
        self.write_preview()

    @torch.no_grad()
    def preview_grid(self) -> np.ndarray:
        """Rows of samples; columns A, A->A, A->B, B, B->B, B->A. uint8 BGR, at least 256 px tall."""
        import cv2

        datamodule = self.trainer.datamodule
        batch = {k: v.to(self.device) for k, v in datamodule.preview_batch().items()}
        was_training = self.network.training
        self.network.eval()
        columns = [
            batch["a"],
            self.network.reconstruct(batch["a"], "a")[0],
            self.network.swap(batch["a"], "b")[0],
            batch["b"],
            self.network.reconstruct(batch["b"], "b")[0],
            self.network.swap(batch["b"], "a")[0],
        ]
        self.network.train(was_training)
        rows = torch.cat([torch.cat(list(col), dim=1) for col in columns], dim=2)  # (3, H*n, W*6)
        grid = (rows.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)[:, :, ::-1]
        scale = max(1, int(np.ceil(256 / grid.shape[0])))
        return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    def write_preview(self) -> None:
        if self.preview_sink is None or not self.trainer.is_global_zero:
            return
        marked = self.preview_sink(self.preview_grid(), self.global_step, weights_fingerprint(self.network))
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("preview", marked[:, :, ::-1].copy(), self.global_step, dataformats="HWC")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["consent_grant"] = self.grant_json
        checkpoint["faceset_hashes"] = self.faceset_hashes

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.grant_json = checkpoint.get("consent_grant")
        self.faceset_hashes = checkpoint.get("faceset_hashes", {})
