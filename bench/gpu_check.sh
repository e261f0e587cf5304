#!/usr/bin/env bash
# The GPU check in one command: each stage (FLUX.2-klein-4B, Z-Image-Turbo, Qwen-Image-Edit-2511,
# then `pytest -m gpu`) in its own Python process, under one time budget, into one JSON and one
# markdown report. Options, stages and expected times: bench/gpu_check.sh --help
#   bench/gpu_check.sh                       # everything, 510 s budget, report in gpu-check-out/
#   bench/gpu_check.sh --only klein,zimage   # a part; --dry-run proves the path on a CPU
# The Python is $PYTHON, else the project's virtual environment ($PLANTAIN_VENV, default .venv)
# where there is one, else python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PLANTAIN_VENV:-$here/../.venv}"
if [ -z "${PYTHON:-}" ] && [ -x "$venv/bin/python" ]; then
  PYTHON="$venv/bin/python"
fi
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
