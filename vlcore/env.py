"""Process-level defaults that must be set before Paddle is imported.

Paddle's CPU wheel links MKL, which by default runs a single thread and, on
AMD CPUs, a slow generic code path. On the 2-core AMD machines this project is
developed on, a 2048^2 fp32 matmul runs at ~20 GFLOP/s by default and ~145
GFLOP/s with ``OMP_NUM_THREADS=<cores>`` and ``MKL_DEBUG_CPU_TYPE=5`` (see
bench/bench_matmul.py). Every entry point calls :func:`apply_cpu_defaults`
first; values the user has already set are never touched.
"""
import os
import warnings

_APPLIED = {}


def apply_cpu_defaults():
    """Set thread/MKL defaults if unset; return what was set (for the log)."""
    if _APPLIED:
        return dict(_APPLIED)
    # Paddle's import warns that the C++-extension builder found no ccache;
    # nothing here compiles extensions.
    warnings.filterwarnings("ignore", message="No ccache found")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Under a multi-process launcher each rank gets a share of the cores.
    nproc = int(os.environ.get("PADDLE_LOCAL_SIZE", os.environ.get("PADDLE_TRAINERS_NUM", "1")) or 1)
    wanted = {
        "OMP_NUM_THREADS": str(max(1, cores // max(1, nproc))),
        "MKL_DEBUG_CPU_TYPE": "5",
        # Paddle prints a wall of glog INFO lines otherwise.
        "GLOG_minloglevel": "2",
        "FLAGS_print_model_stats": "0",
    }
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = value
            _APPLIED[key] = value
    _APPLIED.setdefault("_none", "")
    return {k: v for k, v in _APPLIED.items() if k != "_none"}


def describe_cpu_defaults():
    """One log line saying which thread settings are in effect and why."""
    applied = {k: v for k, v in _APPLIED.items() if k != "_none"}
    keys = ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE")
    state = ", ".join(f"{k}={os.environ.get(k, '<unset>')}" for k in keys)
    origin = "set by the toolkit (unset before)" if any(k in applied for k in keys) else "from the environment"
    return f"CPU threads: {state} ({origin})"
