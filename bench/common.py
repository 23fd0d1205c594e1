"""Shared helpers of the benchmarks: the machine's matmul ceiling and a FLOP
counter, so every figure is printed as a ratio measured in the same run."""
import contextlib
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vlcore.framework.env import apply_cpu_defaults, describe_cpu_defaults, reexec_with_malloc_tuning  # noqa: E402

reexec_with_malloc_tuning()
apply_cpu_defaults()

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


def header():
    dev = paddle.device.get_device()
    print(f"paddle {paddle.__version__} on {dev}; {describe_cpu_defaults()}")


def sync():
    if paddle.device.get_device().startswith("gpu"):
        paddle.device.synchronize()


def timeit(fn, repeat=5, warmup=1):
    """Median seconds of ``fn()`` over ``repeat`` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_ceiling(n=2048, repeat=10):
    """Achieved fp32 FLOP/s of one large square matmul: the ceiling the
    model's step is compared with."""
    a, b = paddle.randn([n, n]), paddle.randn([n, n])
    sec = timeit(lambda: paddle.matmul(a, b), repeat=repeat, warmup=2)
    return 2 * n ** 3 / sec


class FlopCounter:
    """Counts the multiply-add FLOPs of every matmul, linear and conv actually
    executed (so block-sparse attention is credited only for the blocks it
    computes). Backward is counted as 2x forward by the caller."""

    def __init__(self):
        self.flops = 0

    @contextlib.contextmanager
    def count(self):
        conv_mod = F.conv  # nn.Conv2D calls F.conv._conv_nd, not F.conv2d
        orig_matmul, orig_linear, orig_conv = paddle.matmul, F.linear, conv_mod._conv_nd
        counter = self

        def matmul(x, y, transpose_x=False, transpose_y=False, name=None):
            xs, ys = list(x.shape), list(y.shape)
            m, k = (xs[-1], xs[-2]) if transpose_x else (xs[-2], xs[-1])
            n = ys[-2] if transpose_y else ys[-1]
            batched = len(xs) > 2 or len(ys) > 2
            batch = int(np.prod(np.broadcast_shapes(tuple(xs[:-2]), tuple(ys[:-2])))) if batched else 1
            counter.flops += 2 * batch * m * n * k
            return orig_matmul(x, y, transpose_x, transpose_y, name)

        def linear(x, weight, bias=None, name=None):
            counter.flops += 2 * int(np.prod(x.shape[:-1])) * weight.shape[0] * weight.shape[1]
            return orig_linear(x, weight, bias, name)

        def conv_nd(x, weight, *args, **kwargs):
            out = orig_conv(x, weight, *args, **kwargs)
            counter.flops += 2 * int(np.prod(out.shape)) * int(np.prod(weight.shape[1:]))
            return out

        paddle.matmul, F.linear, conv_mod._conv_nd = matmul, linear, conv_nd
        try:
            yield self
        finally:
            paddle.matmul, F.linear, conv_mod._conv_nd = orig_matmul, orig_linear, orig_conv
