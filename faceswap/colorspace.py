"""Colour management with OpenColorIO: converting plates between colour spaces, and the
display-referred view that face analysis, the swap and the watermark work in.

The view is 8-bit sRGB (`SRGB`): what a person sees of a file. An 8-bit input in sRGB is its own
view; a scene-linear EXR is seen through `input space -> SRGB`. Outputs go the other way: an EXR is
written in a scene-linear space (`LINEAR` unless asked), and its watermark is applied in the same
display-referred view, so that an 8-bit sRGB render of the EXR still carries it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import BadInput

BUILTIN_CONFIG = "ocio://default"  # the newest built-in CG config of the installed OpenColorIO
SRGB = "sRGB Encoded Rec.709 (sRGB)"  # display-referred: the swap's and the watermark's view
LINEAR = "Linear Rec.709 (sRGB)"  # scene-linear with Rec.709 primaries: EXR output by default
# the same sRGB-encoded space as other configs name it (older built-ins, ACES studio configs)
SRGB_NAMES = (SRGB, "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "srgb_texture")
LINEAR_NAMES = (LINEAR, "lin_rec709", "Utility - Linear - sRGB", "lin_srgb")
BAND_PIXELS = 1 << 20  # pixels converted at a time by DisplayTransform.view8


@dataclass
class Colour:
    """One OCIO config (the built-in CG config by default, or a file) and its CPU processors."""

    ref: str = BUILTIN_CONFIG
    _config: Any = field(default=None, repr=False)
    _processors: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        import PyOpenColorIO as ocio

        if not self.ref.startswith("ocio://") and not Path(self.ref).is_file():
            raise BadInput(f"--ocio {self.ref}: no such OpenColorIO config file")
        try:
            self._config = ocio.Config.CreateFromFile(self.ref)
            if not self.ref.startswith("ocio://"):  # built-ins are valid (older ones warn about inactive spaces)
                self._config.validate()
        except ocio.Exception as error:
            raise BadInput(f"--ocio {self.ref}: not a usable OpenColorIO config ({_one_line(error)})") from None

    @property
    def name(self) -> str:
        return str(self._config.getName() or self.ref)

    def space(self, name: str, option: str = "colour space") -> str:
        """The canonical name of a colour space (aliases and roles accepted), or BadInput."""
        found = self._config.getColorSpace(name)
        if found is None:
            raise BadInput(f"{option} {name!r} is not in OpenColorIO config {self.name} (`--ocio` picks another)")
        return str(found.getName())

    def first_space(self, names: tuple[str, ...], what: str) -> str:
        for name in names:
            found = self._config.getColorSpace(name)
            if found is not None:
                return str(found.getName())
        raise BadInput(f"OpenColorIO config {self.name} has no {what} colour space (looked for {names[0]!r})")

    @property
    def srgb(self) -> str:
        return self.first_space(SRGB_NAMES, "sRGB-encoded")

    @property
    def linear(self) -> str:
        return self.first_space(LINEAR_NAMES, "linear Rec.709")

    def convert(self, image: np.ndarray, source: str, target: str) -> np.ndarray:
        """BGR float pixels from one space to another (float32; a copy, also when nothing changes)."""
        pixels = np.array(image, dtype=np.float32, copy=True)
        if source == target:
            return pixels
        rgb = np.ascontiguousarray(pixels[..., 2::-1])
        self._processor(source, target).applyRGB(rgb)
        return np.ascontiguousarray(rgb[..., ::-1])

    def display(self, space: str) -> DisplayTransform:
        return DisplayTransform(self, space, self.srgb)

    def _processor(self, source: str, target: str) -> Any:
        with self._lock:
            key = (source, target)
            if key not in self._processors:
                processor = self._config.getProcessor(source, target)
                self._processors[key] = processor.getDefaultCPUProcessor()
            return self._processors[key]


@dataclass(frozen=True)
class DisplayTransform:
    """A space's pixels <-> their display-referred sRGB view (0..1 float, not clipped)."""

    colour: Colour
    space: str
    view_space: str

    @property
    def identity(self) -> bool:
        return self.space == self.view_space

    def to_display(self, image: np.ndarray) -> np.ndarray:
        return self.colour.convert(image, self.space, self.view_space)

    def from_display(self, image: np.ndarray) -> np.ndarray:
        return self.colour.convert(image, self.view_space, self.space)

    def view8(self, image: np.ndarray) -> np.ndarray:
        """The 8-bit sRGB render a person would look at. Made a band of rows at a time: the transform
        is per pixel, and a large plate then never has float copies of the whole of it."""
        out = np.empty((*image.shape[:2], 3), np.uint8)
        rows = max(1, BAND_PIXELS // max(1, image.shape[1]))
        for top in range(0, image.shape[0], rows):
            out[top : top + rows] = quantise(self.to_display(image[top : top + rows]), 8)
        return out


def quantise(unit: np.ndarray, bits: int) -> np.ndarray:
    """0..1 float to uint8 or uint16 (rounded, clipped)."""
    top = (1 << bits) - 1
    return np.clip(np.rint(unit * top), 0, top).astype(np.uint8 if bits == 8 else np.uint16)


def unit_scale(dtype: np.dtype) -> float:
    """What 1.0 is in pixels of this type."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    return 1.0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
