"""Training samples: the same seed gives the same augmentations; new draws give new ones."""

from __future__ import annotations

import numpy as np
import torch

from faceswap.data.datamodule import FaceSamples, PairDataset


def _samples(seed: int) -> FaceSamples:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    masks = np.ones((4, 64, 64), np.float32)
    return FaceSamples(images, masks, np.zeros_like(masks), np.full(3, 128.0), np.full(3, 20.0))


def _draw(dataset: PairDataset, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [dataset[i]["a"]["input"] for i in range(6)] + [dataset[i]["b"]["target"] for i in range(6)]


def test_augmentations_repeat_with_the_seed_and_change_with_the_draw():
    dataset = PairDataset(_samples(0), _samples(1), length=6)
    first, again = _draw(dataset, 7), _draw(PairDataset(_samples(0), _samples(1), length=6), 7)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    other = _draw(dataset, 8)
    assert sum(not torch.equal(x, y) for x, y in zip(first, other, strict=True)) >= 10
