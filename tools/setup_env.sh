#!/usr/bin/env bash
# Create (once) the project's virtualenv in .venv and install what the
# toolkit needs. Sourced by tools/demo.sh and tools/run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLCORE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# pip warns about every unreachable local index on some machines; keep the
# output readable without hiding real errors (pip's exit status is kept).
pip_install() {
  python -m pip install -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
  return "${PIPESTATUS[0]}"
}
stamp="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing requirements (about a minute on a fresh machine)"
  pip_install --upgrade pip
  if python -c "import paddle" 2>/dev/null; then
    # Keep the user's Paddle (e.g. a GPU build); install everything else.
    grep -v '^paddlepaddle' "$ROOT/requirements.txt" > "$VENV/.req-nopaddle.txt"
    pip_install -r "$VENV/.req-nopaddle.txt" pytest
  else
    pip_install -r "$ROOT/requirements-dev.txt"
  fi
  touch "$stamp"
fi
