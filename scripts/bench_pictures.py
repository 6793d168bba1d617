"""Pictures the watermark benches mark and the edits they share: package photos (insightface's group
photo, scikit-image's data), cut to a size, and JPEG in memory. Imported by bench_watermark.py,
bench_keyed_marks.py, bench_min_size.py and bench_texture_ceiling.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def photo(name: str) -> np.ndarray:
    """A picture a package ships: "t1" (insightface's group photo) or a file of scikit-image's data."""
    import skimage

    from faceswap.faces.samples import insightface_t1
    from faceswap.media import read_image

    if name == "t1":
        return read_image(insightface_t1())
    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        raise SystemExit(f"scikit-image does not ship {name}")
    return read_image(path)


def fill(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` scaled to cover `size` (w, h) and cut at its centre."""
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0])
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y : y + h, x : x + w])


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG copy at `quality`, 4:2:0 chroma, decoded again."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    return cv2.imdecode(cv2.imencode(".jpg", image, params)[1], cv2.IMREAD_COLOR)
