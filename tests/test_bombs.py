"""The issue's measured bombs and their cousins, through the command line as a user runs it: each is
exit 2 with one line naming the limit and the flag that raises it, no traceback, and `verify` (or
`faces detect`) stays under 1 GB of memory. Only the CLI is used, so these run against any version."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
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


def test_the_frame_claim_is_in_the_header_the_demuxer_reads(bombs):
    """(That the bomb is one.)"""
    raw = bombs["mp4-claiming-1e9-frames"].read_bytes()
    at = raw.index(b"stts")
    assert struct.unpack(">I", raw[at + 12 : at + 16])[0] == 10**9
