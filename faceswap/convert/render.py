"""The swap network of an authorised model, run on aligned crops: the one place conversion and
dubbing turn a crop into subject A's face. Its faces are crops, not frames; the Swapper and the
Dubber paste them into frames and mark every frame they return."""

from __future__ import annotations

from typing import Any

import numpy as np


class FaceRenderer:
    """A's face and the decoder's learned mask for a batch of aligned crops, on the model's device."""

    def __init__(self, network: Any, device: str, dtype: Any):
        """`network`: a SwapNetwork in eval mode on `device`; `dtype`: what it computes in there."""
        self._network, self.device, self.dtype = network, device, dtype

    def render(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 BGR crops (N, S, S, 3) -> (A's faces, uint8 BGR (N, S, S, 3); learned masks, float
        (N, S, S) in [0, 1])."""
        import torch

        batch = torch.from_numpy(np.stack(crops)[..., ::-1].copy()).permute(0, 3, 1, 2).float().div_(255)
        batch = batch.to(self.device)
        with torch.no_grad(), torch.autocast(self.device, dtype=self.dtype, enabled=self.device == "cuda"):
            rgb, mask = self._network.swap(batch, "a")
        faces = (rgb.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()[..., ::-1] * 255).round().astype(np.uint8)
        return np.ascontiguousarray(faces), mask.float()[:, 0].cpu().numpy()
