"""Hostile variants of every format faceswap reads, fed to the four commands that read files from
others: `verify`, `faces detect`, `extract` and `convert`. Never a traceback, never a hang, and an
answer each command may give for that variant:

- a variant that is empty, cut inside its header, or whose header declares more than any default
  limit allows (a 60000x60000 frame, a billion frames or seconds) is refused: exit 2, one line;
- a file grown (sparse) to 3 GiB is refused by verify, which reads whole what it checks; an operator's
  command refuses it when it is an image (read whole) and reads a video as the stream it still is;
- any other cut or bit-flipped variant may still decode, and then gets the answer a decodable file
  gets: verify 1 (not marked), or for a marked original also 0 or 3 (its Content Credentials no
  longer match); faces detect 0; extract 1 (no face of the subject) and convert 1 (no face of
  subject B); or 2 when it no longer decodes.

Variants are made from a seed (the format, the kind and the index), so every run feeds the same
bytes. The fast run feeds each command a share of the variants (see VERIFY_KINDS and below); the
slow run (`-m slow`) every kind and three more seeds of each damage to every command.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR
import pytest
from hostile_media import declaring_huge, flat_video

from faceswap.cli import main

IMAGE_ORIGINALS = ("png8", "png16", "png-grey-alpha", "jpeg", "tiff16", "tiff-float", "webp", "bmp", "gif", "exr")
VIDEO_ORIGINALS = ("mp4-h264", "mov-prores", "mkv-h264")
SIGNED_ORIGINALS = ("c2pa-png", "c2pa-mp4")
ORIGINALS = (*IMAGE_ORIGINALS, *VIDEO_ORIGINALS, *SIGNED_ORIGINALS, "sequence")
DETECTABLE = (*IMAGE_ORIGINALS, "c2pa-png")  # faces detect takes an image (a video is refused by format)
REFUSED_KINDS = ("empty", "cut-header", "declares-huge")
DAMAGED = ("cut", "flip-header", "flip-body")
# the fast run: verify every original in four ways, faces detect every image in two; extract and convert
# every original once, the kinds taken in turn (the readers they share are exercised by all of them);
# the kinds refused for their size alone on one image and one video
VERIFY_KINDS = ("declares-huge", "cut-0", "flip-header-0", "flip-body-0")
DETECT_KINDS = ("declares-huge", "flip-body-0")
IN_TURN = ("declares-huge", "cut-0", "flip-header-0", "flip-body-0")
TRIVIAL_KINDS = ("empty", "cut-header", "sparse-3GiB")
# the slow run: every kind and three more seeds of each damage, for every command
SLOW_KINDS = (*TRIVIAL_KINDS, *(f"{kind}-{i}" for i in (1, 2, 3) for kind in DAMAGED))
SLOW_OPERATOR_KINDS = ("empty", "sparse-3GiB", *(f"{kind}-1" for kind in DAMAGED))


def _noise(height: int, width: int, seed: int = 7) -> np.ndarray:
    """Smooth noise: compresses like a photo, not like a flat card."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _image_original(name: str, folder: Path) -> Path:
    rgb = _noise(72, 96)
    if name == "exr":
        path = folder / "plate.exr"
        planes = {c: (rgb[..., i].astype(np.float16) / 255) for i, c in enumerate("BGR")}
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, planes).write(str(path))
        return path
    pixels, suffix = {
        "png8": (rgb, ".png"),
        "png16": (rgb.astype(np.uint16) * 257, ".png"),
        "png-grey-alpha": (np.dstack([rgb[..., 0]] * 3 + [rgb[..., 1]]), ".png"),
        "jpeg": (rgb, ".jpg"),
        "tiff16": (rgb.astype(np.uint16) * 257, ".tif"),
        "tiff-float": (rgb.astype(np.float32) / 255, ".tif"),
        "webp": (rgb, ".webp"),
        "bmp": (rgb, ".bmp"),
        "gif": (rgb, ".gif"),
    }[name]
    path = folder / f"{name}{suffix}"
    assert cv2.imwrite(str(path), pixels)
    return path


