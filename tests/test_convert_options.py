"""Each option of convert, dub and convert-batch is declared once: the flags, the dataclasses'
defaults, the CSV's columns, the checks and the ledger's record all come from that declaration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from faceswap.cli import build_parser, main
from faceswap.convert import options
from faceswap.convert.dub import DubOptions
from faceswap.convert.settings import ConvertOptions
from faceswap.errors import BadInput
from faceswap.faces.masks import BLEND_BLUR, REGION_BLUR

NOT_OPTIONS = {"consent_check_seconds", "limits"}  # set by the caller (the limits flags), never an option


@pytest.mark.parametrize(("kind", "command"), [(ConvertOptions, options.CONVERT), (DubOptions, options.DUB)])
def test_every_field_is_a_declared_option_with_its_declared_default(kind, command):
    fields = {f.name: f.default for f in dataclasses.fields(kind) if f.name not in NOT_OPTIONS}
    assert fields == dict(options.defaults(command))


def test_convert_and_dub_differ_only_where_the_declaration_says_so():
    convert, dub = options.defaults(options.CONVERT), options.defaults(options.DUB)
    shared = set(convert) & set(dub)
    assert {name for name in shared if convert[name] != dub[name]} == {"blur", "mask"}
    assert (convert["blur"], dub["blur"]) == (BLEND_BLUR, REGION_BLUR)
    stated = {o.name for o in options.OPTIONS if {options.CONVERT, options.DUB} & set(o.per_command)}
    assert {"blur", "mask", "sequence"} <= stated


def test_the_ledger_records_the_options_it_always_recorded():
    assert set(options.record(ConvertOptions(), options.CONVERT)) == {
        "mask",
        "color",
        "blend",
        "smoothing",
        "detect_every",
    }
    dub = {"region", "color", "blend", "blur", "smoothing", "detect_every"}
    assert set(options.record(DubOptions(), options.DUB)) == dub
    occluded = DubOptions(mask="occlusion", mask_model=Path("segmenter"))
    assert set(options.record(occluded, options.DUB)) == dub | {"mask"}


def test_flags_become_the_options_dataclass():
    args = build_parser().parse_args(
        ["convert", "--model", "m", "--input", "i.mp4", "--output", "o.mp4", "--no-smoothing", "--frames", "3-9"]
    )
    made = options.from_namespace(ConvertOptions, args, options.CONVERT)
    assert (made.smoothing, made.frames, made.blur, made.alpha) == (0.0, (3, 9), BLEND_BLUR, False)
    args = build_parser().parse_args(["dub", "--model", "m", "--plate", "p", "--performance", "q", "--output", "o"])
    assert options.from_namespace(DubOptions, args, options.DUB) == DubOptions()


def test_a_value_against_its_declared_rule_is_one_line():
    with pytest.raises(BadInput, match="--blur must be at least 0 and below 0.5"):
        DubOptions(blur=0.7).validate()
    with pytest.raises(BadInput, match="--region must be lower-face or mouth"):
        DubOptions(region="full").validate()


def test_a_bad_frames_flag_is_one_line_and_exit_2(capsys):
    code = main(["convert", "--model", "m", "--input", "i.mp4", "--output", "o.mp4", "--frames", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().count("\n") == 0 and "--frames 'soon'" in err
