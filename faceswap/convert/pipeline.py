"""`faceswap convert`: consent check -> decode -> analyse -> select -> smooth -> swap -> mask ->
colour -> blend -> output sink. Each step is a function below; `convert` reads top to bottom."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.colorspace import BUILTIN_CONFIG, Colour
from faceswap.consent.gate import ConsentGate
from faceswap.consent.registry import ConsentStore
from faceswap.consent.watch import CHECK_EVERY_SECONDS, ConsentWatch
from faceswap.convert import blend as blend_modes
from faceswap.convert import colour as colour_modes
from faceswap.convert import options as declared
from faceswap.convert.delivery import Delivery, default_fps
from faceswap.convert.model_io import AuthorizedModel, load_model
from faceswap.convert.smoothing import KeypointSmoother, TrackedFace
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import REGION_FRAMINGS, crop_face, mask_to_frame, track_alignment, transform_points
from faceswap.faces.analyzer import FaceAnalyzer
from faceswap.faces.identity import IdentityMatcher
from faceswap.faces.masks import blend_mask, landmark_mask, mask_parts
from faceswap.faces.tracking import FaceTracker
from faceswap.hashing import safe_name
from faceswap.limits import OPERATOR, InputLimits
from faceswap.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    ImageSequence,
    Plate,
    find_sequence,
    iter_video_frames,
    probe_video,
    read_plate,
)
from faceswap.provenance.sink import OutputContext, OutputSink, SinkFrame, batched
from faceswap.provenance.watermark import Watermarker, new_token

MOUTH_SMOOTHING = 0.08  # seconds either side for the mouth corners, which move with speech
DECODE_AHEAD_BYTES = 1 << 30  # decoded frames held ahead of the swap


DEFAULT = declared.defaults(declared.CONVERT)  # each field's default, from its option's declaration


@dataclass(frozen=True)
class ConvertOptions:
    """A conversion's settings; each field but the last two is an option of faceswap/convert/options.py."""

    mask: str = DEFAULT["mask"]
    color: str = DEFAULT["color"]
    blend: str = DEFAULT["blend"]
    erode: float = DEFAULT["erode"]  # share of the crop size (training weights the same region)
    blur: float = DEFAULT["blur"]  # share of the crop size
    smoothing: float = DEFAULT["smoothing"]  # seconds of track either side keypoints are fitted over; 0: off
    batch: int = DEFAULT["batch"]
    sequence: str | None = DEFAULT["sequence"]  # "png" | "exr": a folder of NAME.####.ext
    bits: int | None = DEFAULT["bits"]  # integer outputs: 8 or 16; None: the input's depth (8 for 8-bit input)
    alpha: bool = DEFAULT["alpha"]  # the swap matte as alpha: sequences, or ProRes 4444
    codec: str = DEFAULT["codec"]  # video outputs: h264 | prores4444 | prores422hq (.mov)
    frames: tuple[int, int] | None = DEFAULT["frames"]  # convert input frames FIRST..LAST (their own numbers)
    start_frame: int | None = DEFAULT["start_frame"]  # the first output frame's number (default: the input's)
    input_colorspace: str | None = DEFAULT["input_colorspace"]  # default: scene-linear Rec.709 for float, else sRGB
    output_colorspace: str | None = DEFAULT["output_colorspace"]  # default: linear Rec.709 for EXR, else the input's
    ocio: str | None = DEFAULT["ocio"]  # an OpenColorIO config file or ocio:// URI; default: the built-in CG config
    backend: str = DEFAULT["backend"]
    model_root: Path | None = DEFAULT["model_root"]
    detect_every: int = DEFAULT["detect_every"]  # detect on every Nth frame (and on cuts); follow faces between
    allow_empty: bool = DEFAULT["allow_empty"]  # write a marked, unchanged copy when no face of subject B is found
    mask_model: Path | None = DEFAULT["mask_model"]  # the segmenter `--mask occlusion` uses (`faceswap train-mask`)
    consent_check_seconds: float = CHECK_EVERY_SECONDS
    limits: InputLimits = OPERATOR  # what an input may declare (faceswap/limits.py)

    def colour(self) -> Colour:
        """The OCIO config; BadInput when it or a named colour space is unusable."""
        colour = Colour(str(self.ocio) if self.ocio else BUILTIN_CONFIG)
        named = {"--input-colorspace": self.input_colorspace, "--output-colorspace": self.output_colorspace}
        for option, name in named.items():
            if name:
                colour.space(name, option)
        return colour

    def validate(self) -> None:
        """Every option checked before anything is read or written."""
        declared.check(self, declared.CONVERT)
        if mask_parts(self.mask)[1] != (self.mask_model is not None):
            raise BadInput(
                "--mask occlusion needs --mask-model (a segmenter from `faceswap train-mask`), and --mask-model "
                "is only for --mask occlusion or REGION+occlusion"
            )
        if self.sequence and self.codec != "h264":
            raise BadInput("--codec is for video outputs; an image sequence has none")
        if self.sequence == "exr" and self.bits is not None:
            raise BadInput("EXR frames are half float; --bits is for PNG and video outputs")
        if self.alpha and not (self.sequence or self.codec == "prores4444"):
            raise BadInput("--alpha needs --sequence or --codec prores4444 (other videos carry no matte)")
        if self.frames is not None and not 0 <= self.frames[0] <= self.frames[1]:
            raise BadInput("--frames FIRST-LAST needs 0 <= FIRST <= LAST")
        self.colour()  # the config loads and the named colour spaces are in it
        if self.consent_check_seconds <= 0:
            raise BadInput("the consent re-check interval must be positive")


