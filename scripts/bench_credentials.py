"""Content Credentials benchmark: what signing (and reading back) costs per file and per frame.

    .venv/bin/python scripts/bench_credentials.py [--repeats 5] [--out bench-results]

Files are real media of insightface's t1.jpg panned across the frame with per-frame noise: PNG and JPEG (quality 95) at
1280x720 as the sink writes them, H.264 MP4 (CRF 18, yuv420p) of 250 frames at 640x480 and 50 frames
at 1920x1080, and a 1280x720 half-float EXR (sidecar). Each repeat signs a fresh copy with
`sign_file` (c2pa embeds the manifest, verifies it after signing, fsyncs and renames) and reads it
back with `read_credentials` against the trust anchor. Medians are reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import c2pa
import cv2
import numpy as np

from faceswap.faces.samples import insightface_t1
from faceswap.media import read_image
from faceswap.provenance.credentials import CredentialFacts, load_or_create_identity, read_credentials, sign_file

CASES = [
    ("png", (1280, 720), 1),
    ("jpg", (1280, 720), 1),
    ("mp4", (640, 480), 250),
    ("mp4", (1920, 1080), 50),
    ("mp4", (1920, 1080), 250),
    ("exr", (1280, 720), 1),
]


def frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """A pan over a real photo plus fresh sensor-like noise per frame, so that H.264 spends a
    camera-like bitrate (a clean pan over a still compresses to almost nothing)."""
    rng = np.random.default_rng(0)
    source = read_image(insightface_t1())
    w, h = size
    scale = max(w / source.shape[1], h / source.shape[0]) * 1.15
    big = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(count):
        x = int((big.shape[1] - w) * i / max(count - 1, 1))
        noisy = big[:h, x : x + w].astype(np.float32) + rng.normal(0.0, 4.0, (h, w, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def make(path: Path, size: tuple[int, int], count: int) -> Path:
    images = frames(count, size)
    if path.suffix == ".png":
        cv2.imwrite(str(path), images[0])
    elif path.suffix == ".jpg":
        cv2.imwrite(str(path), images[0], [cv2.IMWRITE_JPEG_QUALITY, 95])
    elif path.suffix == ".exr":
        codec = av.CodecContext.create("exr", "w")
        codec.width, codec.height, codec.pix_fmt, codec.time_base = *size, "gbrpf32le", Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(images[0], format="bgr24").reformat(format="gbrpf32le")
        path.write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    else:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            for i, image in enumerate(images):
                frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                frame.pts, frame.time_base = i, Fraction(1, 25)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def facts(count: int) -> CredentialFacts:
    return CredentialFacts(
        token="0123456789ab",
        seq=1000,
        prev_hash="ab" * 32,
        registrar_key_id="1234567890abcdef",
        producer="bench",
        model_fingerprint="ef" * 32,
        consent_record_ids=("rec-a", "rec-b"),
        source="composite",
        duration_ms=count * 40 if count > 1 else None,
    )


def measure(folder: Path, identity, kind: str, size: tuple[int, int], count: int, repeats: int) -> dict:
    source = make(folder / f"source.{kind}", size, count)
    sign_ms, read_ms, manifest_bytes = [], [], 0
    for i in range(repeats):
        path = folder / f"out{i}.{kind}"
        shutil.copyfile(source, path)
        start = time.perf_counter()
        signed = sign_file(path, facts(count), identity)
        signed.commit()
        sign_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        report = read_credentials(path, identity.root_pem)
        read_ms.append((time.perf_counter() - start) * 1000)
        assert report.state == "trusted", report.reasons
        manifest_bytes = path.stat().st_size - source.stat().st_size if signed.embedded else None
    sign = statistics.median(sign_ms)
    return {
        "format": kind,
        "size": f"{size[0]}x{size[1]}",
        "frames": count,
        "file_mib": round(source.stat().st_size / 2**20, 2),
        "manifest": "embedded" if manifest_bytes is not None else "sidecar",
        "added_bytes": manifest_bytes,
        "sign_ms": round(sign, 1),
        "sign_ms_per_frame": round(sign / count, 2),
        "sign_mib_per_s": round(source.stat().st_size / 2**20 / (sign / 1000), 1),
        "read_ms": round(statistics.median(read_ms), 1),
        "sign_ms_all": [round(v, 1) for v in sign_ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        identity = load_or_create_identity(folder / "keys")
        for kind, size, count in CASES:
            print(f"{kind} {size[0]}x{size[1]} x{count}", flush=True)
            rows.append(measure(folder, identity, kind, size, count, args.repeats))
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "c2pa_python": c2pa.__version__,
        "c2pa_rs": c2pa.sdk_version(),
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "credentials.json").write_text(json.dumps(report, indent=2))
    header = "| format | size | frames | file MiB | manifest | sign ms | sign ms/frame | MiB/s | read+validate ms |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['format']} | {r['size']} | {r['frames']} | {r['file_mib']} | {r['manifest']} | "
            f"{r['sign_ms']} | {r['sign_ms_per_frame']} | {r['sign_mib_per_s']} | {r['read_ms']} |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
