"""Keyed marks, content binding and the sink's read-back, measured (docs/watermark.md quotes it).

    PYTHONPATH=. .venv/bin/python scripts/bench_keyed_marks.py --out bench-results [--quick]

Sections (each prints a table; all go to OUT/bench_keyed_marks.json):
- binding: genuine outputs under sharing edits (does the binding still agree?) and unrelated pictures
  against every recorded output (false agreements, the most inliers an unrelated pair reached);
- regions: outputs against their own unconverted source and against another swap of the same frame
  (the demo's synthetic subjects drawn in the same pose: B is the source, A the output, a third face
  "a deepfake made elsewhere");
- carries: the sink's check of a frame marked upstream (sync and payload fits) on marked, unmarked and
  other-token frames;
- public layer: the keyed layer alone against the keyed layer plus a public "made by faceswap" layer at
  the same PSNR, under the weakest sharing edits of docs/watermark.md;
- cost: the sink's read-back per output, an entry's size, and `verify` of a 10 s 1080p clip (wall and
  process CPU seconds).
Files are written only under a temporary folder, through the sink where they are outputs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_pictures import fill, jpeg, photo  # noqa: E402

from faceswap.ledger.watermark_keys import TILES_LABEL, WatermarkKey  # noqa: E402
from faceswap.provenance import binding  # noqa: E402
from faceswap.provenance.watermark import tiles  # noqa: E402
from faceswap.provenance.watermark.marker import Watermarker, format_token, new_token  # noqa: E402

PHOTOS = (
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "brick.png",
    "grass.png", "gravel.png", "text.png", "page.png", "moon.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
    "cell.png", "coins.png", "clock_motion.png", "logo.png",
)  # fmt: skip
SIZES = ((640, 480), (1280, 720), (1920, 1080), (854, 480), (720, 1280), (1080, 1080))


def crop(area: float, where: tuple[float, float] = (0.75, 0.3)) -> Callable[[np.ndarray], np.ndarray]:
    def cut(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        k = area**0.5
        ch, cw = int(h * k), int(w * k)
        y, x = int((h - ch) * where[1]), int((w - cw) * where[0])
        return np.ascontiguousarray(image[y : y + ch, x : x + cw])

    return cut


def to_height(h: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda im: cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h), interpolation=cv2.INTER_AREA)


def letterbox(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    pad = max(0, (int(w * 16 / 9) - h) // 2)
    return cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def rotate(degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    def turn(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)

    return turn


def tone(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda im: np.clip(fn(im.astype(np.float32)), 0, 255).astype(np.uint8)


EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as written": lambda im: im,
    "JPEG 50": lambda im: jpeg(im, 50),
    "half size, JPEG 60": lambda im: jpeg(cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 60),
    "360p": to_height(360),
    "keep 50% area": crop(0.5),
    "keep 50% area (corner)": crop(0.5, (0.0, 0.0)),
    "50% crop + 480p + JPEG 60": lambda im: jpeg(to_height(480)(crop(0.5)(im)), 60),
    "mirror": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "letterbox 9:16": letterbox,
    "brightness +20": tone(lambda x: x + 20),
    "contrast 0.8": tone(lambda x: (x - 128) * 0.8 + 128),
    "gamma 1.25": tone(lambda x: 255 * (x / 255) ** 1.25),
    "stretch 4:3 -> 16:9": lambda im: cv2.resize(im, (int(im.shape[1] * 4 / 3), im.shape[0])),
    "rotate 5 deg": rotate(5),
}


# ---------------------------------------------------------------- binding


def outputs(count: int) -> list[tuple[str, np.ndarray]]:
    names = ["t1", *PHOTOS]
    return [(f"{names[i % len(names)]}@{SIZES[i % len(SIZES)][0]}x{SIZES[i % len(SIZES)][1]}",
             fill(photo(names[i % len(names)]), SIZES[i % len(SIZES)])) for i in range(count)]  # fmt: skip


def record_still(image: np.ndarray) -> dict:
    return binding.record([image], "image")


def bench_binding(count: int) -> dict:
    """Every edit on every output; then every output's variants against every other output's record."""
    pictures = outputs(count)
    records = [record_still(image) for _, image in pictures]
    rows = {}
    for edit, fn in EDITS.items():
        agree, inliers, misses = 0, [], []
        for (name, image), record in zip(pictures, records, strict=True):
            found = binding.check(record, [np.ascontiguousarray(fn(image))])
            agree += found.agrees
            inliers.append(max((f.inliers for f in found.frames), default=0))
            if not found.agrees:
                misses.append(name)
        rows[edit] = {"agree": agree, "of": len(pictures), "inliers_min": min(inliers), "misses": misses}
    false_hits, worst, pairs = 0, (0, ""), 0
    for i, (name, image) in enumerate(pictures):
        for edit in ("as written", "keep 50% area", "half size, JPEG 60", "mirror"):
            variant = np.ascontiguousarray(EDITS[edit](image))
            for j, record in enumerate(records):
                if names_share_a_scene(name, pictures[j][0]) or i == j:
                    continue
                found = binding.check(record, [variant])
                pairs += 1
                false_hits += found.agrees
                top = max((f.inliers for f in found.frames), default=0)
                if top > worst[0]:
                    worst = (top, f"{name} ({edit}) vs {pictures[j][0]}")
    return {"outputs": len(pictures), "edits": rows, "unrelated_pairs": pairs, "false_agreements": false_hits,
            "unrelated_inliers_max": worst[0], "unrelated_worst": worst[1], "min_inliers": binding.MIN_INLIERS}  # fmt: skip


def names_share_a_scene(a: str, b: str) -> bool:
    """Two views of the same photo are the same content, not unrelated ones."""
    return a.split("@")[0] == b.split("@")[0]


# ---------------------------------------------------------------- regions


def swap_triples(count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(source: demo-b drawn, output: demo-a drawn in the same pose, elsewhere: a third face there),
    over a photo as the plate (the demo's own backdrop has almost no features of its own)."""
    from faceswap.demo.faces import build_identities
    from faceswap.demo.subjects import SIZE, pose_at, render_frame
    from faceswap.faces.analyzer import FaceAnalyzer

    identities, _ = build_identities(FaceAnalyzer("dlib"))
    by_name = {i.name: i for i in identities}
    out = []
    plates = ("coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png", "astronaut.png")
    for k in range(count):
        base = fill(photo(plates[k % len(plates)]), SIZE).astype(np.float32)
        t = 0.41 * k
        pose = pose_at(t, 2)
        drawn = [render_frame(by_name[n], None, pose, t, base, 0.5)[0] for n in ("demo-b", "demo-a", "bystander")]
        out.append((drawn[0], drawn[1], drawn[2]))
    return out


