"""Files from strangers are bounded: what a file declares (size on disk, frame size, what it decodes
to, frames, duration) is checked before anything is allocated, a file beyond a stated limit is exit 2
with one line naming the flag that raises it, and `verify` of any file stays under 1 GB."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR
import pytest
from hostile_media import (
    exr_bomb,
    flat_video,
    gif_declaring,
    jpeg_declaring,
    mp4_claiming_frames,
    png_bomb,
    run_cli,
    small_png_bytes,
    sparse_file,
)

from faceswap.errors import BadInput
from faceswap.image_header import read_header
from faceswap.limits import OPERATOR, VERIFY, LimitExceeded, Resolution, parse_bytes, parse_resolution, with_overrides
from faceswap.media import find_sequence, iter_video_frames, probe_video, read_image, read_plate

GB = 1 << 30


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """The issue's measured bombs and their cousins, each small on disk (or sparse)."""
    folder = tmp_path_factory.mktemp("bombs")
    small = flat_video(folder / "small.mp4", 160, 120, 10)
    return {
        "png-30000x30000": png_bomb(folder / "bomb.png"),
        "sparse-4GiB-png": sparse_file(folder / "sparse.png", 4 << 30, small_png_bytes()),
        "mp4-8k-frames": flat_video(folder / "flat8k.mp4", 7680, 4320, 2),
        "jpeg-65500x65500-header": jpeg_declaring(folder / "huge.jpg", 65500, 65500),
        "gif-65535x65535": gif_declaring(folder / "huge.gif", 65535, 65535),
        "exr-30000x30000-data-window": exr_bomb(folder / "bomb.exr", 30000, 30000),
        "mp4-claiming-1e9-frames": mp4_claiming_frames(small, folder / "claims.mp4", 10**9),
        "sparse-4GiB-mp4": sparse_file(folder / "sparse.mp4", 4 << 30, small.read_bytes()),
    }


BOMB_FLAGS = {
    "png-30000x30000": "--max-image-size",
    "sparse-4GiB-png": "--max-file-size",
    "mp4-8k-frames": "--max-video-size",
    "jpeg-65500x65500-header": "--max-image-size",
    "gif-65535x65535": "--max-image-size",
    "exr-30000x30000-data-window": "--max-image-size",
    "mp4-claiming-1e9-frames": "--max-frames",
    "sparse-4GiB-mp4": "--max-file-size",
}


@pytest.mark.parametrize("name", sorted(BOMB_FLAGS))
def test_verify_refuses_each_bomb_in_one_line_under_1gb(bombs, name, tmp_path):
    run = run_cli(["--workspace", str(tmp_path / "ws"), "verify", str(bombs[name])], timeout=60)
    assert run.code == 2, (run.code, run.stdout, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "UNREADABLE" in lines[0] and BOMB_FLAGS[name] in lines[0], run.stdout
    assert run.peak_rss < GB, f"{name}: peak RSS {run.peak_rss >> 20} MiB"


@pytest.mark.parametrize("name", ["png-30000x30000", "jpeg-65500x65500-header", "exr-30000x30000-data-window"])
def test_faces_detect_refuses_image_bombs(bombs, name):
    run = run_cli(["faces", "detect", str(bombs[name]), "--backend", "dlib"], timeout=60)
    assert run.code == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and "--max-image-size" in run.stderr
    assert run.peak_rss < GB


def test_the_message_names_what_was_found_and_the_limit(bombs):
    with pytest.raises(LimitExceeded) as refused:
        read_image(bombs["png-30000x30000"], VERIFY)
    assert str(refused.value).endswith(
        "30000x30000 pixels, more than the 8192x8192 allowed for an image (raise it with --max-image-size)"
    )
    with pytest.raises(LimitExceeded, match=r"declares 1000000000 frames, more than the 1000000 allowed"):
        probe_video(bombs["mp4-claiming-1e9-frames"], OPERATOR)


def test_a_flag_raises_a_limit_and_lowers_it(tmp_path):
    image = tmp_path / "wide.png"
    cv2.imwrite(str(image), np.full((300, 400, 3), 90, np.uint8))
    lowered = run_cli(["--workspace", str(tmp_path / "ws"), "verify", str(image), "--max-image-size", "320x240"])
    assert lowered.code == 2 and "400x300 pixels, more than the 320x240" in lowered.stdout
    assert "--max-image-size" in lowered.stdout
    raised = run_cli(["--workspace", str(tmp_path / "ws"), "verify", str(image), "--max-image-size", "400x300"])
    assert raised.code == 1 and "NOT MARKED" in raised.stdout


def test_bad_limit_values_are_usage_errors(tmp_path):
    run = run_cli(["verify", str(tmp_path / "x.png"), "--max-file-size", "lots"])
    assert run.code == 2 and "is not a size" in run.stderr and "Traceback" not in run.stderr


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
    with pytest.raises(BadInput, match="not an image format faceswap reads"):
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


def test_the_sparse_mp4_is_refused_before_content_credentials_read_it(bombs):
    from faceswap.provenance.credentials import read_credentials

    with pytest.raises(LimitExceeded, match="--max-file-size"):
        read_credentials(bombs["sparse-4GiB-mp4"])


def test_mp4_frame_claim_helper_claims(bombs):
    """The claim is in the header the demuxer reads (a check that the bomb is one)."""
    raw = bombs["mp4-claiming-1e9-frames"].read_bytes()
    at = raw.index(b"stts")
    assert struct.unpack(">I", raw[at + 12 : at + 16])[0] == 10**9
