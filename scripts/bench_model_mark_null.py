"""Unmarked faces read for a model's own mark (faceswap/model/mark.py): how often a face that no marked
model rendered reaches the 1e-6 bound.

    PYTHONPATH=. .venv/bin/python scripts/bench_model_mark_null.py --out bench-results [--seconds 20 --keys 3]

The faces: demo subjects made afresh (`--seconds` each; every frame of both clips, unconverted, and
their reference photos) and the face photos installed packages ship (insightface's sample images,
scikit-image's astronaut), each photo also mirrored and at three quarters and half its size. Every
face dlib finds is aligned as a whole-face, five-keypoint model's faces are and read under `--keys`
fresh keys at the mark's cuts, exactly as verify reads one face; each clip is also read whole (its
faces summed cut by cut, as verify sums a file's). Prints how many readings reach the bound
(expected: none), the largest z, and the spread of the faces' best-cut z; writes
OUT/bench_model_mark_null.json. About 13 minutes on 2 cores at the defaults (with other work running).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from faceswap.faces.align import Alignment, alignment_matrix
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.media import iter_video_frames
from faceswap.model import mark

BOUND = 1e-6
ALIGNMENT = Alignment("whole", "five")


def package_photos() -> Iterator[tuple[str, np.ndarray]]:
    """The face photos installed packages ship, BGR."""
    import insightface
    import skimage.data

    folder = Path(insightface.__file__).parent / "data" / "images"
    for path in sorted(folder.glob("*")):
        image = cv2.imread(str(path))
        if image is not None:
            yield f"insightface {path.name}", image
    yield "skimage astronaut", np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])


def variants(image: np.ndarray) -> Iterator[np.ndarray]:
    """A photo as shared: as it is, mirrored, at three quarters and at half its size."""
    yield image
    yield np.ascontiguousarray(image[:, ::-1])
    for scale in (0.75, 0.5):
        yield cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def read_faces(image: np.ndarray, analyzer: FaceAnalyzer, keys: list[mark.ModelMark]):
    """Per face found, per key: the (soft, spread) readings at every cut."""
    readings = []
    for face in analyzer.analyze(image):
        matrix = alignment_matrix(face.kps5, mark.SIZE, ALIGNMENT, face.landmarks, face.landmark_scheme)
        readings.append([key.read_found(image, matrix) for key in keys])
    return readings


def run(args: argparse.Namespace) -> dict:
    from faceswap.demo.subjects import make_demo_subjects

    analyzer = FaceAnalyzer("dlib")
    keys = [mark.ModelMark(secrets.token_bytes(32)) for _ in range(args.keys)]
    face_z: dict[str, list[float]] = {}
    clip_z: list[float] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="model-mark-null-") as tmp:
        files, _ = make_demo_subjects(Path(tmp), analyzer, args.seconds, dub_pair=False)
        for subject in files:
            summed: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(keys)
            for frame in iter_video_frames(subject.clip):
                for face in read_faces(frame.image, analyzer, keys):
                    for i, (key, (soft, spread)) in enumerate(zip(keys, face, strict=True)):
                        face_z.setdefault(f"{subject.subject} clip frames", []).append(
                            float(key.score(soft, spread).max())
                        )
                        total = summed[i]
                        summed[i] = (soft, spread) if total is None else (total[0] + soft, total[1] + spread)
            clip_z += [float(k.score(*s).max()) for k, s in zip(keys, summed, strict=True) if s is not None]
            for path in subject.references:
                for image in variants(cv2.imread(str(path))):
                    for face in read_faces(image, analyzer, keys):
                        face_z.setdefault("demo reference photos", []).extend(
                            float(k.score(*r).max()) for k, r in zip(keys, face, strict=True)
                        )
        for name, photo in package_photos():
            for image in variants(photo):
                for face in read_faces(image, analyzer, keys):
                    face_z.setdefault(name, []).extend(
                        float(k.score(*r).max()) for k, r in zip(keys, face, strict=True)
                    )
    return summarise(face_z, clip_z, args, time.monotonic() - started)


def summarise(face_z: dict[str, list[float]], clip_z: list[float], args: argparse.Namespace, seconds: float) -> dict:
    need = mark.z_needed(BOUND)
    every = np.concatenate([np.array(v) for v in face_z.values()])
    result = {
        "seconds_per_subject": args.seconds,
        "keys": args.keys,
        "cuts": len(mark.CUTS),
        "z_needed": round(need, 2),
        "face_readings": int(every.size),
        "faces": int(every.size // args.keys),
        "hits": int((every >= need).sum()),
        "z_max": round(float(every.max()), 2),
        "z_mean": round(float(every.mean()), 2),
        "z_sd": round(float(every.std()), 2),
        "clip_readings": len(clip_z),
        "clip_hits": int(sum(z >= need for z in clip_z)),
        "clip_z_max": round(max(clip_z), 2) if clip_z else None,
        "sources": {name: {"readings": len(v), "z_max": round(max(v), 2)} for name, v in face_z.items()},
        "seconds": round(seconds, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_model_mark_null.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each demo subject's clip")
    parser.add_argument("--keys", type=int, default=3, help="fresh keys every face is read under")
    result = run(parser.parse_args())
    print(
        f"{result['faces']} unmarked faces x {result['keys']} keys, {result['cuts']} cuts each; "
        f"z >= {result['z_needed']} traces"
    )
    print("| source | readings | largest z |")
    print("|---|---:|---:|")
    for name, row in result["sources"].items():
        print(f"| {name} | {row['readings']} | {row['z_max']} |")
    print(
        f"| every face | {result['face_readings']} | {result['z_max']} (mean {result['z_mean']}, sd {result['z_sd']}); "
        f"{result['hits']} at the bound |"
    )
    print(
        f"| each clip summed | {result['clip_readings']} | {result['clip_z_max']}; {result['clip_hits']} at the bound |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
