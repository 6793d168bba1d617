"""The options of `convert`, `dub` and `convert-batch` (and of what `eval` measures), each declared
once: flag, help, type, default and choices (the choices taken from the module that implements
them). Every command's flags, the batch CSV's columns and their parsing, each value's check and what
an output's ledger entry records are derived from these declarations, so two commands cannot drift
apart. Where a command differs on purpose, the difference is stated in the one declaration
(`per_command`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from faceswap.convert import blend, colour
from faceswap.errors import BadInput
from faceswap.faces.analyzer import BACKENDS
from faceswap.faces.masks import BLEND_BLUR, BLEND_ERODE, MASK_CHOICES, MOUTH_OPENING, OCCLUSION, REGION_BLUR, REGIONS
from faceswap.faces.tracking import DETECT_EVERY
from faceswap.provenance.output.writers import SEQUENCE_FORMATS, VIDEO_CODECS

CONVERT, DUB, BATCH = "convert", "dub", "convert-batch"
EVAL, EVAL_DUB = "eval", "eval --dub"  # eval's conversion, and the dub it measures
ANALYSIS = "analysis"  # the face-analysis flags every command that looks for faces takes (cli's parent)
INSIGHTFACE = "insightface"  # where insightface packs live: `models fetch` and `doctor`
SAME_AS = {BATCH: CONVERT}  # a batch row is a conversion: its columns are convert's options
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
MAX_OFFSET = 3600.0  # seconds either way a dub's performance may be moved
# a dub re-voices part of the face, never all of it, and the mouth with its lips
DUB_REGIONS = tuple(r for r in REGIONS if r not in ("full", MOUTH_OPENING))
Options = TypeVar("Options")


@dataclass(frozen=True)
class Option:
    """One option: `name` is its options-dataclass field and ledger key, `--name-with-dashes` its
    flag and `name-with-dashes` its CSV column. A `bool` is a switch."""

    name: str
    help: str
    kind: type = str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # text to value, where that is not kind(text)
    check: Callable[[Any], bool] | None = None  # a value's own rule, beyond its choices
    rule: str = ""  # the rule in words: "--NAME must be {rule}"
    commands: frozenset[str] = frozenset({CONVERT, DUB})
    recorded: frozenset[str] = frozenset()  # commands whose output entry records the value
    implies: tuple[str, Any] | None = None  # a switch that only sets another option (no field of its own)
    per_command: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # deliberate differences

    @property
    def flag(self) -> str:
        return "--" + self.column

    @property
    def column(self) -> str:
        return self.name.replace("_", "-")

    def variant(self, command: str) -> Option:
        """This option as `command` takes it."""
        return dataclasses.replace(self, **self.per_command.get(SAME_AS.get(command, command), {}), per_command={})


def parse_frames(text: str) -> tuple[int, int]:
    """`A-B` (inclusive) or a single frame `A`."""
    first, sep, last = text.partition("-")
    try:
        a, b = int(first), int(last) if sep else int(first)
    except ValueError:
        raise BadInput(f"--frames {text!r}: give a range FIRST-LAST, e.g. 1001-1100") from None
    if a < 0 or b < a:
        raise BadInput(f"--frames {text!r}: FIRST must be >= 0 and <= LAST")
    return a, b


def parse_offset(text: str) -> float | str:
    """--offset: 'auto' or seconds."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"--offset must be 'auto' or seconds, not '{text}'") from None


def _offset_ok(value: Any) -> bool:
    return value == "auto" or (isinstance(value, int | float) and math.isfinite(value) and abs(value) <= MAX_OFFSET)


ALL = frozenset({CONVERT, DUB, BATCH})
CONVERTING = frozenset({CONVERT, BATCH})

