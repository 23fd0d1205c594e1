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
# pip's own log is long (and warns about every unreachable local index on
# some machines): show one numbered line per package collected, the install
# step and every error; pip's exit status is kept.
pip_install() {
  python -m pip install "$@" 2>&1 | awk '
    /^Collecting / { n++; printf "[setup] %3d %s\n", n, $2; fflush(); next }
    /^Installing collected packages/ { if (n) print "[setup] installing " n " packages (unpacking into the venv)"; fflush(); next }
    /^Successfully installed/ { print "[setup] done"; next }
    /ERROR|[Ee]rror:/ { print; next }'
  return "${PIPESTATUS[0]}"
}
stamp="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/constraints.txt" \
  "$ROOT/requirements-nodeps.txt" "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the pinned requirements into $VENV (constraints.txt; about 2.3 GB,"
  echo "[setup] a minute or two on a fresh machine; pip prints each package as it goes)"
  pip_install --upgrade pip
  if python -c "import paddle" 2>/dev/null; then
    # Keep the user's Paddle (e.g. a GPU build); install everything else,
    # still through the constraints (given by absolute path: the filtered
    # copy lives in the venv, where a relative -c would not resolve).
    grep -v -e '^paddlepaddle' -e '^-c ' "$ROOT/requirements.txt" > "$VENV/.req-nopaddle.txt"
    pip_install -c "$ROOT/constraints.txt" -r "$VENV/.req-nopaddle.txt" pytest ruff
  else
    pip_install -r "$ROOT/requirements-dev.txt"
  fi
  pip_install --no-deps -r "$ROOT/requirements-nodeps.txt"
  # The toolkit itself (pyproject.toml), editable: vlcore, unimo, unimo2 and
  # data_prep import from this checkout; its dependencies came pinned above.
  echo "[setup] installing the toolkit (pip install -e .)"
  pip_install --no-deps -e "$ROOT"
  touch "$stamp"
fi
