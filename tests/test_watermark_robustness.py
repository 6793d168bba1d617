"""Scheme 2 survives what sharing does to a video: one strength of each category of issue 12, on a
small clip of a real group photo (faces in it), read back as `faceswap verify` reads a file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from faceswap.provenance.verify.verifier import read_frames, read_sample
from faceswap.provenance.watermark.marker import Watermarker, format_token

TOKEN = 0x1DEA5C0FFEE5


@pytest.fixture(scope="module")
def watermarker() -> Watermarker:
    return Watermarker()


@pytest.fixture(scope="module")
def marked(watermarker, t1_image) -> list[np.ndarray]:
    """A 640x480 clip (the demo's output size): a slow pan over insightface's group photo."""
    view = cv2.resize(t1_image, (760, 526), interpolation=cv2.INTER_AREA)
    frames = [np.ascontiguousarray(view[20 + i : 500 + i, 40 + 4 * i : 680 + 4 * i]) for i in range(8)]
    return watermarker.embed(frames, TOKEN)


def _write(path: Path, frames: list[np.ndarray], codec: str = "libx264", crf: int = 23, fps: int = 25) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = (
            {"crf": str(crf), "b": "0", "cpu-used": "8", "row-mt": "1"} if "vpx" in codec else {"crf": str(crf)}
        )
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[: h - h % 2, : w - w % 2])


def _verify(watermarker: Watermarker, path: Path):
    sample = read_sample(path)
    return watermarker.detect(sample.frames, intra=sample.intra)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _crop(image: np.ndarray, area: float) -> np.ndarray:
    h, w = image.shape[:2]
    k = np.sqrt(area)
    ch, cw = int(h * k), int(w * k)
    return image[(h - ch) * 3 // 4 : (h - ch) * 3 // 4 + ch, (w - cw) // 5 : (w - cw) // 5 + cw]


def _letterbox(image: np.ndarray) -> np.ndarray:
    """Into a vertical 9:16 canvas, scaled to its width."""
    h, w = image.shape[:2]
    cw, ch = h, int(h * 16 / 9)
    nh = int(round(h * cw / w))
    canvas = np.zeros((ch, cw, 3), np.uint8)
    canvas[(ch - nh) // 2 : (ch - nh) // 2 + nh] = cv2.resize(image, (cw, nh), interpolation=cv2.INTER_AREA)
    return canvas


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    return np.clip(255 * (image / 255.0) ** gamma, 0, 255).astype(np.uint8)


VIDEO_ATTACKS = {
    "codec: H.264 CRF 28": (lambda f: f, "libx264", 28),
    "codec: VP9 CRF 40": (lambda f: f, "libvpx-vp9", 40),
    "rendition: 480p -> 360p": (lambda f: cv2.resize(f, (480, 360), interpolation=cv2.INTER_AREA), "libx264", 23),
    "crop: keep 50% area, off-centre": (lambda f: _even(_crop(f, 0.5)), "libx264", 23),
    "borders: letterbox into 9:16": (lambda f: _even(_letterbox(f)), "libx264", 23),
    "borders: on a larger canvas": (
        lambda f: cv2.copyMakeBorder(f, 40, 60, 100, 20, cv2.BORDER_CONSTANT, value=(240, 240, 240)),
        "libx264",
        23,
    ),
    "mirror": (lambda f: np.ascontiguousarray(f[:, ::-1]), "libx264", 23),
    "tone: brightness -20": (lambda f: np.clip(f.astype(np.int16) - 20, 0, 255).astype(np.uint8), "libx264", 23),
    "tone: gamma 1.25": (lambda f: _gamma(f, 1.25), "libx264", 23),
}


@pytest.mark.parametrize("attack", list(VIDEO_ATTACKS))
def test_video_attack_keeps_mark_and_token(watermarker, marked, tmp_path, attack):
    transform, codec, crf = VIDEO_ATTACKS[attack]
    output = _write(tmp_path / "output.mp4", marked, crf=18)  # as the sink writes
    _, decoded = read_frames(output)
    suffix = ".webm" if "vpx" in codec else ".mp4"
    attacked = _write(tmp_path / f"attacked{suffix}", [transform(f) for f in decoded], codec, crf)
    found = _verify(watermarker, attacked)
    assert found.marked and found.token == format_token(TOKEN), found.to_json()
    assert found.scheme == 2 and found.token_from in ("tiles", "tiles-intra")
    if attack == "mirror":
        assert found.undone["mirror"] is True
    if attack.startswith("borders"):
        assert found.undone["borders"] is not None
    if attack.startswith("rendition"):
        assert abs(found.undone["scale"] - 0.75) < 0.02  # 4.5 px chips read at 3.4 px


def test_time_frame_rate_change_and_excerpt(watermarker, marked, tmp_path):
    """25 -> 30 fps (frames repeated) and a 4-frame excerpt from the middle."""
    retimed = [marked[int(i * 25 / 30)] for i in range(int(len(marked) * 30 / 25))]
    found = _verify(watermarker, _write(tmp_path / "30fps.mp4", retimed, fps=30))
    assert found.token == format_token(TOKEN)
    found = _verify(watermarker, _write(tmp_path / "excerpt.mp4", marked[2:6]))
    assert found.token == format_token(TOKEN)


def test_screenshot_half_size_jpeg_60(watermarker, marked, tmp_path):
    frame = cv2.resize(marked[4], (320, 240), interpolation=cv2.INTER_AREA)
    path = tmp_path / "shot.jpg"
    cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 60])
    found = _verify(watermarker, path)
    assert found.marked and found.token == format_token(TOKEN)


def test_crop_rescale_and_jpeg_of_a_still(watermarker, t1_image):
    """A still, cropped to 70% area, rescaled to another size and saved as JPEG 75."""
    marked = watermarker.embed([t1_image], TOKEN)[0]
    shot = _jpeg(cv2.resize(_crop(marked, 0.7), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), 75)
    found = watermarker.detect([shot])
    assert found.marked and found.token == format_token(TOKEN)
