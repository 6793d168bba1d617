"""What a conversion hands the sink: the swap composited back onto the input plate at the plate's
own depth, converted to the output colour space and encoding, numbered, with its matte; and which
of the sink's write methods takes it.

The swap works on an 8-bit sRGB view of each frame (`FrameIn.image`). The plate (`FrameIn.plate`:
16-bit, or float from an EXR) is never rebuilt from that view: where the swap matte is 0 the plate's
pixels pass through exactly; inside it, the swapped 8-bit pixels are carried into the plate's space
and the plate's finer detail is kept in proportion to what the matte leaves of it
(`out = hi(swapped) + (1 - matte) * (plate - hi(view))`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.colorspace import Colour, quantise, unit_scale
from faceswap.convert.settings import ConvertOptions
from faceswap.convert.source import FrameIn, Source
from faceswap.errors import BadInput
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame, Written

SEQUENCE_PADDING = 4  # NAME.####.ext, the compositors' convention


@dataclass(frozen=True)
class Delivery:
    kind: str  # "exr" | "png" | "video" | "image"
    colour: Colour
    input_space: str
    output_space: str
    bits: int  # integer outputs: 8 or 16 (10-bit ProRes takes 16)
    alpha: bool
    offset: int  # output frame number = input frame number + offset
    codec: str = "h264"
    rebase: bool = False  # a range of a video: timestamps from zero, audio cut to it

    @classmethod
    def plan(cls, options: ConvertOptions, source: Source, output: Path) -> Delivery:
        """Check the output against the input and the options; choose spaces, depth and numbering."""
        kind = options.sequence or ("video" if source.kind in ("video", "sequence") else "image")
        if options.codec != "h264" and kind != "video":
            raise BadInput("--codec applies to video outputs (a .mov from a video or a sequence)")
        colour = source.colour
        if options.output_colorspace:
            output_space = colour.space(options.output_colorspace, "--output-colorspace")
        elif kind == "exr":
            output_space = colour.linear
        else:
            output_space = colour.srgb if source.is_float else source.space
        if kind == "exr":
            bits = 32
        elif options.bits:
            bits = options.bits
        elif kind == "png" or (kind == "video" and options.codec != "h264"):
            bits = 16 if source.deep else 8
        else:
            bits = 8
        if kind == "image" and output.suffix.lower() != ".png":
            bits = 8
        offset = 0 if options.start_frame is None else options.start_frame - source.first_number
        return cls(
            kind,
            colour,
            source.space,
            output_space,
            bits,
            options.alpha,
            offset,
            options.codec,
            rebase=source.kind == "video" and options.frames is not None,
        )

    def settings(self) -> dict[str, Any]:
        """What the ledger entry records about the delivery."""
        return {
            "delivery": self.kind,
            "codec": self.codec if self.kind == "video" else None,
            "input_colorspace": self.input_space,
            "output_colorspace": self.output_space,
            "ocio_config": self.colour.ref,
            "bits": self.bits,
            "frame_offset": self.offset,
        }

    def frame(self, frame: FrameIn, swapped: np.ndarray, matte: np.ndarray) -> SinkFrame:
        """The sink's frame for one swapped frame (marked by the Swapper): pixels, matte,
        number, timecode, timestamp, and the unconverted 8-bit view it was made from (the content
        binding records what changed). The sink checks the mark: where the output is the swap's own
        8-bit frame (scaled to 16 bits at most) it is found and stands; a plate of other depth or colour
        does not carry it whole and is marked by the sink."""
        alpha = None
        if self.alpha:
            unit = np.clip(matte, 0, 1).astype(np.float32)
            alpha = unit if self.kind == "exr" else quantise(unit, 16 if self.bits == 16 else 8)
        number = (frame.number if frame.number is not None else frame.index) + self.offset
        pixels = self.pixels(frame, swapped, matte)
        return SinkFrame(pixels, frame.pts, frame.time_base, alpha, number, frame.timecode, original=frame.image)

    @property
    def unchanged_colour(self) -> bool:
        """In and out in the sRGB view the swap works in, to an integer format."""
        return self.input_space == self.colour.srgb == self.output_space and self.kind != "exr"

    def passes_swap_through(self, frame: FrameIn) -> bool:
        """An 8-bit sRGB input written in sRGB: the output is the swap's frame (the mark x 257 at 16 bits)."""
        return frame.plate is None and self.unchanged_colour

    def pixels(self, frame: FrameIn, swapped: np.ndarray, matte: np.ndarray) -> np.ndarray:
        view_space = self.colour.srgb
        if self.passes_swap_through(frame):
            return _to_bits(swapped, self.bits)  # an 8-bit sRGB input: the swap's frame is the output
        plate = frame.plate if frame.plate is not None else frame.image
        if plate.dtype.kind == "u" and self.unchanged_colour:
            return _to_bits(composite_integer(plate, frame.image, swapped, matte), self.bits)
        unit = composite_float(
            plate.astype(np.float32) / unit_scale(plate.dtype),
            frame.image,
            swapped,
            matte,
            lambda pixels: self.colour.convert(pixels.astype(np.float32) / 255.0, view_space, self.input_space),
        )
        out = self.colour.convert(unit, self.input_space, self.output_space)
        return out if self.kind == "exr" else quantise(out, self.bits)

    def write(
        self,
        sink: OutputSink,
        output: Path,
        frames: Iterable[SinkFrame],
        context: OutputContext,
        source: Source,
        audio_from: Path | None,
        token: int | None = None,
    ) -> Written:
        """Hand the frames to the sink method of this delivery (`token`: one reserved beforehand)."""
        if self.kind == "exr":
            display = self.colour.display(self.output_space)
            return sink.write_exr_sequence(output, frames, context, display, self.colour.ref, source.fps, token)
        if self.kind == "png":
            pattern = f"{output.name}.{{:0{SEQUENCE_PADDING}d}}.png"
            return sink.write_sequence(output, frames, context, pattern=pattern, token=token)
        if self.kind == "video":
            return sink.write_video(
                output,
                frames,
                source.fps,
                context,
                audio_from=audio_from,
                time_base=source.time_base,
                expected_frames=source.total,
                codec=self.codec,
                alpha=self.alpha,
                timecode=source.timecode,
                rebase=self.rebase,
                token=token,
            )
        return sink.write_image(output, next(iter(frames)), context, token)


