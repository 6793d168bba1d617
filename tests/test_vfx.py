"""VFX delivery: EXR and ProRes 4444 with alpha, numbered sequences in and out at their own depth,
frame ranges and numbering without drift, timecode kept, colour managed, every frame marked so an
8-bit render or an H.264 transcode still verifies."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR
import pytest
from media_helpers import make_clip, panning_frames, reencode

from faceswap.cli import main
from faceswap.colorspace import Colour, quantise
from faceswap.convert.delivery import composite_float, composite_integer
from faceswap.convert.options import parse_frames
from faceswap.errors import BadInput
from faceswap.media import find_sequence, iter_video_frames, probe_video, read_exr, read_plate
from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
from faceswap.timecode import Timecode
from faceswap.workspace import Workspace

CONTEXT = OutputContext(producer="test", model_fingerprint="ab" * 32, consent_record_ids=("rec-a",))


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


def _json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.find("{") :])


def _verify(capsys, root: Path, *paths: Path) -> tuple[int, list[dict]]:
    code = main(["verify", *map(str, paths), "--workspace", str(root), "--json"])
    return code, _json(capsys)["files"]


def _convert(root: Path, source: Path, output: Path, *extra: str) -> int:
    model = root / "models" / "tiny"
    return main(["convert", "--workspace", str(root), "--model", str(model), "--input", str(source)]
                + ["--output", str(output), "--json", *extra])  # fmt: skip


def _render_srgb(path: Path, colour: Colour) -> np.ndarray:
    """An EXR frame as a compositor's 8-bit sRGB render: its recorded space -> sRGB, quantised."""
    plate = read_exr(path)
    space = colour.space(str(plate.attributes["faceswap.colorspace"]))
    return quantise(colour.convert(plate.pixels, space, colour.srgb), 8)


def _stamp(image: np.ndarray, value: int) -> np.ndarray:
    """Write `value` as 8 black/white 16x16 blocks along the top-left edge (survives marking)."""
    out = image.copy()
    for bit in range(8):
        out[:16, bit * 16 : (bit + 1) * 16] = 255 if value >> bit & 1 else 0
    return out


def _read_stamp(image: np.ndarray) -> int:
    gray = image.astype(np.float32)
    if image.dtype == np.uint16:
        gray /= 257
    return sum(1 << bit for bit in range(8) if gray[4:12, bit * 16 + 4 : bit * 16 + 12].mean() > 127)