def _video_original(name: str, folder: Path) -> Path:
    if name == "mov-prores":
        return flat_video(folder / "clip.mov", 96, 72, 4, codec="prores_ks", pix_fmt="yuv422p10le")
    path = folder / ("clip.mkv" if name == "mkv-h264" else "clip.mp4")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.roll(_noise(72, 96), 3 * i, axis=1), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _signed_originals(folder: Path, registered_template: Path) -> dict[str, Path]:
    """A marked PNG and MP4 with Content Credentials, written by the project's own sink."""
    from faceswap.ledger import open_ledger
    from faceswap.media import iter_video_frames
    from faceswap.provenance.output.sink import OutputContext, OutputSink, SinkFrame
    from faceswap.workspace import Workspace

    root = folder / "signed-ws"
    shutil.copytree(registered_template, root)
    ledger = open_ledger(Workspace(root))
    sink = OutputSink.for_workspace(Workspace(root), ledger)
    context = OutputContext("test", model_fingerprint="cd" * 32, consent_record_ids=())
    image = sink.write_image(folder / "signed.png", _noise(360, 640), context).path
    source = flat_video(folder / "source.mp4", 320, 256, 4)
    frames = (SinkFrame(np.ascontiguousarray(f.image), f.pts, f.time_base) for f in iter_video_frames(source))
    video = sink.write_video(folder / "signed.mp4", frames, Fraction(25), context).path
    return {"c2pa-png": image, "c2pa-mp4": video, "workspace": root}


@pytest.fixture(scope="module")
def originals(tmp_path_factory, registered_template) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("originals")
    found = {name: _image_original(name, folder) for name in IMAGE_ORIGINALS}
    found.update({name: _video_original(name, folder) for name in VIDEO_ORIGINALS})
    found.update(_signed_originals(folder, registered_template))
    sequence = folder / "sequence"
    sequence.mkdir()
    for number in range(1, 4):
        cv2.imwrite(str(sequence / f"plate.{number:04d}.png"), _noise(72, 96, seed=number))
    found["sequence"] = sequence
    return found


# variants


