"""The FLOP counter of the step benchmarks and ``tools/plan.py``: the
multiply-adds of every matmul, linear and convolution a forward pass
actually executes (so block-sparse attention is credited only for the blocks
it computes); a training step is counted as 3x its forward (backward: 2x)."""
import contextlib

import numpy as np
import paddle
import paddle.nn.functional as F


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
