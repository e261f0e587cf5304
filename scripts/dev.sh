#!/usr/bin/env bash
# The dev loop in one place; CI runs the same commands.
#   scripts/dev.sh setup   create .venv with the CPU build of torch and plantain[dev]
#   scripts/dev.sh serve   setup, then serve the API on 127.0.0.1:8000 (the main job)
#   scripts/dev.sh demo    setup, then a generate + edit round trip on the command line
#   scripts/dev.sh test    setup, then lint, type checks and the test suite
#   scripts/dev.sh lint    ruff and mypy only
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PLANTAIN_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"  # the CPU build here; GPU users install their CUDA build first (README)

ensure_python() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Plantain needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 1; }
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing python3-venv (Debian splits venv out of python3)…" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
}

setup() {
  ensure_python
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local stamp="$VENV/.plantain-installed" want
  want="$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$TORCH_PIN"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    # google-genai 1.x for the compat tests: it cannot share the venv with 3.x, so it lives in its own
    # directory (tests put it on PYTHONPATH); only websockets conflicts with the venv's versions.
    "$VENV/bin/python" -m pip install -q --upgrade --no-deps --target "$VENV/genai-1x" \
      "google-genai==1.52.0" "websockets>=13,<15.1"
    echo "$want" > "$stamp"
  fi
}

lint() {
  "$VENV/bin/ruff" check src tests bench fuzz
  "$VENV/bin/ruff" format --check src tests bench fuzz
  "$VENV/bin/mypy"
}

case "${1:-}" in
  setup) setup ;;
  serve) setup; shift; exec "$VENV/bin/plantain" serve --tiny-if-missing "$@" ;;
  demo) setup; shift; exec "$VENV/bin/plantain" demo "$@" ;;
  lint) setup; lint ;;
  test)
    setup
    lint
    shift
    exec "$VENV/bin/python" -m pytest -m "not gpu" "$@"
    ;;
  *) sed -n '2,7p' "$0" >&2; exit 2 ;;
esac
