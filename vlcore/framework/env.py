"""Process-level defaults that must be set before Paddle is imported.

Paddle's CPU wheel links MKL, which by default runs a single thread and, on
AMD CPUs, a slow generic code path. On the 2-core AMD machines this project is
developed on, a 2048^2 fp32 matmul runs at ~20 GFLOP/s by default and ~145
GFLOP/s with ``OMP_NUM_THREADS=<cores>`` and ``MKL_DEBUG_CPU_TYPE=5`` (see
bench/bench_matmul.py). Every entry point calls :func:`apply_cpu_defaults`
first; values the user has already set are never touched.

Paddle 3.x also makes ``transpose``, ``reshape``, ``split`` and the like
return strided views (``FLAGS_use_stride_kernel``, default true, defined in
``paddle/phi/core/kernel_factory.cc``). Whatever next needs a dense tensor
(a matmul, a reshape's gradient) then copies the view with the CPU
``strided_copy`` kernel (``paddle/phi/kernels/cpu/strided_copy_kernel.cc``):
one thread, and per element a division and a modulo for every dimension of
both tensors. On a base training step the attention heads' reshapes and
transposes went through it: ``reshape_grad`` alone took 5-6 % of every step
(docs/benchmarks.md, the profile table). With the flag off, those operators
run Paddle's dense kernels (a real transpose, a reshape that only relabels
the shape), as in Paddle 2.x. Only on Paddle's CPU wheel: a CUDA build keeps
its default, which nothing here has measured.
"""
import importlib.metadata
import os
import platform
import sys
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
    if not _cuda_wheel():
        wanted["FLAGS_use_stride_kernel"] = "0"  # dense views on CPU: see the module's docstring
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = value
            _APPLIED[key] = value
    _APPLIED.setdefault("_none", "")
    return {k: v for k, v in _APPLIED.items() if k != "_none"}


def _cuda_wheel():
    """Paddle's CUDA builds are published as ``paddlepaddle-gpu``; the CPU
    wheel as ``paddlepaddle``. Read from the installed distributions, since
    Paddle itself must not be imported yet."""
    try:
        importlib.metadata.distribution("paddlepaddle-gpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


SHOWN = ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE", "MALLOC_MMAP_THRESHOLD_", "FLAGS_use_stride_kernel")


def cpu_settings():
    """The process settings of this module in effect (None: unset)."""
    return {k: os.environ.get(k) for k in SHOWN}


def describe_cpu_defaults():
    """One log line with the thread/allocator settings in effect (the
    toolkit fills in any the user left unset, see this module)."""
    return "CPU settings: " + ", ".join(f"{k}={v or '<unset>'}" for k, v in cpu_settings().items())


# glibc's malloc serves every large block (attention scores, activations: tens
# to hundreds of MB on CPU) with a fresh mmap and returns it with munmap, so
# each training step page-faults its whole working set back in: on the base
# model that was a third of the step in kernel time. Raising the thresholds
# keeps freed blocks in the heap for reuse. glibc reads these variables only
# at start-up, hence the re-exec.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34), "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


def reexec_with_malloc_tuning():
    """Re-execute this process once with the malloc settings above (Linux
    glibc only; skipped if the user set any of them or VLCORE_NO_REEXEC=1)."""
    if (not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc"
            or os.environ.get("VLCORE_NO_REEXEC") == "1" or any(k in os.environ for k in _MALLOC_ENV)):
        return
    os.environ.update(_MALLOC_ENV)
    os.environ["VLCORE_NO_REEXEC"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)