@dataclass
class ConvertReport:
    input: str
    output: str
    model: str
    frames: int = 0
    frames_swapped: int = 0
    faces_swapped: int = 0
    bystanders_untouched: int = 0
    key_frames: int = 0  # frames where faces were detected and identified (the rest were tracked)
    seconds: float = 0.0
    fps: float = 0.0
    token: str | None = None
    ledger_seq: int | None = None
    consent_record_ids: list[str] = field(default_factory=list)
    swaps: list[dict[str, Any]] = field(default_factory=list)  # per swapped face: frame, bbox, kps

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FrameIn:
    index: int
    image: np.ndarray  # uint8 BGR, sRGB: the view that analysis and the swap work on
    pts: int | None = None
    time_base: Fraction | None = None
    number: int | None = None  # the input's frame number: a sequence's file number, a video's decode index
    plate: np.ndarray | None = None  # the input's own pixels (16-bit, float) when they hold more than `image`
    timecode: str | None = None  # this frame's source timecode, where known


@dataclass
class Source:
    """What decode found: the frames (only those asked for) and what outputs keep of the input."""

    frames: Iterator[FrameIn]
    kind: str  # video | sequence | image
    fps: Fraction
    time_base: Fraction | None
    total: int  # frames that will come; 0 when unknown
    colour: Colour
    space: str  # the input's colour space (canonical name)
    is_float: bool  # plates are float (EXR): scene-linear unless told otherwise
    deep: bool  # plates hold more than 8 bits
    first_number: int  # the first frame's number
    timecode: str | None  # the first frame's timecode, where known


def decode(path: Path, options: ConvertOptions | None = None) -> Source:
    """Frames from a video (a reader thread keeps decoding ahead), a numbered image sequence
    (`plate.%04d.exr`, or a folder of one) or a single image; within `--frames` when given."""
    options = options or ConvertOptions()
    colour = options.colour()
    sequence = find_sequence(path, options.limits) if "%" in path.name or "#" in path.name or path.is_dir() else None
    if sequence is not None:
        return _decode_sequence(sequence, options, colour)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _decode_video(path, options, colour)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _decode_sequence(None, options, colour, single=path)
    if path.is_dir():
        raise BadInput(f"{path}: holds no numbered image sequence (NAME.####.exr|png|tif)")
    raise BadInput(f"{path}: not a video, image or image sequence this tool reads")


