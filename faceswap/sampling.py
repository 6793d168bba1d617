"""Frames spread over a video, for one decision on the whole of it, at a bounded cost whatever the file.

`verify` decides on up to `count` frames spread over a clip plus up to `intra` of its intra frames
(which a re-encode leaves best marked). What that may cost is bounded three ways:
- what the file declares is checked first (`probe_video` against the caller's `InputLimits`), and the
  decoder is told the largest frame it may make, so a stream that grows mid-way is refused too;
- each kept frame is downscaled by the decoder's own scaler as it is decoded, so the whole sample
  holds at most SAMPLE_BYTES; frames within that are kept exactly as decoded;
- a clip whose frames would cost more than DECODE_BUDGET pixels to decode one by one (each frame
  counted as at least FRAME_FLOOR, so a million tiny frames cost too) is read in key frames: packets
  are demuxed in order (no seeking, so a damaged index cannot mislead it) and only the key frames at
  the spread's positions are decoded. A clip that holds more than it
  declared switches to key frames once the budget is spent.

Content binding asks every stretch of a video (provenance/binding.py), so it is given frames of its
own: `checks` of them, one within each of `checks` equal stretches, at a position the caller's `rng`
draws (verify seeds it from the file's bytes and its secret). At fixed positions someone who reads
this code could keep the output at exactly the frames read and put anything between them. They are kept at most
CHECK_PIXELS large (binding works at 480 pixels on the short side). A clip read in key frames gives
binding its spread, whose frames the file's encoder chose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from faceswap.errors import BadInput
from faceswap.limits import MIB, InputLimits
from faceswap.media import check_decoded, decoder_options, fit_within, probe_video

SAMPLE_BYTES = 360 * MIB  # every kept frame together, as 8-bit BGR: 56 frames of 1080p are kept as they are
DECODE_BUDGET = 3_000_000_000  # pixels decoded frame by frame (~1450 frames of 1080p, ~360 of 4K), then key frames
FRAME_FLOOR = 100_000  # a frame costs at least this many pixels' worth (so a million tiny frames do too)
CHECK_PIXELS = 600_000  # per frame kept for content binding (854 x 480 is 410k)


@dataclass
class Plan:
    count: int  # frames spread over the clip
    intra: int  # intra frames kept besides
    every: int  # spread step, in frames
    max_pixels: int  # per kept frame
    key_frames_only: bool
    check_at: frozenset[int] = frozenset()  # indices of the frames kept for content binding


@dataclass
class Collected:
    frames: list[np.ndarray] = field(default_factory=list)
    intra: list[bool] = field(default_factory=list)
    on_spread: list[bool] = field(default_factory=list)  # whether each kept frame is one of the spread
    spread: int = 0  # frames kept for the spread
    extra: int = 0  # intra frames kept besides
    decoded: int = 0  # frames decoded
    work: int = 0  # pixels decoded
    checks: list[np.ndarray] = field(default_factory=list)  # frames kept for content binding

    def keep(self, frame: Any, max_pixels: int, spread: bool) -> None:
        self.frames.append(_bgr(frame, max_pixels))
        self.intra.append(bool(frame.key_frame))
        self.on_spread.append(spread)
        self.spread += int(spread)
        self.extra += int(not spread)


class VideoSample(NamedTuple):
    frames: list[np.ndarray]  # spread over the clip, then intra frames besides, in the file's order
    intra: list[bool]  # whether each of `frames` is an intra frame
    checks: list[np.ndarray]  # for content binding, in the file's order (empty where none were asked for)


def sample_video(
    path: Path, limits: InputLimits, count: int, intra: int, checks: int = 0, rng: random.Random | None = None
) -> VideoSample:
    """Up to `count` frames spread over the clip and up to `intra` intra frames besides, as 8-bit BGR,
    with whether each is an intra frame, and `checks` frames at positions drawn by `rng` (see above);
    BadInput for a file beyond `limits` or one that fails to decode."""
    import av

    info = probe_video(path, limits)
    expected = info.frames or int(info.seconds * float(info.fps))
    plan = Plan(
        count=count,
        intra=intra,
        every=max(1, expected // count) if expected else 1,
        max_pixels=SAMPLE_BYTES // (3 * (count + intra)),
        key_frames_only=expected * max(info.width * info.height, FRAME_FLOOR) > DECODE_BUDGET,
        check_at=_drawn(expected, checks, rng),
    )
    try:
        with av.open(str(path), options=decoder_options(limits)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.options = decoder_options(limits)
            got = _collect(path, container, stream, plan, limits)
    except av.FFmpegError as error:
        raise BadInput(f"{path}: video is corrupt or unreadable ({error.strerror or error})") from None
    except IndexError:
        raise BadInput(f"{path}: has no video stream") from None
    spread = [f for f, kept in zip(got.frames, got.on_spread, strict=True) if kept]
    return VideoSample(got.frames, got.intra, got.checks if plan.check_at and not plan.key_frames_only else spread)


def _drawn(expected: int, checks: int, rng: random.Random | None) -> frozenset[int]:
    """One index at random within each of `checks` equal stretches of the clip's `expected` frames."""
    if not checks or rng is None:
        return frozenset()
    if expected < checks:  # fewer frames than stretches (or a length not declared): every frame
        return frozenset(range(max(expected, checks)))
    bounds = [k * expected // checks for k in range(checks + 1)]  # the last stretch ends at the last frame
    return frozenset(rng.randrange(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True))


def _collect(path: Path, container: Any, stream: Any, plan: Plan, limits: InputLimits) -> Collected:
    got = Collected()
    packets, next_key = 0, 0
    for packet in container.demux(stream):
        if packet.size:  # an empty packet flushes the decoder at the end
            position, packets = packets, packets + 1
            limits.check_frame_index(path, position)
            if plan.key_frames_only or got.work > DECODE_BUDGET:
                if not (packet.is_keyframe and position >= next_key):
                    continue
                next_key = position + plan.every
        for frame in packet.decode():
            check_decoded(path, frame, got.decoded, limits)
            _consider(got, frame, plan, key_mode=plan.key_frames_only or got.work > DECODE_BUDGET)
            got.decoded += 1
            got.work += max(frame.width * frame.height, FRAME_FLOOR)
        last_check = max(plan.check_at, default=-1)
        if got.spread >= plan.count and (
            plan.key_frames_only or got.decoded > max(plan.every * plan.count, last_check)
        ):
            break  # the spread is complete (a container that did not say its length stops here too)
    return got


def _consider(got: Collected, frame: Any, plan: Plan, key_mode: bool) -> None:
    """Keep the frame if it is on the spread or an intra frame still wanted."""
    if key_mode:
        if got.spread < plan.count:
            got.keep(frame, plan.max_pixels, spread=True)
        return
    spread = got.decoded % plan.every == 0 and got.spread < plan.count
    key = bool(frame.key_frame) and got.extra < plan.intra
    if spread or key:
        got.keep(frame, plan.max_pixels, spread=spread)
    if got.decoded in plan.check_at:
        got.checks.append(_bgr(frame, CHECK_PIXELS))


def _bgr(frame: Any, max_pixels: int) -> np.ndarray:
    """The frame as 8-bit BGR; scaled down (area averaging) by the decoder's scaler when larger than
    `max_pixels`, so the full-size picture is never held as BGR."""
    width, height = fit_within(frame.width, frame.height, max_pixels)
    if (width, height) == (frame.width, frame.height):
        return frame.to_ndarray(format="bgr24")
    return frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()
