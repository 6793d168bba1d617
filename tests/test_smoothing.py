"""Keypoint smoothing along face tracks: removes detector noise, adds no lag, keeps frame order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from faceswap.convert.smoothing import KeypointSmoother, local_fit

TEMPLATE = np.array([[-20, -10], [20, -10], [0, 5], [-15, 20], [15, 20]], np.float64)


def _face(center: np.ndarray, noise: np.ndarray | None = None) -> SimpleNamespace:
    kps = TEMPLATE + center + (0 if noise is None else noise)
    return SimpleNamespace(bbox=np.r_[kps.min(0) - 10, kps.max(0) + 10], kps5=kps.astype(np.float32))


def _run(smoother: KeypointSmoother, faces_per_frame: list[list]) -> list[tuple[int, list]]:
    released = []
    for index, faces in enumerate(faces_per_frame):
        released += list(smoother.push(index, index, faces))
    return released + list(smoother.flush())


def _path(n: int) -> np.ndarray:
    """A head that speeds up, turns round and slows down: position, velocity and acceleration change."""
    t = np.arange(n) / 25.0
    return np.stack([300 + 60 * np.sin(2 * np.pi * 0.6 * t), 200 + 25 * t + 30 * t**2], axis=1)


def test_local_fit_is_exact_on_a_parabola_and_degrades_at_short_tracks():
    times = np.arange(-3, 4, dtype=np.float64)
    values = (2.0 + 0.5 * times - 0.25 * times**2)[:, None]
    assert np.allclose(local_fit(times, values, 0.0, 2), [2.0])
    assert np.allclose(local_fit(times[:1], values[:1], 0.0, 2), values[0])  # one point: itself


def test_all_frames_come_out_once_in_order_after_radius_frames():
    smoother = KeypointSmoother(radius=3)
    centers = _path(20)
    released_at = []
    out = []
    for index, center in enumerate(centers):
        ready = list(smoother.push(index, index, [_face(center)]))
        released_at += [index] * len(ready)
        out += ready
    assert released_at == list(range(3, 20))  # frame k leaves when frame k+3 has arrived
    out += list(smoother.flush())
    assert [item for item, _ in out] == list(range(20))


def test_removes_detector_noise_without_lag():
    rng = np.random.default_rng(0)
    n = 120
    true = _path(n)
    noise = rng.normal(0, 1.5, (n, 5, 2))
    raw = np.stack([TEMPLATE + c for c in true])[:, :, :] + noise
    out = _run(KeypointSmoother(radius=5), [[_face(c, e)] for c, e in zip(true, noise, strict=True)])
    smoothed = np.stack([faces[0].kps for _, faces in out])
    truth = np.stack([TEMPLATE + c for c in true])

    def motion_error(est: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(est, axis=0) - np.diff(truth, axis=0), axis=2).mean())

    assert motion_error(smoothed) < 0.5 * motion_error(raw)
    # no lag: the smoothed track is not behind the true one (a causal filter's error is one-signed)
    lag = (smoothed - truth)[10:-10, :, 1].mean()
    assert abs(lag) < 0.3, lag
    clean = _run(KeypointSmoother(radius=5), [[_face(c)] for c in true])
    assert np.abs(np.stack([f[0].kps for _, f in clean]) - truth)[10:-10].max() < 1.0  # near-exact


def test_faces_keep_their_own_tracks_and_radius_zero_is_off():
    rng = np.random.default_rng(1)
    left, right = np.array([150.0, 200.0]), np.array([500.0, 200.0])
    frames = [
        [_face(left, rng.normal(0, 2, (5, 2))), _face(right + [i, 0], rng.normal(0, 2, (5, 2)))] for i in range(15)
    ]
    out = _run(KeypointSmoother(radius=3), frames)
    assert {tuple(f.track_id for f in faces) for _, faces in out} == {(0, 1)}
    assert all(np.abs(faces[0].kps - (TEMPLATE + left)).max() < 6 for _, faces in out)
    off = _run(KeypointSmoother(radius=0), frames)
    assert all(np.array_equal(f.kps, f.face.kps5) for _, faces in off for f in faces)


def test_a_track_with_gaps_is_smoothed_from_the_frames_it_has():
    true = _path(30)
    frames = [[] if i in (10, 11, 20) else [_face(c)] for i, c in enumerate(true)]
    out = _run(KeypointSmoother(radius=4), frames)
    assert [len(faces) for _, faces in out] == [len(f) for f in frames]
    assert len({f.track_id for _, faces in out for f in faces}) == 1
    for index, faces in out:
        if faces:
            assert np.abs(faces[0].kps - (TEMPLATE + true[index])).max() < 1.0


def test_each_keypoint_has_its_own_window():
    rng = np.random.default_rng(2)
    true = _path(40)
    noise = rng.normal(0, 1.5, (40, 5, 2))
    out = _run(KeypointSmoother(radii=(5, 5, 5, 0, 0)), [[_face(c, e)] for c, e in zip(true, noise, strict=True)])
    assert [index for index, _ in out] == list(range(40))
    for _, faces in out:
        tracked = faces[0]
        assert np.array_equal(tracked.kps[3:], tracked.face.kps5[3:])  # mouth corners: as detected
    eyes = np.stack([faces[0].kps[:2] for _, faces in out])
    raw_eyes = np.stack([faces[0].face.kps5[:2] for _, faces in out])
    truth = np.stack([TEMPLATE[:2] + c for c in true])
    assert np.abs(eyes - truth)[5:-5].mean() < 0.7 * np.abs(raw_eyes - truth)[5:-5].mean()
