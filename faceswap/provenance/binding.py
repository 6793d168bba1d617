"""Content binding: what an `output.written` entry records of its pictures, and the check that a
file shows that picture, so that a token credits its entry only on the content it was made for,
even where the watermark secret has leaked.

A key frame's fingerprint is local: ORB keypoints (positions and 256-bit descriptors), spread over a
4 x 4 grid of the picture at WORK_SIDE pixels on its short side. A file agrees with a key frame when
enough of its own keypoints match and one affine map, found by RANSAC, carries them onto the
recorded ones (a crop to half the area, a rescale, a stretch, a small rotation, borders once
stripped; tone changes leave ORB's binary tests alone); a mirror is read by flipping the file. A
global perceptual hash does not survive a crop to half the area; local features with geometric
verification do (docs/watermark.md has the measurements).

Where the sink knows the picture the output was made from (`SinkFrame.original`: the unconverted
frame), the key frame also records the regions that changed (the swapped face) as two 32 x 32
high-passed luma patches, after and before. Once the file is aligned to the key frame, the region
must look like the output, not like its source: a stolen token stamped on the unconverted frame of
the same clip, or on another swap of the same footage whose face differs at that scale, does not
agree. Version 2 also records the middle of a large region (the face without the seam it was blended
in with) at 48 x 48: a sibling swap (the same shot converted by another model trained like this one)
shares the region's outline at 32 x 32 and differs in the face's own detail.

Version 3 records a video stretch by stretch: every PROBE_EVERY-th frame is compared with the key
frames kept so far, and becomes one itself unless one of them still credits it with a margin
(PROBED: more inliers, a region read closer to the output) and, where this frame's region tells the
output from its source, through a region rather than keypoints alone. A cut, a pan or a face that
changed makes a new key frame. The check then asks it of every stretch: of STRETCH_CHECKS frames,
one drawn within each equal stretch of the file from its bytes and the verifier's secret
(sampling.py: at fixed positions an attacker who reads this would keep the output exactly there),
no two neighbouring judged frames may disagree and at most a quarter may (a copy loses an isolated
frame now and then: a small dubbed mouth that is close to the plate's). Other footage spliced in is
refused once two neighbouring drawn frames fall in it and show what it is (the unconverted plate of
a dub can look like the output where the dubbed mouth is close to its own: docs/watermark.md,
"Splices"). An entry whose recorder had to thin its key frames (more than MAX_KEY_FRAMES) says so
(`covered` false) and is checked as versions 1 and 2 are: a video agrees when at least half of the
frames checked (up to CHECK_FRAMES, each against every key frame) agree. Frames with too few
features to judge (flat or black) are not counted.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERSION = 3  # what `record` writes; `check` reads every version in DETECTORS
WORK_SIDE = 480  # short side of the picture fingerprints are made and checked at
GRID = 4  # recorded keypoints are spread over GRID x GRID cells
STILL_POINTS = 256  # keypoints recorded for an image
FRAME_POINTS = 192  # ...and for each key frame of a video or sequence
KEY_FRAMES = 6  # versions 1 and 2: key frames recorded per video or sequence, spread over it
PROBE_EVERY = 5  # version 3: every PROBE_EVERY-th frame is compared with the key frames kept
PROBE_INLIERS = 30  # ...and is described by one that aligns with this many inliers (a copy needs MIN_INLIERS)
PROBE_FLOOR = 0.8  # ...whose region reads this well (a copy needs REGION_FLOOR)
PROBE_TOWARD = 0.8  # ...and this far toward the output (a copy needs TOWARD_OUTPUT)
PROBE_INNER = 0.9  # ...and its middle this well (a copy needs INNER_FLOOR)
MAX_KEY_FRAMES = 40  # version 3: beyond this every other key frame is dropped and the entry is not `covered`
STRETCH_CHECKS = 24  # frames of a video checked (one drawn in each 24th) where the entry covers all
FILE_POINTS = 3000  # keypoints taken from the file being checked
CHECK_FRAMES = 8  # frames of a video checked
RATIO = 0.85  # Lowe's ratio test
MAX_HAMMING = 64  # of 256 bits
RANSAC_SHARE = 0.01  # reprojection threshold, as a share of the key frame's short side
MIN_INLIERS = 15  # matches one affine map must explain (unrelated pictures: <= 10 measured)
MIN_FEATURES = 24  # a key frame or file frame with fewer keypoints cannot be judged
SCALE_RANGE = (0.3, 3.5)  # singular values of the affine map's linear part
MAX_STRETCH = 1.6  # their ratio (a 4:3 picture stretched to 16:9 is 1.33)
PATCH = 32  # region patches: PATCH x PATCH luma means, high-passed (facial detail, not head shading)
DETAIL_SIGMA = 3.0  # the high-pass, in patch cells
CHANGE_LEVELS = 10.0  # luma change (after a blur) that marks a pixel as synthesized, above the watermark's
MIN_REGION = 0.002  # a region's share of the frame
MAX_REGIONS = 2
MAX_CHANGED = 0.5  # more of the frame changed than this: the original is another rendering, no regions
DISTINCT = 0.9  # regions whose after and before patches correlate above this cannot tell them apart
REGION_FLOOR = 0.7  # the file's region must correlate this well with after (another face in the same pose: <= 0.6)
TOWARD_OUTPUT = 0.6  # ...and lie this far from before toward after (0: the source, 1: the output)
INNER = 48  # version 2 also records the region's middle (INNER_SHARE of its width and height) this finely
INNER_SHARE = 0.64
INNER_SIGMA = 3.0  # its high-pass, in INNER cells
INNER_FLOOR = 0.85  # the file's middle must correlate this well with it (scripts/bench_sibling_swap.py)


@dataclass(frozen=True)
class Detector:
    """How keypoints are found. An entry is checked with the detector of the version it was recorded
    with, since descriptors only match descriptors made the same way."""

    blur: float  # Gaussian sigma at the work scale before FAST (0: none)
    fast: int  # FAST's contrast threshold, in luma levels


# Version 1 took FAST corners of 10 levels on the picture itself: on soft content (the demo's shaded
# faces on a blurred backdrop) a key frame held 36-53 points and a half-area crop at CRF 28 found
# under 24, too few to judge. Version 2 blurs first (the codec's grain and the mark make no corners)
# and takes corners of 5 levels: twice the inliers on the 40 photos of docs/watermark.md and no more
# false matches (scripts/bench_keyed_marks.py --only binding,regions).
@dataclass(frozen=True)
class Floors:
    """What a file frame must reach to agree with a key frame: inliers of the alignment, and the
    correlations of the region and of its middle with what was recorded."""

    inliers: int
    region: float
    toward: float
    inner: float


CHECKED = Floors(MIN_INLIERS, REGION_FLOOR, TOWARD_OUTPUT, INNER_FLOOR)
PROBED = Floors(PROBE_INLIERS, PROBE_FLOOR, PROBE_TOWARD, PROBE_INNER)  # what the recorder asks of the frames it writes


# Version 3 finds keypoints as version 2 does and records a key frame per stretch (see above).
DETECTORS = {1: Detector(0.0, 10), 2: Detector(1.5, 5), 3: Detector(1.5, 5)}


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape)


def _normalised(patch: np.ndarray) -> np.ndarray:
    p = patch.astype(np.float32).ravel()
    p -= p.mean()
    return p / max(float(np.sqrt(np.mean(p * p))), 1e-3)


def _detail(patch: np.ndarray, size: int = PATCH, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    """A size x size luma patch, high-passed and normalised."""
    import cv2

    p = patch.astype(np.float32).reshape(size, size)
    return _normalised(p - cv2.GaussianBlur(p, (0, 0), sigma))


def _quantised(patch: np.ndarray, size: int = PATCH, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    return np.clip(np.rint(_detail(patch, size, sigma) * 32), -127, 127).astype(np.int8)


def _middle(box: tuple[float, ...]) -> tuple[float, float, float, float]:
    """The middle INNER_SHARE of a box: the face's own detail, not the seam it was blended in with."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * (1 - INNER_SHARE) / 2, (y1 - y0) * (1 - INNER_SHARE) / 2
    return (x0 + dx, y0 + dy, x1 - dx, y1 - dy)


