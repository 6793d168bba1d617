"""The LightningModule: networks, losses, the optimiser step, NaN guard and preview grids (written,
marked, by the training run's preview callback).

The step is written out (manual optimisation) because every part of it is a training option: skip
on a non-finite loss (the same decision on every DDP rank), gradient clipping, SAEHD's learning-rate
dropout, and the optional adversaries, trained in the same single backward as the autoencoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from faceswap.errors import BadInput
from faceswap.faces.align import Alignment
from faceswap.model.discriminators import CodeDiscriminator, PatchDiscriminator, adversarial_terms
from faceswap.model.losses import LossWeights, SwapLoss
from faceswap.model.networks import SUBJECTS, ModelConfig, build_network
from faceswap.model.schedule import LRSchedule, PriorityRamp
from faceswap.model.weights import fingerprint

PREVIEW_HEIGHT = 768  # preview grids are scaled to at least this height (preview_grid says why)


def weights_fingerprint(network: torch.nn.Module) -> str:
    return fingerprint(network.state_dict())


def _check_settings(lr_dropout: float, alignment: str | None) -> None:
    if not 0.0 < lr_dropout <= 1.0:
        raise ValueError("lr_dropout is the share of weights each step updates: in (0, 1]")
    if alignment is not None:
        Alignment.parse(alignment)  # a ValueError names what is wrong


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
        lr_dropout: float = 1.0,
        clip_grad: float = 0.0,
        gan_power: float = 0.0,
        gan_dims: int = 16,
        gan_patch: int = 0,
        true_face_power: float = 0.0,
        lr_warmup: int = 0,
        lr_decay: str = "none",
        lr_floor: float = 0.1,
        priority_ramp: float = 0.0,
        priority_start: float = 0.0,
        alignment: str | None = None,
        channels_last: bool = True,
        compile: bool = False,
        preview_every: int = 100,
        snapshot_every: int = 25,
        inject_nan_at_step: int | None = None,
        inject_nan_rank: int | None = None,
        mark_decoder: bool = False,
        mark_steps: int = 60,
    ) -> None:
        """lr_dropout: the share of weights each step updates (SAEHD uses 0.3 late in training; 1.0 is
        off). clip_grad: clip each parameter group's gradient norm to this (0: off). gan_power: weight
        of the patch discriminator on subject A (0: off; SAEHD suggests 0.1 for a last stage).
        true_face_power: weight of the latent-code discriminator (df only; 0: off). lr_warmup,
        lr_decay, lr_floor: the learning rate's schedule over the run (`schedule.LRSchedule`; off by
        default). priority_ramp, priority_start: the eye-and-mouth priority rises from priority_start
        x its weight over that share of the run (`schedule.PriorityRamp`; 0: full weight). alignment: how
        the facesets' crops must have been made, e.g. "full-face-eyes-nose" (None: take theirs; the
        model records it and conversion crops the same way). inject_nan_*: tests of the NaN guard.
        mark_*: the model's own mark after training (off by default; train.mark_model)."""
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.config = ModelConfig(architecture, resolution, e_dims, ae_dims, d_dims, d_mask_dims)
        self.network = build_network(self.config)
        _check_settings(lr_dropout, alignment)
        self.discriminators = _discriminators(self.config, self.network, gan_power, gan_dims, gan_patch, true_face_power)
        self.loss = SwapLoss(LossWeights(weight_dssim, weight_l1, weight_priority, weight_mask), resolution)
        self.lr_schedule = LRSchedule(lr_warmup, lr_decay, lr_floor)
        self.priority_ramp = PriorityRamp(priority_ramp, priority_start)
        self.lr_scale = 1.0  # halved by each NaN recovery, on top of the schedule
        self._good_state: dict[str, torch.Tensor] | None = None
        self._nan_injected = False
        self.recoveries = 0
        self.grant_json: dict[str, Any] | None = None
        self.faceset_hashes: dict[str, str] = {}

    def configure_model(self) -> None:
        if self.hparams.channels_last and self.device.type == "cuda":
            self.network = self.network.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            for part in self.network.children():  # in place: state_dict keys (and the fingerprint) unchanged
                part.compile()

    def configure_optimizers(self):
        groups = [{"params": list(self.network.parameters())}]
        if len(self.discriminators):
            groups.append({"params": list(self.discriminators.parameters())})
        return torch.optim.AdamW(groups, lr=self.hparams.lr, betas=(0.5, 0.999), weight_decay=0.0)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "grant"):
            self.grant_json = datamodule.grant.to_json()
            self.faceset_hashes = datamodule.faceset_hashes
        data_alignment = getattr(datamodule, "alignment", None)
        if data_alignment is not None:
            if self.hparams.alignment not in (None, data_alignment):
                raise BadInput(
                    f"the model is set to {self.hparams.alignment} crops but the facesets hold "
                    f"{data_alignment} crops: re-extract them to match"
                )
            self.hparams.alignment = data_alignment  # model.json records it; convert crops the same way

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last and x.device.type == "cuda":
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _generator_terms(self, batch: dict[str, dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict]:
        """The autoencoder's loss for both subjects, and what the adversaries need."""
        total = None
        seen: dict[str, Any] = {}
        priority = self.priority_ramp.factor(self.global_step, self._planned_steps())
        for subject in SUBJECTS:
            sample = batch[subject]
            latent = self.network.latent(self._prepare(sample["input"]), subject)
            pred, pred_mask = self.network.decode(latent, subject)
            terms = self.loss(
                pred, pred_mask, sample["target"], sample["mask"], sample["priority"], sample["weight"], priority
            )
            subject_loss = sum(weighted for _, weighted in terms.values())
            for name, (raw, _) in terms.items():
                self.log(f"{subject}/{name}", raw.detach(), on_step=True, prog_bar=False)
            self.log(f"loss_{subject}", subject_loss.detach(), on_step=True, prog_bar=True)
            self.log(f"recon_{subject}", terms["dssim"][0].detach() + terms["l1"][0].detach(), on_step=True)
            total = subject_loss if total is None else total + subject_loss
            seen[subject] = (latent, pred, sample)
        return total, seen

    def _adversarial_terms(self, seen: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generator and discriminator terms of the optional adversaries (None when both are off)."""
        generator, judged = None, None
        if "patch" in self.discriminators:
            _, pred, sample = seen["a"]
            weight = sample["weight"]
            g, d = adversarial_terms(self.discriminators["patch"], sample["target"] * weight, pred * weight)
            self.log("gan/generator", g.detach(), on_step=True)
            self.log("gan/discriminator", d.detach(), on_step=True)
            generator, judged = self.hparams.gan_power * g, d
        if "code" in self.discriminators:
            # DFL's true face: B's codes are "real", A's must come to look like them
            g, d = adversarial_terms(self.discriminators["code"], seen["b"][0], seen["a"][0])
            self.log("true_face/generator", g.detach(), on_step=True)
            self.log("true_face/discriminator", d.detach(), on_step=True)
            g = self.hparams.true_face_power * g
            generator = g if generator is None else generator + g
            judged = d if judged is None else judged + d
        return generator, judged

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        total, seen = self._generator_terms(batch)
        generator, judged = self._adversarial_terms(seen)
        if generator is not None:
            total = total + generator + judged
        total = self._maybe_inject_nan(total)
        if not self._finite_on_every_rank(total):
            self._recover()  # no backward on any rank: DDP's reducer is left with nothing half-done
            return total.detach()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if self.hparams.clip_grad > 0 and not self._clip_gradients(optimizer.optimizer):
            self._recover()  # gradients are all-reduced by now, so every rank sees the same norm
            return total.detach()
        self._step(optimizer)
        if self.global_step % self.hparams.snapshot_every == 0:
            self._snapshot()
        return total.detach()

    def _maybe_inject_nan(self, total: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if self._nan_injected or hp.inject_nan_at_step is None or self.global_step != hp.inject_nan_at_step:
            return total
        if hp.inject_nan_rank is not None and self.global_rank != hp.inject_nan_rank:
            return total
        self._nan_injected = True
        return total * float("nan")

    def _finite_on_every_rank(self, total: torch.Tensor) -> bool:
        """One decision for all ranks: a rank that skipped while another stepped would hang DDP."""
        flag = torch.isfinite(total.detach()).float().reshape(1)
        if self.trainer.world_size > 1:
            flag = self.trainer.strategy.reduce(flag, reduce_op="min")
        return bool(flag.item() > 0)

    def _clip_gradients(self, optimizer: torch.optim.Optimizer) -> bool:
        """Clip each parameter group's gradient norm (autoencoder, discriminators); False when a norm
        is not finite."""
        finite = True
        for group in optimizer.param_groups:
            norm = torch.nn.utils.clip_grad_norm_(group["params"], self.hparams.clip_grad)
            finite = finite and bool(torch.isfinite(norm))
        return finite

    def _step(self, optimizer) -> None:
        """An optimiser step; with lr_dropout < 1 each weight keeps its update with that probability
        (the masks come from the step number, so every DDP rank draws the same ones)."""
        keep = self.hparams.lr_dropout
        params = [p for group in optimizer.optimizer.param_groups for p in group["params"] if p.grad is not None]
        before = [p.detach().clone() for p in params] if keep < 1.0 else []
        if self.lr_schedule != LRSchedule():
            rate = self.hparams.lr * self.lr_scale * self.lr_schedule.factor(self.global_step, self._planned_steps())
            for group in optimizer.optimizer.param_groups:
                group["lr"] = rate
        optimizer.step()
        if keep >= 1.0:
            return
        generator = torch.Generator(device=params[0].device if params else "cpu")
        generator.manual_seed(1_000_003 * (self.global_step + 1))
        with torch.no_grad():
            for p, old in zip(params, before, strict=True):
                mask = torch.rand(p.shape, generator=generator, device=p.device) < keep
                p.copy_(torch.where(mask, p, old))

    def _planned_steps(self) -> int | None:
        """The step this run is set to end at (None without a trainer or a step limit)."""
        trainer = self._trainer
        return trainer.max_steps if trainer is not None and trainer.max_steps > 0 else None

    def on_train_start(self) -> None:
        if self._good_state is None:
            self._snapshot()

    def _snapshot(self) -> None:
        """The last good weights, kept in host memory (pinned on a GPU, copied without blocking)."""
        state = self.state_dict()
        if self._good_state is None or self._good_state.keys() != state.keys():
            pin = self.device.type == "cuda"
            self._good_state = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=pin) for k, v in state.items()}
        for key, value in state.items():
            self._good_state[key].copy_(value.detach(), non_blocking=True)

    def _recover(self) -> None:
        """Non-finite loss: go back to the last good weights, restart the optimiser's moments (they
        may hold the poison), halve the learning rate."""
        self.recoveries += 1
        optimizer = self.optimizers().optimizer
        if self._good_state is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.load_state_dict(self._good_state)
        optimizer.state.clear()
        self.lr_scale *= 0.5
        for group in optimizer.param_groups:
            group["lr"] *= 0.5
        self.log("nan_recoveries", float(self.recoveries), on_step=True, prog_bar=True)
        self.print(
            f"non-finite loss at step {self.global_step}: restored the last good weights, lr -> "
            f"{optimizer.param_groups[0]['lr']:.2e}"
        )

    @torch.no_grad()
    def preview_grid(self) -> np.ndarray:
        """Rows of samples; columns A, A->A, A->B, B, B->B, B->A. uint8 BGR, at least PREVIEW_HEIGHT
        px tall and scaled smoothly: the sink reads its mark back, and grids of 64 px crops held it too
        weakly when smaller or scaled by repeating pixels, whose blocks the reader's lattice search
        mistakes for the tile's (keyed marks on such grids read 0-2 of 4 at 512 and 768 px by nearest
        scaling, 4 of 4 at 768 px by cubic)."""
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
        scale = max(1, int(np.ceil(PREVIEW_HEIGHT / grid.shape[0])))
        return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["consent_grant"] = self.grant_json
        checkpoint["faceset_hashes"] = self.faceset_hashes
        checkpoint["lr_scale"] = self.lr_scale

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.grant_json = checkpoint.get("consent_grant")
        self.faceset_hashes = checkpoint.get("faceset_hashes", {})
        self.lr_scale = float(checkpoint.get("lr_scale", 1.0))
        _match_discriminators(checkpoint, self.state_dict(), len(self.discriminators) > 0)


def _match_discriminators(checkpoint: dict[str, Any], own: dict[str, torch.Tensor], with_group: bool) -> None:
    """Resuming into a later stage switches the adversaries on or off: a new discriminator starts
    from its fresh weights and an empty optimiser group; one switched off is dropped. The autoencoder
    and its optimiser state always carry over."""
    state = checkpoint.get("state_dict", {})
    prefix = "discriminators."
    for key in [k for k in state if k.startswith(prefix) and k not in own]:
        del state[key]
    for key in [k for k in own if k.startswith(prefix) and k not in state]:
        state[key] = own[key]
    for opt_state in checkpoint.get("optimizer_states", [])[:1]:
        groups = opt_state["param_groups"]
        if with_group and len(groups) == 1:
            start = max(groups[0]["params"], default=-1) + 1
            count = sum(1 for k in own if k.startswith(prefix))
            groups.append({**groups[0], "params": list(range(start, start + count))})
        elif not with_group and len(groups) > 1:
            dropped = {i for group in groups[1:] for i in group["params"]}
            opt_state["state"] = {i: s for i, s in opt_state["state"].items() if i not in dropped}
            del groups[1:]


def _discriminators(
    config: ModelConfig, network: nn.Module, gan_power: float, gan_dims: int, gan_patch: int, true_face_power: float
) -> nn.ModuleDict:
    """The optional adversaries: a patch discriminator on A's output, and DFL's true-face code discriminator."""
    found = nn.ModuleDict()
    if gan_power > 0:
        found["patch"] = PatchDiscriminator(config.resolution, gan_dims, gan_patch)
    if true_face_power > 0:
        if config.spec.base != "df":
            raise ValueError("true_face_power needs a df architecture (SAEHD's true face is df only)")
        found["code"] = CodeDiscriminator(network.latent_channels)
    return found
