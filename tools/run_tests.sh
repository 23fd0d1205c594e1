#!/usr/bin/env bash
# Quick start 2: install and run the test suite (what CI runs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tools/setup_env.sh
python -m pytest -q tests "$@"
