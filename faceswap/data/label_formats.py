"""Occlusion labels in the formats annotation tools already write: LabelMe JSON (one file per image,
or a folder of them) and COCO (one file for many images; what CVAT and most tools export).

A label file is read into `ImageLabels`: the image it names and its labelled objects (`Region`s),
each a set of polygon rings or a bitmap in the image's own pixels. Nothing here knows about faces;
`faceset_labels` maps the regions onto crops.

Holes. A COCO polygon list is a union of parts and LabelMe has no hole shape, so a ring that lies
wholly inside another ring of the same object is a hole (a ring inside that, an island again):
LabelMe objects are the shapes sharing a label and a `group_id`, a COCO object is one annotation.
Bitmaps (COCO RLE, compressed or not, and LabelMe `mask` shapes) hold holes as they are.

Files from strangers are bounded: file size, objects, points and bitmap sizes are checked before
anything is allocated (BadInput beyond a limit).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import BadInput
from faceswap.hashing import safe_name

MAX_LABEL_FILE_BYTES = 256 * 2**20  # a COCO file of a large labelling job
MAX_LABEL_FILES = 100_000  # LabelMe files in one folder
MAX_REGIONS = 10_000  # objects per image
MAX_POINTS = 100_000  # points per ring
MAX_SIDE = 16_384  # pixels on a side of a labelled image or bitmap
CIRCLE_POINTS = 64
SHAPE_TYPES = ("polygon", "rectangle", "circle", "mask")  # LabelMe shapes that cover an area


@dataclass(frozen=True)
class Bitmap:
    """A labelled bitmap (True: the object) whose top-left pixel sits at `origin` in the image."""

    pixels: np.ndarray  # (h, w) bool
    origin: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Region:
    """One labelled object: polygon rings (K, 2) and bitmaps, in the image's pixels."""

    label: str
    rings: tuple[np.ndarray, ...] = ()
    bitmaps: tuple[Bitmap, ...] = ()

    def draw(self, matrix: np.ndarray, size: int) -> np.ndarray:
        """The object as a float32 (size, size) mask, 0 or 1, in the space `matrix` maps to (image
        pixels -> there, pixel centres at whole numbers as in cv2). Rings are in the label tools'
        continuous coordinates (pixel i spans [i, i + 1)); a bitmap's pixels sit at origin + index.
        Bitmaps first, then the rings by depth: outer rings paint, holes clear, islands paint."""
        import cv2

        out = np.zeros((size, size), np.float32)
        for bitmap in self.bitmaps:
            placed = np.asarray(matrix, np.float64).copy()
            placed[:, 2] += placed[:, :2] @ np.asarray(bitmap.origin, np.float64)
            warped = cv2.warpAffine(bitmap.pixels.astype(np.float32), placed, (size, size), flags=cv2.INTER_LINEAR)
            out = np.maximum(out, (warped >= 0.5).astype(np.float32))
        depths = ring_depths(self.rings)
        for index in np.argsort(depths, kind="stable"):
            points = _to_space(self.rings[index] - 0.5, matrix)
            rows, columns = polygon_pixels(points[:, 1], points[:, 0], (size, size))
            out[rows, columns] = 0.0 if depths[index] % 2 else 1.0
        return out


