"""Watermark benchmark: what sharing does to a video (issue 12), new scheme beside the old, on natural content.

    PYTHONPATH=. .venv/bin/python scripts/bench_watermark.py [--quick] [--out bench-results]
        [--clips N] [--unmarked N] [--only NAME,NAME] [--old-clips N] [--no-speed] [--adversary-only]

Content stands for conversion outputs: clips of the demo's synthetic subjects (640x480; each face is
marked at paste-back as convert does, through the aligned crop and a landmark mask, then the frame
gets the sink's mark) and slow pans over real photos that packages ship (1280x720; insightface's group
photo, scikit-image's astronaut, ...). Each clip is marked with scheme 2 (tiles + face layer) and with
scheme 1 (rivaGan sync + dwtDctSvd token), written as the sink writes (H.264 CRF 18), put through each
attack of the issue's table and read back the way `faceswap verify` reads a file (read_sample, then
one decision per file). "traced" counts files whose token was read, or that were detected and whose
perceptual hash matches the output's (the ledger's fallback). Unmarked set: photos with faces,
their crops/rescales/flips/JPEG copies and frames of unmarked clips. Speed: both schemes in the same
run. Prints markdown tables and writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import face_layer as facemark
import numpy as np
import watermark_attacks as attacks_lib
from bench_pictures import fill, jpeg, photo

from faceswap.provenance import binding
from faceswap.provenance.phash import MATCH_DISTANCE, best_distance, phash
from faceswap.provenance.verify.verifier import Verifier, read_sample
from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import FALSE_POSITIVE_BOUND, Watermarker, format_token, new_token

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration otherwise

PAN_PHOTOS = ["t1", "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
STILLS = [
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "brick.png", "grass.png", "gravel.png",
    "moon.png", "page.png", "coins.png", "color.png", "cell.png", "microaneurysms.png", "text.png", "horse.png",
    "clock_motion.png", "logo.png", "phantom.png",
]  # fmt: skip
SCENES = {
    "t1",
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "camera.png",
}
FPS = 25
PAN_SIZES = ((1280, 720), (1920, 1080))  # photo pans alternate between 720p and 1080p
FACE_CROP = 128  # the swap model's resolution the bench simulates


# ---------------------------------------------------------------- content


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]
    faces: list[list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)  # per frame: (kps5, 68 lms)


def pan_clip(name: str, count: int, size=(1280, 720)) -> Clip:
    """A slow pan and zoom over a photo: natural content that moves under a fixed mark."""
    w, h = size
    base = fill(photo(name), (int(w * 1.25), int(h * 1.25)))
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        zoom = 1.0 + 0.08 * t
        cw, ch = int(w * 1.2 / zoom), int(h * 1.2 / zoom)
        x, y = int((base.shape[1] - cw) * t), int((base.shape[0] - ch) * (0.3 + 0.4 * t))
        frames.append(cv2.resize(base[y : y + ch, x : x + cw], size, interpolation=cv2.INTER_AREA))
    return Clip(f"pan:{name.split('.')[0]}@{size[1]}p", frames)


def demo_clips(count: int, frames: int) -> list[Clip]:
    """Synthetic demo subjects (with a bystander part of the time) and the landmarks they were drawn with."""
    from faceswap.demo.clip import backdrop
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import SIZE, pose_at, render_frame
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.faces.dlib_backend import kps5_from_68

    identities, _ = build_identities(FaceAnalyzer("dlib"))
    by_name = {i.name: i for i in identities}
    clips = []
    for k in range(count):
        subject, seed, side = (("demo-a", 1, 0.82), ("demo-b", 2, 0.14))[k % 2]
        start = 2.0 * (k // 2)
        clip = Clip(f"demo:{subject}@{start:.0f}s", [])
        base = backdrop(*SIZE, seed=seed)
        for i in range(frames):
            t = start + i / FPS
            bystander = by_name["bystander"] if (i // 25) % 2 == 1 else None
            image, drawn, _ = render_frame(by_name[subject], bystander, pose_at(t, seed), t, base, side)
            clip.frames.append(image)
            clip.faces.append([(kps5_from_68(drawn["landmarks"]), drawn["landmarks"])])
        clips.append(clip)
    return clips


# ---------------------------------------------------------------- marking (what convert + the sink do)


def paste_face_mark(frame: np.ndarray, kps5: np.ndarray, landmarks: np.ndarray, token: int) -> np.ndarray:
    """Convert's paste-back with the face layer: align, mark the crop, paste through the landmark mask."""
    from faceswap.faces.align import alignment_matrix, paste_back, transform_points
    from faceswap.faces.masks import landmark_mask

    matrix = alignment_matrix(kps5, FACE_CROP)
    crop = cv2.warpAffine(frame, matrix, (FACE_CROP, FACE_CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    marked = facemark.mark_face_crop(crop, token)
    lms, kps = transform_points(landmarks, matrix), transform_points(kps5, matrix)
    mask = landmark_mask(lms, "68", kps, "full", (FACE_CROP, FACE_CROP))
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((5, 5), np.uint8)), (0, 0), FACE_CROP * 0.02)
    return paste_back(frame, marked, matrix, mask)


def mark_clip(clip: Clip, token: int, wm: Watermarker) -> list[np.ndarray]:
    frames = clip.frames
    if wm.scheme == 2 and clip.faces:
        frames = [with_face_marks(f, faces, token) for f, faces in zip(frames, clip.faces, strict=True)]
    out = []
    for i in range(0, len(frames), 8):
        out += wm.embed(frames[i : i + 8], token)
    return out


def with_face_marks(frame: np.ndarray, faces, token: int) -> np.ndarray:
    for kps5, landmarks in faces:
        frame = paste_face_mark(frame, kps5, landmarks, token)
    return frame


# ---------------------------------------------------------------- files


CODEC_OPTIONS = {
    "libx264": lambda crf: {"crf": str(crf), "preset": "medium"},
    "libx265": lambda crf: {"crf": str(crf), "preset": "fast", "x265-params": "log-level=none"},
    "libvpx-vp9": lambda crf: {"crf": str(crf), "b": "0", "cpu-used": "5", "row-mt": "1", "deadline": "good"},
    "libsvtav1": lambda crf: {"crf": str(crf), "preset": "8"},
}


def write_video(path: Path, frames: list[np.ndarray], fps: float, codec: str = "libx264", crf: int = 18) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.options = CODEC_OPTIONS[codec](crf)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: h - h % 2, : w - w % 2]), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 1) / Fraction(fps).limit_denominator(1001)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as src:
        return [f.to_ndarray(format="bgr24") for f in src.decode(src.streams.video[0])]


# ---------------------------------------------------------------- attacks


