"""One grounded-transformer layer: block attention vs. the masked full matrix.

    python bench/bench_grounded_attention.py [--batch 2] [--image 577] [--grounded 100] [--text 512]

The fine-tuning shape of UNIMO-2 (384 px: 577 image tokens, K=100 grounded
tokens, 512 text tokens; 768-d, 12 heads). Both variants run the same layer
weights, forward + backward; the masked variant is what the official code
does (compute every score, add -1e4 where Figure 2 forbids attention). The
outputs are checked to agree before timing.
"""
import argparse

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from unimo2.grounded_transformer import grounded_attention_plan  # noqa: E402
from vlcore.layers import AttentionPlan, MultiHeadAttention, TransformerLayer  # noqa: E402

from common import FlopCounter, header, matmul_ceiling, timeit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--image", type=int, default=577)
    ap.add_argument("--grounded", type=int, default=100)
    ap.add_argument("--text", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    header()
    ceiling = matmul_ceiling()
    m, k, n, b, d = args.image, args.grounded, args.text, args.batch, args.hidden
    paddle.seed(0)
    text_mask = np.ones([b, n], bool)
    text_mask[1:, n * 3 // 4:] = False  # some padding, as in a real batch
    text_mask = paddle.to_tensor(text_mask)
    plan = grounded_attention_plan(m, k, n, b, None, text_mask)
    masked = AttentionPlan.masked(plan.dense_mask())
    x0 = paddle.randn([b, m + k + n, d])
    print(f"shape: batch {b}, {m} image + {k} grounded + {n} text tokens, {d}-d, {args.heads} heads; "
          f"fp32 matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")
    rows = []
    for label, module in (("attention only", MultiHeadAttention(d, args.heads)),
                          ("whole post-LN layer", TransformerLayer(d, args.heads, dropout=0.0, attn_dropout=0.0))):
        module.train()
        outs = {}
        for name, p in (("grounded (3 blocks)", plan), ("masked full matrix", masked)):
            x = x0.clone()
            x.stop_gradient = False

            def step():
                y = module(x, p)
                y.sum().backward()
                return y
            outs[name] = step().numpy()
            counter = FlopCounter()
            with counter.count():
                with paddle.no_grad():
                    module(x, p)
            sec = timeit(step, repeat=args.repeat)
            rows.append((label, name, sec, 3 * counter.flops))
        diff = float(np.abs(outs["grounded (3 blocks)"] - outs["masked full matrix"]).max())
        assert diff < 1e-3, f"{label}: grounded and masked outputs differ by {diff}"
    print(f"\n{'module':<22}{'variant':<22}{'ms fwd+bwd':>11}{'GFLOP':>8}{'of ceiling':>11}{'speed-up':>10}")
    for i, (label, name, sec, flops) in enumerate(rows):
        base = rows[i - i % 2 + 1][2]
        print(f"{label:<22}{name:<22}{sec * 1e3:11.1f}{flops / 1e9:8.1f}{flops / sec / ceiling:11.0%}"
              f"{base / sec:9.2f}x")
    print("\nspeed-up = masked full matrix time / this variant's time (same weights, same outputs)")


if __name__ == "__main__":
    main()
