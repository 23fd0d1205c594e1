"""Test setup: import the repository packages; keep Paddle on one thread per
test process (the tests are tiny, and subprocess tests run beside them);
otherwise the entry points' process defaults (vlcore.framework.env), so
that the tests run Paddle as the tools do."""
import os

from vlcore.framework.env import apply_cpu_defaults

os.environ.setdefault("OMP_NUM_THREADS", "1")
apply_cpu_defaults()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
