"""Networks in the spirit of DeepFaceLab SAEHD: encoder, inter (bottleneck), decoders with masks.

df:   A -> encoder -> inter -> decoder_a -> A'      B -> encoder -> inter -> decoder_b -> B'
      swap B->A: decoder_a(inter(encoder(B)))
liae: one decoder; the latent of A is [inter_ab, inter_ab], of B is [inter_ab, inter_b]; a swap to A
      feeds [inter_ab(x), inter_ab(x)] to the decoder.

Each architecture is a class in `ARCHITECTURES`; a name may carry SAEHD's variant letters after a dash
("liae-ud", "df-udt"):
  u  pixel-normalise the encoder's output (steadier training of the dense bottleneck)
  d  halve the dense resolution and double the decoder's output with four convolutions and a pixel
     shuffle: about the same cost, twice the resolution (needs a resolution divisible by 32)
  t  a deeper encoder (five downscales, residual blocks) and decoder (four upscales), no upscale in
     the inter (needs a resolution divisible by 32)
The plain names build exactly the modules (and state_dict keys) earlier versions built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

SUBJECTS = ("a", "b")
VARIANT_LETTERS = "udt"


@dataclass(frozen=True)
class ArchSpec:
    """An architecture name split into its base ("df", "liae") and SAEHD variant letters."""

    base: str
    variants: str = ""

    @classmethod
    def parse(cls, name: str) -> ArchSpec:
        base, _, letters = name.partition("-")
        if base not in ARCHITECTURES:
            raise ValueError(f"architecture '{name}': base must be one of {', '.join(ARCHITECTURES)}")
        if any(c not in VARIANT_LETTERS for c in letters) or len(set(letters)) != len(letters):
            raise ValueError(f"architecture '{name}': variants are letters from '{VARIANT_LETTERS}', each once")
        return cls(base, "".join(c for c in VARIANT_LETTERS if c in letters))

    @property
    def name(self) -> str:
        return f"{self.base}-{self.variants}" if self.variants else self.base

    @property
    def u(self) -> bool:
        return "u" in self.variants

    @property
    def d(self) -> bool:
        return "d" in self.variants

    @property
    def t(self) -> bool:
        return "t" in self.variants


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "df"
    resolution: int = 128
    e_dims: int = 64
    ae_dims: int = 256
    d_dims: int = 64
    d_mask_dims: int = 22

    @property
    def spec(self) -> ArchSpec:
        return ArchSpec.parse(self.architecture)

    def validate(self) -> None:
        spec = self.spec
        multiple = 32 if (spec.d or spec.t) else 16
        if not 64 <= self.resolution <= 512 or self.resolution % multiple:
            raise ValueError(f"resolution must be a multiple of {multiple} in [64, 512] for {spec.name}")

    @classmethod
    def from_hparams(cls, hparams: dict) -> ModelConfig:
        """The network's part of a module's saved hyperparameters (extra keys are training options)."""
        return cls(*(hparams[k] for k in ("architecture", "resolution", "e_dims", "ae_dims", "d_dims", "d_mask_dims")))


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


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6)


class DoubleResolutionHead(nn.Module):
    """SAEHD's -d output: one 1x1 and three 3x3 convolutions, interleaved into twice the resolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 1)] + [nn.Conv2d(cin, cout, 3, padding=1) for _ in range(3)])
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [conv(x) for conv in self.convs]  # (N, cout, H, W) each
        stacked = torch.stack(parts, dim=2).flatten(1, 2)  # channel c*4 + k: sub-pixel k of channel c
        return self.shuffle(stacked)


class Encoder(nn.Module):
    def __init__(self, e_dims: int, spec: ArchSpec) -> None:
        super().__init__()
        if spec.t:
            layers: list[nn.Module] = [
                Downscale(3, e_dims),
                ResidualBlock(e_dims),
                Downscale(e_dims, e_dims * 2),
                Downscale(e_dims * 2, e_dims * 4),
                Downscale(e_dims * 4, e_dims * 8),
                Downscale(e_dims * 8, e_dims * 8),
                ResidualBlock(e_dims * 8),
            ]
        else:
            layers = [
                Downscale(3, e_dims),
                Downscale(e_dims, e_dims * 2),
                Downscale(e_dims * 2, e_dims * 4),
                Downscale(e_dims * 4, e_dims * 8),
            ]
        self.net = nn.Sequential(*layers)
        self.norm = PixelNorm() if spec.u else nn.Identity()

    @staticmethod
    def out_resolution(resolution: int, spec: ArchSpec) -> int:
        return resolution // (32 if spec.t else 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.flatten(self.net(x), 1))


class Inter(nn.Module):
    def __init__(self, in_features: int, ae_dims: int, out_channels: int, lowest: int, upscale: bool = True) -> None:
        super().__init__()
        self.lowest, self.out_channels = lowest, out_channels
        self.dense1 = nn.Linear(in_features, ae_dims)
        self.dense2 = nn.Linear(ae_dims, lowest * lowest * out_channels)
        self.up = Upscale(out_channels, out_channels) if upscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x))
        return self.up(x.view(-1, self.out_channels, self.lowest, self.lowest))