OPTIONS: tuple[Option, ...] = (
    Option(
        "mask",
        "full: whole face; mouth / lower-face: keep the target's own mouth / lower face (dubbing); mouth-opening: "
        "the swap's lips opened as far as the target's, with what shows between the target's lips moved in "
        "between them (kept in place with the insightface backend); occlusion "
        "(or REGION+occlusion): also keep what is in front of the face (a hand, a microphone), found by --mask-model",
        default="full",
        choices=MASK_CHOICES,
        commands=ALL | {EVAL},
        recorded=frozenset({CONVERT, DUB}),  # dub's only when a segmenter is used (otherwise None: not recorded)
        per_command={
            DUB: {
                "default": None,
                "choices": (OCCLUSION,),
                "help": "occlusion: keep what is in front of the actor's face (a hand, a microphone) inside the "
                "region, found by --mask-model (the region itself is --region)",
            },
            EVAL: {"choices": REGIONS, "help": "the landmark region of the conversion eval makes"},
        },
    ),
    Option(
        "mask_model",
        "the occlusion segmenter (`faceswap train-mask`)",
        kind=Path,
        metavar="DIR",
        commands=ALL,
    ),
    Option(
        "region",
        "what is re-voiced: the mouth or the lower face",
        default="mouth",
        choices=DUB_REGIONS,
        commands=frozenset({DUB, EVAL_DUB}),
        recorded=frozenset({DUB}),
        per_command={EVAL_DUB: {"default": None, "help": "default: the dub's ledger entry"}},
    ),
    Option(
        "offset",
        "performance time minus plate time; auto: from the audio (default 0: recorded in the plate's timing)",
        default=0.0,
        metavar="auto|SECONDS",
        parse=parse_offset,
        check=_offset_ok,
        rule=f"'auto' or seconds within +-{MAX_OFFSET:.0f}",
        commands=frozenset({DUB, EVAL_DUB}),
        per_command={
            EVAL_DUB: {
                "kind": float,
                "default": None,
                "metavar": None,
                "parse": None,
                "help": "default: the dub's ledger entry",
            }
        },
    ),
    Option(
        "audio",
        "the dub line in the plate's timing (default: the performance's audio)",
        kind=Path,
        commands=frozenset({DUB}),
    ),
    Option(
        "color",
        "colour transfer onto the target's skin",
        default="rct",
        choices=tuple(sorted(colour.MODES)),
        commands=ALL,
        recorded=frozenset({CONVERT, DUB}),
    ),
    Option(
        "blend",
        "how the face is blended in",
        default="feather",
        choices=tuple(sorted(blend.MODES)),
        commands=ALL,
        recorded=frozenset({CONVERT, DUB}),
    ),
    Option(
        "erode",
        "shrink the mask, as a share of the face crop",
        kind=float,
        default=BLEND_ERODE,
        check=lambda v: 0 <= v < 0.5,
        rule="at least 0 and below 0.5 (a share of the face crop)",
        commands=CONVERTING,
    ),
    Option(
        "blur",
        f"feather the mask, as a share of the face crop (default {BLEND_BLUR}: the whole face's edge, the ring "
        "training weights too)",
        kind=float,
        default=BLEND_BLUR,
        check=lambda v: 0 <= v < 0.5,
        rule="at least 0 and below 0.5 (a share of the face crop)",
        commands=ALL,
        recorded=frozenset({DUB}),
        per_command={
            DUB: {
                "default": REGION_BLUR,
                "help": f"feather the region, as a share of the face crop (default {REGION_BLUR}, below convert's "
                f"{BLEND_BLUR}: a mouth or lower face, not the whole face)",
            }
        },
    ),
    Option(
        "smoothing",
        "fit each face's keypoints over this much of its track either side (zero lag; 0: off)",
        kind=float,
        default=0.2,
        metavar="SECONDS",
        check=lambda v: 0 <= v <= 2,
        rule="between 0 and 2 seconds",
        commands=ALL,
        recorded=frozenset({CONVERT, DUB}),
    ),
    Option(
        "no_smoothing",
        "same as --smoothing 0",
        kind=bool,
        default=False,
        implies=("smoothing", 0.0),
        commands=frozenset({CONVERT}),
    ),
    Option(
        "detect_every",
        "detect and identify faces every N frames and on scene cuts, track them between (1: every frame)",
        kind=int,
        default=DETECT_EVERY,
        metavar="N",
        check=lambda v: 1 <= v <= 250,
        rule="between 1 (every frame) and 250",
        commands=ALL,
        recorded=frozenset({CONVERT, DUB}),
    ),
    Option(
        "batch",
        "faces run through the model at once",
        kind=int,
        default=8,
        check=lambda v: 1 <= v <= 256,
        rule="between 1 and 256",
        commands=ALL,
    ),
    Option(
        "sequence",
        "write a folder OUTPUT/OUTPUT.####.png|exr instead of a video (EXR: half float, scene-linear)",
        choices=SEQUENCE_FORMATS,
        commands=ALL,
        per_command={DUB: {"choices": ("png",), "help": "write a PNG image sequence (no audio; dub writes no EXR)"}},
    ),
    # what convert delivers; its entry records them as delivery resolved them (delivery.settings())
    Option(
        "codec",
        "video outputs; ProRes is written as .mov (10-bit)",
        default="h264",
        choices=tuple(VIDEO_CODECS),
        commands=CONVERTING,
    ),
    Option("bits", "PNG/video depth (default: the input's)", kind=int, choices=(8, 16), commands=CONVERTING),
    Option(
        "alpha",
        "the swap matte as alpha: with --sequence, or --codec prores4444",
        kind=bool,
        default=False,
        commands=CONVERTING,
    ),
    Option(
        "frames",
        "convert only these input frames (their own numbers)",
        kind=tuple,
        metavar="FIRST-LAST",
        parse=parse_frames,
        commands=CONVERTING,
    ),
    Option(
        "start_frame",
        "number the first output frame N",
        kind=int,
        metavar="N",
        check=lambda v: v >= 0,
        rule="0 or more",
        commands=CONVERTING,
    ),
    Option(
        "input_colorspace",
        "OCIO colour space of the input (default: scene-linear Rec.709 for EXR, else sRGB)",
        metavar="NAME",
        commands=CONVERTING,
    ),
    Option(
        "output_colorspace",
        "OCIO colour space of the output (default: scene-linear Rec.709 for EXR, else the input's)",
        metavar="NAME",
        commands=CONVERTING,
    ),
    Option("ocio", "an OpenColorIO config (default: the built-in CG config)", metavar="CONFIG", commands=CONVERTING),
    Option(
        "allow_empty",
        "write an unchanged, marked copy when no face of subject B is found (default: refuse, exit 1)",
        kind=bool,
        default=False,
        commands=CONVERTING,
    ),
    Option("backend", "face backend", default="auto", choices=BACKENDS, commands=ALL | {ANALYSIS}),
    Option(
        "model_root",
        "insightface root holding models/buffalo_l (default ~/.insightface)",
        kind=Path,
        commands=ALL | {ANALYSIS, INSIGHTFACE},
        per_command={INSIGHTFACE: {"help": "insightface root, its packs under models/ (default ~/.insightface)"}},
    ),
)


