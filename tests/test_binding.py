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
    assert len(json.dumps(swap["record"])) < 20_000  # 18.3 KB with the region's middle (15.2 KB without)


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


def _soft(name: str) -> np.ndarray:
    """A picture with little to hold on to: a photo at a quarter of its contrast, blurred (like a
    decoded face on a blurred backdrop)."""
    picture = cv2.GaussianBlur(_photo(name, (640, 480)), (0, 0), 2.0).astype(np.float32)
    return np.clip((picture - 128) * 0.25 + 128, 0, 255).astype(np.uint8)


SOFT_EDITS = {
    "jpeg 80": lambda im: _jpeg(im, 80),
    "half size": lambda im: _jpeg(cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 80),
    "mirror": lambda im: _jpeg(np.ascontiguousarray(im[:, ::-1]), 80),
    "contrast 0.8": lambda im: _jpeg(np.clip((im.astype(np.float32) - 128) * 0.8 + 128, 0, 255).astype(np.uint8), 80),
    "crop 50 %": lambda im: _jpeg(np.ascontiguousarray(im[60 : 60 + 340, 95 : 95 + 452]), 80),
}


@pytest.mark.parametrize("name", ["chelsea.png", "ihc.png"])
@pytest.mark.parametrize("edit", sorted(SOFT_EDITS))
def test_a_soft_low_contrast_picture_is_still_recognised(name, edit):
    """The first version's corners (10 levels on the picture itself) held 7 points of the cat and 57 of
    the stained tissue, and found 0 inliers after every one of these edits for the cat, and after the
    crop and the contrast change for the tissue (the second version: 24-204)."""
    image = _soft(name)
    found = check(binding.record([image], "image"), [SOFT_EDITS[edit](image)], mirrored=edit == "mirror")
    assert found.agrees, found.to_json()


def test_an_entry_recorded_by_the_first_version_is_checked_as_it_was_made(swap):
    """Entries written before the detector changed keep their version and are read with its detector."""
    old = KeyFrames(1, binding.STILL_POINTS, version=1)
    old.offer(0, swap["output"], swap["source"])
    record = old.record("image")
    assert record["version"] == 1
    assert check(record, [_jpeg(swap["output"])]).agrees
    assert not check(record, [_jpeg(swap["source"])]).agrees
    shown = [_jpeg(swap["output"])]
    as_if_new = {**record, "version": binding.VERSION}  # the other detector's descriptors match fewer
    assert check(as_if_new, shown).frames[0].inliers < check(record, shown).frames[0].inliers


def test_a_sibling_rendering_of_the_same_face_does_not_agree(swap, t1_image):
    """Another model trained like ours draws the same face in the same outline with its features a
    little elsewhere: here the face's middle 8 % larger. At 32 x 32 the region still reads like the
    output (what version 1 credited); the middle, recorded finer, does not."""
    face = cv2.resize(t1_image[150:330, 400:550], (150, 180))  # the output's face
    larger = cv2.resize(face, None, fx=1.08, fy=1.08)[7:187, 6:156]
    face[30:150, 25:125] = larger[30:150, 25:125]
    sibling = swap["output"].copy()
    sibling[150:330, 300:450] = face
    found = check(swap["record"], [_jpeg(sibling, 90)])
    assert not found.agrees and "another picture" in found.reason, found.to_json()
    old = KeyFrames(1, binding.STILL_POINTS, version=1)
    old.offer(0, swap["output"], swap["source"])
    assert check(old.record("image"), [_jpeg(sibling, 90)]).agrees