def _bounds(matte: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns the matte touches, or None when it touches nothing."""
    rows, cols = np.flatnonzero((matte > 0).any(axis=1)), np.flatnonzero((matte > 0).any(axis=0))
    if not len(rows):
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def composite_integer(plate: np.ndarray, view: np.ndarray, swapped: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """An 8- or 16-bit sRGB plate with the 8-bit swap: exact where the matte is 0."""
    out = plate.copy()
    box = _bounds(matte)
    if box is None:
        return out
    step = unit_scale(plate.dtype) / 255.0
    m = np.clip(matte[box], 0, 1)[..., None].astype(np.float32)
    low = plate[box].astype(np.float32) - view[box].astype(np.float32) * step
    mixed = swapped[box].astype(np.float32) * step + (1 - m) * low
    top = np.iinfo(plate.dtype).max
    region = np.clip(np.rint(mixed), 0, top).astype(plate.dtype)
    out[box] = np.where(m > 0, region, plate[box])
    return out


def composite_float(
    plate: np.ndarray, view: np.ndarray, swapped: np.ndarray, matte: np.ndarray, to_plate: Any
) -> np.ndarray:
    """A float plate (0..1 or scene-linear) with the 8-bit swap carried in by `to_plate`; exact where
    the matte is 0."""
    out = plate.copy()
    box = _bounds(matte)
    if box is None:
        return out
    m = np.clip(matte[box], 0, 1)[..., None].astype(np.float32)
    mixed = to_plate(swapped[box]) + (1 - m) * (plate[box] - to_plate(view[box]))
    out[box] = np.where(m > 0, mixed, plate[box])
    return out


def _to_bits(image: np.ndarray, bits: int) -> np.ndarray:
    if bits == 16:
        return image if image.dtype == np.uint16 else image.astype(np.uint16) * 257
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