def _decode_video(path: Path, options: ConvertOptions, colour: Colour) -> Source:
    from faceswap.timecode import Timecode

    info = probe_video(path, options.limits)
    space = colour.space(options.input_colorspace) if options.input_colorspace else colour.srgb
    deep = info.bits > 8
    first, last = options.frames or (0, None)
    if info.frames and first >= info.frames:
        raise BadInput(f"--frames {first}-{last}: {path} has frames 0-{info.frames - 1}")
    start = Timecode.parse(info.timecode, info.fps) if info.timecode else None
    view = _viewer(colour, space)

    def frames() -> Iterator[FrameIn]:
        for f in iter_video_frames(path, deep=deep, limits=options.limits):
            if f.index < first:
                continue
            if last is not None and f.index > last:
                return
            image, plate = view(f.image)
            tc = str(start + f.index) if start else None
            yield FrameIn(f.index, image, f.pts, f.time_base, f.index, plate, tc)

    count = info.frames - first if info.frames else 0
    if last is not None:
        count = min(count, last - first + 1) if count else last - first + 1
    frame_bytes = info.width * info.height * (3 + (6 if deep else 0))  # the view, and the deep plate
    return Source(
        in_background(frames(), ahead(frame_bytes)),
        "video",
        info.fps,
        info.time_base,
        count,
        colour,
        space,
        False,
        deep,
        first,
        str(start + first) if start else None,
    )


def _decode_sequence(
    sequence: ImageSequence | None, options: ConvertOptions, colour: Colour, single: Path | None = None
) -> Source:
    """A numbered sequence's frames in number order (or one image as frame 0), at their own depth."""
    if sequence is not None:
        first, last = options.frames or (min(sequence.numbers), max(sequence.numbers))
        numbers = [n for n in sequence.numbers if first <= n <= last]
        if not numbers:
            raise BadInput(f"--frames {first}-{last}: {sequence.label} has no frames in that range")
        paths = [(n, sequence.path(n)) for n in numbers]
    else:
        assert single is not None
        paths = [(0, single)]
    head = read_plate(paths[0][1], options.limits)
    default = colour.linear if head.is_float else colour.srgb
    space = colour.space(options.input_colorspace, "--input-colorspace") if options.input_colorspace else default
    view = _viewer(colour, space)
    shape = head.pixels.shape

    def frames() -> Iterator[FrameIn]:
        for position, (number, file) in enumerate(paths):
            plate: Plate = head if position == 0 else read_plate(file, options.limits)
            if plate.pixels.shape != shape:
                raise BadInput(f"{file}: {plate.pixels.shape[1]}x{plate.pixels.shape[0]} differs from the first frame")
            image, deep = view(plate.pixels)
            yield FrameIn(position, image, None, None, number, deep, plate.timecode)

    kind = "sequence" if sequence is not None else "image"
    frame_bytes = head.pixels.nbytes + (head.alpha.nbytes if head.alpha is not None else 0) + head.pixels.size
    return Source(
        in_background(frames(), ahead(frame_bytes)),
        kind,
        default_fps(head.fps),
        None,
        len(paths),
        colour,
        space,
        head.is_float,
        head.pixels.dtype != np.uint8,
        paths[0][0],
        head.timecode,
    )


