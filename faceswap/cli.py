"""The `faceswap` command: parses arguments, calls the pipeline, prints. Imports are lazy so that
quick commands (verify, --version) do not pay for torch."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from faceswap import __version__
from faceswap.errors import FaceswapError

Handler = Callable[[argparse.Namespace], int]


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", choices=["auto", "dlib", "insightface"], help="face backend")
    parser.add_argument(
        "--model-root",
        type=Path,
        default=None,
        help="insightface root holding models/buffalo_l (default ~/.insightface)",
    )


def cmd_faces_detect(args: argparse.Namespace) -> int:
    from faceswap.faces.analyzer import FaceAnalyzer
    from faceswap.media import read_image

    image = read_image(args.image)
    analyzer = FaceAnalyzer(args.backend, args.model_root)
    faces = analyzer.analyze(image)
    if args.json:
        _print_json(
            {
                "image": str(args.image),
                "backend": analyzer.name,
                "model": analyzer.model_name,
                "faces": [face.to_json() for face in faces],
            }
        )
        return 0
    print(analyzer.reason, file=sys.stderr)
    print(f"{args.image}: {len(faces)} face(s)")
    for i, face in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        kps = " ".join(f"({x:.0f},{y:.0f})" for x, y in face.kps5)
        print(f"  [{i}] box ({x1},{y1})-({x2},{y2}) score {face.score:.2f} kps {kps}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceswap", description="Consent-gated face swapping with watermarked, logged outputs."
    )
    parser.add_argument("--version", action="version", version=f"faceswap {__version__}")
    parser.add_argument(
        "--workspace", type=Path, default=None, help="workspace root (default $FACESWAP_WORKSPACE or ./workspace)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    faces = commands.add_parser("faces", help="face analysis").add_subparsers(dest="faces_command", metavar="ACTION")
    detect = faces.add_parser("detect", help="list the faces in an image")
    detect.add_argument("image", type=Path)
    _add_backend_options(detect)
    detect.add_argument("--json", action="store_true")
    detect.set_defaults(handler=cmd_faces_detect)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except FaceswapError as error:
        print(f"faceswap: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("faceswap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
