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
# pip's own progress goes to stdout untouched: what it collects and, on a
# terminal, a bar per download. Its "already satisfied" chatter is hidden
# (--quiet would hide everything), and so are the warnings about unreachable
# local indexes some machines print on stderr; real errors and pip's exit
# status are kept.
pip_install() {
  python -m pip install --progress-bar on "$@" \
    2> >(grep -v '^WARNING: Location' >&2 || true) \
    | { grep -v -e '^Requirement already satisfied' -e '^Using cached' || true; }
  return "${PIPESTATUS[0]}"
}
requirements() {  # the package names of a requirements file, one line
  grep -hvE '^[[:space:]]*(#|-r|$)' "$@" | sed -E 's/[[:space:]]*#.*//; s/[<>=!~; ].*//' | tr '\n' ' '
}
stamp="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the requirements into $VENV (about a minute on a fresh machine; pip's progress follows)"
  python -m pip install -q --upgrade pip 2> >(grep -v '^WARNING: Location' >&2 || true)
  if python -c "import paddle" 2>/dev/null; then
    # Keep the user's Paddle (e.g. a GPU build); install everything else.
    grep -v '^paddlepaddle' "$ROOT/requirements.txt" > "$VENV/.req-nopaddle.txt"
    echo "[setup] keeping the installed paddle; installing: $(requirements "$VENV/.req-nopaddle.txt")pytest"
    pip_install -r "$VENV/.req-nopaddle.txt" pytest
  else
    echo "[setup] installing: $(requirements "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
    pip_install -r "$ROOT/requirements-dev.txt"
  fi
  touch "$stamp"
  echo "[setup] done"
fi
