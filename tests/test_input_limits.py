"""Files from strangers are bounded: what a file declares (size on disk, frame size, what it decodes
to, frames, duration) is checked before anything is allocated, a file beyond a stated limit is exit 2
with one line naming the flag that raises it, and `verify` of any file stays under 1 GB."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR
import pytest
from hostile_media import declaring_huge, flat_video, mp4_claiming_frames, small_png_bytes, sparse_file

from faceswap.errors import BadInput
from faceswap.image_header import read_header
from faceswap.limits import OPERATOR, VERIFY, LimitExceeded, Resolution, parse_bytes, parse_resolution, with_overrides
from faceswap.media import find_sequence, iter_video_frames, probe_video, read_image, read_plate


def test_the_message_names_what_was_found_and_the_limit(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(declaring_huge(small_png_bytes()))
    with pytest.raises(LimitExceeded) as refused:
        read_image(huge, VERIFY)
    assert str(refused.value) == (
        f"{huge}: 60000x60000 pixels, more than the 8192x8192 allowed for an image (raise it with --max-image-size)"
    )
    claims = mp4_claiming_frames(flat_video(tmp_path / "small.mp4", 64, 48, 3), tmp_path / "claims.mp4", 10**9)
    with pytest.raises(LimitExceeded, match=r"declares 1000000000 frames, more than the 1000000 allowed"):
        probe_video(claims, OPERATOR)


def test_limits_parse_as_people_write_them():
    assert parse_bytes("512M") == 512 << 20 and parse_bytes("2G") == 2 << 30 and parse_bytes("1.5GiB") == 3 << 29
    assert parse_resolution("8192x4320") == Resolution(8192, 4320)
    assert Resolution(8192, 4320).admits(4320, 8192)  # portrait of the same frame
    assert not Resolution(8192, 4320).admits(8193, 100) and not Resolution(8192, 4320).admits(6000, 6000)
    raised = with_overrides(VERIFY, {"video": "7680x4320", "frames": "10", "seconds": None})
    assert raised.video == Resolution(7680, 4320) and raised.frames == 10 and raised.seconds == VERIFY.seconds
    with pytest.raises(BadInput):
        with_overrides(VERIFY, {"frames": "0"})


def test_verify_allows_less_than_the_operators_commands():
    """Strangers' files (verify) are held to 4K video and 512 MiB; an operator's plates to 8K."""
    assert VERIFY.video.admits(3840, 2160) and VERIFY.video.admits(2160, 3840)
    assert not VERIFY.video.admits(7680, 4320) and OPERATOR.video.admits(7680, 4320)
    assert OPERATOR.image.admits(8192, 4320) and OPERATOR.image_bytes >= 8192 * 4320 * 16  # 8K RGBA float EXR
    assert VERIFY.file_bytes == 512 << 20 < OPERATOR.file_bytes


# what a header declares is what the decoder makes


def _write(path: Path, image: np.ndarray, *params: int) -> Path:
    assert cv2.imwrite(str(path), image, list(params))
    return path


def _stills(folder: Path) -> list[Path]:
    rgb = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rgb[..., 0]])
    deep = rgb.astype(np.uint16) * 257
    return [
        _write(folder / "rgb.png", rgb),
        _write(folder / "grey.png", rgb[..., 0]),
        _write(folder / "rgba.png", rgba),
        _write(folder / "deep.png", deep),
        _write(folder / "base.jpg", rgb),
        _write(folder / "progressive.jpg", rgb, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        _write(folder / "rgb.tif", rgb),
        _write(folder / "deep.tif", deep),
        _write(folder / "float.tif", rgb.astype(np.float32) / 255),
        _write(folder / "lossy.webp", rgb, cv2.IMWRITE_WEBP_QUALITY, 80),
        _write(folder / "lossless.webp", rgba, cv2.IMWRITE_WEBP_QUALITY, 101),
        _write(folder / "rgb.bmp", rgb),
    ]


def test_every_still_format_declares_what_opencv_decodes(tmp_path):
    for path in _stills(tmp_path):
        header = read_header(path)
        decoded = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
        assert (header.width, header.height) == (decoded.shape[1], decoded.shape[0]), path.name
        assert header.width * header.height * max(3, header.channels) * header.sample_bytes >= decoded.nbytes
        assert read_plate(path).pixels.shape[:2] == decoded.shape[:2]


def test_exr_header_counts_every_part_and_channel(tmp_path):
    half = np.zeros((20, 30), np.float16)
    path = tmp_path / "layers.exr"
    channels = {c: half for c in ["R", "G", "B", "A", "diffuse.R", "diffuse.G", "diffuse.B"]}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
    header = read_header(path)
    assert (header.width, header.height, header.format) == (30, 20, "EXR")
    assert header.extra_bytes == 7 * 20 * 30 * 2  # every channel as stored (half)
    tight = with_overrides(OPERATOR, {"image_bytes": str(header.plate_bytes - 1)})
    with pytest.raises(LimitExceeded, match="--max-image-memory"):
        read_plate(path, tight)
    assert read_plate(path, with_overrides(OPERATOR, {"image_bytes": str(header.plate_bytes)})).pixels.shape == (
        20,
        30,
        3,
    )


def test_formats_opencv_reads_but_we_do_not_size_are_refused(tmp_path):
    pgm = tmp_path / "image.png"  # a PGM named .png: OpenCV would decode it by its content
    pgm.write_bytes(b"P5\n40000 40000\n255\n" + bytes(64))
    with pytest.raises(BadInput, match="a PNM/PFM image, not a format faceswap reads"):
        read_image(pgm)


def test_a_damaged_header_is_one_line(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(small_png_bytes()[:20])
    with pytest.raises(BadInput, match="damaged image header"):
        read_image(path)


# sequences and video streams


def test_a_sequence_longer_than_the_frame_limit_is_refused(tmp_path):
    png = small_png_bytes()
    for number in range(1, 6):
        (tmp_path / f"plate.{number:04d}.png").write_bytes(png)
    few = with_overrides(OPERATOR, {"frames": "4"})
    with pytest.raises(LimitExceeded, match="holds more than the 4 frames allowed"):
        find_sequence(tmp_path, few)
    with pytest.raises(LimitExceeded, match="--max-frames"):
        find_sequence(tmp_path / "plate.%04d.png", few)
    assert find_sequence(tmp_path, OPERATOR).numbers == (1, 2, 3, 4, 5)


def test_frames_a_container_does_not_declare_are_counted_as_they_decode(tmp_path):
    clip = flat_video(tmp_path / "undeclared.mkv", 64, 48, 12)
    assert probe_video(clip).frames == 0  # Matroska does not say how many frames it holds
    few = with_overrides(OPERATOR, {"frames": "8"})
    with pytest.raises(LimitExceeded, match="holds more than the 8 frames allowed"):
        list(iter_video_frames(clip, limits=few))


def test_the_decoder_refuses_frames_beyond_the_largest_it_is_told(tmp_path):
    """FFmpeg's max_pixels, which every reader sets: a frame beyond it (declared, or as a stream grows
    mid-way) is refused by the decoder before it allocates."""
    clip = flat_video(tmp_path / "grows.mp4", 64, 48, 3)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"max_pixels": str(32 * 24)}
        with pytest.raises(av.FFmpegError):
            next(container.decode(stream))


def test_content_credentials_are_not_read_from_a_file_beyond_the_limit(tmp_path):
    """c2pa holds the whole file in memory: its size is checked first."""
    from faceswap.provenance.credentials import read_credentials

    small = flat_video(tmp_path / "small.mp4", 64, 48, 3)
    sparse = sparse_file(tmp_path / "sparse.mp4", 4 << 30, small.read_bytes())
    with pytest.raises(LimitExceeded, match="--max-file-size"):
        read_credentials(sparse)
    assert read_credentials(small).state == "absent"


# verify's video sample


def _levels_clip(path: Path, count: int, size: tuple[int, int] = (64, 48), gop: int = 250) -> Path:
    """A clip whose frame i is flat at level 6 * i: which frames a sample kept can be read back."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": "10"}
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), i * 6, np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _every_frame(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(container.streams.video[0])]