@dataclass(frozen=True)
class Region:
    """Where the output was synthesized (x0, y0, x1, y1, shares of the key frame) and how it looked
    after and before, as high-passed, normalised PATCH x PATCH luma (int8, x32)."""

    box: tuple[float, float, float, float]
    after: np.ndarray = field(repr=False)
    before: np.ndarray = field(repr=False)
    inner: np.ndarray | None = field(default=None, repr=False)  # version 2: the middle after, INNER x INNER
    inner_before: np.ndarray | None = field(default=None, repr=False)  # version 3: ...and before

    @property
    def distinct(self) -> bool:
        """Can the region tell the output from its source?"""
        return float(np.mean(_normalised(self.after) * _normalised(self.before))) < DISTINCT

    def to_json(self) -> dict[str, Any]:
        data = {"box": [round(v, 4) for v in self.box], "after": _b64(self.after), "before": _b64(self.before)}
        if self.inner is not None:
            data["inner"] = _b64(self.inner)
        if self.inner_before is not None:
            data["inner_before"] = _b64(self.inner_before)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Region:
        shape = (PATCH * PATCH,)
        box = tuple(float(v) for v in data["box"])
        inner, inner_before = (
            _unb64(data[name], np.int8, (INNER * INNER,)) if data.get(name) else None
            for name in ("inner", "inner_before")
        )
        after, before = _unb64(data["after"], np.int8, shape), _unb64(data["before"], np.int8, shape)
        return cls(box, after, before, inner, inner_before)  # type: ignore[arg-type]


