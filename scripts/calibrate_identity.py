"""Same-person vs different-person similarity on photos that packages ship; FAR/FRR at a threshold.

Identities: the six people of insightface's t1.jpg, Tom Hanks (insightface), the astronaut
(scikit-image). Each face is perturbed (flip, resize, JPEG, rotation, brightness); a same-person pair
is a perturbed copy against the clean one, a different-person pair any two identities.

    .venv/bin/python scripts/calibrate_identity.py --backend dlib [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.identity import cosine_similarities, threshold_for
from faceswap.faces.samples import insightface_t1, insightface_tom_hanks, skimage_astronaut
from faceswap.media import read_image


def _crops(image: np.ndarray, faces: list, pad: float = 0.8) -> list[np.ndarray]:
    out = []
    h, w = image.shape[:2]
    for face in faces:
        x1, y1, x2, y2 = face.bbox
        bw, bh = x2 - x1, y2 - y1
        box = [
            int(max(0, x1 - pad * bw)),
            int(max(0, y1 - pad * bh)),
            int(min(w, x2 + pad * bw)),
            int(min(h, y2 + pad * bh)),
        ]
        out.append(image[box[1] : box[3], box[0] : box[2]].copy())
    return out


def perturbations(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]

    def jpeg(q: int) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)

    def rotate(deg: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    def resize(f: float) -> np.ndarray:
        small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    return {
        "flip": image[:, ::-1].copy(),
        "resize-0.5": resize(0.5),
        "resize-0.75": resize(0.75),
        "jpeg-75": jpeg(75),
        "jpeg-50": jpeg(50),
        "rot+8": rotate(8),
        "rot-8": rotate(-8),
        "bright+30": np.clip(image.astype(np.int16) + 30, 0, 255).astype(np.uint8),
    }


def _largest(faces: list):
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])) if faces else None


def collect(analyzer: FaceAnalyzer) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Clean embedding per identity, and (identity, embedding) per perturbed copy."""
    sources: list[tuple[str, np.ndarray]] = []
    group = read_image(insightface_t1())
    faces = sorted(analyzer.analyze(group), key=lambda f: f.bbox[0])
    sources += [(f"t1-{i}", crop) for i, crop in enumerate(_crops(group, faces))]
    hanks = read_image(insightface_tom_hanks())
    sources.append(("tom-hanks", cv2.copyMakeBorder(hanks, 56, 56, 56, 56, cv2.BORDER_REFLECT)))
    sources.append(("astronaut", read_image(skimage_astronaut())))
    names, clean, probe_names, probes = [], [], [], []
    for name, image in sources:
        face = _largest(analyzer.analyze(image))
        if face is None:
            print(f"  (no face found in clean {name}; skipped)", file=sys.stderr)
            continue
        names.append(name)
        clean.append(face.embedding)
        for variant, perturbed in perturbations(image).items():
            found = _largest(analyzer.analyze(perturbed))
            if found is None:
                print(f"  (no face in {name}/{variant}; counts as a false reject)", file=sys.stderr)
                probe_names.append(name)
                probes.append(None)
                continue
            probe_names.append(name)
            probes.append(found.embedding)
    return names, np.stack(clean), probe_names, probes  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="dlib", choices=["dlib", "insightface"])
    parser.add_argument("--model-root", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    analyzer = FaceAnalyzer(args.backend, args.model_root)
    threshold = args.threshold if args.threshold is not None else threshold_for(analyzer.name)
    names, clean, probe_names, probes = collect(analyzer)
    same, diff, missed = [], [], 0
    for name, emb in zip(probe_names, probes, strict=True):
        if emb is None:
            missed += 1
            continue
        sims = cosine_similarities(emb, clean)
        for other, sim in zip(names, sims, strict=True):
            (same if other == name else diff).append(float(sim))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            diff.append(float(clean[i] @ clean[j]))
    same_a, diff_a = np.array(same), np.array(diff)
    far = float((diff_a >= threshold).mean())
    frr = float(((same_a < threshold).sum() + missed) / (len(same_a) + missed))
    result = {
        "backend": analyzer.name,
        "model": analyzer.model_name,
        "identities": names,
        "threshold": threshold,
        "same": {
            "n": len(same_a),
            "min": same_a.min(),
            "p5": np.percentile(same_a, 5),
            "median": np.median(same_a),
            "max": same_a.max(),
        },
        "different": {
            "n": len(diff_a),
            "min": diff_a.min(),
            "median": np.median(diff_a),
            "p95": np.percentile(diff_a, 95),
            "max": diff_a.max(),
        },
        "missed_detections": missed,
        "false_accept_rate": far,
        "false_reject_rate": frr,
    }
    print(f"backend {analyzer.name} ({analyzer.model_name}), {len(names)} identities, threshold cos >= {threshold}")
    print("| pairs | n | min | p5/median | median/p95 | max |")
    print("|---|---|---|---|---|---|")
    s, d = result["same"], result["different"]
    print(f"| same person | {s['n']} | {s['min']:.3f} | {s['p5']:.3f} | {s['median']:.3f} | {s['max']:.3f} |")
    print(f"| different people | {d['n']} | {d['min']:.3f} | {d['median']:.3f} | {d['p95']:.3f} | {d['max']:.3f} |")
    print(f"false accepts {far:.4f}, false rejects {frr:.4f} (missed detections: {missed})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