def _viewer(colour: Colour, space: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """pixels -> (8-bit sRGB view, the pixels themselves when the view does not hold all of them)."""
    display = colour.display(space)

    def view(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if pixels.dtype == np.uint8 and display.identity:
            return pixels, None
        if pixels.dtype == np.uint16 and display.identity:
            return np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8), pixels
        scale = 1.0 if pixels.dtype.kind == "f" else float(np.iinfo(pixels.dtype).max)
        return display.view8(pixels.astype(np.float32) / scale), pixels

    return view


def ahead(frame_bytes: int) -> int:
    """How many decoded frames the reader thread may hold: up to 16, within DECODE_AHEAD_BYTES (an 8K
    float plate is half a GiB), never fewer than 2."""
    return max(2, min(16, DECODE_AHEAD_BYTES // max(1, frame_bytes)))


def in_background(items: Iterator, depth: int = 16) -> Iterator:
    """Run an iterator in its own thread, a few items ahead: decoding, swapping and the sink's
    watermarking and encoding overlap (the heavy parts release the GIL). When the consumer stops
    early (a refusal, an error), the thread stops too and closes the source (no decoder left open)."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises
            offer(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=worker, daemon=True).start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class Swapper:
    """Everything per frame after decoding: analyse and select, smooth along tracks, swap."""

    def __init__(
        self,
        model: AuthorizedModel,
        references: np.ndarray,
        backend: str,
        options: ConvertOptions,
        fps: float,
        token: int | None = None,
        segmenter: Any = None,
    ):
        """Every frame this returns is already watermarked with `token` (a random one when none is
        given, which no ledger entry names) under the workspace's watermark secret, which the model
        carries: generated pixels never leave it unmarked, whoever calls. `segmenter`
        (model.occlusion.Segmenter): what it finds in front of a face keeps the input's pixels."""
        self.model, self.options, self.segmenter = model, options, segmenter
        self.token = new_token() if token is None else token
        self.watermarker = Watermarker.marking(model.marks)
        self.analyzer = FaceAnalyzer(backend, options.model_root)
        self.subject_b = IdentityMatcher(references, backend)
        self.tracker = FaceTracker(self.analyzer, self.subject_b, options.detect_every)
        face_radius = int(round(options.smoothing * float(fps)))
        mouth_radius = int(round(min(options.smoothing, MOUTH_SMOOTHING) * float(fps)))
        self.smoothing_radii = (face_radius,) * 3 + (mouth_radius,) * 2  # eyes and nose; mouth corners
        self.colour = colour_modes.MODES[options.color]
        self.blend = blend_modes.MODES[options.blend]

    def select(self, frame: FrameIn, report: ConvertReport) -> list:
        """Faces of subject B in this frame; everyone else is counted and left alone."""
        chosen = []
        for seen in self.tracker.step(frame.image):
            if seen.is_subject:
                chosen.append(seen.face)
            else:
                report.bystanders_untouched += 1
        report.key_frames = self.tracker.key_frames
        return chosen

    def run(self, frames: Iterable[FrameIn], report: ConvertReport) -> Iterator[tuple[FrameIn, np.ndarray, np.ndarray]]:
        """(frame, new image, matte) for each input frame, in order; a frame is swapped once the
        smoother has seen the frames after it, in batches for the network."""
        smoother: KeypointSmoother[FrameIn] = KeypointSmoother(radii=self.smoothing_radii)

        def smoothed() -> Iterator[tuple[FrameIn, list[TrackedFace]]]:
            for frame in frames:
                yield from smoother.push(frame, frame.index, self.select(frame, report))
            yield from smoother.flush()

        for batch in batched(smoothed(), self.options.batch):
            yield from self.swap(batch, report)

    def _infer(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        batch = torch.from_numpy(np.stack(crops)[..., ::-1].copy()).permute(0, 3, 1, 2).float().div_(255)
        batch = batch.to(self.model.device)
        with (
            torch.no_grad(),
            torch.autocast(self.model.device, dtype=self.model.dtype, enabled=self.model.device == "cuda"),
        ):
            rgb, mask = self.model._network.swap(batch, "a")
        faces = (rgb.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()[..., ::-1] * 255).round().astype(np.uint8)
        return np.ascontiguousarray(faces), mask.float()[:, 0].cpu().numpy()

    def region(self, face, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the swap may paint (the face hull) and what it must keep from the target (its own
        mouth or lower face, for `--mask mouth|lower-face`), in aligned crop coordinates."""
        import cv2

        empty = np.zeros((size, size), np.float32)
        if face.landmarks is None or face.landmark_scheme is None:
            return np.ones((size, size), np.float32), empty
        lms = transform_points(face.landmarks, matrix)
        kps = transform_points(face.kps5, matrix)
        area = landmark_mask(lms, face.landmark_scheme, kps, "full", (size, size))
        region = mask_parts(self.options.mask)[0]
        if region == "full":
            return area, empty
        keep = landmark_mask(lms, face.landmark_scheme, kps, region, (size, size))
        return area, cv2.dilate(keep, np.ones((3, 3), np.uint8), iterations=max(1, size // 32))

    def finish_mask(self, learned: np.ndarray, area: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Learned mask within the face hull, eroded and feathered; the kept part is cut out with a
        sharper edge so the target's lips are not blurred into the swap."""
        import cv2

        size = area.shape[0]
        mask = blend_mask(np.minimum(np.clip(learned, 0, 1), area), self.options.erode, self.options.blur)
        if keep.any():
            mask = mask * (1 - cv2.GaussianBlur(keep, (0, 0), max(0.5, 0.012 * size)))
        return np.clip(mask, 0, 1)

    def swap(
        self, frames: list[tuple[FrameIn, list[TrackedFace]]], report: ConvertReport
    ) -> list[tuple[FrameIn, np.ndarray, np.ndarray]]:
        """Swap a batch of frames whose faces carry smoothed keypoints; (frame, image, matte) each."""
        size = self.model.resolution
        alignment = self.model.alignment
        jobs = [
            (pos, tracked, track_alignment(tracked.face, tracked.kps, size, alignment))
            for pos, (_, faces) in enumerate(frames)
            for tracked in faces
        ]
        outputs = [f.image.copy() for f, _ in frames]
        mattes = [np.zeros(f.image.shape[:2], np.float32) for f, _ in frames]
        if jobs:
            crops = [crop_face(frames[pos][0].image, m, size) for pos, _, m in jobs]
            swapped, learned = self._infer(crops)
            hidden = self.occluders([(frames[pos][0].image, t.face, t.kps) for pos, t, _ in jobs])
            for (pos, tracked, matrix), crop, new, learned_mask, kept in zip(
                jobs, crops, swapped, learned, hidden, strict=True
            ):
                face = tracked.face
                mask = self.finish_mask(learned_mask, *self.region(face, matrix, size))
                new = self.colour(new, crop, mask)
                outputs[pos] = self.blend(outputs[pos], new, matrix, mask)
                matte = mask_to_frame(mask, matrix, outputs[pos].shape)
                if kept is not None:
                    outputs[pos], matte = keep_occluders(frames[pos][0].image, outputs[pos], kept), matte * (1 - kept)
                mattes[pos] = np.maximum(mattes[pos], matte)
                report.faces_swapped += 1
                report.swaps.append(
                    {
                        "frame": frames[pos][0].index,
                        "track": tracked.track_id,
                        "bbox": [round(float(v), 1) for v in face.bbox],
                        "kps": np.round(face.kps5, 2).tolist(),
                        "kps_smoothed": np.round(tracked.kps, 2).tolist(),
                    }
                )
            report.frames_swapped += len({pos for pos, _, _ in jobs})
        outputs = self.watermarker.embed(outputs, self.token)
        return [(f, out, matte) for (f, _), out, matte in zip(frames, outputs, mattes, strict=True)]

    def occluders(self, faces: list[tuple[np.ndarray, Any, np.ndarray]]) -> list[np.ndarray | None]:
        """For each (frame, face, smoothed kps5): where the input must be kept because something is in
        front of the face, in frame pixels (None each without a segmenter)."""
        if self.segmenter is None:
            return [None] * len(faces)
        from faceswap.faces.masks import occluder_matte

        found = self.segmenter.predict(faces)
        return [
            mask_to_frame(occluder_matte(o.visible), o.matrix, image.shape)
            for (image, _, _), o in zip(faces, found, strict=True)
        ]


def keep_occluders(source: np.ndarray, swapped: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The input's pixels where `kept` (an occluder in front of the face, frame pixels in [0, 1]),
    the swap elsewhere."""
    alpha = kept[..., None]
    mixed = swapped.astype(np.float32) * (1 - alpha) + source.astype(np.float32) * alpha
    return np.clip(np.rint(mixed), 0, 255).astype(swapped.dtype)


def swapped_something(report: ConvertReport, allow_empty: bool, subject_b: str) -> Callable[[], None]:
    """What else must hold when a conversion's output is committed: at least one face of subject B
    swapped, unless an unchanged copy was asked for."""

    def check() -> None:
        if report.frames_swapped == 0 and not allow_empty:
            raise CheckFailed(
                f"no face of subject '{subject_b}' was found in {report.frames} frame(s); nothing written "
                "(--allow-empty writes an unchanged, marked copy)"
            )

    return check


def convert(
    store: ConsentStore,
    model_dir: Path,
    input_path: Path,
    output: Path,
    options: ConvertOptions,
    progress: Callable[[int, int], None] | None = None,
    shot: Mapping[str, Any] | None = None,
) -> ConvertReport:
    """consent (ledger-proven model) -> decode -> analyse -> swap -> sink, re-checking consent.
    `shot`: what convert-batch identifies the shot by, recorded as the entry's settings["shot"]."""
    options.validate()
    model = load_model(store, model_dir)
    if model.alignment.face_type in REGION_FRAMINGS:
        raise BadInput(
            f"{model_dir}: trained on {model.alignment.face_type}-face crops, for `faceswap dub` only "
            "(a face swap needs a model of the whole face)"
        )
    grant = model.grant
    segmenter = _segmenter(store, options, grant)
    sink = OutputSink.for_workspace(store.workspace, store.ledger)
    sink.check_destination(output, (input_path, model.weights_path, *_weights_of(segmenter)))
    record_b = store.load().by_id(grant.record_for(grant.subject_b).record_id)
    assert record_b is not None
    backend = record_b.backend if options.backend == "auto" else options.backend
    source = decode(input_path, options)
    delivery = Delivery.plan(options, source, output)
    frames, total = source.frames, source.total
    token = sink.reserve_token()
    swapper = Swapper(model, record_b.reference_embeddings, backend, options, float(source.fps), token, segmenter)
    report = ConvertReport(str(input_path), str(output), str(model_dir), consent_record_ids=grant.record_ids)
    started = time.perf_counter()

    def swapped_frames() -> Iterator[SinkFrame]:
        for frame, image, matte in swapper.run(frames, report):
            report.frames += 1
            if progress:
                progress(report.frames, total)
            yield delivery.frame(frame, image, matte)

    required = swapped_something(report, options.allow_empty, grant.subject_b)
    # closing: a refusal stops the decoding thread now, not when the exception's frames are freed
    with closing(frames), ConsentWatch(ConsentGate(store), grant, options.consent_check_seconds, required) as watch:
        context = _context(model, input_path, options, delivery, watch, shot, segmenter)
        audio = input_path if source.kind == "video" else None
        written = delivery.write(sink, output, swapped_frames(), context, source, audio, token)
    report.seconds = round(time.perf_counter() - started, 2)
    report.fps = round(report.frames / max(report.seconds, 1e-9), 2)
    report.token, report.ledger_seq = written.token, written.entry.seq
    return report


def _segmenter(store: ConsentStore, options: ConvertOptions, grant) -> Any:
    """The occlusion segmenter `--mask-model` names (its entry and consent checked), or None."""
    if options.mask_model is None:
        return None
    from faceswap.model.occlusion import load_segmenter

    return load_segmenter(store, options.mask_model, grant)


def _weights_of(segmenter: Any) -> tuple[Path, ...]:
    return (segmenter.weights_path,) if segmenter is not None else ()


def segmenter_settings(segmenter: Any) -> dict[str, Any]:
    """What an output's entry says about the segmenter it was masked with."""
    if segmenter is None:
        return {}
    return {
        "mask_model": segmenter.name,
        "mask_model_fingerprint": segmenter.fingerprint,
        "mask_model_seq": segmenter.entry.seq,
    }


def _context(
    model: AuthorizedModel,
    input_path: Path,
    options: ConvertOptions,
    delivery: Delivery,
    guard: ConsentWatch,
    shot: Mapping[str, Any] | None,
    segmenter: Any = None,
) -> OutputContext:
    """What the output's ledger entry says about the conversion, and what must hold when it commits."""
    return OutputContext(
        producer="convert",
        model_fingerprint=model.fingerprint,
        consent_record_ids=tuple(model.grant.record_ids),
        settings={
            "model": model.name,
            "model_seq": model.entry.seq,
            "input": safe_name(input_path),
            **declared.record(options, declared.CONVERT),
            "purpose": model.grant.purpose,
            **segmenter_settings(segmenter),
            **delivery.settings(),
            **({"shot": dict(shot)} if shot else {}),
        },
        guard=guard,
        sources=(input_path, model.weights_path, *_weights_of(segmenter)),
        source_type="composite",
    )