def bench_regions(count: int) -> dict:
    rows: dict[str, dict] = {}
    for source, output, elsewhere in swap_triples(count):
        recorded = binding.record([output], "image", [source])
        cases = {"the output, JPEG 75": jpeg(output, 75), "the output, 360p + JPEG 60": jpeg(to_height(360)(output), 60),
                 "the output, keep 50% area": crop(0.5, (0.5, 0.5))(output), "the output, mirror": output[:, ::-1],
                 "its unconverted source": source, "the source, JPEG 75": jpeg(source, 75),
                 "another swap of the frame": elsewhere}  # fmt: skip
        for case, picture in cases.items():
            found = binding.check(recorded, [np.ascontiguousarray(picture)])
            row = rows.setdefault(case, {"agree": 0, "of": 0, "regions": {}})
            row["agree"] += found.agrees
            row["of"] += 1
            for frame in found.frames:
                row["regions"][str(frame.region)] = row["regions"].get(str(frame.region), 0) + 1
    return rows


# ---------------------------------------------------------------- the sink's check of upstream marks


def bench_carries(count: int) -> dict:
    marker = Watermarker(key=WatermarkKey.generate().derive(TILES_LABEL), key_id="bench")
    fits: dict[str, list[float]] = {"marked": [], "unmarked": [], "another token": []}
    seconds = []
    for _, image in outputs(count):
        token = new_token()
        marked = marker.embed([image], token)[0]
        started = time.process_time()
        fits["marked"].append(min(marker.strength(marked, token)))
        seconds.append(time.process_time() - started)
        fits["unmarked"].append(max(abs(v) for v in marker.strength(image, token)))
        fits["another token"].append(marker.strength(marked, new_token())[1])
    return {
        "frames": count,
        "marked_min": round(min(fits["marked"]), 3),
        "unmarked_max_abs": round(max(fits["unmarked"]), 3),
        "another_token_payload_max": round(max(fits["another token"]), 3),
        "floor": 0.5,
        "cpu_ms_mean": round(1000 * float(np.mean(seconds)), 1),
    }


