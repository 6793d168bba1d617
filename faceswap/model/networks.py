"""Networks in the spirit of DeepFaceLab SAEHD: encoder, inter (bottleneck), decoders with masks.

df:   A -> encoder -> inter -> decoder_a -> A'      B -> encoder -> inter -> decoder_b -> B'
      swap A->B: decoder_b(inter(encoder(A)))  (and B->A: decoder_a(...))
liae: one decoder; the latent of A is [inter_ab, inter_ab], of B is [inter_ab, inter_b]; a swap
      feeds [inter_ab(x), inter_ab(x)] to the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ARCHITECTURES = ("df", "liae")


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "df"
    resolution: int = 128
    e_dims: int = 64
    ae_dims: int = 256
    d_dims: int = 64
    d_mask_dims: int = 22

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}")
        if not 64 <= self.resolution <= 512 or self.resolution % 16:
            raise ValueError("resolution must be a multiple of 16 in [64, 512]")


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class Downscale(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 5) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2), _act())


class Upscale(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, kernel, padding=kernel // 2), _act(), nn.PixelShuffle(2))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class Encoder(nn.Module):
    def __init__(self, e_dims: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Downscale(3, e_dims),
            Downscale(e_dims, e_dims * 2),
            Downscale(e_dims * 2, e_dims * 4),
            Downscale(e_dims * 4, e_dims * 8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net(x), 1)


class Inter(nn.Module):
    def __init__(self, in_features: int, ae_dims: int, out_channels: int, lowest: int) -> None:
        super().__init__()
        self.lowest, self.out_channels = lowest, out_channels
        self.dense1 = nn.Linear(in_features, ae_dims)
        self.dense2 = nn.Linear(ae_dims, lowest * lowest * out_channels)
        self.up = Upscale(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x))
        return self.up(x.view(-1, self.out_channels, self.lowest, self.lowest))


class Decoder(nn.Module):
    """Three upscales with residual blocks to RGB, and a lighter branch to the mask."""

    def __init__(self, cin: int, d_dims: int, d_mask_dims: int) -> None:
        super().__init__()
        self.rgb = nn.Sequential(
            Upscale(cin, d_dims * 8),
            ResidualBlock(d_dims * 8),
            Upscale(d_dims * 8, d_dims * 4),
            ResidualBlock(d_dims * 4),
            Upscale(d_dims * 4, d_dims * 2),
            ResidualBlock(d_dims * 2),
            nn.Conv2d(d_dims * 2, 3, 1),
        )
        self.mask = nn.Sequential(
            Upscale(cin, d_mask_dims * 8),
            Upscale(d_mask_dims * 8, d_mask_dims * 4),
            Upscale(d_mask_dims * 4, d_mask_dims * 2),
            nn.Conv2d(d_mask_dims * 2, 1, 1),
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self.rgb(z)), torch.sigmoid(self.mask(z))


class SwapNetwork(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        lowest = config.resolution // 16
        flat = config.e_dims * 8 * lowest * lowest
        self.encoder = Encoder(config.e_dims)
        if config.architecture == "df":
            self.inter = Inter(flat, config.ae_dims, config.ae_dims, lowest)
            self.decoder_a = Decoder(config.ae_dims, config.d_dims, config.d_mask_dims)
            self.decoder_b = Decoder(config.ae_dims, config.d_dims, config.d_mask_dims)
        else:
            self.inter_ab = Inter(flat, config.ae_dims, config.ae_dims * 2, lowest)
            self.inter_b = Inter(flat, config.ae_dims, config.ae_dims * 2, lowest)
            self.decoder = Decoder(config.ae_dims * 4, config.d_dims, config.d_mask_dims)

    def forward(self, x: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct `x` as subject `identity` ("a" or "b"): same-subject is reconstruction,
        the other subject is a swap."""
        code = self.encoder(x)
        if self.config.architecture == "df":
            z = self.inter(code)
            return (self.decoder_a if identity == "a" else self.decoder_b)(z)
        ab = self.inter_ab(code)
        if identity == "b_self":
            return self.decoder(torch.cat([ab, self.inter_b(code)], dim=1))
        return self.decoder(torch.cat([ab, ab], dim=1))

    def reconstruct(self, x: torch.Tensor, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoencode a face of `subject` ("a" or "b") back to itself."""
        if self.config.architecture == "liae":
            return self.forward(x, "b_self" if subject == "b" else "a")
        return self.forward(x, subject)

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Render the face in `x` (pose, expression, light) as subject `to`."""
        if self.config.architecture == "liae":
            return self.forward(x, "a") if to == "a" else self.forward(x, "b_self")
        return self.forward(x, to)
