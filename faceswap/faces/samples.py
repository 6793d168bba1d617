"""Real photos that installed packages ship: the only faces tests and the demo may use."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from faceswap.errors import MissingModel


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModel(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def insightface_t1() -> Path:
    """Six people in one group photo."""
    return _package_dir("insightface") / "data" / "images" / "t1.jpg"


def insightface_tom_hanks() -> Path:
    """One face, 112x112, already roughly aligned."""
    return _package_dir("insightface") / "data" / "images" / "Tom_Hanks_54745.png"


def skimage_astronaut() -> Path:
    """Eileen Collins, 512x512."""
    return _package_dir("skimage") / "data" / "astronaut.png"
