"""A two-rank CPU DDP run (gloo) in which one rank's batch turns the loss into NaN.

Run as a script by tests/test_model.py: Lightning's DDP launcher starts the second rank by running
this file again. Each rank writes OUT/rank-N.json (steps, recoveries, weight fingerprint).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

NAN_RANK, NAN_BATCH, BATCH = 1, 3, 2


class PoisonOnOneRank(Dataset):
    """Pair samples; on rank NAN_RANK the items of its NAN_BATCH-th batch carry a NaN pixel."""

    def __init__(self, inner) -> None:
        self.inner, self.served = inner, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        item = self.inner[index]
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if rank == NAN_RANK and self.served // BATCH == NAN_BATCH:
            item["a"]["input"][0, 0, 0] = float("nan")
        self.served += 1
        return item


def main(out: Path, max_steps: int) -> None:
    import pytorch_lightning as pl

    from faceswap.data.datamodule import FaceSamples, PairDataset
    from faceswap.model.module import SwapModule, weights_fingerprint

    rng = np.random.default_rng(0)
    masks = np.ones((4, 64, 64), np.float32)

    def samples() -> FaceSamples:
        images = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
        return FaceSamples(images, masks, masks, np.zeros_like(masks), np.zeros(4, np.float32))

    pl.seed_everything(0, verbose=False)
    data = PoisonOnOneRank(PairDataset(samples(), samples(), length=64))
    module = SwapModule("df", 64, 8, 32, 8, 4, lr=1e-4, channels_last=False, preview_every=0, snapshot_every=2)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=BATCH, num_workers=0))
    report = {
        "rank": trainer.global_rank,
        "steps": int(trainer.global_step),
        "recoveries": module.recoveries,
        "fingerprint": weights_fingerprint(module.network),
        "finite": bool(all(torch.isfinite(p).all() for p in module.parameters())),
    }
    (out / f"rank-{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
