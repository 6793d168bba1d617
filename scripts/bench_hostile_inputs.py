"""What `faceswap verify` costs on hostile files and on the largest honest ones its limits admit.

    .venv/bin/python scripts/bench_hostile_inputs.py [--out bench-results] [--only NAME ...] [--skip-large]

Each file is verified by a fresh `faceswap verify` process (no workspace); its own peak resident set
(wait4's ru_maxrss), wall-clock and CPU seconds are measured. The bombs are the issue's (a 875 KB PNG
of 30000x30000, a sparse 4 GiB `.png`, 64 flat 8K frames in an MP4) and their cousins (a JPEG, GIF and
EXR declaring huge frames, an MP4 claiming 10^9 frames, a sparse 4 GiB MP4); the honest files sit at
verify's limits (8192x8192 stills, a 4096x4096 RGBA half EXR, 4K video read frame by frame, a
two-minute 1080p clip read in key frames, a Content Credentials MP4 of 500 MiB). The promise:
every bomb is exit 2 with one line naming the flag that raises the limit, and every file stays under
1 GB and 60 s on two cores. Wall-clock times on a shared machine are inflated: CPU seconds are given
too. Writes a table and OUT/hostile_inputs.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from hostile_media import (  # noqa: E402
    declaring_huge,
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


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def textured_video(path: Path, width: int, height: int, frames: int, codec: str = "libx264") -> Path:
    """A pan over smooth noise plus grain: a camera-like bitrate, not a flat card."""
    base = noise(height, width)
    rng = np.random.default_rng(1)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec == "libx264" else "yuv444p10le"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            image = np.roll(base, 4 * i, axis=1)
            grain = rng.integers(-6, 7, image.shape, dtype=np.int16)
            image = np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def still(path: Path, side: int, params: tuple[int, ...] = (), deep: bool = False, alpha: bool = False) -> Path:
    image = noise(side, side)
    if alpha:
        image = np.dstack([image, image[..., 0]])
    if deep:
        image = image.astype(np.uint16) * 257
    assert cv2.imwrite(str(path), image, list(params))
    return path


def exr_rgba_half(path: Path, side: int) -> Path:
    plane = (noise(side, side)[..., 0].astype(np.float16) / 255).astype(np.float16)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {c: plane for c in "RGBA"}).write(str(path))
    return path


def signed_mp4(path: Path, folder: Path, mebibytes: int) -> Path:
    """A small H.264 clip whose media data is padded to `mebibytes`, then signed with Content
    Credentials (c2pa hashes, and when reading holds, the whole file)."""
    from hostile_media import _find_box

    from faceswap.provenance.credentials import CredentialFacts, load_or_create_identity, sign_file

    clip = textured_video(folder / "short.mp4", 640, 360, 25)
    raw = bytearray(clip.read_bytes())
    at, size = _find_box(raw, [b"mdat"])
    extra = mebibytes * (1 << 20) - len(raw)
    with open(path, "wb") as handle:
        handle.write(raw[:at] + struct.pack(">I", size + extra) + raw[at + 4 : at + size])
        handle.write(np.random.default_rng(2).integers(0, 255, extra, dtype=np.uint8).tobytes())
        handle.write(raw[at + size :])
    identity = load_or_create_identity(folder / "keys")
    facts = CredentialFacts("0123456789ab", 1, "ab" * 32, "1234567890abcdef", "bench", "ef" * 32, ("a", "b"))
    sign_file(path, facts, identity)
    return path


def cases(folder: Path, skip_large: bool) -> dict[str, Callable[[], Path]]:
    small = lambda: flat_video(folder / "small.mp4", 160, 120, 10)  # noqa: E731
    found: dict[str, Callable[[], Path]] = {
        "png 30000x30000 (875 KB)": lambda: png_bomb(folder / "bomb.png"),
        "sparse 4 GiB .png": lambda: sparse_file(folder / "sparse.png", 4 * GB, small_png_bytes()),
        "mp4 64 flat 8K frames": lambda: flat_video(folder / "flat8k.mp4", 7680, 4320, 64),
        "jpeg header 65500x65500": lambda: jpeg_declaring(folder / "huge.jpg", 65500, 65500),
        "gif 65535x65535": lambda: gif_declaring(folder / "huge.gif", 65535, 65535),
        "webp header 16384x16384": lambda: _webp_huge(folder),
        "exr 30000x30000 data window": lambda: exr_bomb(folder / "bomb.exr", 30000, 30000),
        "mp4 claiming 10^9 frames": lambda: mp4_claiming_frames(small(), folder / "claims.mp4", 10**9),
        "sparse 4 GiB .mp4": lambda: sparse_file(folder / "sparse.mp4", 4 * GB, small().read_bytes()),
        "jpeg 8192x8192": lambda: still(folder / "big.jpg", 8192),
        "png 8192x8192": lambda: still(folder / "big.png", 8192),
        "png 7000x7000 16-bit RGBA": lambda: still(folder / "deep.png", 7000, deep=True, alpha=True),
        "tiff 8192x8192 16-bit (uncompressed)": lambda: still(
            folder / "deep.tif", 8192, (cv2.IMWRITE_TIFF_COMPRESSION, 1), True
        ),
        "webp 8192x8192": lambda: still(folder / "big.webp", 8192, (cv2.IMWRITE_WEBP_QUALITY, 90)),
        "exr 4096x4096 RGBA half": lambda: exr_rgba_half(folder / "plate.exr", 4096),
        "mp4 4K 10 s (frame by frame)": lambda: textured_video(folder / "uhd.mp4", 3840, 2160, 250),
        "mov 4K ProRes 4444 2 s": lambda: textured_video(folder / "uhd.mov", 3840, 2160, 50, "prores_ks"),
    }
    if not skip_large:
        found["mp4 1080p 2 min (key frames)"] = lambda: textured_video(folder / "long.mp4", 1920, 1080, 3000)
        found["signed mp4 500 MiB"] = lambda: signed_mp4(folder / "signed.mp4", folder, 500)
    return found


def _webp_huge(folder: Path) -> Path:
    path = folder / "small.webp"
    assert cv2.imwrite(str(path), noise(64, 64), [cv2.IMWRITE_WEBP_QUALITY, 101])
    out = folder / "huge.webp"
    out.write_bytes(declaring_huge(path.read_bytes()))
    return out


def measure(name: str, path: Path, folder: Path) -> dict:
    run = run_cli(["--workspace", str(folder / "ws"), "verify", str(path)], timeout=600)
    line = (run.stdout.strip().splitlines() or [run.stderr.strip()[-200:]])[-1]
    return {
        "file": name,
        "bytes_on_disk": path.stat().st_blocks * 512,
        "bytes": path.stat().st_size,
        "exit": run.code,
        "peak_rss_mib": round(run.peak_rss / (1 << 20)),
        "wall_s": round(run.seconds, 1),
        "cpu_s": round(run.cpu_seconds, 1),
        "traceback": "Traceback" in run.stderr,
        "line": line.split(": ", 1)[-1] if ": " in line else line,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", nargs="*", default=None, help="names (or parts of names) of the files to run")
    parser.add_argument("--skip-large", action="store_true", help="skip the 2-minute clip and the 500 MiB file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as scratch:
        folder = Path(scratch)
        for name, build in cases(folder, args.skip_large).items():
            if args.only and not any(part in name for part in args.only):
                continue
            row = measure(name, build(), folder)
            rows.append(row)
            print(
                f"{row['file']:<32} exit {row['exit']}  {row['peak_rss_mib']:>5} MiB  {row['wall_s']:>6.1f} s wall "
                f"{row['cpu_s']:>6.1f} s CPU  {row['line'][:110]}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "cpus": __import__("os").cpu_count(), "rows": rows}
    (args.out / "hostile_inputs.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'hostile_inputs.json'}")


if __name__ == "__main__":
    main()
