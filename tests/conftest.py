"""Test setup: import the repository packages; keep Paddle on one thread per
test process (the tests are tiny, and subprocess tests run beside them)."""
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
warnings.filterwarnings("ignore", message="No ccache found")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
