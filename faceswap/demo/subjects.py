"""`faceswap demo subjects`: two synthetic subjects with reference photos, clips and ground truth.

These clips are inputs the framework makes for itself (no generated face of a real person, no swap),
so they are written here with PyAV, not through the output sink.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from faceswap.atomic import write_atomic
from faceswap.demo.clip import Pose, backdrop, composite
from faceswap.demo.faces import RECIPES, Identity, build_identities
from faceswap.eval.metrics import mouth_ratio
from faceswap.faces.dlib_backend import kps5_from_68
from faceswap.report import Report
from faceswap.synthetic import write_input_clip, write_input_image

FPS = 25
SIZE = (640, 480)
HAIR = {"demo-a": (35, 40, 55), "demo-b": (60, 90, 130), "bystander": (25, 25, 25)}
DUB_SYLLABLES = (5, 0.31)  # the dub line's syllables: their seed and period (s); its phrases are the plate's
DUB_PITCH = 230.0  # Hz of the tone standing for the dub line (the plate's own line is 180 Hz)


@dataclass(frozen=True)
class DubPair:
    """A shot of demo-a (the plate) and demo-b performing a new line in its timing (the dub)."""

    plate: Path
    plate_truth: Path
    performance: Path
    performance_truth: Path


@dataclass(frozen=True)
class SubjectFiles:
    subject: str
    folder: Path
    references: list[Path]
    clip: Path
    truth: Path


def _smooth(t: float, period: float, phase: float = 0.0) -> float:
    return float(np.sin(2 * np.pi * t / period + phase))


def speech(
    t: float, phrase_seed: int, syllable_seed: int, syllable_period: float = 0.42, irregular: bool = False
) -> float:
    """Mouth opening 0..1: syllables, gated by phrases (talking, then pauses). Two lines spoken in
    the same timing share the phrases and differ in their syllables. Irregular phrasing (two
    incommensurate periods) does not repeat within a clip, as real speech does not."""
    syllable = max(0.0, _smooth(t, syllable_period, syllable_seed * 1.7)) ** 1.3
    if irregular:
        phrase = 0.5 + 0.3 * _smooth(t, 3.1, phrase_seed * 1.7) + 0.2 * _smooth(t, 4.7, phrase_seed * 2.9)
    else:
        phrase = 0.5 + 0.5 * _smooth(t, 3.1, phrase_seed * 1.7)
    return round(syllable * (phrase if phrase > 0.25 else 0.0), 4)


def pose_at(t: float, seed: int) -> Pose:
    """Head motion, speech-like mouth opening, blinks every ~3 s and a slow lighting change."""
    phase = seed * 1.7
    blink_phase = (t + seed * 0.9) % 3.2
    blink = max(0.0, 1.0 - abs(blink_phase - 0.1) / 0.1) if blink_phase < 0.2 else 0.0
    return Pose(
        yaw=18.0 * _smooth(t, 4.0, phase),
        roll=7.0 * _smooth(t, 5.3, phase + 1.0),
        scale=0.40 + 0.05 * _smooth(t, 6.0, phase + 2.0),
        cx=SIZE[0] * 0.46 + 45.0 * _smooth(t, 7.0, phase),
        cy=SIZE[1] * 0.52 + 18.0 * _smooth(t, 5.0, phase + 0.5),
        mouth=speech(t, seed, seed),
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


def render_frame(
    subject: Identity,
    bystander: Identity | None,
    pose: Pose,
    t: float,
    base: np.ndarray,
    side: float,
    occluder: str | None = None,
) -> tuple[np.ndarray, dict, list | None]:
    """`occluder`: a hand or a microphone drawn in front of the subject's face; its outline is
    `drawn["occluder"]` (demo.occluders)."""
    frame = base.copy()
    extra = None
    if bystander is not None:
        extra = composite(frame, bystander, bystander_pose(t, side), HAIR["bystander"])["box"]
    drawn = composite(frame, subject, pose, HAIR[subject.name])
    if occluder is not None:
        from faceswap.demo.occluders import draw_occluder

        drawn["occluder"] = draw_occluder(frame, occluder, drawn["landmarks"], t)
    return _light(frame, pose.light), drawn, extra


def write_clip(path: Path, frames: list[np.ndarray], mouth: list[float], pitch: float = 180.0) -> None:
    """H.264 + an AAC tone whose loudness follows the mouth, like speech."""
    rate = 48000
    t = np.arange(int(rate * len(frames) / FPS)) / rate
    envelope = np.interp(t, np.arange(len(mouth)) / FPS, mouth)
    samples = 0.3 * envelope * np.sin(2 * np.pi * pitch * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    write_input_clip(path, frames, FPS, audio=samples, audio_rate=rate, crf=16)


def render_clip(
    subject: Identity,
    poses: list[Pose],
    seed: int,
    bystander: Identity | None = None,
    side: float = 0.5,
    occluder: str | None = None,
) -> tuple[list[np.ndarray], list[dict]]:
    """Frames of `subject` in `poses` (one a frame) before backdrop `seed`, and their truth rows; the
    bystander, when given, walks in for a while; the occluder, when given, passes in front of the
    face (its outline and the face's are in the rows)."""
    frames, rows = [], []
    visible = range(int(len(poses) * 0.25), int(len(poses) * 0.7))
    base = backdrop(*SIZE, seed=seed)  # the same every frame: made once
    for i, pose in enumerate(poses):
        t = i / FPS
        image, drawn, extra = render_frame(subject, bystander if i in visible else None, pose, t, base, side, occluder)
        frames.append(image)
        extra_rows = occlusion_truth(drawn, occluder) if occluder is not None else {}
        rows.append(
            {
                "frame": i,
                "time": round(t, 4),
                "mouth_open": pose.mouth,
                "mouth_ratio": round(mouth_ratio(drawn["landmarks"], "68"), 4),
                "blink": pose.blink,
                "yaw": round(pose.yaw, 3),
                "roll": round(pose.roll, 3),
                "scale": round(pose.scale, 4),
                "center": [round(pose.cx, 2), round(pose.cy, 2)],
                "light": round(pose.light, 4),
                "subject_box": drawn["box"],
                "subject_kps5": np.round(kps5_from_68(drawn["landmarks"]), 2).tolist(),
                "bystander_box": extra,
                **extra_rows,
            }
        )
    return frames, rows


def occlusion_truth(drawn: dict, occluder: str) -> dict:
    """The occluder's outline and the face's (its landmark hull), in frame pixels with pixel
    centres at whole numbers: the visible face is the face's polygon less the occluder's."""
    from faceswap.faces.masks import region_polygon

    landmarks = drawn["landmarks"]
    face = region_polygon(landmarks, "68", kps5_from_68(landmarks), "full")
    return {
        "occluder": {"kind": occluder, "polygons": [np.round(drawn["occluder"], 2).tolist()]},
        "face_polygon": np.round(face, 2).tolist(),
    }


def write_truth(path: Path, subject: str, rows: list[dict], **extra: object) -> Path:
    payload = {
        "subject": subject,
        "synthetic": True,
        "fps": FPS,
        "size": list(SIZE),
        **extra,
        "frames": rows,
        "notes": "mouth_open drives the animation (0..1); mouth_ratio is the inner-lip gap over the "
        "eye-to-mouth distance of the drawn landmarks",
    }
    return write_atomic(path, json.dumps(payload, indent=1))


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
    poses = [pose_at(i / FPS, seed) for i in range(count)]
    frames, rows = render_clip(subject, poses, seed, bystander, bystander_side)
    clip = folder / "clip.mp4"
    write_clip(clip, frames, [p.mouth for p in poses])
    truth = write_truth(folder / "truth.json", subject.name, rows)
    return SubjectFiles(subject.name, folder, references, clip, truth)


def dub_pair_paths(out: Path) -> DubPair:
    return DubPair(
        out / "demo-a" / "plate.mp4",
        out / "demo-a" / "plate.truth.json",
        out / "demo-b" / "dub.mp4",
        out / "demo-b" / "dub.truth.json",
    )


def make_dub_pair(plate_subject: Identity, dub_subject: Identity, out: Path, seconds: float) -> DubPair:
    """The plate continues demo-a's head motion (seed 1) past the end of its clip, so the model never
    saw these frames; the dub performer follows the plate's head motion and phrasing with other
    syllables, under its own lighting and backdrop. Offset 0: recorded in the plate's timing."""
    paths = dub_pair_paths(out)
    start, count = seconds, int(round(seconds * FPS))
    syllable_seed, period = DUB_SYLLABLES
    times = [start + i / FPS for i in range(count)]
    plate_poses = [replace(pose_at(t, 1), mouth=speech(t, 1, 1, irregular=True)) for t in times]
    dub_poses = [
        replace(p, mouth=speech(t, 1, syllable_seed, period, irregular=True), light=pose_at(t, 2).light)
        for t, p in zip(times, plate_poses, strict=True)
    ]
    pair = {"plate": paths.plate.name, "performance": f"../demo-b/{paths.performance.name}", "offset_s": 0.0}
    for subject, poses, seed, clip, truth, pitch, role in (
        (plate_subject, plate_poses, 1, paths.plate, paths.plate_truth, 180.0, "plate"),
        (dub_subject, dub_poses, 2, paths.performance, paths.performance_truth, DUB_PITCH, "dub performance"),
    ):
        frames, rows = render_clip(subject, poses, seed)
        write_clip(clip, frames, [p.mouth for p in poses], pitch)
        write_truth(truth, subject.name, rows, role=role, motion_starts_at_s=start, dub_pair=pair)
    return paths


def ensure_dub_pair(out: Path, analyzer, seconds: float) -> DubPair:
    """The dub pair in `out` with clips of `seconds`: made unless it is there already."""
    paths = dub_pair_paths(out)
    truths = (paths.plate_truth, paths.performance_truth)
    made = all(p.is_file() for p in (paths.plate, paths.performance, *truths))
    count = int(round(seconds * FPS))
    if made and all(len(json.loads(t.read_text())["frames"]) == count for t in truths):
        return paths
    by_name = {i.name: i for i in build_identities(analyzer)[0]}
    return make_dub_pair(by_name["demo-a"], by_name["demo-b"], out, seconds)


@dataclass(frozen=True)
class OccludedClip:
    """A subject's head motion with an occluder passing in front of the face, and its truth."""

    kind: str
    clip: Path
    truth: Path


def occluded_clip_paths(out: Path, kind: str, subject: str = "demo-b") -> OccludedClip:
    folder = out / subject
    return OccludedClip(kind, folder / f"occluded-{kind}.mp4", folder / f"occluded-{kind}.truth.json")


def make_occluded_clip(out: Path, subject: Identity, kind: str, seconds: float, seed: int = 2) -> OccludedClip:
    """The subject in the head motion of `seed` (demo-b's own is 2, demo-a's 1) with `kind` in
    front of the face; the truth rows carry the occluder's outline and the face's, per frame."""
    paths = occluded_clip_paths(out, kind, subject.name)
    paths.clip.parent.mkdir(parents=True, exist_ok=True)
    count = int(round(seconds * FPS))
    poses = [pose_at(i / FPS, seed) for i in range(count)]
    frames, rows = render_clip(subject, poses, seed, occluder=kind)
    write_clip(paths.clip, frames, [p.mouth for p in poses])
    write_truth(paths.truth, subject.name, rows, occluder=kind)
    return paths


def existing_occluded_clip(out: Path, kind: str, seconds: float) -> OccludedClip | None:
    paths = occluded_clip_paths(out, kind)
    if not (paths.clip.is_file() and paths.truth.is_file()):
        return None
    if len(json.loads(paths.truth.read_text())["frames"]) != int(round(seconds * FPS)):
        return None
    return paths


def existing_subjects(out: Path, seconds: float, dub_pair: bool = True) -> list[SubjectFiles] | None:
    """The subjects (and the dub pair, unless not asked for) already made in `out` with clips of
    `seconds`, or None."""
    count = int(round(seconds * FPS))
    files = [
        SubjectFiles(
            name,
            out / name,
            [out / name / f"reference-{i + 1}.png" for i in range(len(REFERENCE_POSES))],
            out / name / "clip.mp4",
            out / name / "truth.json",
        )
        for name in ("demo-a", "demo-b")
    ]
    pair = dub_pair_paths(out)
    truths = [f.truth for f in files] + ([pair.plate_truth, pair.performance_truth] if dub_pair else [])
    needed = [p for f in files for p in (*f.references, f.clip)] + truths
    needed += [pair.plate, pair.performance] if dub_pair else []
    if not all(p.is_file() for p in needed):
        return None
    if any(len(json.loads(t.read_text())["frames"]) != count for t in truths):
        return None
    return files


def make_demo_subjects(
    out: Path, analyzer, seconds: float = 10.0, dub_pair: bool = True, occluders: tuple[str, ...] = ()
) -> tuple[list[SubjectFiles], dict]:
    """Both subjects (references, clip, truth), unless not asked for the dub pair
    (`dub_pair_paths(out)`; the swap demo does not use it), and, for each of `occluders`, demo-b's
    occluded clip (`occluded_clip_paths(out, kind)`)."""
    identities, sources = build_identities(analyzer)
    by_name = {i.name: i for i in identities}
    out.mkdir(parents=True, exist_ok=True)
    files = [
        make_subject(by_name["demo-a"], by_name["bystander"], out, seed=1, seconds=seconds, bystander_side=0.82),
        make_subject(by_name["demo-b"], by_name["bystander"], out, seed=2, seconds=seconds, bystander_side=0.14),
    ]
    if dub_pair:
        make_dub_pair(by_name["demo-a"], by_name["demo-b"], out, seconds)
    for kind in occluders:
        make_occluded_clip(out, by_name["demo-b"], kind, seconds)
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


@dataclass
class MadeSubjects(Report):
    """What `faceswap demo subjects` made, and how far apart (and from real faces) the subjects are."""

    out: Path
    files: list[SubjectFiles]
    occluders: tuple[str, ...]
    identity: dict

    def to_json(self) -> dict:
        occluded = {
            kind: {k: str(v) for k, v in vars(occluded_clip_paths(self.out, kind)).items()} for kind in self.occluders
        }
        return {
            "subjects": [{k: str(v) for k, v in vars(f).items()} for f in self.files],
            "dub_pair": {k: str(v) for k, v in vars(dub_pair_paths(self.out)).items()},
            "occluded": occluded,
            "identity": self.identity,
        }

    def lines(self) -> list[str]:
        pair = dub_pair_paths(self.out)
        out = [
            f"{f.subject}: {f.clip} ({len(f.references)} reference photos, truth {f.truth.name})" for f in self.files
        ]
        out.append(f"dub pair: plate {pair.plate}, performance {pair.performance} (truths beside them)")
        for kind in self.occluders:
            occluded = occluded_clip_paths(self.out, kind)
            out.append(
                f"occluded: {occluded.clip} (demo-b with a {kind} in front of the face; truth {occluded.truth.name})"
            )
        report = self.identity
        pairs = ", ".join(f"{k} {v:.3f}" for k, v in report["between_subjects"].items())
        nearest = ", ".join(
            f"{k}~{v['source']} {v['similarity']:.3f}" for k, v in report["nearest_real_source"].items()
        )
        return out + [
            f"identity ({report['backend']}, match >= {report['threshold']}): {pairs}; nearest real faces: {nearest}"
        ]


def demo_subjects(out: Path, seconds: float, occluders: tuple[str, ...] = ()) -> MadeSubjects:
    """The subjects, the dub pair and the occluded clips asked for, made with dlib (the offline backend)."""
    from faceswap.faces.analyzer import FaceAnalyzer

    files, identity = make_demo_subjects(out, FaceAnalyzer("dlib"), seconds=seconds, occluders=occluders)
    return MadeSubjects(out, files, occluders, identity)
