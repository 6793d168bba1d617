"""Frames of a file the sink has just written, decoded back from disk: what the read-back before
signing and recording checks for the mark. A sample, spread over the output: READBACK_FRAMES
frames of a video (every frame is decoded, only the sample is converted), files of a sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import BadInput

READBACK_FRAMES = 6


def sample_written(partial: Path, writer: Any, count: int) -> list[np.ndarray]:
    """uint8 BGR views of a spread of the `count` written frames (float EXR through its recorded
    display)."""
    from faceswap.media import read_image
    from faceswap.provenance.watermark.tiles import spread

    if writer.kind == "video":
        return _video_sample(partial, count)
    if writer.kind == "sequence":
        return [read_image(partial / name) for name in spread(writer.files(), READBACK_FRAMES)]
    return [read_image(partial)]


def _video_sample(path: Path, count: int) -> list[np.ndarray]:
    import av

    from faceswap.provenance.watermark.tiles import spread

    wanted = set(spread(list(range(count)), READBACK_FRAMES))
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(stream)) if i in wanted]
    except (av.FFmpegError, IndexError) as error:
        raise BadInput(f"{path}: the written video does not decode ({error})") from None
    return frames
