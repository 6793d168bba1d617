"""Loss terms. Each returns (raw, weighted) so every term is logged on its own."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (N, C, H, W) with a Gaussian window, inputs in [0, 1]."""
    channels = x.shape[1]
    w = _gaussian_window(window, sigma, channels, x.device, x.dtype)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [pad] * 4, mode="reflect"), w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass(frozen=True)
class LossWeights:
    dssim: float = 10.0
    l1: float = 10.0
    priority: float = 30.0  # eyes and mouth, on top of the rest
    mask: float = 10.0


class SwapLoss:
    """DSSIM (multi-scale from 256 px) + L1 weighted by the training region, eye/mouth priority, and
    the learned mask against the face hull.

    The region weight is 1 over the whole hull and falls off outside it no faster than conversion's
    blend does (`faces.masks.training_weight`), so every pixel a swap shows was trained."""

    def __init__(self, weights: LossWeights, resolution: int) -> None:
        self.weights = weights
        self.scales = 3 if resolution >= 256 else 1

    def dssim(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(())
        for level in range(self.scales):
            if level:
                pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
                mask = F.avg_pool2d(mask, 2)
            total = total + _masked_mean((1 - ssim_map(pred, target)) / 2, mask)
        return total / self.scales

    def __call__(
        self,
        pred: torch.Tensor,
        pred_mask: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        priority: torch.Tensor,
        weight: torch.Tensor | None = None,
        priority_scale: float = 1.0,
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """mask: the learned mask's target (the hull); weight: where the face is trained (the mask
        when not given); priority_scale: this step's share of the priority weight (its ramp)."""
        w = self.weights
        region = mask if weight is None else weight
        pred32, target32 = pred.float(), target.float()
        # float32 throughout, whatever autocast the step runs under: SSIM's variances are differences
        # of nearly equal means, which bfloat16 cancels to noise as the prediction nears its target
        with torch.autocast(pred.device.type, enabled=False):
            dssim = self.dssim(pred32, target32, region.float())
            l1 = _masked_mean((pred32 - target32).abs(), region)
            prio = _masked_mean((pred32 - target32).abs(), priority) if priority.sum() > 0 else pred32.new_zeros(())
            mask_loss = F.mse_loss(pred_mask.float(), mask.float())
        return {
            "dssim": (dssim, w.dssim * dssim),
            "l1": (l1, w.l1 * l1),
            "priority": (prio, w.priority * priority_scale * prio),
            "mask": (mask_loss, w.mask * mask_loss),
        }
