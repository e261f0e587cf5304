#!/usr/bin/env bash
# The dev loop in one place; CI runs the same commands.
#   scripts/dev.sh setup   create .venv: the CPU build of torch, then the locked dev set
#   scripts/dev.sh serve   setup, then serve the API on 127.0.0.1:8000 (the main job)
#   scripts/dev.sh demo    setup, then a generate + edit round trip on the command line
#   scripts/dev.sh test    setup, then the lock check, lint, type checks and the test suite
#   scripts/dev.sh lint    ruff and mypy only
#   scripts/dev.sh lock    re-resolve requirements/dev.lock after editing dependencies
#                          (`lock --upgrade` takes every package's newest allowed release)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PLANTAIN_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# Exact versions of the tools that install and lock, so that neither drifts under the lock.
PIP_PIN="pip==26.3"
PIP_TOOLS_PIN="pip-tools==7.7.0"
TORCH_PIN="torch==2.13.0"  # the CPU build here; GPU users install their CUDA build first (README)
LOCK="requirements/dev.lock"

ensure_python() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Plantain needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 1; }
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing python3-venv (Debian splits venv out of python3)…" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
}

# Servers and programs the tests start themselves (tests/services.py), from Debian's packages:
# PostgreSQL (as root, the tests run it as the postgres user) and Chromium (the browser tests);
# the S3 server, SeaweedFS, comes from the lock. npm installs the Node clients (tests/node).
ensure_services() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v npm >/dev/null || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (the tests start and drive them)…" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  ensure_node_clients
}

# The Node clients the tests run (the openai and @google/genai packages, and a Node 22 binary
# from npm, which today's SDKs need), installed from tests/node/package-lock.json.
ensure_node_clients() {
  local stamp="tests/node/node_modules/.plantain-installed" want
  want="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
}

check_lock() {
  "$PYTHON" scripts/lockcheck.py
}

setup() {
  ensure_python
  check_lock
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local stamp="$VENV/.plantain-installed" want
  want="$(cat pyproject.toml scripts/dev.sh requirements/* | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q "$PIP_PIN"
    "$VENV/bin/python" -m pip install -q "$TORCH_PIN"
    # --no-deps: the lock is the whole set. It leaves out torch (installed above) and torchvision,
    # which spandrel requires but PyPI has only as a CUDA build for this torch; without it
    # spandrel still loads the upscalers (plantain/upscale/spandrel_import.py).
    "$VENV/bin/python" -m pip install -q --no-deps -r "$LOCK"
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    # google-genai 1.x for the compat tests: it cannot share the venv with 3.x, so it lives in its own
    # directory (tests put it on PYTHONPATH), without its dependencies (the venv's serve it).
    "$VENV/bin/python" -m pip install -q --upgrade --no-deps --target "$VENV/genai-1x" \
      -r requirements/genai-1x.txt
    echo "$want" > "$stamp"
  fi
}

# pip-compile resolves with pip and pip's own configuration, so torch's CPU build is found where
# pip finds it; a resolution that took a CUDA build (nvidia-* packages) is refused.
lock() {
  ensure_python
  local tools="$VENV-tools"
  [ -x "$tools/bin/pip-compile" ] || {
    "$PYTHON" -m venv "$tools" && "$tools/bin/python" -m pip install -q "$PIP_PIN" "$PIP_TOOLS_PIN"
  }
  CUSTOM_COMPILE_COMMAND="scripts/dev.sh lock" "$tools/bin/pip-compile" --quiet --strip-extras \
    --extra dev --unsafe-package torch --unsafe-package torchvision --no-emit-index-url --no-emit-find-links -o "$LOCK" "$@" pyproject.toml requirements/dev.in
  if grep -q '^nvidia-' "$LOCK"; then
    echo "$LOCK: resolved a CUDA build of torch; make torch's CPU build reachable for pip" \
      "(e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu) and run this again" >&2
    exit 1
  fi
  local hash; hash="$("$PYTHON" scripts/lockcheck.py --print-hash)"
  sed -i "1a # inputs-sha256: $hash  (scripts/lockcheck.py compares it with pyproject.toml)" "$LOCK"
  check_lock && echo "$LOCK is up to date; commit it with pyproject.toml" >&2
}

lint() {
  "$VENV/bin/ruff" check src tests bench fuzz scripts
  "$VENV/bin/ruff" format --check src tests bench fuzz scripts
  "$VENV/bin/mypy"
}

case "${1:-}" in
  setup) setup ;;
  serve) setup; shift; exec "$VENV/bin/plantain" serve --tiny-if-missing "$@" ;;
  demo) setup; shift; exec "$VENV/bin/plantain" demo "$@" ;;
  lint) setup; lint ;;
  lock) shift; lock "$@" ;;
  test)
    setup
    ensure_services
    lint
    shift
    exec "$VENV/bin/python" -m pytest -m "not gpu" "$@"
    ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