def declared(command: str) -> Iterator[Option]:
    """The options `command` takes, as it takes them."""
    for option in OPTIONS:
        if command in option.commands:
            yield option.variant(command)


def flags(command: str) -> set[str]:
    return {option.flag for option in declared(command)}


def columns(command: str = BATCH) -> dict[str, Option]:
    """A batch CSV's option columns by name (`allow-empty`, `model-root`, ...)."""
    return {option.column: option for option in declared(command)}


def defaults(command: str) -> Mapping[str, Any]:
    """Each option's default as `command` takes it: what its options dataclass's fields default to."""
    return MappingProxyType({o.name: o.default for o in declared(command) if o.implies is None})


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, command: str) -> None:
    """The flags of `command`'s options."""
    for option in declared(command):
        if option.kind is bool:
            parser.add_argument(option.flag, action="store_true", help=option.help)
            continue
        parser.add_argument(
            option.flag,
            type=option.kind if option.parse is None and option.kind is not str else None,
            default=option.default,
            choices=option.choices,
            metavar=option.metavar,
            help=option.help,
        )


def from_namespace(kind: Callable[..., Options], args: argparse.Namespace, command: str, **fixed: Any) -> Options:
    """`kind` (the options dataclass) from parsed flags and `fixed` fields; text an option parses
    itself is parsed here, so a bad value is one line (BadInput), not a traceback."""
    given: dict[str, Any] = dict(fixed)
    for option in declared(command):
        value = getattr(args, option.name)
        if option.implies is not None:
            continue
        given[option.name] = option.parse(value) if option.parse and isinstance(value, str) else value
    for option in declared(command):
        if option.implies is not None and getattr(args, option.name):
            target, value = option.implies
            given[target] = value
    return kind(**given)


def from_row(
    kind: Callable[..., Options], cells: Mapping[str, str], resolve: Callable[[str], Path], command: str = BATCH
) -> Options:
    """`kind` from a CSV row's option cells (by column; empty ones keep their default); relative
    paths are resolved by `resolve`. BadInput names the column and says what it must be."""
    given: dict[str, Any] = {}
    for column, option in columns(command).items():
        cell = cells.get(column, "")
        if not cell:
            continue
        try:
            given[option.name] = _parse_cell(option, cell, resolve)
        except (ValueError, BadInput):
            raise BadInput(f"{column} = '{cell}' is not {_described(option)}") from None
    return kind(**given)


def _parse_cell(option: Option, cell: str, resolve: Callable[[str], Path]) -> Any:
    if option.kind is bool:
        if cell.lower() in TRUE:
            return True
        if cell.lower() in FALSE:
            return False
        raise ValueError(cell)
    if option.parse is not None:
        return option.parse(cell)
    if option.kind is Path:
        return resolve(cell)
    return option.kind(cell)


def _described(option: Option) -> str:
    if option.metavar and option.parse is not None:
        return option.metavar
    return {bool: "true or false", int: "a whole number", float: "a number", Path: "a path"}.get(option.kind, "text")


def check(options: object, command: str) -> None:
    """Each option's value against its choices and its rule; BadInput names the flag."""
    for option in declared(command):
        if option.implies is not None:
            continue
        value = getattr(options, option.name)
        if value is None:
            continue
        if option.choices is not None and value not in option.choices:
            raise BadInput(f"{option.flag} must be {_one_of(option.choices)}")
        if option.check is not None and not option.check(value):
            raise BadInput(f"{option.flag} must be {option.rule}")


def _one_of(choices: tuple[Any, ...]) -> str:
    names = [str(c) for c in choices]
    return " or ".join(names) if len(names) == 2 else f"one of {', '.join(names)}"


def record(options: object, command: str) -> dict[str, Any]:
    """What `command`'s output entry records of its options (an option left unset is not recorded)."""
    return {
        o.name: getattr(options, o.name)
        for o in declared(command)
        if command in o.recorded and getattr(options, o.name) is not None
    }
