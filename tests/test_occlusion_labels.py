"""Occlusion labels: LabelMe and COCO (polygons with holes, RLE, LabelMe masks) land on the right
crop pixels, whether drawn on the crop or on the frame it was cut from (through the crop's
alignment); the labels change only with their ledger entry; crops export byte for byte."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from consent_helpers import store_at

from faceswap.cli import main
from faceswap.data.faceset import Faceset
from faceswap.data.faceset_labels import FacesetLabels, hull_of, label_faceset
from faceswap.data.label_export import export_for_labelling
from faceswap.data.label_formats import MAX_LABEL_FILE_BYTES, read_labels
from faceswap.errors import BadInput, CheckFailed
from faceswap.faces.align import invert_affine, transform_points

# a square occluder with a square hole, in crop pixels (continuous coordinates, as tools draw them)
OUTER = np.array([[30.0, 40.0], [90.0, 40.0], [90.0, 100.0], [30.0, 100.0]])
INNER = np.array([[50.0, 60.0], [70.0, 60.0], [70.0, 80.0], [50.0, 80.0]])
WHOLE = np.array([[0.0, 0.0], [128.0, 0.0], [128.0, 128.0], [0.0, 128.0]])


def expected_visible(size: int = 128) -> np.ndarray:
    """Face everywhere, less the square ring: pixel (x, y) is covered when its centre x + 0.5 lies inside."""
    centres = np.arange(size) + 0.5
    x, y = np.meshgrid(centres, centres)
    outer = (x > 30) & (x < 90) & (y > 40) & (y < 100)
    hole = (x > 50) & (x < 70) & (y > 60) & (y < 80)
    return ~(outer & ~hole)


def labelme(image: str, shapes: list[dict], size: int = 128) -> dict:
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageWidth": size,
        "imageHeight": size,
    }


def polygon(label: str, points: np.ndarray, group: int | None = None) -> dict:
    return {"label": label, "points": np.asarray(points).tolist(), "group_id": group, "shape_type": "polygon"}


def rle_compress(counts: list[int]) -> str:
    """pycocotools' string form of RLE counts (an independent writer for the reader under test)."""
    out = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            out.append(chr((group | (0x20 if more else 0)) + 48))
    return "".join(out)