@dataclass(frozen=True)
class KeyFrame:
    """One recorded picture: its keypoints (work pixels), descriptors and synthesized regions."""

    index: int
    size: tuple[int, int]  # (width, height) at the work scale
    points: np.ndarray = field(repr=False)  # (n, 2) float32
    descriptors: np.ndarray = field(repr=False)  # (n, 32) uint8
    regions: tuple[Region, ...] = ()

    def to_json(self) -> dict[str, Any]:
        coords = np.clip(np.rint(self.points * 16), 0, 65535).astype("<u2")  # 1/16 pixel
        return {
            "index": self.index,
            "size": list(self.size),
            "points": _b64(coords),
            "descriptors": _b64(self.descriptors),
            "regions": [r.to_json() for r in self.regions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyFrame:
        descriptors = np.frombuffer(base64.b64decode(data["descriptors"]), np.uint8)
        n = descriptors.size // 32
        points = _unb64(data["points"], "<u2", (n, 2)).astype(np.float32) / 16
        size = (int(data["size"][0]), int(data["size"][1]))
        regions = tuple(Region.from_json(r) for r in data.get("regions") or [])
        return cls(int(data["index"]), size, points, descriptors.reshape(n, 32), regions)


# ---------------------------------------------------------------- recording


def _grey_at_work(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Luma at WORK_SIDE on the short side (scaled either way), and the scale used."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape
    scale = WORK_SIDE / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), scale


def _orb(
    grey: np.ndarray, count: int, detector: Detector = DETECTORS[VERSION]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, descriptors, responses) of up to `count` ORB keypoints."""
    import cv2

    if detector.blur > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), detector.blur)
    orb = cv2.ORB_create(nfeatures=count, fastThreshold=detector.fast, edgeThreshold=15, patchSize=15)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0)
    points = np.array([k.pt for k in keypoints], np.float32)
    return points, descriptors, np.array([k.response for k in keypoints])


def _spread(points: np.ndarray, responses: np.ndarray, shape: tuple[int, int], count: int) -> np.ndarray:
    """Indices of `count` keypoints, the strongest of each grid cell first, so that a crop keeps some."""
    h, w = shape
    cell = np.minimum(points[:, 1] * GRID // h, GRID - 1) * GRID + np.minimum(points[:, 0] * GRID // w, GRID - 1)
    order = np.argsort(-responses, kind="stable")
    rank = np.empty(len(order), np.int64)
    seen: dict[int, int] = {}
    for position, index in enumerate(order):  # each keypoint's rank within its own cell
        c = int(cell[index])
        rank[position] = seen.get(c, 0)
        seen[c] = rank[position] + 1
    by_round = order[np.lexsort((np.arange(len(order)), rank))]
    return by_round[:count]


def changed_regions(image: np.ndarray, original: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) of the largest areas where `image` differs from `original` by more
    than the watermark could (the swapped face), at most MAX_REGIONS; none when most of it changed."""
    import cv2

    if original.shape[:2] != image.shape[:2]:
        return []
    diff = cv2.absdiff(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.cvtColor(original, cv2.COLOR_BGR2GRAY))
    changed = (cv2.GaussianBlur(diff.astype(np.float32), (0, 0), 2.0) > CHANGE_LEVELS).astype(np.uint8)
    if changed.mean() > MAX_CHANGED:
        return []
    count, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    area = image.shape[0] * image.shape[1]
    parts = sorted((stats[i] for i in range(1, count) if stats[i][4] >= MIN_REGION * area), key=lambda s: -s[4])
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in parts[:MAX_REGIONS]]


def _patch(
    image: np.ndarray, box: tuple[int, int, int, int], size: int = PATCH, sigma: float = DETAIL_SIGMA
) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return _quantised(cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA), size, sigma)


