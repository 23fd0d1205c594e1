"""Process defaults of the entry points (vlcore.framework.env): each is set
only if the user left it unset, and Paddle sees them when it is imported."""
import json
import os
import subprocess
import sys

PROBE = """
import json
from vlcore.framework.env import apply_cpu_defaults, describe_cpu_defaults
applied = apply_cpu_defaults()
import paddle
x = paddle.ones([2, 3]).transpose([1, 0])
print(json.dumps({"applied": applied, "flag": paddle.get_flags(["FLAGS_use_stride_kernel"])["FLAGS_use_stride_kernel"],
                  "transpose_dense": x.is_contiguous(), "log": describe_cpu_defaults()}))
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE", "FLAGS_use_stride_kernel")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_cpu_wheel_gets_dense_views_and_the_thread_defaults():
    r = _probe()
    assert r["applied"]["MKL_DEBUG_CPU_TYPE"] == "5"
    assert int(r["applied"]["OMP_NUM_THREADS"]) == len(os.sched_getaffinity(0))
    # The CPU wheel is installed here: strided views off, so a transpose is a
    # dense tensor (with Paddle's default it is a view of the ones).
    assert r["applied"]["FLAGS_use_stride_kernel"] == "0"
    assert r["flag"] is False and r["transpose_dense"] is True
    assert "FLAGS_use_stride_kernel=0" in r["log"]  # the run log's first line says so


def test_values_the_user_set_are_kept():
    r = _probe(FLAGS_use_stride_kernel="1", OMP_NUM_THREADS="1")
    assert "FLAGS_use_stride_kernel" not in r["applied"] and "OMP_NUM_THREADS" not in r["applied"]
    assert r["flag"] is True and r["transpose_dense"] is False