def test_the_sample_keeps_frames_within_its_budget_exactly_as_decoded(tmp_path):
    from faceswap.sampling import sample_video

    clip = _levels_clip(tmp_path / "clip.mp4", 30)
    frames, intra, _ = sample_video(clip, VERIFY, count=10, intra=2)
    decoded = _every_frame(clip)
    assert len(frames) == 10 and intra == [True] + [False] * 9
    assert all(np.array_equal(f, decoded[3 * k]) for k, f in enumerate(frames))  # every 3rd of 30


def test_frames_for_content_binding_are_drawn_afresh_within_each_stretch(tmp_path):
    """One frame at a random position within each of 6 stretches of 5 frames: someone who reads the
    code cannot know which frames of the file binding will see."""
    import random

    from faceswap.sampling import sample_video

    clip = _levels_clip(tmp_path / "clip.mp4", 30)
    decoded = _every_frame(clip)
    drawn = []
    for seed in range(4):
        got = sample_video(clip, VERIFY, count=10, intra=2, checks=6, rng=random.Random(seed))
        assert len(got.frames) == 10 and len(got.checks) == 6  # the spread is as without checks
        positions = [next(i for i, d in enumerate(decoded) if np.array_equal(d, c)) for c in got.checks]
        assert [p // 5 for p in positions] == list(range(6))
        drawn.append(positions)
    assert len({tuple(p) for p in drawn}) == 4


def test_the_stretches_cover_the_whole_clip_whatever_its_length():
    """250 frames in 24 stretches: the stretches are 10 or 11 frames long and the last one ends at the
    last frame (with stretches of 250 // 24 frames, frames 240-249 were never checked)."""
    import random

    from faceswap.sampling import _drawn

    bounds = [k * 250 // 24 for k in range(25)]
    seen: set[int] = set()
    for seed in range(300):
        drawn = sorted(_drawn(250, 24, random.Random(seed)))
        assert len(drawn) == 24 and all(bounds[k] <= p < bounds[k + 1] for k, p in enumerate(drawn))
        seen.update(drawn)
    assert seen == set(range(250))


def test_the_sample_shrinks_large_frames_as_they_are_decoded(tmp_path, monkeypatch):
    from faceswap import sampling

    clip = flat_video(tmp_path / "clip.mp4", 640, 480, 4)
    monkeypatch.setattr(sampling, "SAMPLE_BYTES", 3 * 6 * 100_000)  # 100k pixels per kept frame
    frames, _, _ = sampling.sample_video(clip, VERIFY, count=4, intra=2)
    assert frames and all(f.shape[0] * f.shape[1] <= 100_000 and f.shape[1] / f.shape[0] > 1.3 for f in frames)


def test_a_clip_beyond_the_decode_budget_is_read_in_key_frames(tmp_path, monkeypatch):
    from faceswap import sampling

    clip = _levels_clip(tmp_path / "gops.mp4", 40, gop=5)
    monkeypatch.setattr(sampling, "DECODE_BUDGET", 1)
    frames, intra, checks = sampling.sample_video(clip, VERIFY, count=4, intra=2)
    assert len(frames) == 4 and all(intra)
    levels = [round(float(f.mean()) / 6) for f in frames]
    assert levels == [0, 10, 20, 30]  # the key frames at the spread's positions (every 10th of 40)
    assert checks == frames  # binding is given the spread, the only frames decoded


def test_a_verifier_draws_the_same_binding_frames_of_a_file_and_others_do_not(tmp_path):
    """The drawn positions come from the file's bytes and the verifier's key: one verifier's reading
    repeats; another key, or the same pictures in other bytes, draws elsewhere."""
    from faceswap.provenance.verify.verifier import read_sample
    from faceswap.synthetic import write_input_clip

    frames = [np.full((48, 64, 3), 5 * i, np.uint8) for i in range(48)]  # two frames per stretch of 24

    def drawn(path: Path, key: bytes) -> list[int]:
        decoded = _every_frame(path)
        checks = read_sample(path, draw_key=key).checks
        return [next(i for i, d in enumerate(decoded) if np.array_equal(d, c)) for c in checks]

    clip = write_input_clip(tmp_path / "clip.mp4", frames, 25, crf=10)
    again = write_input_clip(tmp_path / "again.mp4", frames, 25, crf=12)
    first = drawn(clip, b"verifier one")
    assert [p // 2 for p in first] == list(range(24))  # one in each stretch
    assert drawn(clip, b"verifier one") == first
    assert drawn(clip, b"verifier two") != first
    assert drawn(again, b"verifier one") != first