def key_frame(
    index: int,
    image: np.ndarray,
    original: np.ndarray | None = None,
    points: int = FRAME_POINTS,
    version: int = VERSION,
) -> KeyFrame:
    """The fingerprint of one uint8 BGR picture as written (and of what changed from `original`)."""
    grey, _ = _grey_at_work(image)
    return _key_frame(index, image, original, grey, _orb(grey, FILE_POINTS, DETECTORS[version]), points, version)


def _key_frame(
    index: int,
    image: np.ndarray,
    original: np.ndarray | None,
    grey: np.ndarray,
    orb: tuple[np.ndarray, np.ndarray, np.ndarray],
    points: int,
    version: int,
    moments: bool = False,
) -> KeyFrame:
    """`moments`: one of several key frames of a video (version 3), whose middle is recorded both ways
    so that a file frame can be told which moment it shows."""
    found, descriptors, responses = orb
    keep = _spread(found, responses, grey.shape, points)
    regions: list[Region] = []
    if original is not None:
        h, w = image.shape[:2]
        for box in changed_regions(image, original):
            share = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
            inner = inner_before = None
            if version >= 2:
                middle = tuple(round(v) for v in _middle(box))
                x0, y0, x1, y1 = middle
                if min(x1 - x0, y1 - y0) >= 2 * INNER:  # a smaller middle holds no finer detail
                    inner = _patch(image, middle, INNER, INNER_SIGMA)
                    if moments:
                        inner_before = _patch(original, middle, INNER, INNER_SIGMA)
            regions.append(Region(share, _patch(image, box), _patch(original, box), inner, inner_before))
    size = (int(grey.shape[1]), int(grey.shape[0]))
    return KeyFrame(index, size, found[keep], descriptors[keep], tuple(regions))


class KeyFrames:
    """Key frames spread evenly over a stream of unknown length (an image's one; versions 1 and 2 of a
    video): every `stride`-th frame is kept; when 2 x `limit` are held, every other one is dropped and
    the stride doubles."""

    def __init__(self, limit: int = KEY_FRAMES, points: int = FRAME_POINTS, version: int = VERSION) -> None:
        self.limit = limit
        self.points = points
        self.version = version
        self.stride = 1
        self.kept: list[KeyFrame] = []

    @classmethod
    def for_media(cls, kind: str) -> KeyFrames | ShotKeyFrames:
        """What an entry keeps: of an image its one frame at STILL_POINTS, of a video a key frame per stretch."""
        return cls(1, STILL_POINTS) if kind == "image" else ShotKeyFrames()

    def wants(self, index: int) -> bool:
        return index % self.stride == 0

    def offer(self, index: int, image: np.ndarray, original: np.ndarray | None = None) -> None:
        """Frame `index` as written (and what it was made from), kept when it is a key frame."""
        if self.wants(index):
            self.add(key_frame(index, image, original, self.points, self.version))

    def add(self, frame: KeyFrame) -> None:
        self.kept.append(frame)
        if len(self.kept) >= 2 * self.limit:
            self.kept = self.kept[::2]
            self.stride *= 2

    def record(self, kind: str) -> dict[str, Any]:
        """The entry's `binding`: the key frames, at most `limit`, spread over the stream."""
        from faceswap.provenance.watermark.tiles import spread

        frames = spread(self.kept, self.limit)
        return {"version": self.version, "media": kind, "work_side": WORK_SIDE, "frames": [f.to_json() for f in frames]}


