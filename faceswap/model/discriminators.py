"""Optional adversaries for the late training stages (both off by default, as in SAEHD).

- PatchDiscriminator: real or reconstructed, judged per patch of subject A's masked face (SAEHD's
  "GAN power"): sharper skin and hair texture once the autoencoder has converged.
- CodeDiscriminator: tells A's latent codes from B's (SAEHD's "true face power", df only); the
  generator is pushed to make A's codes look like B's, so B's frames decode into A more faithfully.

Neither is part of the swap network: conversion never needs them and the model's fingerprint is the
network's alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def patch_layers(resolution: int, patch: int) -> int:
    """Stride-2 4x4 convolutions needed for a receptive field of at least `patch` pixels."""
    target = patch if patch > 0 else max(8, resolution // 8)
    layers = 1
    while 1 + 3 * (2**layers - 1) + 2 * 2**layers < target and layers < 6:
        layers += 1
    return layers


class PatchDiscriminator(nn.Module):
    """A PatchGAN: logits per overlapping patch of roughly `patch` pixels (default resolution/8)."""

    def __init__(self, resolution: int, dims: int = 16, patch: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i in range(patch_layers(resolution, patch)):
            cout = dims * min(2**i, 8)
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), _lrelu()]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CodeDiscriminator(nn.Module):
    """Logits per position of a latent code map (N, C, h, w)."""

    def __init__(self, channels: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            _lrelu(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            _lrelu(),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def adversarial_terms(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) for one backward pass.

    The generator's term sees the discriminator through detached weights, so its gradient reaches
    the generator only; the discriminator's term sees detached fakes, so its gradient reaches the
    discriminator only. One optimiser step then trains both, and under DDP every parameter gets its
    gradient in the same single backward (no second pass for the reducer to wait on)."""
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    generator = _bce(functional_call(discriminator, frozen, (fake,)), real=True)
    judged = 0.5 * (_bce(discriminator(real.detach()), real=True) + _bce(discriminator(fake.detach()), real=False))
    return generator, judged
