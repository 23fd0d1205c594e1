"""One grounded-transformer layer: block attention vs. the masked full matrix.

    python bench/bench_grounded_attention.py [--batch 2] [--image 577] [--grounded 100] [--text 512]
        [--rounds 7] [--pieces 1] [--json OUT.json]

The fine-tuning shape of UNIMO-2 (384 px: 577 image tokens, K=100 grounded
tokens, 512 text tokens; 768-d, 12 heads). Both variants run the same layer
weights, forward + backward of a random upstream gradient; the masked
variant is what the official code does (compute every score, add -1e4 where
Figure 2 forbids attention). The outputs are checked to agree before timing.

The two variants are timed in interleaved rounds (grounded, masked, then
masked, grounded, ... after a warm-up round; with ``--pieces P`` a round is P
steps of each, taking turns step by step, so a round is longer and a loaded
machine's jitter averages out within it), and the matmul ceiling takes its
turn beside them, for about a step's time, so that "of ceiling" divides by
the machine the steps ran on; the speed-up is the median of
the per-round ratios with its spread, and a run whose rounds disagree says
so instead of printing a speed-up (bench/common.py). The load average and
the peak RSS are printed and written with the figures (``--json``).
"""
import argparse
import os
import time

from common import (  # noqa: E402
    Ceiling,
    FlopCounter,
    header,
    interleaved,
    ratio_summary,
    run_record,
    show_ratio,
    show_record,
    write_json,
)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from unimo2.grounded_transformer import grounded_attention_plan  # noqa: E402
from vlcore.layers import AttentionPlan, MultiHeadAttention, TransformerLayer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--image", type=int, default=577)
    ap.add_argument("--grounded", type=int, default=100)
    ap.add_argument("--text", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds after the warm-up")
    ap.add_argument("--max-rounds", type=int, default=25,
                    help="more rounds, up to this many, while the speed-up is not yet stable (a busy machine)")
    ap.add_argument("--pieces", type=int, default=1,
                    help="steps of each variant per round, taking turns step by step (times are per step)")
    ap.add_argument("--json", default="", help="write the figures here")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    header()
    m, k, n, b, d = args.image, args.grounded, args.text, args.batch, args.hidden
    paddle.seed(0)
    text_mask = np.ones([b, n], bool)
    text_mask[1:, n * 3 // 4:] = False  # some padding, as in a real batch
    text_mask = paddle.to_tensor(text_mask)
    plan = grounded_attention_plan(m, k, n, b, None, text_mask)
    masked = AttentionPlan.masked(plan.dense_mask())
    x0 = paddle.randn([b, m + k + n, d])
    # The gradient arriving from the layers above. Not y.sum(): the sum of a
    # LayerNorm's output does not depend on its input, so the post-LN
    # layer's gradient would be rounding noise that decays into denormal
    # floats, on which MKL's matmul backward runs several times slower
    # (profiled: 2.7 s of matmul_grad for the grounded layer, 12.5 s for
    # the masked one, against 0.4 s of forward matmuls).
    upstream = paddle.randn([b, m + k + n, d])
    print(f"shape: batch {b}, {m} image + {k} grounded + {n} text tokens, {d}-d, {args.heads} heads")
    results = {}
    for label, module in (("attention only", MultiHeadAttention(d, args.heads)),
                          ("whole post-LN layer", TransformerLayer(d, args.heads, dropout=0.0, attn_dropout=0.0))):
        module.train()
        steps, outs, flops = {}, {}, {}
        for name, p in (("grounded", plan), ("masked", masked)):
            x = x0.clone()
            x.stop_gradient = False

            def step(x=x, p=p):
                y = module(x, p)
                (y * upstream).sum().backward()
                return y
            steps[name] = step
            t0 = time.perf_counter()
            outs[name] = step().numpy()
            first_s = time.perf_counter() - t0
            counter = FlopCounter()
            with counter.count():
                with paddle.no_grad():
                    module(x, p)
            flops[name] = 3 * counter.flops
        diff = float(np.abs(outs["grounded"] - outs["masked"]).max())
        assert diff < 1e-3, f"{label}: grounded and masked outputs differ by {diff}"
        # The ceiling takes its turn in every piece too, for about a step's time.
        ceiling = Ceiling(first_s)
        steps["ceiling"] = ceiling
        times = interleaved({n: (lambda piece, f=f: f()) for n, f in steps.items()}, rounds=args.rounds,
                            chunks=range(args.pieces), max_rounds=args.max_rounds,
                            settled=lambda t: Ceiling.settled(ceiling.vet(ratio_summary(t["masked"],
                                                                                        t["grounded"]))))
        times = {n: [t / args.pieces for t in ts] for n, ts in times.items()}  # per step
        speedup = ceiling.vet(ratio_summary(times["masked"], times["grounded"]))
        variants = ("grounded", "masked")
        results[label] = {"speedup": speedup, "max_abs_diff": diff,
                          **{f"{n}_ms": round(1e3 * float(np.median(times[n])), 2) for n in variants},
                          **{f"{n}_flops": int(f) for n, f in flops.items()},
                          "ceiling_gflops": round(float(np.median(ceiling.gflops(times["ceiling"]))), 1),
                          **{f"{n}_of_ceiling": ceiling.of(flops[n], times[n], times["ceiling"])["ratio"]
                             for n in variants}}
        r = results[label]
        print(f"{label:<22} grounded {r['grounded_ms']:8.1f} ms ({r['grounded_of_ceiling']:.0%} of ceiling), "
              f"masked {r['masked_ms']:8.1f} ms ({r['masked_of_ceiling']:.0%}); ceiling {r['ceiling_gflops']:.1f} "
              f"GFLOP/s (median of its rounds, interleaved); speed-up {show_ratio(speedup)}")
    rec = run_record(load_start)
    print(f"speed-up = masked full matrix time / grounded time per round (same weights, same outputs); "
          f"{show_record(rec)}")
    if args.json:
        write_json(args.json, {"shape": {"batch": b, "image": m, "grounded": k, "text": n, "hidden": d,
                                         "heads": args.heads},
                               "rounds": args.rounds, "pieces": args.pieces,
                               "results": results, **rec})


if __name__ == "__main__":
    main()