def _shot(plate: np.ndarray, faces: list[np.ndarray], frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`frames` pictures of a shot with a face pasted where the plate's face was, changing every
    few frames as a performance does: (outputs, the plate they were made from)."""
    outputs = []
    for index in range(frames):
        frame = plate.copy()
        frame[100:260, 200:330] = faces[(index // 8) % len(faces)]
        outputs.append(frame)
    return outputs, [plate] * frames


@pytest.fixture(scope="module")
def two_shots(t1_image):
    """A 'converted' video of two shots (a cut at frame 24), each with its faces, as written and as
    the plates they were made from."""
    faces = [cv2.resize(t1_image[150:330, x : x + 150], (130, 160)) for x in (60, 400, 700, 1000)]
    plates = []
    for name in ("coffee.png", "chelsea.png"):
        plate = _photo(name, (640, 360))
        plate[100:260, 200:330] = cv2.resize(t1_image[160:320, 1150:1270], (130, 160))  # the plate's own face
        plates.append(plate)
    first, first_plate = _shot(plates[0], faces[:2], 24)
    second, second_plate = _shot(plates[1], faces[2:], 24)
    frames, originals = first + second, first_plate + second_plate
    return {"frames": frames, "originals": originals, "record": binding.record(frames, "video", originals)}


def test_a_video_keeps_a_key_frame_for_every_shot_and_face(two_shots):
    record = two_shots["record"]
    indices = [f["index"] for f in record["frames"]]
    assert record["version"] == 3 and record["covered"] is True
    assert any(i < 24 for i in indices) and any(i >= 24 for i in indices)  # each shot has its own
    assert len(indices) < len(two_shots["frames"]) // binding.PROBE_EVERY + 1  # not every probe
    assert any(8 <= i < 24 for i in indices)  # the face that changed within the first shot


def test_every_stretch_of_a_shared_copy_agrees(two_shots):
    shared = [_jpeg(cv2.resize(f, (480, 270), interpolation=cv2.INTER_AREA), 60) for f in two_shots["frames"]]
    found = check(two_shots["record"], shared)
    assert found.agrees, found.to_json()
    assert all(f.verdict == "output" for f in found.frames)


@pytest.mark.parametrize("where", ["second half", "last quarter", "middle quarter"])
@pytest.mark.parametrize("other", ["source", "unrelated"])
def test_an_output_spliced_with_other_footage_is_refused(two_shots, where, other):
    """Part of the file is the output and part is not (its unconverted plate, or footage from
    elsewhere): the token reads from the output's part, and the parts that are not it are refused."""
    frames, n = two_shots["frames"], len(two_shots["frames"])
    elsewhere = _photo("astronaut.png", (640, 360))
    replacement = two_shots["originals"] if other == "source" else [elsewhere] * n
    start, stop = {
        "second half": (n // 2, n),
        "last quarter": (3 * n // 4, n),
        "middle quarter": (3 * n // 8, 5 * n // 8),
    }[where]
    spliced = [_jpeg(f, 85) for f in frames[:start] + replacement[start:stop] + frames[stop:]]
    found = check(two_shots["record"], spliced)
    assert not found.agrees, found.to_json()
    assert "part of the file is not this output" in found.reason


def test_a_video_recorded_before_stretches_is_checked_by_the_majority(two_shots):
    """Version 2 recorded six key frames spread over the video; its entries keep their rule."""
    old = KeyFrames(binding.KEY_FRAMES, binding.FRAME_POINTS, version=2)
    for index, (frame, original) in enumerate(zip(two_shots["frames"], two_shots["originals"], strict=True)):
        old.offer(index, frame, original)
    record = old.record("video")
    assert not binding.covers_stretches(record)
    half = len(two_shots["frames"]) // 2
    spliced = two_shots["frames"][:half] + [_photo("astronaut.png", (640, 360))] * half
    assert check(record, spliced).agrees  # the gap version 3 closes


def test_a_recorder_that_thinned_its_key_frames_says_so(two_shots):
    keys = binding.ShotKeyFrames(limit=2)
    for index, (frame, original) in enumerate(zip(two_shots["frames"], two_shots["originals"], strict=True)):
        keys.offer(index, frame, original)
    record = keys.record("video")
    assert record["covered"] is False and len(record["frames"]) <= 2
    assert not binding.covers_stretches(record)


@pytest.mark.parametrize(
    ("verdicts", "agrees"),
    [
        ("oooooooo", True),
        ("ooxooxoo", True),  # isolated lost frames: a copy loses one now and then
        ("o.xoooo", True),  # a blank frame between is not judged
        ("ooxxoooo", False),  # two neighbours: a stretch that is not this output
        ("ox.xoooo", False),  # neighbours once blanks are skipped
        ("oxoxoxoo", False),  # more than a quarter
        ("xxxxxxxx", False),
        ("ommomooo", True),  # the middle missed between key frames: the stretch is still this footage
        ("mmmmoooo", True),  # half the middles agree
        ("mmmmmooo", False),  # most do not: another rendering of the shot
        ("omxmoooo", True),  # a middle between is no lost neighbour
        ("omxxoooo", False),
    ],
)
def test_the_stretch_rule(verdicts, agrees):
    names = {"o": ("output", "output"), "m": ("other", "middle"), "x": ("other", "different"), ".": ("blank", None)}
    checks = tuple(binding.FrameCheck(names[v][0], region=names[v][1]) for v in verdicts)
    assert (binding._stretch_problem(checks) is None) is agrees


def test_a_pan_keeps_key_frames_as_the_picture_moves(t1_image):
    """A camera pan across a wide plate, the swapped face moving with it: the key frames follow the
    picture, and a shared copy of every stretch agrees."""
    wide = _photo("coffee.png", (1600, 360))
    wide[100:260, 700:830] = cv2.resize(t1_image[160:320, 1150:1270], (130, 160))
    swapped = wide.copy()
    swapped[100:260, 700:830] = cv2.resize(t1_image[150:330, 400:550], (130, 160))
    frames = [np.ascontiguousarray(swapped[:, 24 * i : 24 * i + 640]) for i in range(40)]
    originals = [np.ascontiguousarray(wide[:, 24 * i : 24 * i + 640]) for i in range(40)]
    record = binding.record(frames, "video", originals)
    assert record["covered"] and 2 <= len(record["frames"]) <= 8
    found = check(record, [_jpeg(cv2.resize(f, (480, 270), interpolation=cv2.INTER_AREA), 60) for f in frames])
    assert found.agrees and all(f.verdict == "output" for f in found.frames), found.to_json()


def test_output_kept_only_where_a_fixed_sample_would_look_is_refused(two_shots, tmp_path):
    """Someone who reads the sampler keeps the output at the frames a fixed spread reads (every other
    frame here) and puts the plate between: binding's frames are drawn afresh for each reading."""
    import random

    from faceswap.limits import VERIFY
    from faceswap.provenance.verify.verifier import INTRA_SAMPLES, VIDEO_SAMPLES
    from faceswap.sampling import sample_video
    from faceswap.synthetic import write_input_clip

    pairs = zip(two_shots["frames"], two_shots["originals"], strict=True)
    mixed = [frame for output, plate in pairs for frame in (output, plate)]  # 96 frames
    path = write_input_clip(tmp_path / "mixed.mp4", mixed, 25)
    fixed = sample_video(path, VERIFY, VIDEO_SAMPLES, INTRA_SAMPLES)
    assert check(two_shots["record"], fixed.frames).agrees  # what a fixed spread would have credited
    for seed in range(3):
        drawn = sample_video(path, VERIFY, VIDEO_SAMPLES, INTRA_SAMPLES, binding.STRETCH_CHECKS, random.Random(seed))
        assert len(drawn.checks) == binding.STRETCH_CHECKS
        found = check(two_shots["record"], drawn.checks)
        assert not found.agrees, found.to_json()
