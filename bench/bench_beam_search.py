"""Beam-search captioning throughput with key/value caches vs re-encoding
everything at every step (UNIMO, region features), same hypotheses.

    python bench/bench_beam_search.py [--layers 12 --hidden 768] [--batch-size 4] [--beam 5] \
        [--regions 36] [--max-len 20]

Default: UNIMO-base shape (12 x 768) at 36 regions, beam 5, 20 tokens, a
random model (min_len = max_len, so every hypothesis has the full length and
both runs do the same number of steps). Prints generated tokens/s of both
and their ratio.
"""
import argparse
import time

from common import header  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from unimo.config import UNIMOArchConfig  # noqa: E402
from unimo.generation import generate, generate_uncached  # noqa: E402
from unimo.seq2seq import UNIMOForSeq2Seq  # noqa: E402
from vlcore.text.generation import GenerationConfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50265)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--regions", type=int, default=36)
    ap.add_argument("--max-len", type=int, default=20)
    args = ap.parse_args()
    header()
    paddle.seed(0)
    arch = UNIMOArchConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                           vocab_size=args.vocab, dropout=0.0, attn_dropout=0.0)
    model = UNIMOForSeq2Seq(arch)
    model.eval()
    rng = np.random.default_rng(0)
    b, r = args.batch_size, args.regions
    regions = (paddle.to_tensor(rng.normal(size=(b, r, arch.feature_dim)).astype("float32")),
               paddle.to_tensor(rng.random(size=(b, r, 5)).astype("float32")),
               paddle.to_tensor(np.ones((b, r), bool)))
    cfg = GenerationConfig(beam_size=args.beam, max_len=args.max_len, min_len=args.max_len - 1, length_penalty=0.6)
    print(f"UNIMO {args.layers} x {args.hidden}, {r} regions, batch {b}, beam {args.beam}, {args.max_len} tokens")
    results = {}
    with paddle.no_grad():
        generate(model.model, model.mlm_head, regions, None, GenerationConfig(beam_size=1, max_len=2), 0, 2)  # warm-up
        for name, fn in (("cached", generate), ("recompute", generate_uncached)):
            t0 = time.perf_counter()
            hyps = fn(model.model, model.mlm_head, regions, None, cfg, 0, 2)
            dt = time.perf_counter() - t0
            # every live beam produces a token per step
            tokens = b * args.beam * args.max_len
            results[name] = (tokens / dt, [h[0].tokens for h in hyps])
            print(f"{name:>9}: {dt:7.2f} s, {tokens / dt:8.1f} beam tokens/s")
    same = results["cached"][1] == results["recompute"][1]
    print(f"speed-up with caches: {results['cached'][0] / results['recompute'][0]:.2f}x; same outputs: {same}")


if __name__ == "__main__":
    main()