Frames = list[np.ndarray]


@dataclass(frozen=True)
class Attack:
    category: str
    name: str
    transform: Callable[[Frames], Frames]  # on the decoded output's frames
    codec: tuple[str, int] | None = ("libx264", 23)  # re-encode; None: screenshot (JPEG file)
    fps: Callable[[float], float] = lambda fps: fps
    quick: bool = False  # part of --quick
    applies: Callable[[tuple[int, ...]], bool] = lambda shape: True  # to a clip of this frame shape


def per_frame(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Frames], Frames]:
    return lambda frames: [fn(f) for f in frames]


def to_height(h: int) -> Callable[[np.ndarray], np.ndarray]:
    def scale(f: np.ndarray) -> np.ndarray:
        w = int(round(f.shape[1] * h / f.shape[0] / 2)) * 2
        return cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if h < f.shape[0] else cv2.INTER_CUBIC)

    return scale


def down_up(h: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: cv2.resize(to_height(h)(f), (f.shape[1], f.shape[0]), interpolation=cv2.INTER_CUBIC)


def crop(area: float, where: tuple[float, float] = (0.75, 0.3)) -> Callable[[np.ndarray], np.ndarray]:
    """Keep `area` of the frame, same aspect, off-centre (share of the free margin left/top)."""

    def cut(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        k = np.sqrt(area)
        ch, cw = int(h * k) // 2 * 2, int(w * k) // 2 * 2
        y, x = int((h - ch) * where[1]), int((w - cw) * where[0])
        return np.ascontiguousarray(f[y : y + ch, x : x + cw])

    return cut


def letterbox_vertical(f: np.ndarray) -> np.ndarray:
    """Fitted into a vertical 9:16 canvas as wide as the frame's short side: bars top and bottom."""
    h, w = f.shape[:2]
    cw = min(h, w) // 2 * 2
    ch = int(cw * 16 / 9) // 2 * 2
    scale = min(cw / w, ch / h)
    nw, nh = int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2
    canvas = np.zeros((ch, cw, 3), np.uint8)
    y, x = (ch - nh) // 2, (cw - nw) // 2
    canvas[y : y + nh, x : x + nw] = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA)
    return canvas


def pillarbox(f: np.ndarray) -> np.ndarray:
    h, w = f.shape[:2]
    side = int(w * 0.25) // 2 * 2
    return cv2.copyMakeBorder(f, 0, 0, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def canvas(f: np.ndarray) -> np.ndarray:
    h, w = f.shape[:2]
    return cv2.copyMakeBorder(f, h // 10, h // 6, w // 5, w // 12, cv2.BORDER_CONSTANT, value=(235, 235, 235))


def rotate(degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    """Turned about the centre and zoomed just enough to fill the frame (what straightening tools do)."""

    def turn(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        t = np.radians(abs(degrees))
        zoom = max((w * np.cos(t) + h * np.sin(t)) / w, (w * np.sin(t) + h * np.cos(t)) / h)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, zoom)
        return cv2.warpAffine(f, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    return turn


ASPECTS = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0}


def shown_as(aspect: str) -> Callable[[np.ndarray], np.ndarray]:
    """Stretched or squashed to another aspect ratio, height kept (a player or an upload set to 16:9)."""

    def reshape(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        width = int(round(h * ASPECTS[aspect] / 2)) * 2
        return cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_CUBIC)

    return reshape


def other_aspect(aspect: str) -> Callable[[tuple[int, ...]], bool]:
    return lambda shape: abs(shape[1] / shape[0] - ASPECTS[aspect]) > 0.02


def tone(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: np.clip(fn(f.astype(np.float32)), 0, 255).astype(np.uint8)


def saturation(f: np.ndarray, k: float) -> np.ndarray:
    grey = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None].astype(np.float32)
    return np.clip(grey + (f.astype(np.float32) - grey) * k, 0, 255).astype(np.uint8)


def retime(src_fps: float, dst_fps: float) -> Callable[[Frames], Frames]:
    def pick(frames: Frames) -> Frames:
        n = int(len(frames) * dst_fps / src_fps)
        return [frames[min(len(frames) - 1, int(i * src_fps / dst_fps))] for i in range(n)]

    return pick


def excerpt(seconds: float) -> Callable[[Frames], Frames]:
    def middle(frames: Frames) -> Frames:
        n = min(len(frames), int(seconds * FPS))
        start = (len(frames) - n) // 2
        return frames[start : start + n]

    return middle


def screenshot(quality: int, half: bool = False) -> Callable[[Frames], Frames]:
    def shot(frames: Frames) -> Frames:
        f = frames[len(frames) // 2]
        if half:
            f = cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return [jpeg(f, quality)]

    return shot


def attacks() -> list[Attack]:
    av1 = "libsvtav1" in av.codecs_available
    out = [
        Attack("none", "as written (H.264 CRF 18)", lambda f: f, None, quick=True),
        Attack("codecs", "H.264 CRF 23", lambda f: f, ("libx264", 23), quick=True),
        Attack("codecs", "H.264 CRF 28", lambda f: f, ("libx264", 28)),
        Attack("codecs", "H.264 CRF 32", lambda f: f, ("libx264", 32), quick=True),
        Attack("codecs", "H.265 CRF 28", lambda f: f, ("libx265", 28)),
        Attack("codecs", "VP9 CRF 40", lambda f: f, ("libvpx-vp9", 40), quick=True),
    ]
    if av1:
        out.append(Attack("codecs", "AV1 (SVT) CRF 35", lambda f: f, ("libsvtav1", 35)))
    out += [
        Attack("renditions", "720p", per_frame(to_height(720))),
        Attack("renditions", "480p", per_frame(to_height(480))),
        Attack("renditions", "360p", per_frame(to_height(360)), quick=True),
        Attack("renditions", "360p and back up", per_frame(down_up(360))),
        Attack("crops", "keep 90% area", per_frame(crop(0.9))),
        Attack("crops", "keep 70% area", per_frame(crop(0.7))),
        Attack("crops", "keep 50% area", per_frame(crop(0.5, (0.2, 0.8))), quick=True),
        Attack("crops", "50% crop + 480p + CRF 28", per_frame(lambda f: to_height(480)(crop(0.5)(f))), ("libx264", 28)),
        Attack("borders", "letterbox (9:16 canvas)", per_frame(letterbox_vertical), quick=True),
        Attack("borders", "pillarbox", per_frame(pillarbox)),
        Attack("borders", "on a larger canvas", per_frame(canvas)),
        Attack("mirror", "horizontal flip", per_frame(lambda f: np.ascontiguousarray(f[:, ::-1])), quick=True),
        Attack("geometry", "rotate +2 deg", per_frame(rotate(2.0))),
        Attack("geometry", "rotate -2 deg", per_frame(rotate(-2.0))),
        Attack("geometry", "rotate +5 deg", per_frame(rotate(5.0)), quick=True),
        Attack("geometry", "rotate -5 deg", per_frame(rotate(-5.0))),
        *(
            Attack("geometry", f"shown as {a}", per_frame(shown_as(a)), quick=a == "16:9", applies=other_aspect(a))
            for a in ASPECTS
        ),
        Attack("time", "25 -> 30 fps", retime(25, 30), fps=lambda _: 30.0),
        Attack("time", "30 -> 24 fps", retime(30, 24), fps=lambda _: 24.0, quick=True),
        Attack("time", "2 s excerpt (middle)", excerpt(2.0)),
        Attack("tone", "brightness +20", per_frame(tone(lambda f: f + 20))),
        Attack("tone", "brightness -20", per_frame(tone(lambda f: f - 20)), quick=True),
        Attack("tone", "contrast 0.8", per_frame(tone(lambda f: (f - 128) * 0.8 + 128))),
        Attack("tone", "contrast 1.2", per_frame(tone(lambda f: (f - 128) * 1.2 + 128))),
        Attack("tone", "gamma 0.8", per_frame(tone(lambda f: 255 * (f / 255) ** 0.8))),
        Attack("tone", "gamma 1.25", per_frame(tone(lambda f: 255 * (f / 255) ** 1.25))),
        Attack("tone", "saturation 0.5", per_frame(lambda f: saturation(f, 0.5))),
        Attack("screenshots", "frame as JPEG 90", screenshot(90), None),
        Attack("screenshots", "frame as JPEG 75", screenshot(75), None),
        Attack("screenshots", "frame as JPEG 60", screenshot(60), None, quick=True),
        Attack("screenshots", "half size, JPEG 90", screenshot(90, True), None),
        Attack("screenshots", "half size, JPEG 60", screenshot(60, True), None, quick=True),
    ]
    return out


# ---------------------------------------------------------------- robustness


@dataclass
class Cell:
    n: int = 0
    detected: int = 0
    token: int = 0
    traced: int = 0
    z: list[float] = field(default_factory=list)
    corrected_bits: list[int] = field(default_factory=list)  # scheme 2 tokens: code bits turned round, of 160
    face_z: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, found, token_ok: bool, traced: bool, z: float | None, seconds: float) -> None:
        self.n += 1
        self.detected += int(found.marked)
        self.token += int(token_ok)
        self.traced += int(traced)
        if z is not None:
            self.z.append(round(z, 2))
        if token_ok and found.token_corrected_bits is not None:
            self.corrected_bits.append(found.token_corrected_bits)
        self.seconds += seconds


def attacked_file(attack: Attack, output: Path, workdir: Path) -> Path:
    frames = decode_all(output)
    changed = attack.transform(frames)
    if attack.codec is None:
        path = workdir / "attacked.png"  # the JPEG damage is already in the pixels
        cv2.imwrite(str(path), changed[0])
        return path
    codec, crf = attack.codec
    suffix = ".webm" if codec == "libvpx-vp9" else ".mp4"
    return write_video(workdir / f"attacked{suffix}", changed, attack.fps(FPS), codec, crf)


def tiles_z(detection) -> float | None:
    """The strongest tiles read (all frames, or a video's intra frames)."""
    return max((e.score for e in detection.layers if e.layer == "tiles"), default=None)


def bench_robustness(
    clips: list[Clip], chosen: list[Attack], schemes: dict[int, Watermarker], workdir: Path, faces, old_clips: int
):
    cells: dict[tuple[int, str], Cell] = {}
    quality: dict[int, dict[str, list[float]]] = {s: {"psnr": [], "ssim": []} for s in schemes}
    from skimage.metrics import structural_similarity

    for index, clip in enumerate(clips):
        for scheme, wm in schemes.items():
            if scheme == 1 and index >= old_clips:
                continue
            token = new_token()
            marked = mark_clip(clip, token, wm)
            quality[scheme]["psnr"].append(
                float(np.mean([cv2.PSNR(a, b) for a, b in zip(clip.frames, marked, strict=True)]))
            )
            quality[scheme]["ssim"].append(
                float(structural_similarity(clip.frames[0], marked[0], channel_axis=2, data_range=255))
            )
            output = write_video(workdir / f"output-{scheme}.mp4", marked, FPS)
            hashes = [phash(f) for f in marked[:: max(1, len(marked) // 16)]]
            for attack in (a for a in chosen if a.applies(clip.frames[0].shape)):
                path = attacked_file(attack, output, workdir)
                started = time.perf_counter()
                sample = read_sample(path)
                frames = sample.frames
                found = wm.detect(frames, intra=sample.intra)
                elapsed = time.perf_counter() - started
                token_ok = found.token == format_token(token)
                similar = best_distance([phash(f) for f in frames[:: max(1, len(frames) // 8)]], hashes)
                traced = token_ok or (found.marked and found.token is None and similar <= MATCH_DISTANCE)
                cell = cells.setdefault((scheme, attack.name), Cell())
                cell.add(found, token_ok, traced, tiles_z(found) if scheme == 2 else found.sync_agreement, elapsed)
                if scheme == 2 and clip.faces and faces is not None and attack.name in FACE_PROBES:
                    cell.face_z.append(round(facemark.read_faces(frames, faces, max_frames=8).z, 2))
            print(f"  {clip.name} scheme {scheme}: psnr {quality[scheme]['psnr'][-1]:.1f} dB", flush=True)
    return cells, {s: {k: round(float(np.mean(v)), 4) for k, v in q.items()} for s, q in quality.items()}


FACE_PROBES = {"as written (H.264 CRF 18)", "H.264 CRF 28", "keep 50% area", "horizontal flip", "360p"}


# ---------------------------------------------------------------- stills (many samples, no video codec)


STILL_ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "JPEG 60": lambda f: jpeg(f, 60),
    "half size, JPEG 60": lambda f: jpeg(
        cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA), 60
    ),
    "keep 50% area, JPEG 75": lambda f: jpeg(crop(0.5, (0.3, 0.7))(f), 75),
    "mirror, JPEG 75": lambda f: jpeg(np.ascontiguousarray(f[:, ::-1]), 75),
    "letterbox 9:16, JPEG 75": lambda f: jpeg(letterbox_vertical(f), 75),
    "rotate -5 deg, JPEG 75": lambda f: jpeg(rotate(-5.0)(f), 75),
    **{f"shown as {a}, JPEG 75": partial(lambda f, to: jpeg(shown_as(to)(f), 75), to=a) for a in ASPECTS},
    "gamma 1.25 + contrast 0.8, JPEG 75": lambda f: jpeg(
        tone(lambda x: ((255 * (x / 255) ** 1.25) - 128) * 0.8 + 128)(f), 75
    ),
}


def still_set(count: int) -> list[tuple[str, np.ndarray]]:
    """Photos (faces among them) at output sizes from 640x480 to 1920x1080, each a different view."""
    rng = np.random.default_rng(7)
    names = [n for n in ["t1", *STILLS] if _exists(n)]
    sizes = ((640, 480), (854, 480), (1280, 720), (1920, 1080), (720, 1280), (1080, 1080))
    out = []
    for i in range(count):
        name = names[i % len(names)]
        w, h = sizes[int(rng.integers(len(sizes)))]
        image = photo(name)
        zoom = float(rng.uniform(1.0, 1.6))
        view = fill(image, (int(w * zoom), int(h * zoom)))
        y, x = int(rng.integers(0, view.shape[0] - h + 1)), int(rng.integers(0, view.shape[1] - w + 1))
        out.append((f"{name}@{w}x{h}", np.ascontiguousarray(view[y : y + h, x : x + w])))
    return out


def bench_stills(wm: Watermarker, count: int) -> dict:
    """Each attack on every still; scenes and faces apart from textures, graphics and scientific images."""
    cells: dict[str, dict[str, Cell]] = {"scenes": {}, "other": {}}
    psnrs, misses = [], []
    for name, image in still_set(count):
        token = new_token()
        marked = wm.embed([image], token)[0]
        psnrs.append(cv2.PSNR(image, marked))
        group = "scenes" if name.split("@")[0] in SCENES else "other"
        for attack, fn in STILL_ATTACKS.items():
            if attack.startswith("shown as") and not other_aspect(attack.split()[2].rstrip(","))(image.shape):
                continue
            started = time.perf_counter()
            found = wm.detect([fn(marked)])
            ok = found.token == format_token(token)
            cells[group].setdefault(attack, Cell()).add(found, ok, ok, tiles_z(found), time.perf_counter() - started)
            if not ok:
                misses.append(f"{name}: {attack}")
    return {
        "stills": count,
        "psnr": round(float(np.mean(psnrs)), 2),
        "cells": {g: {k: v.__dict__ for k, v in c.items()} for g, c in cells.items()},
        "token_misses": misses,
    }


# ---------------------------------------------------------------- false positives


def unmarked_set(count: int, clips: list[Clip], workdir: Path) -> list[tuple[str, np.ndarray]]:
    """Photos with faces, other photos, their crops/rescales/flips/JPEGs, frames of unmarked clips."""
    import skimage

    from faceswap.faces.samples import insightface_t1, insightface_tom_hanks
    from faceswap.media import read_image

    rng = np.random.default_rng(2026)
    out: list[tuple[str, np.ndarray]] = []
    faces = Path(insightface_t1()).parent
    for path in sorted(faces.iterdir()):
        image = read_image(path)
        if path == insightface_tom_hanks():
            image = cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)
        out.append((f"insightface:{path.name}", image))
    lfw = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    for i, face in enumerate(lfw[: min(len(lfw), count // 10)]):
        grey = (np.clip(face, 0, 1) * 255).astype(np.uint8)
        out.append(
            (f"lfw:{i}", cv2.cvtColor(cv2.resize(grey, (128, 128), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR))
        )
    photos = [(name, photo(name)) for name in ["t1", *STILLS] if _exists(name)]
    out += [(f"photo:{n}", p) for n, p in photos]
    for clip in clips:
        path = write_video(workdir / "unmarked.mp4", clip.frames, FPS, "libx264", 23)
        out += [(f"frame:{clip.name}:{i}", f) for i, f in enumerate(decode_all(path)[::3])]
    while len(out) < count:
        name, image = photos[int(rng.integers(len(photos)))]
        scale = float(rng.uniform(0.5, 2.0))
        view = cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        )
        vh, vw = view.shape[:2]
        ch, cw = int(rng.integers(min(256, vh), vh + 1)), int(rng.integers(min(256, vw), vw + 1))
        y, x = int(rng.integers(0, vh - ch + 1)), int(rng.integers(0, vw - cw + 1))
        view = view[y : y + ch, x : x + cw]
        if view.shape[0] * view.shape[1] < 128 * 128:
            continue
        if rng.random() < 0.5:
            view = view[:, ::-1]
        if rng.random() < 0.4:
            view = jpeg(view, int(rng.integers(50, 95)))
        out.append((f"variant:{name}", np.ascontiguousarray(view)))
    return out[:count]


def _exists(name: str) -> bool:
    try:
        photo(name)
    except Exception:  # noqa: BLE001 - a sample image a package version does not ship
        return False
    return True


def bench_false_positives(wm: Watermarker, images: list[tuple[str, np.ndarray]], faces, face_images: int) -> dict:
    hits, tokens, z_max, worst = 0, 0, 0.0, ""
    started = time.perf_counter()
    for name, image in images:
        found = wm.detect([image])
        hits += int(found.marked)
        tokens += int(found.token is not None)
        z = tiles_z(found) or 0.0
        if z > z_max:
            z_max, worst = z, name
    seconds = time.perf_counter() - started
    face_hits, face_z, face_read = 0, 0.0, 0
    if faces is not None:
        with_faces = [im for n, im in images if n.startswith(("insightface", "photo:t1", "photo:astro", "frame:demo"))]
        for image in with_faces[:face_images]:
            read = facemark.read_faces([image], faces)
            if read.tries:
                face_read += 1
                face_hits += int(read.detected)
                face_z = max(face_z, read.z)
    return {
        "images": len(images),
        "false_positives": hits,
        "false_tokens": tokens,
        "tiles_z_max": round(z_max, 2),
        "tiles_z_max_image": worst,
        "seconds_per_image": round(seconds / max(len(images), 1), 3),
        "face_layer_images": face_read,
        "face_layer_false_positives": face_hits,
        "face_layer_z_max": round(face_z, 2),
    }


# ---------------------------------------------------------------- adversary: forgery, copy, removal (issue 22)


ADVERSARY_ONLY = "(no sharing attack)"  # an --only that names no sharing attack
COLLUDERS = 20  # other outputs of the same workspace that a collusion attack averages
FOLD_STRENGTHS = (0.7, 1.0, 1.5)


@dataclass
class Target:
    """One output an attacker holds: its frames as decoded from the file and the token it carries."""

    name: str
    frames: list[np.ndarray]
    token: int
    video: bool
    others: list[list[np.ndarray]] = field(default_factory=list)  # COLLUDERS other outputs, same size


@dataclass
class Outcome:
    n: int = 0
    traced: int = 0  # the target's token still read
    detected: int = 0
    psnr: list[float | None] = field(default_factory=list)

    def add(self, found, token: int, psnr: float) -> None:
        self.n += 1
        self.traced += int(found.token == format_token(token))
        self.detected += int(found.marked)
        self.psnr.append(round(psnr, 2) if np.isfinite(psnr) else None)  # None: the attack changed nothing


def removals() -> list[tuple[str, str, Callable[[list[np.ndarray], Target], list[np.ndarray]]]]:
    """(category, attack, fn(frames, target) -> attacked frames), weakest to strongest per family; an
    attack on "frames" runs on video targets only."""
    out = [
        ("blind", f"own residual averaged over frames, subtracted x{a}", partial(_averaged, alpha=a))
        for a in (1.0, 1.5, 2.0, 3.0)
    ]
    out += [("blind", f"denoise: {m}", partial(_denoised, method=m)) for m in attacks_lib.DENOISERS]
    out += [
        ("blind", f"own tiles folded on the public grid, subtracted x{a}", partial(_folded, alpha=a))
        for a in FOLD_STRENGTHS
    ]
    out += [("blind", f"random tile on the public grid added x{a}", partial(_jammed, alpha=a)) for a in (1.0, 1.5)]
    out += [
        ("collusion", f"{COLLUDERS} outputs' residuals averaged, subtracted x{a}", partial(_colluded, alpha=a))
        for a in (1.0, 2.0, 3.0)
    ]
    out += [
        ("collusion", f"{COLLUDERS} outputs folded on the public grid, subtracted x{a}", partial(_fold_20, alpha=a))
        for a in FOLD_STRENGTHS
    ]
    out.append(("exact", "public key's pattern for the token it reads, subtracted", _exact_public))
    return out


def _averaged(frames, target, alpha):
    return attacks_lib.average_and_subtract(frames, alpha)


def _denoised(frames, target, method):
    return attacks_lib.denoise(frames, method)


def _folded(frames, target, alpha):
    return attacks_lib.fold_subtract(frames, alpha)


def _jammed(frames, target, alpha):
    return attacks_lib.jam(frames, alpha)


def _colluded(frames, target, alpha):
    return attacks_lib.collusion(frames, target.others, alpha)


def _fold_20(frames, target, alpha):
    return attacks_lib.fold_subtract(frames, alpha, target.others)


def _exact_public(frames, target):
    """With the public key: read the token with it, compute its pattern, subtract. A file marked with a
    secret gives the public reader no token, so there is nothing to subtract."""
    token = Watermarker(key=tiles.KEY).detect(tiles.spread(frames, 16)).token
    return frames if token is None else attacks_lib.exact_removal(frames, tiles.KEY, int(token, 16))


def adversary_targets(wm: Watermarker, clips: list[Clip], stills: int, workdir: Path) -> list[Target]:
    """Outputs of one workspace (marked by `wm`) as an attacker downloads them: the given clips written
    as the sink writes them, and `stills` photos at 1280x720 (PNG), each with COLLUDERS other outputs of
    its size, marked by the same workspace."""
    targets = []
    for clip in clips:
        token = new_token()
        frames = decode_all(write_video(workdir / "target.mp4", mark_clip(clip, token, wm), FPS))
        targets.append(Target(clip.name, frames, token, True, colluding_videos(wm, frames[0].shape, workdir)))
    photos = still_set(stills + COLLUDERS)
    tokens = [new_token() for _ in photos]
    marked = [wm.embed([fill(im, (1280, 720))], t)[0] for (_, im), t in zip(photos, tokens, strict=True)]
    others = [[m] for m in marked[stills:]]
    for (name, _), m, token in list(zip(photos, marked, tokens, strict=True))[:stills]:
        targets.append(Target(f"still:{name.split('@')[0]}", [m], token, False, others))
    return targets


def colluding_videos(wm: Watermarker, shape: tuple[int, ...], workdir: Path, frames: int = 8) -> list[list[np.ndarray]]:
    """COLLUDERS short outputs of this frame size (pans over other photos), written and decoded."""
    names = [n for n in ["t1", *STILLS] if _exists(n)]
    size = (shape[1], shape[0])
    out = []
    for i in range(COLLUDERS):
        clip = pan_clip(names[i % len(names)], frames, size)
        path = write_video(workdir / "colluder.mp4", mark_clip(clip, new_token(), wm), FPS)
        out.append(decode_all(path))
    return out


def read_attacked(wm: Watermarker, frames: list[np.ndarray], video: bool, workdir: Path):
    """Written as the attacker would publish it (H.264 CRF 18, or a PNG) and read as `verify` reads."""
    if not video:
        return wm.detect(frames)
    sample = read_sample(write_video(workdir / "attacked.mp4", frames, FPS))
    return wm.detect(sample.frames, intra=sample.intra)


def bench_removal(schemes: dict[str, Watermarker], targets: dict[str, list[Target]], workdir: Path) -> list[dict]:
    rows = []
    for category, name, fn in removals():
        row: dict = {"category": category, "attack": name}
        for label, wm in schemes.items():
            outcome = {"video": Outcome(), "still": Outcome()}
            for target in targets[label]:
                if "frames" in name and not target.video:
                    continue
                attacked = fn(target.frames, target)
                psnr = attacks_lib.psnr(attacked, target.frames)
                outcome["video" if target.video else "still"].add(
                    read_attacked(wm, attacked, target.video, workdir), target.token, psnr
                )
            row[label] = {k: v.__dict__ for k, v in outcome.items()}
        print(f"  {name}: " + ", ".join(f"{k} {_traced_text(row[k])}" for k in schemes), flush=True)
        rows.append(row)
    return rows


def _traced_text(cell: dict) -> str:
    parts = []
    for kind in ("video", "still"):
        c = cell[kind]
        if c["n"]:
            psnr = [p for p in c["psnr"] if p is not None]
            where = f"{min(psnr):.1f}-{max(psnr):.1f} dB" if psnr else "unchanged"
            parts.append(f"{kind} {c['traced']}/{c['n']} traced at {where}")
    return "; ".join(parts)


def recorded_binding(target: Target) -> dict:
    """What the sink's entry records of the target's pictures (its content binding's key frames)."""
    return binding.record(target.frames, "video" if target.video else "image")


def owns(label: str, record: dict, target: Target, picture: np.ndarray) -> bool:
    """Would `verify` credit the target's entry for `picture` once its token is read? A keyed mark's
    entry through its content binding; an old public mark's entry (which recorded no binding) only on a
    near copy of its own pictures, by perceptual hash."""
    if label == "new":
        return binding.check(record, [picture]).agrees
    own = [phash(f) for f in tiles.spread(target.frames, 8)]
    return best_distance([phash(picture)], own) <= MATCH_DISTANCE


def bench_forgery_and_copy(schemes: dict[str, Watermarker], targets: dict[str, list[Target]]) -> list[dict]:
    """Stamping a token with the public code on photos the workspace never made, and copying an output's
    mark (its averaged residual, or its tile folded on the public grid) onto them: is the token read,
    and would it credit its entry (the content binding agrees with what the entry recorded)?"""
    foreign = [fill(photo(n), (1280, 720)) for n in ("coffee.png", "rocket.jpg", "motorcycle_right.png", "camera.png")]
    records = {label: [recorded_binding(t) for t in targets[label]] for label in schemes}
    rows = []
    for name, make in (
        ("forgery: the token stamped with the public code and key", lambda t, p: attacks_lib.forge(p, t.token)),
        ("copy: an output's averaged residual added", lambda t, p: attacks_lib.copy_residual(t.frames, p)),
        ("copy: an output's tile, folded on the public grid, stamped", lambda t, p: attacks_lib.copy_tile(t.frames, p)),
    ):
        row: dict = {"attack": name}
        for label, wm in schemes.items():
            read, credited, n, psnrs = 0, 0, 0, []
            for target, record, picture in zip(targets[label], records[label], foreign, strict=False):
                size = (target.frames[0].shape[1], target.frames[0].shape[0])
                p = fill(picture, size)
                forged = make(target, p)
                psnrs.append(round(cv2.PSNR(forged, p), 2))
                token_read = wm.detect([forged]).token == format_token(target.token)
                read += int(token_read)
                credited += int(token_read and owns(label, record, target, forged))
                n += 1
            row[label] = {"n": n, "token_read": read, "credited": credited, "psnr": psnrs}
        rows.append(row)
        print(
            f"  {name}: "
            + ", ".join(
                f"{k} {row[k]['token_read']}/{row[k]['n']} read, {row[k]['credited']} credited" for k in schemes
            ),
            flush=True,
        )
    return rows


def adversary_report(args: argparse.Namespace, clips: list[Clip], workdir: Path) -> dict:
    """Old scheme (the first release's public key, marks as they were written) and new (a workspace
    secret, secrets.token_bytes(32)) in the same run, on the same content."""
    schemes = {"old": Watermarker(key=tiles.KEY), "new": Watermarker(key=secrets.token_bytes(32))}
    stills = args.adversary_stills if args.adversary_stills is not None else (2 if args.quick else 6)
    chosen = clips[: args.adversary_clips if args.adversary_clips is not None else (2 if args.quick else 3)]
    print(f"adversary: {len(chosen)} clips and {stills} stills per scheme, {COLLUDERS} colluders each", flush=True)
    targets = {label: adversary_targets(wm, chosen, stills, workdir) for label, wm in schemes.items()}
    return {
        "adversary_targets": [t.name for t in targets["new"]],
        "removal": bench_removal(schemes, targets, workdir),
        "forgery_copy": bench_forgery_and_copy(schemes, targets),
    }


# ---------------------------------------------------------------- speed


def timed(fn, repeat: int = 3) -> float:
    """Wall-clock ms per call (after one warm-up call)."""
    return timed_both(fn, repeat)[0]


def timed_both(fn, repeat: int = 3) -> tuple[float, float]:
    """(wall-clock, process CPU) ms per call: CPU time says less about the other jobs on the machine."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - wall) / repeat * 1000.0, (time.process_time() - cpu) / repeat * 1000.0


def convert_ms(path: Path) -> float | None:
    """ms per 640x480 frame of `faceswap convert` (tracked analysis) as scripts/bench_convert.py measured
    it, or None where that bench has not been run."""
    if not path.is_file():
        return None
    rows = json.loads(path.read_text()).get("rows", [])
    fps = [r["fps"] for r in rows if r.get("size") == "640x480" and r.get("detect_every", 1) > 1 and r.get("fps")]
    return 1000.0 / fps[0] if fps else None


def bench_speed(
    new: Watermarker, old: Watermarker, workdir: Path, verify_seconds: float, convert_frame_ms: float | None
) -> dict:
    """Both schemes in the same run: embedding per frame (batches of 8, as the sink does), reading one
    frame, marking one face crop, and `verify` of a 1080p clip."""
    source = photo("t1")
    rows = [
        speed_row(label, fill(source, size), new, old)
        for label, size in (("1080p", (1920, 1080)), ("640x480", (640, 480)))
    ]
    crops = {
        size: round(timed(partial(facemark.mark_face_crop, fill(source, (size, size)), 1), 10), 2)
        for size in (128, 256, 512)
    }
    small = next(r for r in rows if r["size"] == "640x480")
    result = {
        "frames": rows,
        "face_crop_ms": crops,
        "convert_ms_640x480": convert_frame_ms and round(convert_frame_ms, 1),
        "share_of_convert": convert_frame_ms and round((small["new_embed_ms"] + crops[128]) / convert_frame_ms, 3),
    }
    result |= bench_verify_clip(new, old, workdir, verify_seconds)
    return result


def speed_row(label: str, frame: np.ndarray, new: Watermarker, old: Watermarker) -> dict:
    batch = [np.roll(frame, 9 * i, axis=1) for i in range(8)]
    new_wall, new_cpu = timed_both(partial(new.embed, batch, 1), 3)
    old_wall, old_cpu = timed_both(partial(old.embed, batch, 1), 1)
    return {
        "size": label,
        "new_embed_ms": round(new_wall / 8, 1),
        "new_embed_cpu_ms": round(new_cpu / 8, 1),
        "new_first_frame_ms": round(timed(lambda: Watermarker(key=new.key).embed(batch[:1], new_token()), 1), 1),
        "old_embed_ms": round(old_wall / 8, 1),
        "old_embed_cpu_ms": round(old_cpu / 8, 1),
        "new_detect_ms": round(timed(partial(new.detect, batch[:1]), 2), 1),
        "old_detect_ms": round(timed(partial(old.read_v1, batch[:1]), 2), 1),
    }


def bench_verify_clip(new: Watermarker, old: Watermarker, workdir: Path, seconds: float) -> dict:
    """`faceswap verify` on a 1080p clip (marked by each scheme, and unmarked), wall-clock."""
    count = int(seconds * FPS)
    clip = pan_clip("t1", count, (1920, 1080)).frames
    files = {
        "new": mark_clip(Clip("v", clip), 0x123456789ABC, new),
        "old": mark_clip(Clip("v", clip), 0x123456789ABC, old),
    }
    files["unmarked"] = clip
    out = {"verify_clip": f"{seconds:.0f} s 1080p H.264 (CRF 18, {count} frames)"}
    verifier = Verifier(None, new)
    for name, frames in files.items():
        path = write_video(workdir / f"verify-{name}.mp4", frames, FPS)
        started, cpu = time.perf_counter(), time.process_time()
        verdict = verifier.verify(path)
        out[f"verify_{name}_s"] = round(time.perf_counter() - started, 2)
        out[f"verify_{name}_cpu_s"] = round(time.process_time() - cpu, 2)
        out[f"verify_{name}_token"] = verdict.detection.token if verdict.detection else None
    return out


# ---------------------------------------------------------------- report


def ratio(a: int, n: int) -> str:
    return f"{a}/{n} ({a / n:.2f})" if n else "-"


def markdown(report: dict) -> str:
    lines = [f"Machine: {report['machine']}, load average {report['load_average'][0]:.1f} at the end."]
    if "robustness" in report:
        lines += robustness_markdown(report)
    if "removal" in report:
        lines += adversary_markdown(report)
    lines += speed_markdown(report.get("speed"), report)
    return "\n".join(lines) + "\n"


def robustness_markdown(report: dict) -> list[str]:
    q = report["quality"]
    lines = [
        "",
        f"Clips: {', '.join(report['clips'])} ({report['clip_frames']} frames each, {FPS} fps).",
        "",
        "| mark | PSNR dB | SSIM |",
        "|---|---|---|",
    ]
    for scheme, label in ((2, "new (scheme 2: tiles + face layer)"), (1, "old (scheme 1: rivaGan + dwtDctSvd)")):
        if str(scheme) in q:
            lines.append(f"| {label} | {q[str(scheme)]['psnr']:.1f} | {q[str(scheme)]['ssim']:.4f} |")
    if report["robustness"]:
        lines += [
            "",
            "| category | attack | new detected | new token | new traced | tiles z min | bits fixed max "
            "| old detected | old token |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for row in report["robustness"]:
        new, old = row.get("new"), row.get("old")
        zmin = f"{min(new['z']):.1f}" if new and new["z"] else "-"
        fixed = f"{max(new['corrected_bits'])}" if new and new["corrected_bits"] else "-"
        lines.append(
            f"| {row['category']} | {row['attack']} | {ratio(new['detected'], new['n'])} | "
            f"{ratio(new['token'], new['n'])} | {ratio(new['traced'], new['n'])} | {zmin} | {fixed} | "
            + (f"{ratio(old['detected'], old['n'])} | {ratio(old['token'], old['n'])} |" if old else "- | - |")
        )
    st = report.get("stills")
    if st:
        lines += [
            "",
            f"Stills: {st['stills']} marked photos (640x480 to 1920x1080, portrait and square too; PSNR "
            f"{st['psnr']:.1f} dB), each attack on every one. Scenes and faces: "
            f"{', '.join(sorted(n.split('.')[0] for n in SCENES))}; other: textures, graphics, scientific images.",
            "",
            "| still attack | scenes: detected | scenes: token | other: detected | other: token | z min "
            "| bits fixed max |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in STILL_ATTACKS:
            groups = [st["cells"][g].get(name) for g in ("scenes", "other")]
            rates = [f"{ratio(c['detected'], c['n'])} | {ratio(c['token'], c['n'])}" if c else "- | -" for c in groups]
            zs = [z for c in groups if c for z in c["z"]]
            fixed = [b for c in groups if c for b in c["corrected_bits"]]
            lines.append(f"| {name} | {rates[0]} | {rates[1]} | {min(zs):.1f} | {max(fixed) if fixed else '-'} |")
        if st["token_misses"]:
            lines += ["", f"Token misses: {'; '.join(st['token_misses'])}."]
    face_rows = [r for r in report["robustness"] if r.get("new", {}).get("face_z")]
    if face_rows:
        lines += ["", "| face layer alone (demo clips) | face z per clip | threshold |", "|---|---|---|"]
        for r in face_rows:
            zs = ", ".join(f"{z:.1f}" for z in r["new"]["face_z"])
            lines.append(f"| {r['attack']} | {zs} | {report['face_threshold']:.1f} |")
    fp = report.get("false_positives")
    if fp:
        lines += [
            "",
            f"Unmarked: {fp['false_positives']} false positives and {fp['false_tokens']} false tokens on "
            f"{fp['images']} images and frames (tiles z max {fp['tiles_z_max']} on {fp['tiles_z_max_image']}; "
            f"threshold {report['tiles_threshold']:.2f}); face layer: {fp['face_layer_false_positives']} of "
            f"{fp['face_layer_images']} images with faces (z max {fp['face_layer_z_max']}). Stated bound per file, "
            f"all readers run: {report['false_positive_bound']:.1e}.",
        ]
    return lines


def adversary_markdown(report: dict) -> list[str]:
    """Removal (PSNR of the attacked file against the marked one; files whose token was still read),
    then forgery and copy (files on which the stamped or copied token was read), old beside new."""
    lines = [
        "",
        f"Attacks: old = the first release's public key, new = a workspace secret; targets "
        f"{', '.join(report['adversary_targets'])}; {COLLUDERS} other outputs of each size for collusion.",
        "",
        "Per cell: mean PSNR of the attacked files against the marked ones (dB), then token still read / "
        "mark still detected (verify then finds the entry by perceptual hash), of the files attacked.",
        "",
        "| removal | attack | old: video | old: still | new: video | new: still |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["removal"]:
        cells = []
        for label in ("old", "new"):
            for kind in ("video", "still"):
                c = row[label][kind]
                finite = [p for p in c["psnr"] if p is not None]
                psnr = f"{np.mean(finite):.1f} dB" if finite else "unchanged"
                cells.append(
                    f"{psnr}: {c['traced']}/{c['n']} token, {c['detected']}/{c['n']} detected" if c["n"] else "-"
                )
        lines.append(f"| {row['category']} | {row['attack']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| forgery / copy onto photos the workspace never made | old: token read | new: token read "
        "| old: credited | new: credited |",
        "|---|---|---|---|---|",
    ]
    for row in report["forgery_copy"]:
        cells = [
            ratio(row[label][key], row[label]["n"]) for key in ("token_read", "credited") for label in ("old", "new")
        ]
        lines.append(f"| {row['attack']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Credited: the token read and the picture what the entry recorded (what `verify` needs for exit 0): "
        "for a keyed mark the content binding agrees; an old public mark's entry recorded no binding, so "
        "`verify` credits it only on a near copy of its own pictures (perceptual hash).",
    ]
    return lines


def speed_markdown(sp: dict | None, report: dict) -> list[str]:
    if not sp:
        return []
    lines = [
        "",
        "| frame | new embed ms/frame (CPU ms) | new, first frame of a token ms | old embed ms/frame (CPU ms) "
        "| new read ms | old read ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in sp["frames"]:
        lines.append(
            f"| {r['size']} | {r['new_embed_ms']} ({r['new_embed_cpu_ms']}) | {r['new_first_frame_ms']} | "
            f"{r['old_embed_ms']} ({r['old_embed_cpu_ms']}) | {r['new_detect_ms']} | {r['old_detect_ms']} |"
        )
    crops = ", ".join(f"{k} px {v} ms" for k, v in sp["face_crop_ms"].items())
    share = (
        f"At 640x480 the mark (frame + one 128 px face) is {sp['share_of_convert']:.1%} of a "
        f"{sp['convert_ms_640x480']:.0f} ms convert frame (scripts/bench_convert.py)."
        if sp["share_of_convert"]
        else "Its share of a convert frame needs scripts/bench_convert.py's JSON (--convert-json)."
    )
    return lines + [
        "",
        f"Face layer, `mark_face_crop` per face: {crops}. {share}",
        f"`verify` of a {sp['verify_clip']}, wall-clock (process CPU): new {sp['verify_new_s']} s "
        f"({sp['verify_new_cpu_s']} s), old {sp['verify_old_s']} s ({sp['verify_old_cpu_s']} s), unmarked "
        f"{sp['verify_unmarked_s']} s ({sp['verify_unmarked_cpu_s']} s).",
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 clips of 2 s, a subset of strengths, 200 unmarked")
    parser.add_argument("--clips", type=int, default=None, help="clips (half demo subjects, half photo pans)")
    parser.add_argument("--seconds", type=float, default=None, help="clip length (default 3, quick 2)")
    parser.add_argument("--unmarked", type=int, default=None, help="unmarked images (default 1000, quick 200)")
    parser.add_argument("--only", default="", help="comma-separated attack names (substring match)")
    parser.add_argument("--old-clips", type=int, default=None, help="clips also marked with scheme 1 (default 6)")
    parser.add_argument("--no-faces", action="store_true", help="do not read the face layer")
    parser.add_argument("--stills", type=int, default=None, help="marked stills for image attacks (default 120)")
    parser.add_argument("--adversary-clips", type=int, default=None, help="clips the attacks run on (default 3)")
    parser.add_argument("--adversary-stills", type=int, default=None, help="stills the attacks run on (default 6)")
    parser.add_argument("--no-adversary", action="store_true", help="skip forgery, copy and removal attacks")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--verify-seconds", type=float, default=None, help="1080p clip for verify (default 10 s)")
    parser.add_argument(
        "--convert-json",
        type=Path,
        default=Path("bench-results/convert.json"),
        help="scripts/bench_convert.py's JSON: the mark's share of a 640x480 convert frame comes from its tracked row",
    )
    parser.add_argument(
        "--adversary-only",
        action="store_true",
        help="only the forgery, copy and removal attacks: no sharing table, stills, unmarked set or speed",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if args.adversary_only:
        args.only, args.stills, args.unmarked, args.no_speed = ADVERSARY_ONLY, 0, 0, True
    return args


def robustness_report(args: argparse.Namespace, new: Watermarker, old: Watermarker, workdir: Path, faces) -> dict:
    n_clips = args.clips or (3 if args.quick else 12)
    frames = int((args.seconds or (2.0 if args.quick else 3.0)) * FPS)
    n_demo = (n_clips + 1) // 2
    print(f"content: {n_demo} demo clips, {n_clips - n_demo} photo pans, {frames} frames each", flush=True)
    demos = demo_clips(n_demo, frames)
    pans = [pan_clip(PAN_PHOTOS[i % len(PAN_PHOTOS)], frames, PAN_SIZES[i % 2]) for i in range(n_clips - n_demo)]
    clips = [c for pair in itertools.zip_longest(demos, pans) for c in pair if c is not None]
    chosen = [a for a in attacks() if (a.quick or not args.quick)]
    if args.only:
        wanted = [w.strip().lower() for w in args.only.split(",")]
        chosen = [a for a in chosen if any(w in a.name.lower() for w in wanted)]
    old_clips = args.old_clips if args.old_clips is not None else (2 if args.quick else 6)
    schemes = {2: new, 1: old} if old_clips else {2: new}
    print(f"robustness: {len(chosen)} attacks x {len(clips)} clips (scheme 1 on {old_clips})", flush=True)
    cells, quality = bench_robustness(clips, chosen, schemes, workdir, faces, old_clips)
    report: dict = {
        "clips": [c.name for c in clips],
        "clip_frames": frames,
        "quality": {str(k): v for k, v in quality.items()},
        "robustness": [],
    }
    for attack in chosen:
        row = {"category": attack.category, "attack": attack.name}
        for scheme, label in ((2, "new"), (1, "old")):
            cell = cells.get((scheme, attack.name))
            if cell:
                row[label] = cell.__dict__ | {"seconds": round(cell.seconds / max(cell.n, 1), 2)}
        report["robustness"].append(row)
    if not args.no_adversary:
        report |= adversary_report(args, clips, workdir)
    stills = args.stills if args.stills is not None else (20 if args.quick else 120)
    if stills:
        print(f"stills: {stills} marked photos x {len(STILL_ATTACKS)} image attacks", flush=True)
        report["stills"] = bench_stills(new, stills)
    unmarked = args.unmarked if args.unmarked is not None else (200 if args.quick else 1000)
    if unmarked:
        print(f"false positives: {unmarked} unmarked images and frames", flush=True)
        images = unmarked_set(unmarked, clips, workdir)
        report["false_positives"] = bench_false_positives(new, images, faces, 40 if args.quick else 150)
    return report


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    new, old = Watermarker(key=secrets.token_bytes(32)), Watermarker(scheme=1)  # new: a workspace's secret
    faces = None if args.no_faces else facemark.LazyFaceAnalyzer("dlib")
    report: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={os.cpu_count()}",
        "false_positive_bound": FALSE_POSITIVE_BOUND,
        "tiles_threshold": tiles.z_threshold(tiles.most_tries(new.key)),
        "face_threshold": tiles.z_threshold(facemark.SLOTS * len(facemark.SCALES) * len(facemark.SHIFTS) ** 2 * 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.speed_only:
            report |= robustness_report(args, new, old, workdir, faces)
        if not args.no_speed:
            print("speed", flush=True)
            seconds = args.verify_seconds or (4.0 if args.quick else 10.0)
            report["speed"] = bench_speed(new, old, workdir, seconds, convert_ms(args.convert_json))
    report["load_average"] = os.getloadavg()
    (args.out / "watermark.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (args.out / "watermark.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