class ShotKeyFrames:
    """Version 3 of a video or sequence: a key frame wherever none of those kept describes the picture
    any more (a cut, a pan, a face that changed), probed every PROBE_EVERY-th frame."""

    def __init__(self, points: int = FRAME_POINTS, limit: int = MAX_KEY_FRAMES) -> None:
        self.points = points
        self.limit = limit
        self.version = VERSION
        self.kept: list[KeyFrame] = []
        self.covered = True  # no key frame was dropped

    def wants(self, index: int) -> bool:
        return index % PROBE_EVERY == 0

    def offer(self, index: int, image: np.ndarray, original: np.ndarray | None = None) -> None:
        """Frame `index` as written (and what it was made from), kept when no key frame describes it."""
        if not self.wants(index):
            return
        grey, _ = _grey_at_work(image)
        orb = _orb(grey, FILE_POINTS, DETECTORS[self.version])
        if self.kept and len(orb[0]) < MIN_FEATURES:
            return  # a flat picture: nothing a check could judge either
        candidate = _key_frame(index, image, original, grey, orb, self.points, self.version, moments=True)
        keys = [k for k in self.kept if len(k.points) >= MIN_FEATURES]
        if keys:
            found = _best_key(keys, grey, orb[0], orb[1], False, PROBED)
            # where this moment's region tells output from source, a key frame's region must have judged
            # it: credited by keypoints alone (a region "alike" at another moment), its unconverted
            # source would be credited too
            judged = found.region == "output" or not any(r.distinct for r in candidate.regions)
            if found.verdict == "output" and judged:
                return
        self.add(candidate)

    def add(self, frame: KeyFrame) -> None:
        self.kept.append(frame)
        if len(self.kept) > self.limit:
            self.kept = self.kept[::2]
            self.covered = False

    def record(self, kind: str) -> dict[str, Any]:
        """The entry's `binding`: the key frames, and whether every stretch kept one."""
        return {
            "version": self.version,
            "media": kind,
            "work_side": WORK_SIDE,
            "covered": self.covered,
            "frames": [f.to_json() for f in self.kept],
        }


def record(
    frames: Sequence[np.ndarray], kind: str, originals: Sequence[np.ndarray | None] | None = None
) -> dict[str, Any]:
    """The `binding` an entry records of these frames as written ("image" or "video"), from the frames
    they were made from where given: what the sink records, for callers that hold all the frames."""
    keys = KeyFrames.for_media(kind)
    for index, frame in enumerate(frames):
        keys.offer(index, frame, originals[index] if originals is not None else None)
    return keys.record(kind)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class FrameCheck:
    """One file frame against the key frames: its best match and what its region showed."""

    verdict: str  # output | other | source | blank
    key_frame: int | None = None
    inliers: int = 0
    region: str | None = None  # output | middle | source | different | not visible | alike | None (none recorded)
    mirrored: bool = False


@dataclass(frozen=True)
class BindingCheck:
    """Does the file show what the entry recorded?"""

    agrees: bool
    frames: tuple[FrameCheck, ...]
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "agrees": self.agrees,
            "reason": self.reason,
            "frames_checked": len(self.frames),
            "frames_agreeing": sum(f.verdict == "output" for f in self.frames),
            "frames": [f.__dict__ for f in self.frames],
        }


def _detector(binding: Any) -> Detector | None:
    """The detector an entry's `binding` was recorded with; None where it is not a binding we read."""
    if not isinstance(binding, dict):
        return None
    version = binding.get("version")
    return DETECTORS.get(version) if isinstance(version, int) and not isinstance(version, bool) else None


def recorded(binding: Any) -> list[KeyFrame]:
    """The key frames an entry's `binding` holds (an unreadable one holds none)."""
    if _detector(binding) is None:
        return []
    try:
        return [KeyFrame.from_json(f) for f in binding.get("frames") or []]
    except (KeyError, TypeError, ValueError):
        return []


def covers_stretches(binding: Any) -> bool:
    """Did the entry keep a key frame for every stretch of its video (version 3, none dropped)?"""
    version = binding.get("version") if isinstance(binding, dict) else None
    return isinstance(version, int) and version >= 3 and binding.get("covered") is True


