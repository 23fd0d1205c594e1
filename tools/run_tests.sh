#!/usr/bin/env bash
# Quick start 2: install, lint and run the test suite (what CI runs).
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -m "not slow and not dist"`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tools/setup_env.sh
# CI: the headless browser of the demo page's browser test (silent once installed)
if [ "${CI:-}" = "true" ]; then bash tools/setup_browser.sh; fi
echo "[lint] ruff check (pyproject.toml [tool.ruff])"
ruff check --quiet .
python -m pytest -q tests "$@"
