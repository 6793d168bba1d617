#!/usr/bin/env bash
# Create .venv (if missing) and install faceswap with its dev tools, idempotently.
# torch is installed pinned first: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
stamp="$VENV/.faceswap-installed"
want="torch=$TORCH_VERSION $(sha256sum pyproject.toml | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$py" -c "import faceswap, cv2, torch" 2>/dev/null; then
  exit 0
fi

"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "torch==$TORCH_VERSION"
"$py" -m pip install --quiet -e ".[dev]"
# insightface and invisible-watermark pull opencv-python (needs libGL), albumentations pulls the
# headless wheel; both write cv2/. Reinstall the headless wheel of the same version last so that
# `import cv2` works on a server without libGL.
cv_version="$("$py" -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))')"
"$py" -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==$cv_version"
"$py" -c "import cv2, torch, faceswap; print('faceswap ready: torch', torch.__version__, 'cv2', cv2.__version__)"
echo "$want" > "$stamp"
