#!/usr/bin/env bash
# The headless browser of the demo page's browser test
# (tests/tools/test_serve_browser.py): Debian's chromium and chromium-driver.
# Idempotent: silent when both are installed. Needs root (CI runs as root);
# tools/run_tests.sh calls it when CI=true.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "[setup] installing the headless browser for the browser test: Debian packages chromium, chromium-driver (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
