"""Schedules over a training run: the learning rate (warm-up, then decay) and the eye-and-mouth
priority (ramped in), each a factor of the step and the run's planned length."""

from __future__ import annotations

import math
from dataclasses import dataclass

LR_DECAYS = ("none", "cosine")


@dataclass(frozen=True)
class LRSchedule:
    """warmup: steps of linear warm-up from zero (AdamW's first moments are noisy, and a high
    constant rate blurs what the first hundred steps learn); decay "cosine": from the end of the
    warm-up down to `floor` x the rate at the run's last step, so a short run ends on small, precise
    steps instead of the noise of its highest rate."""

    warmup: int = 0
    decay: str = "none"
    floor: float = 0.1

    def __post_init__(self) -> None:
        if self.decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAYS)} (got {self.decay})")
        if self.warmup < 0 or not 0.0 <= self.floor <= 1.0:
            raise ValueError("lr_warmup must be >= 0 and lr_floor in [0, 1]")

    def factor(self, step: int, total: int | None) -> float:
        """The share of the base rate at `step` of a run planned to end at `total` (None or <= 0:
        no planned end, so no decay). A run resumed with a later end decays over its new length."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.decay == "none" or not total or total <= 0:
            return warm
        span = max(1, total - self.warmup)
        progress = min(1.0, max(0.0, (step - self.warmup) / span))
        return warm * (self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class PriorityRamp:
    """The eye-and-mouth priority's weight rises linearly from `start` x its value to its full value
    over the first `share` of the run (0: full from the first step): the face's layout is learned
    first, then its details are pressed."""

    share: float = 0.0
    start: float = 0.0

    def factor(self, step: int, total: int | None) -> float:
        if self.share <= 0 or not total or total <= 0:
            return 1.0
        progress = min(1.0, step / (self.share * total))
        return self.start + (1.0 - self.start) * progress
