"""Where in a frame the output's face is looked for: one rule for every identity measure."""

from __future__ import annotations

import numpy as np

SEARCH_MARGIN = 0.75  # box sizes around the input's face where the output's face is looked for


def search_box(bbox: np.ndarray, shape: tuple[int, ...], margin: float = SEARCH_MARGIN) -> tuple[int, int, int, int]:
    """The part of a frame within `margin` box sizes of `bbox`: (left, top, right, bottom)."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    pad = margin * max(x2 - x1, y2 - y1)
    h, w = shape[:2]
    return int(max(0, x1 - pad)), int(max(0, y1 - pad)), int(min(w, x2 + pad)), int(min(h, y2 + pad))
