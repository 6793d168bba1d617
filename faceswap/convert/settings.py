"""`ConvertOptions`, the record of one conversion's settings, apart from the pipeline so that
decoding and delivery can read it without importing the steps that use them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceswap.colorspace import BUILTIN_CONFIG, Colour
from faceswap.consent.watch import CHECK_EVERY_SECONDS
from faceswap.convert import options as declared
from faceswap.errors import BadInput
from faceswap.faces.masks import mask_parts
from faceswap.limits import OPERATOR, InputLimits

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
