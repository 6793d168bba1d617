"""Training samples: repeatable augmentations, crops resampled as conversion resamples them, the
training regions, and uniform-yaw sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceswap.data.datamodule import FacePicker, FaceSamples, PairDataset
from faceswap.data.faceset import FaceEntry, Faceset, FacesetHeader, write_crop
from faceswap.errors import BadInput
from faceswap.faces.align import Alignment, align_face, crop_face, track_alignment, transform_points


def _samples(seed: int) -> FaceSamples:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    masks = np.ones((4, 64, 64), np.float32)
    return FaceSamples(images, masks, masks, np.zeros_like(masks), np.zeros(4, np.float32))


def _draw(dataset: PairDataset, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [dataset[i]["a"]["input"] for i in range(6)] + [dataset[i]["b"]["target"] for i in range(6)]


def test_augmentations_repeat_with_the_seed_and_change_with_the_draw():
    dataset = PairDataset(_samples(0), _samples(1), length=6)
    first, again = _draw(dataset, 7), _draw(PairDataset(_samples(0), _samples(1), length=6), 7)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    other = _draw(dataset, 8)
    assert sum(not torch.equal(x, y) for x, y in zip(first, other, strict=True)) >= 10


def _t1_faceset(folder, t1_image, faces, size: int, face_type: str = "whole") -> Faceset:
    """A faceset of the group photo's faces, written as extraction writes one."""
    folder.mkdir(parents=True, exist_ok=True)
    alignment = Alignment(face_type)
    header = FacesetHeader("t1", "rec", "0" * 64, "dlib", "m", size, alignment.name, 0.93)
    entries = []
    for i, face in enumerate(faces):
        aligned = align_face(t1_image, face.kps5, size, alignment, face.landmarks, face.landmark_scheme)
        name = f"t1_{i}.png"
        entries.append(
            FaceEntry(
                name,
                write_crop(folder, name, aligned.crop),
                "t1.jpg",
                "0" * 64,
                0,
                i,
                face.bbox.tolist(),
                transform_points(face.kps5, aligned.matrix).tolist(),
                transform_points(face.landmarks, aligned.matrix).tolist(),
                face.landmark_scheme,
                aligned.matrix.tolist(),
                1.0,
                100.0,
                float(i * 10 - 25),
            )
        )
    faceset = Faceset(folder, header, entries)
    faceset.save()
    return faceset


def test_training_and_conversion_crops_of_a_face_agree(tmp_path, t1_image, t1_faces):
    """A 128 px faceset trained at 64 px and conversion's 64 px crop of the same frame: the same
    landmarks, the same pixels (no sub-pixel shift, no aliasing difference)."""
    import cv2

    faceset = _t1_faceset(tmp_path / "fs", t1_image, t1_faces, 128)
    samples = FaceSamples.load(Faceset.load(faceset.folder), 64)
    window = cv2.createHanningWindow((64, 64), cv2.CV_64F)
    for i, face in enumerate(t1_faces):
        matrix = track_alignment(face, face.kps5, 64)  # what convert aligns with
        converted = crop_face(t1_image, matrix, 64)
        trained_lms = np.asarray(faceset.faces[i].landmarks) * 0.5
        assert np.abs(trained_lms - transform_points(face.landmarks, matrix)).max() < 0.05
        gray = [np.float64(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)) for x in (samples.images[i], converted)]
        (dx, dy), _ = cv2.phaseCorrelate(gray[0], gray[1], window)
        assert abs(dx) < 0.08 and abs(dy) < 0.08, f"face {i}: shifted by ({dx:.3f}, {dy:.3f}) px"
        assert np.abs(gray[0] - gray[1]).mean() < 1.5


def test_a_model_larger_than_the_faceset_is_refused(tmp_path, t1_image, t1_faces):
    faceset = _t1_faceset(tmp_path / "fs", t1_image, t1_faces[:2], 128)
    with pytest.raises(BadInput, match="extract with --size 256"):
        FaceSamples.load(faceset, 256)


