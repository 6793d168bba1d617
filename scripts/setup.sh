#!/usr/bin/env bash
# Create .venv (if missing) and install faceswap with its dev tools, idempotently.
# torch is installed pinned first: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

# Debian's Chromium drives the verification page's browser tests (tests/test_serve_browser.py), which
# skip where no browser can be installed. Installed only when missing, as root, where apt exists.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1
  }
  if ! { apt_install || { apt-get update -qq >/dev/null 2>&1 && apt_install; }; }; then
    echo "setup: chromium could not be installed; the browser tests will skip" >&2
  fi
fi

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