def check(binding: Any, frames: list[np.ndarray], mirrored: bool = False) -> BindingCheck:
    """Check frames spread over the file (`frames`: uint8 BGR in the file's order) against the entry's
    key frames; `mirrored`: try the file flipped first (the watermark reader found it mirrored)."""
    from faceswap.provenance.watermark.tiles import spread

    keys = [k for k in recorded(binding) if len(k.points) >= MIN_FEATURES]
    detector = _detector(binding)
    if not keys or detector is None:
        return BindingCheck(False, (), "the entry recorded no content to compare with")
    stretches = covers_stretches(binding)
    chosen = spread(frames, STRETCH_CHECKS if stretches else CHECK_FRAMES)
    checks = tuple(_check_frame(keys, f, mirrored, detector) for f in chosen)
    judged = [c for c in checks if c.verdict != "blank"]
    reason = _stretch_problem(checks) if stretches else _majority_problem(checks, judged)
    return BindingCheck(reason is None, checks, reason or "")


def _majority_problem(checks: tuple[FrameCheck, ...], judged: list[FrameCheck]) -> str | None:
    """Versions 1 and 2 (and a thinned version 3): at least half the judged frames agree."""
    agreeing = sum(c.verdict == "output" for c in judged)
    return None if judged and 2 * agreeing >= len(judged) else _reason(checks, judged)


def _stretch_problem(checks: tuple[FrameCheck, ...]) -> str | None:
    """Every stretch shows this output's footage: no two neighbouring judged frames lose it, and at
    most a quarter do. A frame whose region is the output's at PATCH cells but whose middle is not
    (region "middle") keeps its stretch: a face that talks changes its middle within two frames of a
    key frame (a cropped, re-encoded copy of the demo read 0.80-0.85 there, the floor is 0.85). The
    middle asks another question, whether this is the output's rendering or another model's of the
    same shot, and it is asked of the file as a whole: at least half of the frames whose middle was
    judged must show it."""
    judged = [(position, c) for position, c in enumerate(checks, 1) if c.verdict != "blank"]
    lost = [c.verdict != "output" and c.region != "middle" for _, c in judged]
    if all(lost):
        return _reason(checks, [c for _, c in judged])
    for start in range(len(judged) - 1):
        if lost[start] and lost[start + 1]:
            end = start + 1
            while end + 1 < len(judged) and lost[end + 1]:
                end += 1
            return (
                f"checked frames {judged[start][0]}-{judged[end][0]} of {len(checks)} (in the file's order) show "
                "other content than the entry recorded: part of the file is not this output"
            )
    if 4 * sum(lost) > len(judged):
        return f"{len(judged) - sum(lost)} of {len(judged)} frames show what the entry recorded"
    middles = [c.region for _, c in judged if c.region in ("output", "middle")]
    if 2 * middles.count("middle") > len(middles):
        return (
            f"the face's middle differs from the output's in {middles.count('middle')} of {len(middles)} checked "
            "frames: another rendering of the same shot, not this output"
        )
    return None


def _reason(checks: tuple[FrameCheck, ...], judged: list[FrameCheck]) -> str:
    if not judged:
        return "the file has too little detail to compare with what the entry recorded"
    if any(c.verdict == "source" for c in judged):
        return "the synthesized region shows the unconverted source, not the output"
    if any(c.region in ("different", "middle") for c in judged):
        return "the synthesized region shows another picture than the output"
    agreeing = sum(c.verdict == "output" for c in judged)
    return f"{agreeing} of {len(judged)} frames show what the entry recorded"


def _check_frame(keys: list[KeyFrame], image: np.ndarray, mirrored: bool, detector: Detector) -> FrameCheck:
    best = FrameCheck("blank")
    for flip in (mirrored, not mirrored):
        view = np.ascontiguousarray(image[:, ::-1]) if flip else image
        found = _against(keys, view, flip, detector)
        if found.verdict == "output":
            return found
        if found.verdict != "blank" and (best.verdict == "blank" or found.inliers > best.inliers):
            best = found
    return best


def _against(keys: list[KeyFrame], image: np.ndarray, flip: bool, detector: Detector) -> FrameCheck:
    """The file frame, its uniform bars stripped, against every key frame."""
    from faceswap.provenance.watermark.tiles import content_box, grey

    top, bottom, left, right = content_box(grey(image))
    grey, _ = _grey_at_work(image[top:bottom, left:right])
    points, descriptors, _ = _orb(grey, FILE_POINTS, detector)
    if len(points) < MIN_FEATURES:
        return FrameCheck("blank", mirrored=flip)
    return _best_key(keys, grey, points, descriptors, flip)


