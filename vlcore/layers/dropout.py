"""Dropout whose random numbers are cheap on CPU.

Paddle 3.3's CPU dropout draws one ``mt19937`` number per element: 0.42 s for
the 36M attention probabilities of one grounded-transformer layer at the
pre-training text shape (8 x 12 heads x 610 x 610), more than the layer's
softmax and its QK^T matmul together. On CPU this module draws 16-bit
integers with NumPy's PCG64 instead and multiplies by the resulting keep
mask (``bench/bench_cpu_fast_paths.py`` times both, forward + backward).
Elsewhere ``F.dropout`` is used.

Reproducibility: each call seeds its PCG64 from one draw of Paddle's own
generator, so ``paddle.seed``, checkpointed RNG states (resume) and
recompute's RNG replay all govern it exactly as they govern ``F.dropout``.
The drop probability is quantised to 1/65536 (0.1 -> 0.100006).
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers._device import eager_cpu

# Below this many elements Paddle's kernel is as fast as the NumPy detour.
_MIN_FAST = 1 << 16


def dropout(x, p, training=True):
    """Inverted dropout (``upscale_in_train``) of ``x`` with drop rate ``p``."""
    if not training or p <= 0.0:
        return x
    if not eager_cpu(x) or x.size < _MIN_FAST or x.dtype != paddle.float32:
        return F.dropout(x, p, training=True)
    seed = int(paddle.randint(0, 2 ** 31 - 1, [1]).item())
    bits = np.random.Generator(np.random.PCG64(seed)).integers(0, 1 << 16, x.size, dtype=np.uint16)
    # keep with probability 1 - p, kept values scaled by 1 / (1 - p), in one pass
    keep = np.multiply(bits >= round(p * (1 << 16)), np.float32(1.0 / (1.0 - p)), dtype=np.float32)
    # from_dlpack shares NumPy's buffer: no 4-bytes-per-element copy
    return x * paddle.utils.dlpack.from_dlpack(keep.reshape(x.shape))


class Dropout(nn.Layer):
    """Drop-in for ``nn.Dropout`` (``upscale_in_train``) using :func:`dropout`."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
