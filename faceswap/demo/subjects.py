"""`faceswap demo subjects`: two synthetic subjects with reference photos, clips and ground truth.

These clips are inputs the framework makes for itself (no generated face of a real person, no swap),
so they are written here with PyAV, not through the output sink.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from faceswap.demo.clip import Pose, backdrop, composite
from faceswap.demo.faces import RECIPES, Identity, build_identities
from faceswap.faces.dlib_backend import kps5_from_68
from faceswap.synthetic import write_input_clip, write_input_image

FPS = 25
SIZE = (640, 480)
HAIR = {"demo-a": (35, 40, 55), "demo-b": (60, 90, 130), "bystander": (25, 25, 25)}


@dataclass(frozen=True)
class SubjectFiles:
    subject: str
    folder: Path
    references: list[Path]
    clip: Path
    truth: Path


def _smooth(t: float, period: float, phase: float = 0.0) -> float:
    return float(np.sin(2 * np.pi * t / period + phase))


def pose_at(t: float, seed: int) -> Pose:
    """Head motion, speech-like mouth opening, blinks every ~3 s and a slow lighting change."""
    phase = seed * 1.7
    syllable = max(0.0, _smooth(t, 0.42, phase)) ** 1.3
    phrase = 0.5 + 0.5 * _smooth(t, 3.1, phase)  # talking, then pauses
    mouth = syllable * (phrase if phrase > 0.25 else 0.0)
    blink_phase = (t + seed * 0.9) % 3.2
    blink = max(0.0, 1.0 - abs(blink_phase - 0.1) / 0.1) if blink_phase < 0.2 else 0.0
    return Pose(
        yaw=18.0 * _smooth(t, 4.0, phase),
        roll=7.0 * _smooth(t, 5.3, phase + 1.0),
        scale=0.40 + 0.05 * _smooth(t, 6.0, phase + 2.0),
        cx=SIZE[0] * 0.46 + 45.0 * _smooth(t, 7.0, phase),
        cy=SIZE[1] * 0.52 + 18.0 * _smooth(t, 5.0, phase + 0.5),
        mouth=round(mouth, 4),
        blink=round(blink, 4),
        light=1.0 + 0.22 * _smooth(t, 8.0, phase),
    )


def bystander_pose(t: float, side: float) -> Pose:
    return Pose(
        yaw=10.0 * _smooth(t, 3.0),
        roll=3.0 * _smooth(t, 4.0),
        scale=0.23,
        cx=SIZE[0] * side,
        cy=SIZE[1] * 0.35 + 6 * _smooth(t, 2.5),
        mouth=0.0,
        blink=0.0,
        light=1.0,
    )


def _light(frame: np.ndarray, gain: float) -> np.ndarray:
    ramp = np.linspace(0.9, 1.1, frame.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(frame * gain * ramp, 0, 255).astype(np.uint8)


def render_frame(subject: Identity, bystander: Identity | None, t: float, seed: int, side: float) -> tuple:
    frame = backdrop(*SIZE, seed=seed)
    pose = pose_at(t, seed)
    extra = None
    if bystander is not None:
        extra = composite(frame, bystander, bystander_pose(t, side), HAIR["bystander"])["box"]
    drawn = composite(frame, subject, pose, HAIR[subject.name])
    return _light(frame, pose.light), pose, drawn, extra


def _mouth_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip gap over the eye-to-mouth distance: what `faceswap eval` measures from landmarks."""
    gap = float(np.linalg.norm(landmarks[66] - landmarks[62]))
    eye_mouth = float(np.linalg.norm(landmarks[36:48].mean(0) - landmarks[48:68].mean(0)))
    return gap / eye_mouth


def write_clip(path: Path, frames: list[np.ndarray], mouth: list[float]) -> None:
    """H.264 + an AAC tone whose loudness follows the mouth, like speech."""
    rate = 48000
    t = np.arange(int(rate * len(frames) / FPS)) / rate
    envelope = np.interp(t, np.arange(len(mouth)) / FPS, mouth)
    samples = 0.3 * envelope * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    write_input_clip(path, frames, FPS, audio=samples, audio_rate=rate, crf=16)


REFERENCE_POSES = (
    Pose(0.0, 0.0, 0.46, 320, 250, 0.0, 0.0, 1.0),
    Pose(12.0, -4.0, 0.42, 300, 245, 0.25, 0.0, 1.12),
    Pose(-10.0, 6.0, 0.44, 335, 255, 0.0, 0.0, 0.9),
)


