"""Content binding on its own: what an entry records of a picture, and which files agree with it
(the attacks on whole outputs are in tests/test_keyed_marks.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from faceswap.provenance import binding
from faceswap.provenance.binding import KeyFrames, check, key_frame


def _photo(name: str, size: tuple[int, int] = (960, 540)) -> np.ndarray:
    from pathlib import Path

    import skimage

    image = cv2.imread(str(Path(skimage.__file__).parent / "data" / name))
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0])
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y : y + h, x : x + w])


@pytest.fixture(scope="module")
def swap(t1_image):
    """A 'conversion' of a frame: one face of insightface's group photo pasted over the plate where
    another face was (the source), and a third face there instead (a swap made elsewhere)."""
    plate = _photo("coffee.png")
    faces = [cv2.resize(t1_image[150:330, x : x + 150], (150, 180)) for x in (60, 400, 1000)]
    frames = []
    for face in faces:
        frame = plate.copy()
        frame[150:330, 300:450] = face
        frames.append(frame)
    source, output, elsewhere = frames
    record = KeyFrames(1)
    record.add(key_frame(0, output, source, binding.STILL_POINTS))
    return {"source": source, "output": output, "elsewhere": elsewhere, "record": record.record("image")}


def _jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def test_the_record_holds_keypoints_and_the_swapped_region_and_stays_small(swap):
    frames = binding.recorded(swap["record"])
    assert len(frames) == 1 and len(frames[0].points) == binding.STILL_POINTS
    (region,) = frames[0].regions
    x0, y0, x1, y1 = region.box
    assert abs(x0 - 300 / 960) < 0.02 and abs(y1 - 330 / 540) < 0.02 and region.distinct
    assert len(json.dumps(swap["record"])) < 16_000


@pytest.mark.parametrize(
    "edit",
    ["jpeg 50", "half size", "crop 50 %", "mirror", "letterbox", "brightness", "gamma"],
)
def test_the_output_agrees_after_sharing_edits(swap, edit):
    image = swap["output"]
    h, w = image.shape[:2]
    shared = {
        "jpeg 50": lambda: _jpeg(image, 50),
        "half size": lambda: cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "crop 50 %": lambda: image[50 : 50 + int(h * 0.707), 150 : 150 + int(w * 0.707)],
        "mirror": lambda: image[:, ::-1],
        "letterbox": lambda: cv2.copyMakeBorder(image, 200, 200, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
        "brightness": lambda: cv2.add(image, np.full_like(image, 25)),
        "gamma": lambda: (255 * (image / 255.0) ** 1.3).astype(np.uint8),
    }[edit]()
    found = check(swap["record"], [np.ascontiguousarray(shared)], mirrored=False)
    assert found.agrees, found.to_json()
    assert found.frames[0].region == "output"


@pytest.mark.parametrize("which", ["source", "elsewhere"])
def test_the_unconverted_source_and_another_swap_do_not_agree(swap, which):
    found = check(swap["record"], [_jpeg(swap[which])])
    assert not found.agrees
    assert found.frames[0].inliers >= binding.MIN_INLIERS  # the plate matches: only the region tells them apart
    expected = "unconverted source" if which == "source" else "another picture"
    assert expected in found.reason


def test_unrelated_pictures_do_not_agree(swap):
    for name in ("astronaut.png", "chelsea.png", "rocket.jpg", "camera.png", "motorcycle_left.png"):
        found = check(swap["record"], [_photo(name)])
        assert not found.agrees and found.frames[0].inliers < binding.MIN_INLIERS


def test_a_video_agrees_when_half_its_frames_do(swap):
    unrelated = _photo("astronaut.png")
    assert check(swap["record"], [swap["output"]] * 4 + [unrelated] * 4).agrees
    assert not check(swap["record"], [swap["output"]] * 3 + [unrelated] * 5).agrees


def test_key_frames_spread_over_a_stream_of_unknown_length():
    keys = KeyFrames(limit=4)
    image = _photo("chelsea.png", (640, 360))
    for index in range(50):
        if keys.wants(index):
            keys.add(key_frame(index, image))
    indices = [f["index"] for f in keys.record("video")["frames"]]
    assert len(indices) == 4 and indices[0] == 0 and indices[-1] >= 40


def test_an_unreadable_or_empty_record_never_agrees(swap):
    assert not check({"version": 99}, [swap["output"]]).agrees
    assert not check(None, [swap["output"]]).agrees
    flat = np.full((480, 640, 3), 128, np.uint8)
    empty = KeyFrames(1)
    empty.add(key_frame(0, flat))
    assert not check(empty.record("image"), [flat]).agrees


def test_a_frame_agrees_with_the_key_frame_of_its_own_moment(swap, t1_image):
    """Over a still background every key frame aligns with a file frame, and the one with most inliers
    can be from another moment, where another face was drawn: the frame still agrees through the key
    frame of its own moment. The source and a swap made elsewhere still do not."""
    plate, source = _photo("coffee.png"), swap["source"]
    later = plate.copy()
    later[150:330, 300:450] = cv2.resize(t1_image[150:330, 700:850], (150, 180))
    record = KeyFrames(2)
    record.add(key_frame(0, swap["output"], source, 400))  # more points: most inliers whatever is shown
    record.add(key_frame(1, later, source, 96))
    keys = binding.recorded(record.record("video"))
    shown = _jpeg(later, 85)
    found = [
        binding._align(key, *binding._orb(binding._grey_at_work(shown)[0], binding.FILE_POINTS)[:2])[0] for key in keys
    ]
    assert found[0] > found[1] >= binding.MIN_INLIERS  # the other moment's key frame aligns best
    result = check(record.record("video"), [shown])
    assert result.agrees and result.frames[0].key_frame == 1
    for other in (source, swap["elsewhere"]):
        assert not check(record.record("video"), [_jpeg(other, 85)]).agrees