# ---------------------------------------------------------------- a public layer beside the keyed one


def bench_public_layer(count: int, workdir: Path) -> dict:
    """Keyed layer alone at full amplitude vs keyed + public layers each at 1/sqrt(2) (the same PSNR):
    what the keyed layer (the one that credits entries) keeps under the weakest edits."""
    key = WatermarkKey.generate().derive(TILES_LABEL)
    alone, paired_key, public = Watermarker(key=key), Watermarker(key=key), Watermarker()
    attacks = ("H.264 CRF 32", "half size, JPEG 60", "50% crop + 480p + CRF 28")
    rows: dict[str, dict] = {}
    psnr = {"keyed alone": [], "keyed + public": []}
    for _, image in outputs(count):
        token = new_token()
        single = alone.embed([image], token)[0]
        both = _two_layers(image, token, paired_key, public)
        psnr["keyed alone"].append(cv2.PSNR(image, single))
        psnr["keyed + public"].append(cv2.PSNR(image, both))
        for attack in attacks:
            for label, marked in (("keyed alone", single), ("keyed + public", both)):
                seen = _attacked(attack, marked, workdir)
                found = alone.detect([seen], legacy=False)
                row = rows.setdefault(f"{attack}: {label}", {"tokens": 0, "of": 0, "z": []})
                row["tokens"] += found.token == format_token(token)
                row["of"] += 1
                row["z"].append(found.layers[0].score)
    for row in rows.values():
        row["z_min"], row["z_mean"] = round(min(row["z"]), 2), round(float(np.mean(row["z"])), 2)
        del row["z"]
    return {"psnr": {k: round(float(np.mean(v)), 2) for k, v in psnr.items()}, "rows": rows}


def _two_layers(image: np.ndarray, token: int, keyed: Watermarker, public: Watermarker) -> np.ndarray:
    gain = tiles.AMPLITUDE / np.sqrt(2) * tiles.strength_map(image)
    change = gain * (keyed.pattern(image.shape, token) + public.pattern(image.shape, token))
    return tiles.add_luma(image, change)


def _attacked(attack: str, image: np.ndarray, workdir: Path) -> np.ndarray:
    if attack == "H.264 CRF 32":
        return codec(image, 32, workdir)
    if attack == "half size, JPEG 60":
        return EDITS["half size, JPEG 60"](image)
    return codec(to_height(480)(crop(0.5)(image)), 28, workdir)


def codec(image: np.ndarray, crf: int, workdir: Path) -> np.ndarray:
    """One frame through H.264 at `crf` (8 identical frames, the middle one back)."""
    import av

    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    path = workdir / "frame.mp4"
    from faceswap.synthetic import write_input_clip

    write_input_clip(path, [np.ascontiguousarray(image[:h, :w])] * 8, 25, crf=crf)
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][4]