def _plate_mov(source: Path, out: Path, timecode: str, durations: tuple[int, ...] = (2,)) -> Path:
    """`source`'s frames, each stamped with its index, re-encoded into a MOV whose tmcd track starts at
    `timecode`, with the source's audio; frame durations cycle through `durations` ticks of 1/50 s
    (a variable frame rate when they differ)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        first = src.streams.video[0]
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 50)
        stream.options = {"crf": "14", "bf": "0"}
        stream.metadata["timecode"] = timecode
        audio = {s.index: dst.add_stream_from_template(s) for s in src.streams.audio}
        pts = 0
        for i, decoded in enumerate(src.decode(first)):
            frame = av.VideoFrame.from_ndarray(_stamp(decoded.to_ndarray(format="bgr24"), i), format="bgr24")
            frame.pts, frame.time_base = pts, Fraction(1, 50)
            pts += durations[i % len(durations)]
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
        src.seek(0)
        for packet in src.demux(*src.streams.audio):
            if packet.dts is not None:
                packet.stream = audio[packet.stream.index]
                dst.mux(packet)
    return out


def _audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.pts is not None]
    end = max(p.pts + p.duration for p in packets)
    return float((end - min(p.pts for p in packets)) * packets[0].time_base)


# timecode, sequences, compositing: the parts on their own


def test_timecode_counts_frames_including_drop_frame():
    start = Timecode.parse("01:00:00:00", 25)
    assert str(start + 1001) == "01:00:40:01" and (start + 1001).frame - start.frame == 1001
    df = Timecode.parse("00:00:59;29", Fraction(30000, 1001))
    assert str(df + 1) == "00:01:00;02"  # frames 0 and 1 of minute 1 are dropped
    assert str(Timecode.parse("00:09:59;29", Fraction(30000, 1001)) + 1) == "00:10:00;00"  # not every tenth
    assert Timecode.parse(str(df + 5000), Fraction(30000, 1001)).frame == df.frame + 5000
    with pytest.raises(BadInput, match="out of range"):
        Timecode.parse("00:00:00:25", 25)


def test_numbered_sequences_keep_numbers_and_depth(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    deep = (np.arange(64 * 48 * 3, dtype=np.uint32) * 37 % 65536).astype(np.uint16).reshape(48, 64, 3)
    for number in (1001, 1002, 1004, 1010):  # a gap, as shot lists have
        cv2.imwrite(str(folder / f"plate.{number:04d}.png"), deep + number)
    (folder / "notes.txt").write_text("not a frame")
    for name in ("plate.%04d.png", "plate.####.png"):
        found = find_sequence(folder / name)
        assert found is not None and found.numbers == (1001, 1002, 1004, 1010)
    found = find_sequence(folder)
    assert found is not None and found.numbers == (1001, 1002, 1004, 1010) and found.padding == 4
    plate = read_plate(found.path(1004))
    assert plate.pixels.dtype == np.uint16 and np.array_equal(plate.pixels, deep + 1004)  # no 8-bit round trip
    cv2.imwrite(str(folder / "other.0001.png"), deep)
    with pytest.raises(BadInput, match="several sequences"):
        find_sequence(folder)
    assert parse_frames("1001-1100") == (1001, 1100)
    with pytest.raises(BadInput):
        parse_frames("1100-1001")


def test_timecode_is_probed_from_a_tmcd_track(tmp_path):
    clip = _plate_mov(make_clip(tmp_path / "src.mp4", count=5), tmp_path / "tc.mov", "10:00:00:12")
    info = probe_video(clip)
    assert info.timecode == "10:00:00:12" and info.frames == 5 and info.has_audio
    assert probe_video(make_clip(tmp_path / "none.mp4", count=3, audio=False)).timecode is None


def test_composite_keeps_the_plate_exactly_outside_the_matte(colour):
    rng = np.random.default_rng(7)
    plate16 = rng.integers(0, 65536, (64, 80, 3)).astype(np.uint16)
    view = np.clip(np.rint(plate16 / 257.0), 0, 255).astype(np.uint8)
    swapped = view.copy()
    swapped[20:40, 30:50] = 200
    matte = np.zeros((64, 80), np.float32)
    matte[18:42, 28:52] = 0.5
    matte[20:40, 30:50] = 1.0
    out = composite_integer(plate16, view, swapped, matte)
    assert np.array_equal(out[matte == 0], plate16[matte == 0])  # bit-exact, low bits included
    assert np.all(out[20:40, 30:50] == 200 * 257)  # fully swapped: the swap itself
    half = matte == 0.5  # half-way: half the plate (low bits too) and half the swap
    expected = 0.5 * plate16[half].astype(np.float32) + 0.5 * swapped[half].astype(np.float32) * 257
    assert np.abs(out[half].astype(np.float32) - expected).max() <= 129

    linear = rng.random((64, 80, 3)).astype(np.float32) * 4  # scene-linear, highlights above 1

    def to_plate(pixels):
        return colour.convert(pixels.astype(np.float32) / 255, colour.srgb, colour.linear)

    view = quantise(colour.convert(linear, colour.linear, colour.srgb), 8)
    out = composite_float(linear, view, swapped, matte, to_plate)
    assert np.array_equal(out[matte == 0], linear[matte == 0])
    assert np.allclose(out[20:40, 30:50], to_plate(swapped[20:40, 30:50]), atol=1e-6)


# the sink's new formats, on their own


def test_exr_sequence_is_half_rgba_marked_in_the_display_view(tmp_path, colour, capsys):
    root = tmp_path / "ws"
    sink = OutputSink.for_workspace(Workspace(root))
    watermarker = sink.watermarker
    frames = panning_frames(3, (640, 360))  # each frame read alone: above the ~400x300 the mark needs
    linear = [colour.convert(f.astype(np.float32) / 255, colour.srgb, colour.linear) for f in frames]
    linear[1][:40] *= 6.0  # highlights above display white stay above it
    matte = np.zeros((360, 640), np.float32)
    matte[80:280, 220:420] = np.linspace(0, 1, 200, dtype=np.float32)
    sequence = [SinkFrame(f, alpha=matte, number=1001 + i, timecode=f"01:00:00:{i:02d}") for i, f in enumerate(linear)]
    written = sink.write_exr_sequence(
        tmp_path / "sh010", sequence, CONTEXT, colour.display(colour.linear), colour.ref, Fraction(24)
    )
    names = sorted(p.name for p in written.path.glob("*.exr"))
    assert names == ["sh010.1001.exr", "sh010.1002.exr", "sh010.1003.exr"]
    for i, name in enumerate(names):
        exr = OpenEXR.File(str(written.path / name), separate_channels=True)
        channels, header = exr.channels(), exr.header()
        assert sorted(channels) == ["A", "B", "G", "R"] and all(c.type() == OpenEXR.HALF for c in channels.values())
        assert header["faceswap.frame"] == 1001 + i and header["faceswap.token"] == written.token
        assert (header["timeCode"].seconds, header["timeCode"].frame) == (0, i) and header["framesPerSecond"] == 24
        assert np.abs(channels["A"].pixels.astype(np.float32) - matte).max() <= 1e-3  # alpha is the matte
        rendered = _render_srgb(written.path / name, colour)
        assert np.abs(rendered[40:].astype(int) - frames[i][40:]).mean() < 4  # the mark, nothing more
        found = watermarker.detect([rendered])
        assert found.marked and found.token == written.token
    assert read_exr(written.path / names[1]).pixels[:40].max() > 1.5  # not clipped to display white
    entry = written.entry.data
    assert entry["frames"] == 3 and [row[0] for row in entry["manifest"]] == names  # one entry, every frame hashed
    code, verdicts = _verify(capsys, root, written.path / names[2])
    assert code == 0 and verdicts[0]["detection"]["token"] == written.token
    assert verdicts[0]["ledger_seq"] == written.entry.seq and verdicts[0]["credentials"]["source"] == "sidecar"
    assert verdicts[0]["credentials"]["state"] == "trusted"


def test_prores_4444_keeps_alpha_audio_timecode_and_survives_h264(tmp_path, capsys):
    root = tmp_path / "ws"
    sink = OutputSink.for_workspace(Workspace(root))
    source = make_clip(tmp_path / "plate.mp4", count=8)
    matte = np.zeros((360, 640), np.uint16)
    matte[80:280, 200:440] = 65535
    frames = [SinkFrame(f.image, f.pts, f.time_base, alpha=matte) for f in iter_video_frames(source)]
    written = sink.write_video(
        tmp_path / "shot.mov", frames, Fraction(25), CONTEXT, audio_from=source, codec="prores4444", alpha=True,
        timecode="01:00:00:00",
    )  # fmt: skip
    info = probe_video(written.path)
    assert (info.codec, info.frames, info.has_audio, info.timecode) == ("prores", 8, True, "01:00:00:00")
    assert written.entry.data["pix_fmt"] == "yuva444p10le"
    with av.open(str(written.path)) as container:
        assert container.streams.video[0].codec_context.profile == "4444"
        decoded = next(container.decode(video=0))
        assert decoded.format.name.startswith("yuva444p")  # FFmpeg's decoder hands ProRes 4444 out at 12 bits
        alpha = decoded.to_ndarray(format="bgra64le")[..., 3]
    assert np.abs(alpha.astype(int) - matte).max() <= 64
    assert [f.pts for f in iter_video_frames(written.path)] == [f.pts for f in iter_video_frames(source)]
    code, verdicts = _verify(capsys, root, written.path)
    assert code == 0 and verdicts[0]["detection"]["token"] == written.token
    transcoded = reencode(written.path, tmp_path / "review.mp4", crf=23)  # editorial's H.264 review copy
    code, verdicts = _verify(capsys, root, transcoded)
    assert code == 0 and verdicts[0]["marked"] and verdicts[0]["ledger_seq"] == written.entry.seq
    with pytest.raises(BadInput, match="carries no alpha"):
        sink.write_video(tmp_path / "hq.mov", frames, Fraction(25), CONTEXT, codec="prores422hq", alpha=True)
    with pytest.raises(BadInput, match="written in .mov"):
        sink.write_video(tmp_path / "x.mp4", frames, Fraction(25), CONTEXT, codec="prores4444")


# conversions end to end, with the demo's trained model


@pytest.mark.slow
def test_convert_to_exr_with_alpha_numbers_colour_and_render(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    clip, colour = files["demo-b"].clip, Colour()
    exr, png = tmp_path / "sh010_exr", tmp_path / "sh010_png"
    common = ("--alpha", "--frames", "20-27", "--start-frame", "1001")
    assert _convert(trained_workspace, clip, exr, "--sequence", "exr", *common) == 0
    report = _json(capsys)
    assert report["frames"] == 8 and report["frames_swapped"] >= 6
    assert _convert(trained_workspace, clip, png, "--sequence", "png", "--bits", "16", *common) == 0
    capsys.readouterr()
    exrs, pngs = sorted(exr.glob("*.exr")), sorted(png.glob("*.png"))
    assert [p.name for p in exrs] == [f"sh010_exr.{n}.exr" for n in range(1001, 1009)]
    assert [p.name for p in pngs] == [f"sh010_png.{n}.png" for n in range(1001, 1009)]
    errors = []
    for path_exr, path_png in zip(exrs, pngs, strict=True):
        channels = OpenEXR.File(str(path_exr), separate_channels=True).channels()
        assert sorted(channels) == ["A", "B", "G", "R"] and all(c.type() == OpenEXR.HALF for c in channels.values())
        srgb = cv2.imread(str(path_png), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        assert np.abs(channels["A"].pixels - srgb[..., 3]).max() <= 2e-3  # alpha: the same matte
        back = colour.convert(read_exr(path_exr).pixels, colour.linear, colour.srgb)
        errors.append(np.abs(back - srgb[..., :3]) * 255)  # two marks with different tokens apart, at most
    errors = np.stack(errors)
    assert errors.mean() < 3.5 and np.percentile(errors, 99) < 12
    render = tmp_path / "render.1004.png"
    cv2.imwrite(str(render), _render_srgb(exrs[3], colour))
    code, verdicts = _verify(capsys, trained_workspace, render, exrs[3])
    assert code == 0 and all(v["marked"] for v in verdicts)
    assert verdicts[0]["detection"]["token"] == verdicts[1]["detection"]["token"] == report["token"]
    assert verdicts[1]["credentials"]["state"] == "trusted"


@pytest.mark.slow
def test_convert_to_prores_keeps_range_audio_timecode(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    plate = _plate_mov(files["demo-b"].clip, tmp_path / "plate.mov", "01:00:00:00")
    output = tmp_path / "sh010.mov"
    fps = probe_video(plate).fps
    args = ("--codec", "prores4444", "--alpha", "--frames", "25-36")
    assert _convert(trained_workspace, plate, output, *args) == 0
    report = _json(capsys)
    info = probe_video(output)
    assert info.frames == report["frames"] == 12 and info.has_audio and info.fps == fps
    assert info.timecode == str(Timecode.parse("01:00:00:00", fps) + 25)  # the first converted frame's
    with av.open(str(output)) as container:
        assert next(container.decode(video=0)).format.name.startswith("yuva")
    assert abs(_audio_seconds(output) - 12 / float(fps)) < 0.1  # the range's audio, not the whole clip's
    assert [_read_stamp(f.image) for f in iter_video_frames(output)] == list(range(25, 37))
    code, verdicts = _verify(capsys, trained_workspace, output, reencode(output, tmp_path / "review.mp4", crf=23))
    assert code == 0 and all(v["marked"] and v["ledger_seq"] == report["ledger_seq"] for v in verdicts)


@pytest.mark.slow
def test_output_frame_i_is_input_frame_i_with_vfr_and_sequences(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    vfr = _plate_mov(files["demo-b"].clip, tmp_path / "vfr.mov", "00:00:00:00", durations=(1, 3, 2))
    frames = [f.image for f in iter_video_frames(vfr, limit=12)]
    assert _convert(trained_workspace, vfr, tmp_path / "seq", "--sequence", "png", "--frames", "9-20",
                    "--start-frame", "1001") == 0  # fmt: skip
    capsys.readouterr()
    written = sorted((tmp_path / "seq").glob("*.png"))
    assert [p.name for p in written] == [f"seq.{n}.png" for n in range(1001, 1013)]
    assert [_read_stamp(cv2.imread(str(p))) for p in written] == list(range(9, 21))

    # a 16-bit PNG plate numbered from 1001, with detail below 8 bits everywhere
    plate = tmp_path / "plate"
    plate.mkdir()
    rng = np.random.default_rng(3)
    deep = {}
    for number, image in enumerate(frames[:12], start=1001):
        noise = rng.integers(0, 128, image.shape)
        deep[number] = np.minimum(image.astype(np.int64) * 257 + noise, 65535).astype(np.uint16)
        cv2.imwrite(str(plate / f"plate.{number:04d}.png"), deep[number])
    out = tmp_path / "deep"
    assert _convert(trained_workspace, plate / "plate.%04d.png", out, "--sequence", "png", "--alpha",
                    "--frames", "1004-1011") == 0  # fmt: skip
    assert _json(capsys)["frames_swapped"] >= 6
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == [f"deep.{n}.png" for n in range(1004, 1012)]
    for path in written:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        number = int(path.name.split(".")[1])
        assert pixels.dtype == np.uint16 and _read_stamp(pixels[..., :3]) == number - 1001
        mid = ((deep[number] > 32 * 257) & (deep[number] < 65535 - 32 * 257)).all(axis=2)  # the mark never clips
        outside = (pixels[..., 3] == 0) & mid
        change = pixels[..., :3].astype(np.int32) - deep[number]
        assert outside.mean() > 0.3 and np.all(change[outside] % 257 == 0)  # only the mark, whole 8-bit steps
    code, verdicts = _verify(capsys, trained_workspace, written[0])
    assert code == 0 and verdicts[0]["detection"]["token"] is not None


@pytest.mark.slow
def test_exr_plate_in_keeps_its_precision_out(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    colour = Colour()
    plate = tmp_path / "plate"
    plate.mkdir()
    rng = np.random.default_rng(5)
    linear = {}
    for number, f in enumerate(iter_video_frames(files["demo-b"].clip, limit=6), start=1001):
        dither = rng.uniform(-0.45, 0.45, f.image.shape).astype(np.float32)  # detail between 8-bit steps
        srgb = (f.image.astype(np.float32) + dither) / 255
        linear[number] = colour.convert(srgb, colour.srgb, colour.linear).astype(np.float16)
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": linear[number][..., ::-1].copy()}).write(
            str(plate / f"plate.{number}.exr")
        )
    out = tmp_path / "comp"
    assert _convert(trained_workspace, plate, out, "--sequence", "exr", "--alpha") == 0
    report = _json(capsys)
    assert report["frames"] == 6 and report["frames_swapped"] >= 3
    for number, original in linear.items():
        written = read_exr(out / f"comp.{number}.exr")
        outside = written.alpha == 0
        shown_in = colour.convert(original.astype(np.float32), colour.linear, colour.srgb) * 255
        shown_out = colour.convert(written.pixels, colour.linear, colour.srgb) * 255
        step = (shown_out - shown_in)[outside]
        assert outside.mean() > 0.5
        # outside the matte only the mark moved pixels, by whole 8-bit display steps; an 8-bit round
        # trip would have thrown the sub-step detail away (steps off by up to 0.45)
        assert np.percentile(np.abs(step - np.rint(step)), 99) < 0.1


def test_bad_vfx_requests_are_one_line_errors(trained_workspace, demo_subjects, tmp_path, capsys):
    files, _ = demo_subjects
    clip = files["demo-b"].clip
    cases = [
        (("--sequence", "exr", "--bits", "16"), "half float"),
        (("--sequence", "png", "--codec", "prores4444"), "--codec is for video"),
        (("--alpha",), "--alpha needs"),
        (("--codec", "prores422hq", "--alpha"), "--alpha needs"),
        (("--frames", "30-10"), "--frames"),
        (("--sequence", "exr", "--output-colorspace", "No Such Space"), "not in OpenColorIO config"),
        (("--ocio", str(tmp_path / "missing.ocio")), "no such OpenColorIO config"),
        (("--frames", "500-600"), "has frames 0-"),
    ]
    for extra, message in cases:
        assert _convert(trained_workspace, clip, tmp_path / "x.mov", *extra) == 2, extra
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faceswap: error:")]
        assert len(err) == 1 and message in err[0], (extra, err)
    assert not list(tmp_path.glob("x*"))