def _best_key(
    keys: list[KeyFrame],
    grey: np.ndarray,
    points: np.ndarray,
    descriptors: np.ndarray,
    flip: bool,
    floors: Floors = CHECKED,
) -> FrameCheck:
    """The file frame against the key frame of its own moment: of those it aligns with, the one whose
    recorded region, as the output or as its source, this frame's region looks most like; where none
    recorded a region it can judge, the best aligned one, whose keypoints alone decide. Over a still
    background every key frame aligns about as well, and the face moves between them: a region of
    another moment can read "different" on a genuine copy, and, asked of every key frame in turn,
    can read "output" on the unconverted source where a dubbed mouth of one moment looks like the
    plate's mouth of another (the source spliced into a dub's second half: 7 of 12 checked frames
    read "output" so). The moment whose source or output this region shows best decides."""
    aligned = []
    most: tuple[int, int | None] = (0, None)
    for key in keys:
        inliers, matrix = _align(key, points, descriptors)
        if inliers > most[0]:
            most = (inliers, key.index)
        if matrix is not None and inliers >= floors.inliers:
            aligned.append((inliers, key, matrix))
    if not aligned:
        return FrameCheck("other", most[1], most[0], mirrored=flip)
    aligned.sort(key=lambda found: -found[0])
    fits = [(_moment_fit(key, matrix, grey), position) for position, (_, key, matrix) in enumerate(aligned)]
    judged = [(fit, position) for fit, position in fits if fit is not None]
    inliers, key, matrix = aligned[max(judged)[1] if judged else 0]
    region = _region_verdict(key, matrix, grey, floors)
    verdict = {"source": "source", "different": "other", "middle": "other"}.get(region or "", "output")
    return FrameCheck(verdict, key.index, inliers, region, flip)


def _moment_fit(key: KeyFrame, matrix: np.ndarray, grey: np.ndarray) -> float | None:
    """How well the key frame's moment explains the file's regions: the mean, over its regions that
    can tell output from source, of the better of the two correlations, and where the key frame
    recorded its middle both ways (version 3), of the better of those too; None where none can.
    A face that talks keeps its outline and shading at PATCH cells from one moment to the next
    (0.94-0.97 across a second of the demo); its middle is what tells the moments apart."""
    fits = []
    for region in key.regions:
        if not region.distinct:
            continue
        seen = _sample(region.box, PATCH, DETAIL_SIGMA, key, matrix, grey)
        if seen is None:
            continue
        fit = max(float(np.mean(seen * _normalised(r))) for r in (region.after, region.before))
        if region.inner is not None and region.inner_before is not None:
            middle = _sample(_middle(region.box), INNER, INNER_SIGMA, key, matrix, grey)
            if middle is not None:
                inner = max(float(np.mean(middle * _normalised(r))) for r in (region.inner, region.inner_before))
                fit = (fit + inner) / 2
        fits.append(fit)
    return float(np.mean(fits)) if fits else None


def _align(key: KeyFrame, points: np.ndarray, descriptors: np.ndarray) -> tuple[int, np.ndarray | None]:
    """Inliers of the best plausible affine map from the file's work pixels to the key frame's."""
    import cv2

    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(key.descriptors, descriptors, k=2)
    good = [
        p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance and p[0].distance < MAX_HAMMING
    ]
    if len(good) < max(MIN_INLIERS, 3):
        return 0, None
    src = np.float32([points[m.trainIdx] for m in good])
    dst = np.float32([key.points[m.queryIdx] for m in good])
    threshold = RANSAC_SHARE * min(key.size)
    cv2.setRNGSeed(len(good))  # RANSAC's samples: the same file gives the same verdict every time
    matrix, mask = cv2.estimateAffine2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000, confidence=0.995
    )
    if matrix is None or not np.isfinite(matrix).all() or not _plausible(matrix):
        return 0, None
    return int(mask.sum()), matrix


def _plausible(matrix: np.ndarray) -> bool:
    """A rescale, crop, stretch or small rotation; not a reflection, a collapse or a wild shear."""
    linear = matrix[:, :2]
    singular = np.linalg.svd(linear, compute_uv=False)
    low, high = SCALE_RANGE
    return bool(
        np.linalg.det(linear) > 0
        and low <= singular.min()
        and singular.max() <= high
        and singular.max() / singular.min() <= MAX_STRETCH
    )