# ---------------------------------------------------------------- cost


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def bench_cost(workdir: Path, seconds: float) -> dict:
    from faceswap.ledger import open_ledger
    from faceswap.provenance.output.readback import sample_written
    from faceswap.provenance.output.sink import OutputContext, OutputSink
    from faceswap.provenance.output.writers import ImageWriter, VideoWriter
    from faceswap.provenance.verify.verifier import LedgerView, Verifier
    from faceswap.workspace import Workspace

    workspace = Workspace(workdir / "ws")
    sink = OutputSink.for_workspace(workspace)
    context = OutputContext("bench")
    out: dict = {"read_back": {}}
    for label, size in (("640x480 image", (640, 480)), ("1080p image", (1920, 1080))):
        written = sink.write_image(workdir / f"{size[0]}.png", fill(photo("t1"), size), context)
        frames = sample_written(written.path, ImageWriter(".png"), 1)
        _, wall, cpu = timed(lambda f=frames: sink.watermarker.detect(f, legacy=False))
        out["read_back"][label] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        out.setdefault("entry_bytes", {})[label] = len(written.entry.body)
    count = int(seconds * 25)
    frames = (pan_frame(i, count) for i in range(count))
    written, wall, cpu = timed(lambda: sink.write_video(workdir / "clip.mp4", frames, Fraction(25), context))
    out["write_10s_1080p"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "frames": count}
    out["entry_bytes"][f"{seconds:.0f} s 1080p video"] = len(written.entry.body)
    writer = VideoWriter("mp4", Fraction(25))
    (frames_back, wall, cpu) = timed(lambda: sample_written(written.path, writer, count))
    _, wall2, cpu2 = timed(lambda: sink.watermarker.detect(frames_back, legacy=False))
    out["read_back"][f"{seconds:.0f} s 1080p video"] = {"wall_s": round(wall + wall2, 3), "cpu_s": round(cpu + cpu2, 3)}
    verifier = Verifier(LedgerView.from_ledger(open_ledger(workspace, writable=False), workspace.keys_dir))
    stripped = workdir / "shared.mp4"
    reencode(written.path, stripped)
    for label, path in (("as written", written.path), ("re-encoded (no credentials)", stripped)):
        verdict, wall, cpu = timed(lambda p=path: verifier.verify(p))
        out.setdefault("verify_10s_1080p", {})[label] = {
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit": int(verdict.exit_code),
            "binding_checked": verdict.binding is not None,
        }  # fmt: skip
    return out


def pan_frame(i: int, count: int) -> np.ndarray:
    base = fill(photo("chelsea.png"), (2400, 1350))
    x = int((base.shape[1] - 1920) * i / max(count - 1, 1))
    return np.ascontiguousarray(base[135 : 135 + 1080, x : x + 1920])


def reencode(source: Path, out: Path, crf: int = 23) -> None:
    """What a platform does to a shared video: decoded and encoded again (no credentials survive)."""
    from faceswap.media import iter_video_frames
    from faceswap.synthetic import write_input_clip

    write_input_clip(out, (f.image for f in iter_video_frames(source)), 25, crf=crf)


# ---------------------------------------------------------------- report


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    parts = []
    b = report.get("binding")
    if b:
        rows = [
            [edit, f"{r['agree']}/{r['of']}", r["inliers_min"], ", ".join(r["misses"]) or "-"]
            for edit, r in b["edits"].items()
        ]
        parts.append(table(["edit", "binding agrees", "inliers min", "misses"], rows))
        parts.append(
            f"Unrelated pictures: {b['false_agreements']} false agreements in {b['unrelated_pairs']} pairs; the most "
            f"inliers an unrelated pair reached: {b['unrelated_inliers_max']} ({b['unrelated_worst']}); needed: "
            f"{b['min_inliers']}."
        )
    r = report.get("regions")
    if r:
        rows = [[case, f"{v['agree']}/{v['of']}", json.dumps(v["regions"])] for case, v in r.items()]
        parts.append(table(["file shown", "credited", "region verdicts"], rows))
    for name in ("carries", "public_layer", "cost"):
        if report.get(name):
            parts.append(f"{name}: {json.dumps(report[name], indent=1)}")
    return "\n\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--quick", action="store_true", help="small counts, a 4 s clip")
    parser.add_argument("--only", default="binding,regions,carries,public,cost")
    args = parser.parse_args()
    quick = args.quick
    wanted = set(args.only.split(","))
    report: dict = {"quick": quick}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "binding" in wanted:
            report["binding"] = bench_binding(12 if quick else 40)
        if "regions" in wanted:
            report["regions"] = bench_regions(6 if quick else 24)
        if "carries" in wanted:
            report["carries"] = bench_carries(12 if quick else 40)
        if "public" in wanted:
            report["public_layer"] = bench_public_layer(4 if quick else 12, work)
        if "cost" in wanted:
            report["cost"] = bench_cost(work, 4.0 if quick else 10.0)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_keyed_marks.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
