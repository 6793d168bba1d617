"""What was done to a file, from the mark's geometry and the ledger entry (provenance/verify/changes.py)."""

from __future__ import annotations

from faceswap.provenance.verify.changes import FileFacts, what_was_done
from faceswap.provenance.watermark import tiles
from faceswap.provenance.watermark.marker import Detection, LayerEvidence

WRITTEN = {"sha256": "aa" * 32, "media": "video", "width": 640, "height": 480, "frames": 75, "name": "out.mp4"}


def _detection(chip_px: float, borders: list[int] | None = None, mirror: bool = False) -> Detection:
    tile = LayerEvidence("tiles", 12.0, 7.6, True, 1000, 1e-7, "0123456789ab", {"chip_px": chip_px})
    undone = {"mirror": mirror, "borders": borders, "scale": 1.0}
    return Detection(
        True, "0123456789ab", None, 1e-30, 0, 48, scheme=2, token_from="tiles", undone=undone, layers=(tile,)
    )


def _facts(width: int, height: int, frames: int = 75, sha256: str = "bb" * 32) -> FileFacts:
    return FileFacts(sha256, "video", "MP4", width, height, frames)


def test_the_written_file_is_identical():
    changes = what_was_done(_detection(4.5), WRITTEN, _facts(640, 480, sha256=WRITTEN["sha256"]))
    assert [c.kind for c in changes] == ["identical"]


def test_a_crop_is_measured_on_the_whole_frame_even_where_smooth_content_looked_like_a_bar():
    """A 5% crop a side of a frame with a smooth edge: the reader set the edge aside as a 'bar', but
    the share left is the frame's (90%), and no bars were added."""
    chip = tiles.chip_size((480, 640))
    changes = {c.kind: c.value for c in what_was_done(_detection(chip, [0, 432, 0, 479]), WRITTEN, _facts(576, 432))}
    assert set(changes) == {"reencoded", "crop"}
    assert changes["crop"] == [0.9, 0.9]


def test_scaled_mirrored_pillarboxed_and_trimmed():
    chip = tiles.chip_size((480, 640)) * 0.5
    detection = _detection(chip, [0, 240, 53, 373], mirror=True)
    changes = {c.kind: c.value for c in what_was_done(detection, WRITTEN, _facts(426, 240, frames=50))}
    assert set(changes) == {"reencoded", "trim", "mirror", "scale", "borders"}
    assert changes["scale"] == 0.5 and abs(changes["trim"] - 50 / 75) < 1e-9


def test_without_an_entry_only_what_the_reader_undid():
    changes = what_was_done(_detection(4.5, [0, 400, 10, 600], mirror=True), None, _facts(620, 400))
    assert [c.kind for c in changes] == ["mirror", "borders"]


def test_nothing_is_said_without_a_mark():
    unmarked = Detection(False, None, None, 1.0, 0, 1)
    assert what_was_done(unmarked, WRITTEN, _facts(640, 480)) == []