def _region_verdict(key: KeyFrame, matrix: np.ndarray, grey: np.ndarray, floors: Floors = CHECKED) -> str | None:
    """What the file shows where the key frame recorded a synthesized region: the output, its
    source, something different, or nothing we can judge; None when no region was recorded."""
    verdicts = [_one_region(r, key, matrix, grey, floors) for r in key.regions]
    if not verdicts:
        return None
    for wanted in ("source", "different", "middle", "output", "alike"):
        if wanted in verdicts:
            return wanted
    return "not visible"


def _one_region(region: Region, key: KeyFrame, matrix: np.ndarray, grey: np.ndarray, floors: Floors) -> str:
    if not region.distinct:
        return "alike"
    seen = _sample(region.box, PATCH, DETAIL_SIGMA, key, matrix, grey)
    if seen is None:
        return "not visible"
    output, source = _normalised(region.after), _normalised(region.before)
    after, before = float(np.mean(seen * output)), float(np.mean(seen * source))
    # where along the line from the source's patch to the output's the file lies: a dubbed mouth can
    # correlate 0.85 with its plate, and a copy's loss then hides a fixed margin between the two
    # correlations (docs/watermark.md, "Splices")
    step = output - source
    toward = float(np.mean((seen - source) * step) / max(float(np.mean(step * step)), 1e-6))
    if after < floors.region or toward < floors.toward:
        return "source" if before >= after else "different"
    if region.inner is None:
        return "output"
    middle = _sample(_middle(region.box), INNER, INNER_SIGMA, key, matrix, grey)
    if middle is None:
        return "not visible"
    # another rendering of the same shot (a model trained like this one, on the same faces) shares the
    # region's outline and shading at PATCH cells (0.85-0.94); the face's own detail is where it differs
    # (0.45-0.80, where genuine copies cropped and re-encoded read 0.87-0.97 through some key frame)
    return "output" if float(np.mean(middle * _normalised(region.inner))) >= floors.inner else "middle"


def _sample(
    box: tuple[float, float, float, float], size: int, sigma: float, key: KeyFrame, matrix: np.ndarray, grey: np.ndarray
) -> np.ndarray | None:
    """The file's luma over a box of the key frame (shares), mapped through `matrix`, as a high-passed
    size x size patch; None where less than 90 % of it is in the file."""
    import cv2

    x0, y0, x1, y1 = box
    kw, kh = key.size
    cells = (np.arange(size) + 0.5) / size
    xs, ys = np.meshgrid(x0 + (x1 - x0) * cells, y0 + (y1 - y0) * cells)
    target = np.stack([xs.ravel() * kw, ys.ravel() * kh, np.ones(xs.size)], axis=0)
    inverse = cv2.invertAffineTransform(matrix)
    file_xy = (inverse @ target).T.astype(np.float32)
    h, w = grey.shape
    inside = (file_xy[:, 0] >= 0) & (file_xy[:, 0] < w) & (file_xy[:, 1] >= 0) & (file_xy[:, 1] < h)
    if inside.mean() < 0.9:
        return None
    scale = max(float(np.linalg.svd(matrix[:, :2], compute_uv=False).mean()), 1e-3)
    cell_px = max(1.0, (x1 - x0) * kw / size / scale)
    blur = 0.5 * cell_px
    pad = int(np.ceil(4 * blur)) + 2  # the Gaussian's reach: the box's surroundings blur as the whole picture would
    left, top = (max(0, int(np.floor(file_xy[:, i].min())) - pad) for i in (0, 1))
    right, bottom = (
        min(w, int(np.ceil(file_xy[:, 0].max())) + pad + 1),
        min(h, int(np.ceil(file_xy[:, 1].max())) + pad + 1),
    )
    blurred = cv2.GaussianBlur(grey[top:bottom, left:right].astype(np.float32), (0, 0), blur)
    xs_in, ys_in = (file_xy[:, 0] - left).reshape(1, -1), (file_xy[:, 1] - top).reshape(1, -1)
    sampled = cv2.remap(blurred, xs_in, ys_in, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    return _detail(sampled, size, sigma)