def _rng(*parts: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big"))


def variant_bytes(data: bytes, name: str, kind: str) -> bytes:
    """The bytes of variant `kind` of `data`, the same on every run."""
    rng = _rng(name, kind)
    if kind == "empty":
        return b""
    if kind == "cut-header":
        return data[:12]
    if kind == "declares-huge":
        return declaring_huge(data)
    if kind.startswith("cut-"):
        return data[: int(len(data) * rng.uniform(0.05, 0.95))]
    raw = bytearray(data)
    span = min(len(raw), 256) if kind.startswith("flip-header") else len(raw)
    for position in rng.integers(0, span * 8, size=4 if kind.startswith("flip-header") else 16):
        raw[position // 8] ^= 1 << (position % 8)
    return bytes(raw)


def make_variant(original: Path, name: str, kind: str, folder: Path) -> Path:
    """The variant as a file (or, for a sequence, a copy whose middle frame is the variant)."""
    if original.is_dir():
        target = folder / f"{kind}-{original.name}"
        if not target.exists():  # verify, then extract and convert, read the same variant
            shutil.copytree(original, target)
            frame = sorted(target.iterdir())[1]
            _write_variant(frame, frame.read_bytes(), name, kind)
        return target
    target = folder / f"{kind}-{original.name}"
    _write_variant(target, original.read_bytes(), name, kind)
    return target


def _write_variant(target: Path, data: bytes, name: str, kind: str) -> None:
    if kind == "sparse-3GiB":
        target.write_bytes(data)
        with open(target, "r+b") as handle:
            handle.truncate(3 << 30)
        return
    target.write_bytes(variant_bytes(data, name, kind))


# what each command may answer


@dataclass(frozen=True)
class Case:
    name: str
    kind: str

    @property
    def video(self) -> bool:
        return self.name in VIDEO_ORIGINALS or self.name == "c2pa-mp4"

    @property
    def must_refuse(self) -> bool:
        return self.kind in REFUSED_KINDS

    def allowed(self, command: str) -> set[int]:
        if self.must_refuse:
            return {2}
        if self.kind == "sparse-3GiB" and (command == "verify" or not self.video):
            return {2}
        if command == "faces detect":
            return {2} if self.video or self.name == "sequence" else {0, 2}
        if command == "verify":
            return {0, 1, 2, 3} if self.name in SIGNED_ORIGINALS else {1, 2}
        return {1, 2}  # extract / convert: nothing of the subject in these files, or unreadable


def _cases(kinds: tuple[str, ...], names: tuple[str, ...] = ORIGINALS) -> list:
    return [pytest.param(Case(n, k), id=f"{n}-{k}") for n in names for k in kinds]


def _in_turn(offset: int) -> list:
    """Every original once, its kind taken in turn from IN_TURN (shifted by `offset`)."""
    chosen = [Case(n, IN_TURN[(i + offset) % len(IN_TURN)]) for i, n in enumerate(ORIGINALS)]
    return [pytest.param(c, id=f"{c.name}-{c.kind}") for c in chosen]


def _check(code: int, case: Case, command: str, out: str, err: str) -> None:
    assert code in case.allowed(command), f"{command} {case}: exit {code}\n{out[-1500:]}\n{err[-1500:]}"
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2 and command != "verify":
        assert len(err.strip().splitlines()) == 1, err
    if case.kind == "declares-huge" and not (command == "faces detect" and case.video):
        assert "raise it with --max-" in out + err, f"{command} {case}: {out}{err}"


def run_verify(case: Case, originals, tmp_path, capsys) -> None:
    path = make_variant(originals[case.name], case.name, case.kind, tmp_path)
    code = main(["--workspace", str(originals["workspace"]), "verify", str(path)])
    out, err = capsys.readouterr()
    _check(code, case, "verify", out, err)
    lines = out.strip().splitlines()
    files = 3 if case.name == "sequence" else 1
    assert len(lines) >= files and all(": " in line for line in lines[:files]), out


def run_detect(case: Case, originals, tmp_path, capsys) -> None:
    original = originals[case.name]
    image = sorted(original.iterdir())[1] if original.is_dir() else original
    path = make_variant(image, case.name, case.kind, tmp_path)
    code = main(["faces", "detect", str(path), "--backend", "dlib"])
    out, err = capsys.readouterr()
    _check(code, case, "faces detect", out, err)


@pytest.mark.timeout(120, func_only=True)
@pytest.mark.parametrize("case", _cases(VERIFY_KINDS) + _cases(TRIVIAL_KINDS, ("png8", "mp4-h264", "sequence")))
def test_verify_answers_every_variant(case, originals, tmp_path, capsys):
    run_verify(case, originals, tmp_path, capsys)


@pytest.mark.timeout(120, func_only=True)
@pytest.mark.parametrize("case", _cases(DETECT_KINDS, DETECTABLE) + _cases(TRIVIAL_KINDS, ("jpeg", "mp4-h264")))
def test_faces_detect_answers_every_variant(case, originals, tmp_path, capsys):
    run_detect(case, originals, tmp_path, capsys)


@pytest.fixture(scope="module")
def extract_workspace(tmp_path_factory, registered_template) -> Path:
    root = tmp_path_factory.mktemp("fuzz-extract") / "ws"
    shutil.copytree(registered_template, root)
    return root


@pytest.fixture(scope="module")
def convert_workspace(tmp_path_factory, trained_template) -> Path:
    root = tmp_path_factory.mktemp("fuzz-convert") / "ws"
    shutil.copytree(trained_template, root)
    return root


def run_extract(case: Case, originals, workspace: Path, tmp_path, capsys) -> None:
    path = make_variant(originals[case.name], case.name, case.kind, tmp_path)
    code = main(["--workspace", str(workspace), "extract", str(path), "--subject", "astro", "--json"])
    out, err = capsys.readouterr()
    _check(code, case, "extract", out, err)


def run_convert(case: Case, originals, workspace: Path, tmp_path, capsys) -> None:
    path = make_variant(originals[case.name], case.name, case.kind, tmp_path)
    suffix = ".mp4" if case.video or case.name == "sequence" else ".png"
    output = tmp_path / f"out{suffix}"
    args = ["--workspace", str(workspace), "convert", "--model", str(workspace / "models" / "tiny")]
    code = main([*args, "--input", str(path), "--output", str(output), "--backend", "dlib", "--json"])
    out, err = capsys.readouterr()
    _check(code, case, "convert", out, err)
    assert not output.exists(), "nothing of subject B in the input, so nothing may be written"


@pytest.mark.timeout(180, func_only=True)
@pytest.mark.parametrize("case", _in_turn(0))
def test_extract_answers_every_variant(case, originals, extract_workspace, tmp_path, capsys):
    run_extract(case, originals, extract_workspace, tmp_path, capsys)


@pytest.mark.timeout(180, func_only=True)
@pytest.mark.parametrize("case", _in_turn(1))
def test_convert_answers_every_variant(case, originals, convert_workspace, tmp_path, capsys):
    run_convert(case, originals, convert_workspace, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.timeout(1800, func_only=True)
@pytest.mark.parametrize("name", ORIGINALS)
def test_more_variants_for_every_command(name, originals, extract_workspace, convert_workspace, tmp_path, capsys):
    for kind in SLOW_KINDS:
        case = Case(name, kind)
        folder = tmp_path / kind
        folder.mkdir()
        run_verify(case, originals, folder, capsys)
        if name in DETECTABLE:
            run_detect(case, originals, folder, capsys)
        if kind in SLOW_OPERATOR_KINDS:
            run_extract(case, originals, extract_workspace, folder, capsys)
            run_convert(case, originals, convert_workspace, folder, capsys)


def test_variants_are_the_same_bytes_on_every_run(originals):
    data = originals["jpeg"].read_bytes()
    assert variant_bytes(data, "jpeg", "flip-body-0") == variant_bytes(data, "jpeg", "flip-body-0")
    assert variant_bytes(data, "jpeg", "flip-body-0") != variant_bytes(data, "jpeg", "flip-body-1")
