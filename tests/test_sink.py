"""The output sink: every output marked, logged, atomic; videos keep frames, timestamps and audio."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest
from media_helpers import make_clip, panning_frames

from faceswap.errors import BadInput
from faceswap.hashing import file_sha256
from faceswap.ledger import open_ledger
from faceswap.media import iter_video_frames, probe_video, read_image
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="test", model_fingerprint="ab" * 32, consent_record_ids=("astro-1",))


@pytest.fixture
def sink(tmp_path) -> OutputSink:
    return OutputSink.for_workspace(Workspace(tmp_path / "ws"))


def _outputs(sink: OutputSink):
    return sink.ledger.entries("output.written")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_is_marked_logged_and_hashed(sink, tmp_path, t1_image, suffix):
    written = sink.write_image(tmp_path / f"out{suffix}", t1_image, CONTEXT)
    entry = _outputs(sink)[0]
    assert entry.data["token"] == written.token and entry.data["sha256"] == file_sha256(written.path)
    assert entry.data["consent_record_ids"] == ["astro-1"] and entry.data["model_fingerprint"] == "ab" * 32
    found = sink.watermarker.detect([read_image(written.path)])
    assert found.marked and found.token == written.token
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [f"out{suffix}"]


def test_video_keeps_frames_timestamps_and_audio(sink, tmp_path):
    source = make_clip(tmp_path / "source.mp4", count=12)
    info = probe_video(source)
    frames = (SinkFrame(f.image, f.pts, f.time_base) for f in iter_video_frames(source))
    written = sink.write_video(tmp_path / "out.mp4", frames, info.fps, CONTEXT, audio_from=source)
    out = probe_video(written.path)
    assert written.frames == 12 and out.frames == 12 and out.has_audio and out.fps == info.fps
    assert [f.pts for f in iter_video_frames(written.path)] == [f.pts for f in iter_video_frames(source)]
    found = sink.watermarker.detect([f.image for f in iter_video_frames(written.path)])
    assert found.marked and found.token == written.token
    entry = _outputs(sink)[0]
    assert entry.data["media"] == "video" and entry.data["audio_streams"] == 1 and entry.data["frames"] == 12


def test_sequence_16_bit_with_alpha_every_frame_marked(sink, tmp_path):
    frames = []
    for image in panning_frames(3, (640, 360)):  # each frame read alone: above the ~400x300 the mark needs
        deep = image.astype(np.uint16) * 257 + 100
        matte = np.zeros(image.shape[:2], np.uint16)
        matte[50:200, 100:300] = 65535
        frames.append(SinkFrame(deep, alpha=matte))
    written = sink.write_sequence(tmp_path / "shot", frames, CONTEXT)
    files = sorted(written.path.iterdir())
    assert [f.name for f in files] == ["frame.000000.png", "frame.000001.png", "frame.000002.png"]
    for path in files:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert pixels.dtype == np.uint16 and pixels.shape[2] == 4 and pixels[100, 200, 3] == 65535
        found = sink.watermarker.detect([read_image(path)])
        assert found.marked and found.token == written.token
    assert _outputs(sink)[0].data["files"] == 3


def test_failure_mid_write_leaves_no_file_and_no_entry(sink, tmp_path):
    def frames():
        yield from panning_frames(3)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        sink.write_video(tmp_path / "out.mp4", frames(), Fraction(25), CONTEXT)
    with pytest.raises(RuntimeError):
        sink.write_sequence(tmp_path / "seq", frames(), CONTEXT)
    assert list(tmp_path.glob("*out*")) == [] and list(tmp_path.glob("*seq*")) == []
    assert _outputs(sink) == [] and sink.ledger.verify() is None


def test_killed_mid_write_leaves_no_file_and_no_entry(tmp_path):
    ws = tmp_path / "ws"
    out = tmp_path / "killed.mp4"
    code = (
        "import sys, itertools\n"
        "from fractions import Fraction\n"
        "sys.path.insert(0, 'tests')\n"
        "from media_helpers import panning_frames\n"
        "from faceswap.ledger import open_ledger\n"
        "from faceswap.provenance.output.sink import OutputContext, OutputSink\n"
        "from faceswap.workspace import Workspace\n"
        "sink = OutputSink.for_workspace(Workspace(sys.argv[1]), batch=2)\n"
        "frames = panning_frames(8)\n"
        "def forever():\n"
        "    for i in itertools.count():\n"
        "        if i == 4: print('writing', flush=True)\n"
        "        yield frames[i % 8]\n"
        "sink.write_video(sys.argv[2], forever(), Fraction(25), OutputContext('test'))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(ws), str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60

    def written_bytes() -> int:
        return sum(p.stat().st_size for p in tmp_path.glob(".killed.mp4.faceswap-partial-*"))

    while written_bytes() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    partials = list(tmp_path.glob(".killed.mp4.faceswap-partial-*"))
    assert len(partials) == 1 and partials[0].stat().st_size > 0  # killed in the middle of a real write
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    ledger = open_ledger(Workspace(ws))
    assert ledger.entries("output.written") == [] and ledger.verify() is None
    # the next write to the same name removes the dead writer's leftover
    written = OutputSink.for_workspace(Workspace(ws), ledger).write_video(out, panning_frames(4), Fraction(25), CONTEXT)
    assert written.leftovers_removed == 1 and not list(tmp_path.glob(".killed.mp4.faceswap-partial-*"))


def test_bad_requests_are_refused(sink, tmp_path, t1_image):
    with pytest.raises(BadInput, match="too small"):
        sink.write_image(tmp_path / "tiny.png", np.zeros((64, 64, 3), np.uint8), CONTEXT)
    with pytest.raises(BadInput, match=".png or .jpg"):
        sink.write_image(tmp_path / "x.gif", t1_image, CONTEXT)
    assert _outputs(sink) == [] and not list(tmp_path.glob("*.png"))
