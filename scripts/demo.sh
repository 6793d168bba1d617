#!/usr/bin/env bash
# Install everything (idempotent) and run the end-to-end demo on the built-in synthetic subjects.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/faceswap demo "$@"