def rle_counts(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(bool)
    runs, current, run = [], False, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            runs.append(run)
            current, run = value, 1
    runs.append(run)
    return runs


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture
def demo_b(facesets_workspace):
    store = store_at(facesets_workspace)
    return store, Faceset.load(facesets_workspace / "facesets" / "demo-b")


def test_labelme_polygon_with_a_hole_lands_on_the_crop_pixels(demo_b, tmp_path):
    store, faceset = demo_b
    crop = faceset.faces[3]
    shapes = [polygon("face", WHOLE), polygon("hand", OUTER, 7), polygon("hand", INNER, 7)]
    (tmp_path / "a.json").write_text(json.dumps(labelme(crop.file, shapes)))
    report = label_faceset(store, "demo-b", tmp_path / "a.json")
    assert report.crops_labelled == 1 and report.occluder_labels == {"hand": 1} and report.ledger_seq
    label = FacesetLabels.load(faceset).crops[crop.file]
    assert label.space == "crop" and label.face_drawn
    np.testing.assert_array_equal(label.mask() > 0.5, expected_visible())


def test_crop_labelled_at_another_size_is_scaled(demo_b, tmp_path):
    store, faceset = demo_b
    crop = faceset.faces[0]
    shapes = [polygon("face", WHOLE * 2), polygon("mic", OUTER * 2, 1), polygon("mic", INNER * 2, 1)]
    (tmp_path / "big.json").write_text(json.dumps(labelme(Path(crop.file).stem + ".jpg", shapes, size=256)))
    label_faceset(store, "demo-b", tmp_path / "big.json")
    mask = FacesetLabels.load(faceset).crops[crop.file].mask() > 0.5
    assert iou(~mask, ~expected_visible()) > 0.97


def frame_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop continuous coordinates -> the frame's (through the inverse of the crop's alignment)."""
    return transform_points(points - 0.5, invert_affine(np.asarray(matrix))) + 0.5


def test_coco_polygons_drawn_on_the_frame_reach_the_crop_through_its_alignment(demo_b, tmp_path):
    store, faceset = demo_b
    crop = faceset.faces[5]
    frame = f"{Path(crop.source).stem}.{crop.frame:06d}.png"
    rings = [frame_points(r, crop.matrix).reshape(-1).tolist() for r in (OUTER, INNER)]
    coco = {
        "images": [{"id": 1, "file_name": f"frames/{frame}", "width": 640, "height": 480}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 2,
                "segmentation": [frame_points(WHOLE, crop.matrix).reshape(-1).tolist()],
                "iscrowd": 0,
            },
            {"id": 2, "image_id": 1, "category_id": 3, "segmentation": rings, "iscrowd": 0},
        ],
        "categories": [{"id": 2, "name": "face"}, {"id": 3, "name": "microphone"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    report = label_faceset(store, "demo-b", tmp_path / "coco.json")
    assert report.images_matched == 1 and report.crops_labelled == 1
    label = FacesetLabels.load(faceset).crops[crop.file]
    assert label.space == "frame" and label.occluders == ["microphone"]
    mask = label.mask() > 0.5
    assert iou(~mask, ~expected_visible()) > 0.98
    assert mask[70, 60] and not mask[45, 35] and mask[10, 10]  # the hole, the ring, outside the occluder


def test_coco_rle_with_a_hole_on_the_frame_reaches_the_crop(demo_b, tmp_path):
    import cv2

    store, faceset = demo_b
    crop = faceset.faces[2]
    frame = f"{Path(crop.source).stem}.{crop.frame:06d}.png"
    drawn = np.zeros((480, 640), np.uint8)  # the ring drawn in frame pixels, as a mask tool would
    for ring, value in ((OUTER, 1), (INNER, 0)):
        points = frame_points(ring, crop.matrix) - 0.5
        cv2.fillPoly(drawn, [np.rint(points * 16).astype(np.int32)], value, shift=4)
    coco = {
        "images": [{"id": 9, "file_name": frame, "width": 640, "height": 480}],
        "annotations": [
            {
                "id": 1,
                "image_id": 9,
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [480, 640], "counts": rle_compress(rle_counts(drawn))},
            }
        ],
        "categories": [{"id": 1, "name": "hand"}],
    }
    (tmp_path / "rle.json").write_text(json.dumps(coco))
    label_faceset(store, "demo-b", tmp_path / "rle.json")
    label = FacesetLabels.load(faceset).crops[crop.file]
    assert not label.face_drawn  # no face object: the visible face is the crop's landmark hull
    hull = hull_of(crop, 128) > 0.5
    hidden = ~(label.mask() > 0.5) & hull
    ring = ~expected_visible() & hull
    assert ring.sum() > 500 and iou(hidden, ring) > 0.9
    hole = hull & ~ring
    hole[:60] = hole[80:] = False
    hole[:, :50] = hole[:, 70:] = False
    assert hole.any() and not (hidden & hole).any()  # the hole stays visible


def test_labelme_mask_shape_and_a_frame_with_two_crops(demo_b, tmp_path):
    import cv2

    store, faceset = demo_b
    crop = faceset.faces[1]
    ok, png = cv2.imencode(".png", (~expected_visible()[40:100, 30:90]).astype(np.uint8) * 255)
    shape = {
        "label": "hair",
        "points": [[30, 40], [89, 99]],
        "group_id": None,
        "shape_type": "mask",
        "mask": base64.b64encode(png.tobytes()).decode(),
    }
    (tmp_path / "m.json").write_text(json.dumps(labelme(crop.file, [polygon("face", WHOLE), shape])))
    label_faceset(store, "demo-b", tmp_path / "m.json")
    np.testing.assert_array_equal(FacesetLabels.load(faceset).crops[crop.file].mask() > 0.5, expected_visible())


def test_labels_that_match_no_crop_are_refused_and_nothing_changes(demo_b, tmp_path):
    store, faceset = demo_b
    seq = store.ledger.entries()[-1].seq
    (tmp_path / "x.json").write_text(json.dumps(labelme("holiday.000001.png", [polygon("hand", OUTER)])))
    with pytest.raises(CheckFailed, match="none of the 1 labelled image"):
        label_faceset(store, "demo-b", tmp_path / "x.json")
    assert store.ledger.entries()[-1].seq == seq and not (faceset.folder / "labels").exists()


# a mask PNG whose header declares 12000x12000 pixels: the start of a decompression bomb
BOMB = base64.b64encode(
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sIIBBBBB", 13, b"IHDR", 12000, 12000, 8, 0, 0, 0, 0) + bytes(64)
).decode()


@pytest.mark.parametrize(
    "document, message",
    [
        (
            {"shapes": [{"label": "hand", "points": [[1, 2], [3, 4]], "shape_type": "polygon"}], "imagePath": "a.png"},
            "at least 3 points",
        ),
        ({"shapes": [{"label": "hand", "points": [["x", 2]] * 3}], "imagePath": "a.png"}, "numbers"),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
                "annotations": [
                    {"image_id": 1, "category_id": 1, "segmentation": {"size": [10, 10], "counts": [5, 5]}}
                ],
                "categories": [{"id": 1, "name": "hand"}],
            },
            "cover 10 pixels",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.png", "width": 99999, "height": 10}], "annotations": []},
            "each side must be",
        ),
        (
            {
                "shapes": [{"label": "m", "points": [[0, 0], [4, 4]], "shape_type": "mask", "mask": "!!"}],
                "imagePath": "a.png",
            },
            "not base64",
        ),
        (
            {
                "shapes": [{"label": "m", "points": [[0, 0], [4, 4]], "shape_type": "mask", "mask": BOMB}],
                "imagePath": "a.png",
            },
            "12000x12000 pixels, more than",  # refused from its header, before a decoder allocates 137 MiB
        ),
        ({"something": 1}, "neither a LabelMe file"),
    ],
)
def test_damaged_or_oversized_label_files_are_one_clear_error(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(BadInput, match=message):
        read_labels(path)


def test_a_label_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_LABEL_FILE_BYTES + 1)
    with pytest.raises(BadInput, match="byte limit"):
        read_labels(path)


def test_labels_edited_by_hand_are_refused_when_read(demo_b, tmp_path):
    from faceswap.data.label_export import export_for_labelling

    store, faceset = demo_b
    crop = faceset.faces[0]
    (tmp_path / "a.json").write_text(json.dumps(labelme(crop.file, [polygon("hand", OUTER)])))
    label_faceset(store, "demo-b", tmp_path / "a.json")
    index = faceset.folder / "labels" / "labels.jsonl"
    index.write_text(index.read_text().replace('"hand"', '"glove"'))
    with pytest.raises(BadInput, match="no ledger entry"):
        export_for_labelling(store, "demo-b", tmp_path / "out")


def test_export_copies_unlabelled_crops_byte_for_byte(demo_b, tmp_path):
    store, faceset = demo_b
    crop = faceset.faces[0]
    (tmp_path / "a.json").write_text(json.dumps(labelme(crop.file, [polygon("hand", OUTER)])))
    label_faceset(store, "demo-b", tmp_path / "a.json")
    report = export_for_labelling(store, "demo-b", tmp_path / "todo")
    assert report.exported == len(faceset.faces) - 1 and crop.file not in report.files
    for entry in faceset.faces[1:4]:
        assert (tmp_path / "todo" / entry.file).read_bytes() == (faceset.folder / entry.file).read_bytes()
    manifest = json.loads((tmp_path / "todo" / "faceset-export.json").read_text())
    assert manifest["subject_id"] == "demo-b" and len(manifest["crops"]) == report.exported
    few = export_for_labelling(store, "demo-b", tmp_path / "few", include_labelled=True, count=5)
    assert few.exported == 5 and few.files[0] == faceset.faces[0].file


def test_export_refuses_the_workspace_and_revoked_consent(demo_b, tmp_path):
    store, _ = demo_b
    with pytest.raises(BadInput, match="inside"):
        export_for_labelling(store, "demo-b", store.workspace.facesets_dir / "demo-b" / "todo")
    store.revoke("demo-b", "withdrawn")
    with pytest.raises(CheckFailed, match="revoked"):
        export_for_labelling(store, "demo-b", tmp_path / "todo")
    (tmp_path / "a.json").write_text(json.dumps(labelme("x.png", [polygon("hand", OUTER)])))
    with pytest.raises(CheckFailed, match="revoked"):
        label_faceset(store, "demo-b", tmp_path / "a.json")


def test_cli_label_and_export(facesets_workspace, tmp_path, capsys):
    faceset = Faceset.load(facesets_workspace / "facesets" / "demo-b")
    folder = tmp_path / "labelme"
    folder.mkdir()
    for entry in faceset.faces[:3]:
        (folder / f"{Path(entry.file).stem}.json").write_text(json.dumps(labelme(entry.file, [polygon("hand", OUTER)])))
    (folder / "stray.json").write_text(json.dumps(labelme("elsewhere.png", [polygon("hand", OUTER)])))
    ws = ["--workspace", str(facesets_workspace)]
    assert main(["faceset", "label", "demo-b", "--from", str(folder), *ws]) == 0
    out = capsys.readouterr().out
    assert "3 crop(s) labelled" in out and "elsewhere.png" in out
    assert main(["faceset", "export", "demo-b", "--out", str(tmp_path / "todo"), "--count", "4", "--json", *ws]) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == 4
    assert main(["faceset", "label", "nobody", "--from", str(folder), *ws]) == 1
    assert "no consent record" in capsys.readouterr().err
