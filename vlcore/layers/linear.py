"""``nn.Linear`` whose bias gradient is a matrix product on CPU.

Paddle 3.3 computes the bias gradient of ``F.linear`` (and of any ``y + b``
broadcast over rows) on CPU with a slow column-sum kernel: 0.15 s for one
[4880, 3072] feed-forward activation, while a GEMM gives the same sums in
3.5 ms. Here the bias enters as the outer product ``1 (x) b`` -- a K=1 matmul
whose backward is ``1^T dy`` -- added to the bias-free ``x W``: forward and
backward of a [4880, 768] x [768, 3072] layer take 0.80 s instead of 1.03 s
(one thread; ``bench/bench_cpu_fast_paths.py``), and a base-sized layer has
six linears. On other devices, without gradients, or with a
frozen bias it is plain ``F.linear``. Parameter names and layout are those of
``nn.Linear``, so checkpoints and converters are unaffected.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers._device import eager_cpu


def add_bias(y, b):
    """``y + b`` for a bias ``b`` over the last axis of ``y``."""
    if b.stop_gradient or not paddle.is_grad_enabled() or not eager_cpu(y) or y.size == 0:
        return y + b
    return y + paddle.matmul(paddle.ones(list(y.shape[:-1]) + [1], y.dtype), b.unsqueeze(0))


class Linear(nn.Linear):
    def forward(self, x):
        b = self.bias
        if b is None or b.stop_gradient or not paddle.is_grad_enabled() or not eager_cpu(x):
            return F.linear(x, self.weight, b)
        return add_bias(F.linear(x, self.weight), b)