def polygon_pixels(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The pixels whose centres lie inside a polygon (vertices in pixel-centre coordinates): exact
    on every side, unlike cv2.fillPoly, which rounds its right and bottom edges outward."""
    from skimage.draw import polygon

    return polygon(rows, columns, shape)


def _to_space(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Ring vertices from image pixel coordinates to the target's, as pixel centres (cv2's)."""
    m = np.asarray(matrix, np.float64)
    return points @ m[:, :2].T + m[:, 2]


def ring_depths(rings: tuple[np.ndarray, ...]) -> list[int]:
    """How many other rings of the object wholly contain each ring: odd is a hole."""
    import cv2

    contours = [r.astype(np.float32).reshape(-1, 1, 2) for r in rings]
    depths = []
    for i, ring in enumerate(rings):
        inside = 0
        for j, other in enumerate(contours):
            if i != j and all(cv2.pointPolygonTest(other, (float(x), float(y)), False) > 0 for x, y in ring):
                inside += 1
        depths.append(inside)
    return depths


@dataclass(frozen=True)
class ImageLabels:
    """The objects labelled on one image, as a label file names it."""

    image: str  # the image's file name (folders dropped)
    width: int | None
    height: int | None
    regions: tuple[Region, ...]
    source: str  # the label file's name
    skipped_shapes: int = 0  # shapes that cover no area (lines, points) or of unknown type

    @property
    def stem(self) -> str:
        return self.image.rsplit(".", 1)[0] if "." in self.image else self.image


def image_name(path: str) -> str:
    """A file name from a path written on any system (LabelMe on Windows writes backslashes)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def read_labels(path: Path) -> list[ImageLabels]:
    """Every labelled image in a LabelMe JSON, a folder of them, or a COCO JSON."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise BadInput(f"{safe_name(path)}: holds no .json label files")
        if len(files) > MAX_LABEL_FILES:
            raise BadInput(f"{safe_name(path)}: more than {MAX_LABEL_FILES} label files")
        return [labels for file in files for labels in read_labels(file)]
    document = _load_json(path)
    if isinstance(document, dict) and "shapes" in document:
        return [labelme_labels(document, safe_name(path))]
    if isinstance(document, dict) and "annotations" in document and "images" in document:
        return list(coco_labels(document, safe_name(path)))
    raise BadInput(f"{safe_name(path)}: neither a LabelMe file (shapes) nor a COCO file (images, annotations)")


def _load_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_LABEL_FILE_BYTES:
            raise BadInput(f"{safe_name(path)}: {size} bytes, over the {MAX_LABEL_FILE_BYTES} byte limit for labels")
        return json.loads(path.read_bytes())
    except OSError as error:
        raise BadInput(f"{safe_name(path)}: unreadable ({error.strerror})") from None
    except (ValueError, RecursionError) as error:
        raise BadInput(f"{safe_name(path)}: not JSON ({error})") from None


# LabelMe


def labelme_labels(document: dict[str, Any], source: str) -> ImageLabels:
    """A LabelMe document: shapes sharing a label and a group_id are one object."""
    shapes = document.get("shapes")
    image = document.get("imagePath")
    if not isinstance(shapes, list) or not isinstance(image, str) or not image:
        raise BadInput(f"{source}: a LabelMe file needs 'shapes' (a list) and 'imagePath'")
    if len(shapes) > MAX_REGIONS:
        raise BadInput(f"{source}: more than {MAX_REGIONS} shapes")
    width, height = _dimensions(document.get("imageWidth"), document.get("imageHeight"), source)
    groups: dict[tuple[str, Any], list[Region]] = {}
    skipped = 0
    for number, shape in enumerate(shapes):
        if not isinstance(shape, dict) or shape.get("shape_type", "polygon") not in SHAPE_TYPES:
            skipped += 1
            continue
        label = _label(shape.get("label"), source)
        region = _labelme_shape(shape, label, f"{source} shape {number}")
        group = shape.get("group_id")
        key = (label, group if group is not None else f"#{number}")
        groups.setdefault(key, []).append(region)
    regions = tuple(_merge(label, parts) for (label, _), parts in groups.items())
    return ImageLabels(image_name(image), width, height, regions, source, skipped)


def _merge(label: str, parts: list[Region]) -> Region:
    """Shapes of one LabelMe group as one object (a ring inside another is a hole)."""
    return Region(label, tuple(r for p in parts for r in p.rings), tuple(b for p in parts for b in p.bitmaps))


def _labelme_shape(shape: dict[str, Any], label: str, where: str) -> Region:
    kind = shape.get("shape_type", "polygon")
    points = _points(shape.get("points"), where)
    if kind == "polygon":
        if len(points) < 3:
            raise BadInput(f"{where}: a polygon needs at least 3 points")
        return Region(label, (points,))
    if len(points) < 2:
        raise BadInput(f"{where}: a {kind} needs 2 points")
    (x0, y0), (x1, y1) = points[0], points[1]
    if kind == "rectangle":
        return Region(label, (np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]),))
    if kind == "circle":
        radius = float(np.hypot(x1 - x0, y1 - y0))
        angles = np.linspace(0, 2 * np.pi, CIRCLE_POINTS, endpoint=False)
        return Region(label, (np.stack([x0 + radius * np.cos(angles), y0 + radius * np.sin(angles)], 1),))
    return Region(label, bitmaps=(Bitmap(_png_bitmap(shape.get("mask"), where), (min(x0, x1), min(y0, y1))),))


def _png_bitmap(data: Any, where: str) -> np.ndarray:
    """A LabelMe mask: a base64 PNG over the shape's box, checked for size before it is decoded."""
    from faceswap.media import decode_grey_bytes

    if not isinstance(data, str):
        raise BadInput(f"{where}: a mask shape needs its 'mask' (a base64 PNG)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{where}: its mask is not base64") from None
    if len(raw) < 24 or raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise BadInput(f"{where}: its mask is not a PNG")
    width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    _check_side(width, height, where)
    return decode_grey_bytes(raw, Path(f"{where} (its mask)")) > 0


