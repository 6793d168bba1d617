"""invisible-watermark's rivaGan models (ONNX, shipped in its wheel), run at a fixed working size.

The encoder sees the frame shrunk to the working size; its change to that small frame (the residual)
is upscaled and added to the full frame, so the cost is the same for 720p and 4K and the mark sits in
low frequencies that survive compression, rescaling and crops. Decoding shrinks to the same size.
Frames go through the models in batches (the upstream wrapper runs one at a time, through torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BITS = 32
WORK_SIZE = (320, 180)  # width, height


def _models_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("invisible-watermark is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class RivaModels:
    """Lazily opened ONNX sessions; CUDA when onnxruntime has it."""

    threads: int = 0
    _encoder: Any = field(default=None, repr=False)
    _decoder: Any = field(default=None, repr=False)

    def _session(self, name: str) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or min(8, os.cpu_count() or 1)
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        return ort.InferenceSession(str(_models_dir() / name), options, providers=providers)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self._session("rivagan_encoder.onnx")
        return self._encoder

    @property
    def decoder(self) -> Any:
        if self._decoder is None:
            self._decoder = self._session("rivagan_decoder.onnx")
        return self._decoder


def _to_model(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    import cv2

    small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]).astype(np.float32)
    return (small / 127.5 - 1.0).transpose(0, 3, 1, 2)[:, :, None]  # (B, 3, 1, H, W), BGR as upstream


def residuals(models: RivaModels, frames: list[np.ndarray], bits: np.ndarray, size: tuple[int, int] = WORK_SIZE):
    """Per frame, the float32 change (full frame size) that carries `bits`."""
    import cv2

    batch = _to_model(frames, size)
    data = np.repeat(np.asarray(bits, dtype=np.float32).reshape(1, BITS), len(frames), axis=0)
    marked = models.encoder.run(None, {"frame": batch, "data": data})[0]
    delta = (np.clip(marked, -1.0, 1.0) - batch)[:, :, 0].transpose(0, 2, 3, 1) * 127.5
    out = []
    for frame, d in zip(frames, delta, strict=True):
        h, w = frame.shape[:2]
        out.append(cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR))
    return out


def logits(models: RivaModels, frames: list[np.ndarray], size: tuple[int, int] = WORK_SIZE) -> np.ndarray:
    """(B, 32) decoder outputs; > 0 reads as a 1 bit."""
    return models.decoder.run(None, {"frame": _to_model(frames, size)})[0]