def make_subject(
    subject: Identity, bystander: Identity, out: Path, seed: int, seconds: float, bystander_side: float
) -> SubjectFiles:
    folder = out / subject.name
    folder.mkdir(parents=True, exist_ok=True)
    references = []
    for i, pose in enumerate(REFERENCE_POSES):
        frame = backdrop(*SIZE, seed=100 + 10 * seed + i)
        composite(frame, subject, pose, HAIR[subject.name])
        path = folder / f"reference-{i + 1}.png"
        write_input_image(path, _light(frame, pose.light))
        references.append(path)
    count = int(round(seconds * FPS))
    frames, truth_frames, mouth = [], [], []
    visible = range(int(count * 0.25), int(count * 0.7))  # the bystander walks in for a while
    for i in range(count):
        t = i / FPS
        image, pose, drawn, extra = render_frame(subject, bystander if i in visible else None, t, seed, bystander_side)
        frames.append(image)
        mouth.append(pose.mouth)
        truth_frames.append(
            {
                "frame": i,
                "time": round(t, 4),
                "mouth_open": pose.mouth,
                "mouth_ratio": round(_mouth_ratio(drawn["landmarks"]), 4),
                "blink": pose.blink,
                "yaw": round(pose.yaw, 3),
                "roll": round(pose.roll, 3),
                "scale": round(pose.scale, 4),
                "center": [round(pose.cx, 2), round(pose.cy, 2)],
                "light": round(pose.light, 4),
                "subject_box": drawn["box"],
                "subject_kps5": np.round(kps5_from_68(drawn["landmarks"]), 2).tolist(),
                "bystander_box": extra,
            }
        )
    clip = folder / "clip.mp4"
    write_clip(clip, frames, mouth)
    truth = folder / "truth.json"
    payload = {
        "subject": subject.name,
        "synthetic": True,
        "fps": FPS,
        "size": list(SIZE),
        "frames": truth_frames,
        "notes": "mouth_open drives the animation (0..1); mouth_ratio is the inner-lip gap over the "
        "eye-to-mouth distance of the drawn landmarks",
    }
    truth.write_text(json.dumps(payload, indent=1))
    return SubjectFiles(subject.name, folder, references, clip, truth)


def make_demo_subjects(out: Path, analyzer, seconds: float = 10.0) -> tuple[list[SubjectFiles], dict]:
    identities, sources = build_identities(analyzer)
    by_name = {i.name: i for i in identities}
    out.mkdir(parents=True, exist_ok=True)
    files = [
        make_subject(by_name["demo-a"], by_name["bystander"], out, seed=1, seconds=seconds, bystander_side=0.82),
        make_subject(by_name["demo-b"], by_name["bystander"], out, seed=2, seconds=seconds, bystander_side=0.14),
    ]
    report = identity_report(analyzer, identities, sources)
    (out / "identity-report.json").write_text(json.dumps(report, indent=2))
    return files, report


def identity_report(analyzer, identities: list[Identity], sources) -> dict:
    """Cosine similarities between the synthetic identities and to every real source face."""
    from faceswap.faces.identity import threshold_for

    def embed(image: np.ndarray) -> np.ndarray | None:
        import cv2

        faces = analyzer.analyze(cv2.copyMakeBorder(image, 64, 64, 64, 64, cv2.BORDER_CONSTANT, value=(90, 90, 90)))
        return faces[0].embedding if faces else None

    ours = {i.name: embed(i.texture) for i in identities}
    real = {s.name: embed(s.image) for s in sources}
    pairs = {}
    names = [n for n, e in ours.items() if e is not None]
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            pairs[f"{a}~{b}"] = round(float(ours[a] @ ours[b]), 4)
    nearest = {}
    for name in names:
        sims = {s: float(ours[name] @ e) for s, e in real.items() if e is not None}
        best = max(sims, key=sims.get)
        nearest[name] = {"source": best, "similarity": round(sims[best], 4)}
    return {
        "backend": analyzer.name,
        "threshold": threshold_for(analyzer.name),
        "between_subjects": pairs,
        "nearest_real_source": nearest,
        "recipes": [asdict(r) for r in RECIPES],
    }