def test_lower_face_samples_are_cut_from_whole_face_crops_as_dub_crops(tmp_path, t1_image, t1_faces):
    """`--data.face_type lower`: each sample is the crop `dub` makes of that frame for a lower-face
    model (same landmarks, same pixels), its mouth priority inside; framings the faceset's crops do
    not contain, and upscaling, are refused."""
    import cv2

    faceset = _t1_faceset(tmp_path / "fs", t1_image, t1_faces, 128)
    samples = FaceSamples.load(Faceset.load(faceset.folder), 64, "lower")
    window = cv2.createHanningWindow((64, 64), cv2.CV_64F)
    for i, face in enumerate(t1_faces):
        matrix = track_alignment(face, face.kps5, 64, Alignment("lower"))
        made = crop_face(t1_image, matrix, 64)
        gray = [np.float64(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)) for x in (samples.images[i], made)]
        (dx, dy), _ = cv2.phaseCorrelate(gray[0], gray[1], window)
        assert abs(dx) < 0.1 and abs(dy) < 0.1, f"face {i}: shifted by ({dx:.3f}, {dy:.3f}) px"
        mouth = transform_points(face.landmarks[48:68], matrix)
        rows, cols = np.round(mouth[:, 1]).astype(int), np.round(mouth[:, 0]).astype(int)
        assert (samples.priority[i][rows.clip(0, 63), cols.clip(0, 63)] > 128).mean() > 0.9
    with pytest.raises(BadInput, match="extract with --size 512"):  # the lower face is half a whole-face crop
        FaceSamples.load(faceset, 256, "lower")
    full = _t1_faceset(tmp_path / "full", t1_image, t1_faces[:1], 128, face_type="full")
    with pytest.raises(BadInput, match="do not contain a whole-face framing"):
        FaceSamples.load(full, 64, "whole")


def test_loaded_samples_carry_the_training_regions(tmp_path, t1_image, t1_faces):
    faceset = _t1_faceset(tmp_path / "fs", t1_image, t1_faces[:3], 128, face_type="full")
    assert Faceset.load(faceset.folder).header.alignment == Alignment("full")
    samples = FaceSamples.load(faceset, 64)
    assert samples.images.shape == (3, 64, 64, 3)
    full, weight, priority = (m.astype(np.float32) / 255 for m in (samples.full, samples.weight, samples.priority))
    assert (weight >= full - 0.02).all()  # the loss covers the hull and beyond
    assert (weight.sum(axis=(1, 2)) > 1.1 * full.sum(axis=(1, 2))).all()
    assert ((priority > 0.5).sum(axis=(1, 2)) > 0.05 * 64 * 64).all()
    np.testing.assert_allclose(samples.yaw, [-25.0, -15.0, -5.0])
    hull = FaceSamples.load(faceset, 64, loss_region="hull").weight.astype(np.float32) / 255  # the hull alone
    assert (hull <= weight + 0.01).all()
    np.testing.assert_allclose(hull.sum(axis=(1, 2)), full.sum(axis=(1, 2)), rtol=0.03)  # full is it, feathered
    with pytest.raises(BadInput, match="loss_region"):
        FaceSamples.load(faceset, 64, loss_region="face")


def test_uniform_yaw_draws_profiles_as_often_as_frontal_faces():
    yaw = np.concatenate([np.zeros(90), np.full(10, 40.0)])  # a mostly frontal faceset
    rng = np.random.default_rng(0)
    plain = np.array([FacePicker(yaw, uniform_yaw=False)(rng) for _ in range(2000)])
    uniform = np.array([FacePicker(yaw, uniform_yaw=True)(rng) for _ in range(2000)])
    assert 0.05 < (plain >= 90).mean() < 0.15
    assert 0.4 < (uniform >= 90).mean() < 0.6


def test_warp_can_be_turned_off_for_the_last_stage():
    import albumentations as A

    dataset = PairDataset(_samples(0), _samples(1), length=2, warp=False, colour_transfer=0.0)
    dataset.degrade = A.Compose([])
    item = dataset[0]
    assert all(torch.equal(item[s]["input"], item[s]["target"]) for s in ("a", "b"))
    warped = PairDataset(_samples(0), _samples(1), length=2, colour_transfer=0.0)
    warped.degrade = A.Compose([])
    item = warped[0]
    assert not torch.equal(item["a"]["input"], item["a"]["target"])
