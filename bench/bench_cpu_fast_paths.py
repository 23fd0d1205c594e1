"""The CPU fast paths of vlcore.layers against the Paddle operators they
replace, forward + backward at the shapes of a UNIMO-2 base text step
(8 rows x 610 tokens, 768-d, 12 heads; feed-forward 3072).

    python bench/bench_cpu_fast_paths.py [--batch 8 --tokens 610]

- attention with a key-padding mask: ``F.scaled_dot_product_attention``
  (bool mask -> additive [B, 1, 1, Sk] mask broadcast over the scores) vs
  vlcore's mask folded into the QK^T matmul;
- dropout (p = 0.1) on the attention probabilities: ``F.dropout`` vs the
  PCG64 keep mask;
- a linear layer with a bias: ``F.linear`` vs the bias as a K=1 outer product.

Each line prints both times and the speed-up; outputs are checked equal
(dropout: same keep rate) before timing.
"""
import argparse

from common import header, timeit  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from vlcore.layers.attention import _cpu_attention  # noqa: E402
from vlcore.layers.dropout import dropout  # noqa: E402
from vlcore.layers.linear import add_bias  # noqa: E402


def fwd_bwd(fn, inputs, repeat):
    def run():
        out = fn()
        paddle.grad(out, inputs, grad_outputs=paddle.ones_like(out))
    return timeit(run, repeat=repeat)


def report(name, base, ours):
    print(f"{name:<44} {base:8.3f} s {ours:8.3f} s   x{base / ours:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=610)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    header()
    b, s, h, dh, d = args.batch, args.tokens, 12, 64, 768
    rng = np.random.default_rng(0)
    print(f"shapes: {b} x {s} tokens, {h} heads x {dh}; times are forward + backward")
    print(f"{'operation':<44} {'Paddle':>10} {'vlcore':>10}   speed-up")

    q, k, v = (paddle.to_tensor(rng.normal(size=(b, s, h, dh)).astype("float32"), stop_gradient=False)
               for _ in range(3))
    key_mask = np.ones([b, s], bool)
    key_mask[:, -7:] = False  # some padding, so that the mask is really applied
    km = paddle.to_tensor(key_mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=km.unsqueeze([1, 2]))
    np.testing.assert_allclose(_cpu_attention(q, k, v, km, None, 0.0).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    report("attention, key-padding mask",
           fwd_bwd(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=km.unsqueeze([1, 2])), [q, k, v],
                   args.repeat),
           fwd_bwd(lambda: _cpu_attention(q, k, v, km, None, 0.0), [q, k, v], args.repeat))

    probs = paddle.to_tensor(rng.random((b, h, s, s), dtype=np.float32), stop_gradient=False)
    kept = float((dropout(probs, 0.1) != 0).astype("float32").mean())
    assert abs(kept - 0.9) < 0.01, kept
    report(f"dropout p=0.1 on [{b}, {h}, {s}, {s}]",
           fwd_bwd(lambda: F.dropout(probs, 0.1), [probs], args.repeat),
           fwd_bwd(lambda: dropout(probs, 0.1), [probs], args.repeat))

    x = paddle.to_tensor(rng.normal(size=(b, s, d)).astype("float32"), stop_gradient=False)
    w = paddle.create_parameter([d, 4 * d], "float32")
    bias = paddle.create_parameter([4 * d], "float32", is_bias=True)
    np.testing.assert_allclose(add_bias(F.linear(x, w), bias).numpy(), F.linear(x, w, bias).numpy(), rtol=1e-5)
    report(f"linear {d} -> {4 * d} with bias",
           fwd_bwd(lambda: F.linear(x, w, bias), [x, w, bias], args.repeat),
           fwd_bwd(lambda: add_bias(F.linear(x, w), bias), [x, w, bias], args.repeat))


if __name__ == "__main__":
    main()