# COCO


def coco_labels(document: dict[str, Any], source: str) -> Iterator[ImageLabels]:
    """A COCO document: one object per annotation, named by its category."""
    images, annotations = document.get("images"), document.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise BadInput(f"{source}: a COCO file needs 'images' and 'annotations' lists")
    categories = {c.get("id"): str(c.get("name")) for c in document.get("categories") or [] if isinstance(c, dict)}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for annotation in annotations:
        if isinstance(annotation, dict):
            by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            raise BadInput(f"{source}: every COCO image needs a 'file_name'")
        found = by_image.get(image.get("id"), [])
        if len(found) > MAX_REGIONS:
            raise BadInput(f"{source}: more than {MAX_REGIONS} annotations on {image['file_name']}")
        width, height = _dimensions(image.get("width"), image.get("height"), source)
        where = f"{source} image {image_name(image['file_name'])}"
        regions = tuple(_coco_region(a, categories, width, height, where) for a in found)
        yield ImageLabels(image_name(image["file_name"]), width, height, regions, source)


def _coco_region(
    annotation: dict[str, Any], categories: dict[Any, str], width: int | None, height: int | None, where: str
) -> Region:
    label = categories.get(annotation.get("category_id"))
    if label is None:
        raise BadInput(f"{where}: annotation {annotation.get('id')} names no known category")
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        if not segmentation:
            raise BadInput(f"{where}: annotation {annotation.get('id')} has an empty segmentation")
        rings = []
        for flat in segmentation:
            points = _points(flat, where, flat_list=True)
            if len(points) < 3:
                raise BadInput(f"{where}: a polygon of annotation {annotation.get('id')} has fewer than 3 points")
            rings.append(points)
        return Region(label, tuple(rings))
    if isinstance(segmentation, dict):
        return Region(label, bitmaps=(Bitmap(rle_bitmap(segmentation, width, height, where)),))
    raise BadInput(f"{where}: annotation {annotation.get('id')} has no polygon or RLE segmentation")


def rle_bitmap(rle: dict[str, Any], width: int | None, height: int | None, where: str) -> np.ndarray:
    """COCO run-length encoding (column-major runs, starting with background), the counts as a list
    or in pycocotools' compressed string."""
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise BadInput(f"{where}: an RLE needs 'size': [height, width]")
    h, w = size
    _check_side(w, h, where)
    if (width, height) != (None, None) and (w, h) != (width, height):
        raise BadInput(f"{where}: RLE size {w}x{h} differs from the image's {width}x{height}")
    counts = rle.get("counts")
    runs = _compressed_counts(counts, where) if isinstance(counts, str) else counts
    if not isinstance(runs, list) or not all(isinstance(c, int) and c >= 0 for c in runs):
        raise BadInput(f"{where}: RLE counts must be a string or a list of non-negative whole numbers")
    if sum(runs) != h * w:
        raise BadInput(f"{where}: RLE counts cover {sum(runs)} pixels, not {h}x{w}")
    values = np.zeros(len(runs), bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()


def _compressed_counts(text: str, where: str) -> list[int]:
    """pycocotools' compressed counts: each count in 5-bit groups (0x20: more follow, 0x10 on the
    last group: negative), offset by 48; from the third count on, each is a difference to the count
    two before it."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise BadInput(f"{where}: a compressed RLE string ends inside a count")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise BadInput(f"{where}: a compressed RLE string holds '{text[position]}'")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _points(value: Any, where: str, flat_list: bool = False) -> np.ndarray:
    try:
        points = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: points must be numbers") from None
    if flat_list:
        if points.ndim != 1 or len(points) % 2:
            raise BadInput(f"{where}: a COCO polygon is a flat list x1, y1, x2, y2, ...")
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise BadInput(f"{where}: points must be [x, y] pairs of finite numbers")
    if len(points) > MAX_POINTS:
        raise BadInput(f"{where}: more than {MAX_POINTS} points")
    if np.abs(points).max(initial=0.0) > 4 * MAX_SIDE:
        raise BadInput(f"{where}: a point lies far outside any image")
    return points


def _label(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{source}: every shape needs a label")
    return value.strip()


def _dimensions(width: Any, height: Any, source: str) -> tuple[int | None, int | None]:
    if width is None and height is None:
        return None, None
    if not (isinstance(width, int) and isinstance(height, int)):
        raise BadInput(f"{source}: image width and height must be whole numbers")
    _check_side(width, height, source)
    return width, height


def _check_side(width: int, height: int, where: str) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise BadInput(f"{where}: {width}x{height} pixels (each side must be 1 to {MAX_SIDE})")