class Decoder(nn.Module):
    """Upscales with residual blocks to RGB, and a lighter branch to the mask (three upscales; four
    with -t; the mask one more with -d, where the RGB branch doubles in its output head)."""

    def __init__(self, cin: int, d_dims: int, d_mask_dims: int, spec: ArchSpec) -> None:
        super().__init__()
        d, m = d_dims, d_mask_dims
        widths = [d * 8, d * 8, d * 4, d * 2] if spec.t else [d * 8, d * 4, d * 2]
        rgb: list[nn.Module] = []
        last = cin
        for width in widths:
            rgb += [Upscale(last, width), ResidualBlock(width)]
            last = width
        rgb.append(DoubleResolutionHead(last, 3) if spec.d else nn.Conv2d(last, 3, 1))
        self.rgb = nn.Sequential(*rgb)
        mask_widths = [m * 8, m * 8, m * 4, m * 2] if spec.t else [m * 8, m * 4, m * 2]
        if spec.d:
            mask_widths.append(m)
        mask: list[nn.Module] = []
        last = cin
        for width in mask_widths:
            mask.append(Upscale(last, width))
            last = width
        mask.append(nn.Conv2d(last, 1, 1))
        self.mask = nn.Sequential(*mask)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self.rgb(z)), torch.sigmoid(self.mask(z))


class SwapNetwork(nn.Module):
    """What every architecture provides: render a face as subject "a" or "b".

    Rendering a face as its own subject is reconstruction; as the other subject, a swap. Calling
    `SwapNetwork(config)` builds the registered class for `config.architecture` (as `build_network`)."""

    base: ClassVar[str] = ""
    config: ModelConfig

    def __new__(cls, config: ModelConfig | None = None, *args, **kwargs):
        if cls is SwapNetwork and config is not None:
            cls = ARCHITECTURES[config.spec.base]
        return super().__new__(cls)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.spec = config.spec
        lowest = config.resolution // (32 if self.spec.d else 16)
        enc = Encoder.out_resolution(config.resolution, self.spec)
        self.encoder = Encoder(config.e_dims, self.spec)
        self._lowest, self._flat = lowest, config.e_dims * 8 * enc * enc

    def _inter(self, out_channels: int) -> Inter:
        return Inter(self._flat, self.config.ae_dims, out_channels, self._lowest, upscale=not self.spec.t)

    def _decoder(self, cin: int) -> Decoder:
        return Decoder(cin, self.config.d_dims, self.config.d_mask_dims, self.spec)

    def latent(self, x: torch.Tensor, identity: str) -> torch.Tensor:
        """What the decoder of `identity` is given for the face in `x`."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decoder_of(self, identity: str) -> Decoder:
        """The decoder that renders faces as `identity` (the one a model's mark is trained into)."""
        raise NotImplementedError

    @property
    def latent_channels(self) -> int:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB and mask of the face in `x` (pose, expression, light) rendered as subject `identity`."""
        if identity not in SUBJECTS:
            raise ValueError(f"identity must be one of {SUBJECTS}, got {identity!r}")
        return self.decode(self.latent(x, identity), identity)

    def reconstruct(self, x: torch.Tensor, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoencode a face of `subject` back to itself."""
        return self(x, subject)

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Render the face in `x` as subject `to`."""
        return self(x, to)


class DFNetwork(SwapNetwork):
    """One encoder and inter shared by both subjects, one decoder each."""

    base = "df"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.inter = self._inter(config.ae_dims)
        self.decoder_a = self._decoder(config.ae_dims)
        self.decoder_b = self._decoder(config.ae_dims)

    @property
    def latent_channels(self) -> int:
        return self.config.ae_dims

    def latent(self, x: torch.Tensor, identity: str) -> torch.Tensor:
        return self.inter(self.encoder(x))

    def decode(self, z: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder_of(identity)(z)

    def decoder_of(self, identity: str) -> Decoder:
        return self.decoder_a if identity == "a" else self.decoder_b


class LIAENetwork(SwapNetwork):
    """One decoder; inter_ab codes what both subjects share, inter_b what only B's faces hold. A's
    latent is [inter_ab, inter_ab], B's [inter_ab, inter_b], so rendering any face as A drops inter_b."""

    base = "liae"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.inter_ab = self._inter(config.ae_dims * 2)
        self.inter_b = self._inter(config.ae_dims * 2)
        self.decoder = self._decoder(config.ae_dims * 4)

    @property
    def latent_channels(self) -> int:
        return self.config.ae_dims * 4

    def latent(self, x: torch.Tensor, identity: str) -> torch.Tensor:
        code = self.encoder(x)
        ab = self.inter_ab(code)
        return torch.cat([ab, self.inter_b(code) if identity == "b" else ab], dim=1)

    def decode(self, z: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(z)

    def decoder_of(self, identity: str) -> Decoder:
        return self.decoder


ARCHITECTURES: dict[str, type[SwapNetwork]] = {DFNetwork.base: DFNetwork, LIAENetwork.base: LIAENetwork}


def build_network(config: ModelConfig) -> SwapNetwork:
    """The network of `config.architecture` ("df", "liae", optionally with variant letters)."""
    return ARCHITECTURES[config.spec.base](config)
