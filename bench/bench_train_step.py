"""Training-step throughput of UNIMO-2, as a fraction of this machine's
matmul ceiling measured in the same run.

    python bench/bench_train_step.py                       # demo and base configs
    python bench/bench_train_step.py --config configs/unimo2_base.yaml --batch-size 8

For each input kind (image-text pairs, text, images) a synthetic batch of the
config's shapes goes through forward + backward + AdamW; data loading is not
timed (it runs in worker processes during training). FLOPs are counted from
the matmuls/linears/convs actually executed in the forward pass, times 3 for
forward + backward.
"""
import argparse
import os

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from common import ROOT, FlopCounter, header, matmul_ceiling, timeit  # noqa: E402


def synthetic_batch(kind, arch, batch, text_len, seed=0):
    rng = np.random.default_rng(seed)
    s = arch.vit.image_size
    vocab = arch.text.vocab_size
    b = {"kind": "pairs" if kind == "pairs" else kind, "seed": seed}
    if kind in ("pairs", "text"):
        ids = rng.integers(5, vocab, size=(batch, text_len))
        ids[:, 0], ids[:, -1] = 0, 2
        mask = np.ones_like(ids, dtype=bool)
        pos = np.concatenate([r * text_len + 1 + rng.choice(text_len - 2, max(1, int(0.15 * text_len)), replace=False)
                              for r in range(batch)])
        b.update(ids=paddle.to_tensor(ids), mlm_ids=paddle.to_tensor(ids), mask=paddle.to_tensor(mask),
                 mlm_positions=paddle.to_tensor(pos), mlm_labels=paddle.to_tensor(ids.reshape(-1)[pos]))
    if kind in ("pairs", "images"):
        b["pixels"] = paddle.to_tensor(rng.normal(size=(batch, 3, s, s)).astype("float32"))
    if kind == "images":
        b["pixels2"] = paddle.to_tensor(rng.normal(size=(batch, 3, s, s)).astype("float32"))
    if kind == "pairs":
        b["groups"] = paddle.to_tensor(np.arange(batch))
    return b


def bench_config(path, batch, text_len, repeat, ceiling, kinds=("pairs", "text", "images"), overrides=()):
    import unimo2.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.optim import build_optimizer
    from vlcore.framework.registry import ARCH
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, path, list(overrides))
    if cfg.Arch.text.vocab_size == 0:
        cfg.Arch.text.vocab_size = 512
    paddle.seed(0)
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    opt, _ = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, 1000)
    model.train()
    nparams = sum(int(p.size) for p in model.parameters())
    print(f"\n{os.path.relpath(path, ROOT)}: {nparams / 1e6:.1f}M parameters, batch {batch}, "
          f"image {cfg.Arch.vit.image_size}px, captions {text_len} tokens, "
          f"text corpus {cfg.DataLoader.Train.max_text_len_corpus} tokens")
    print(f"{'input kind':<10} {'s/step':>8} {'samples/s':>10} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of ceiling':>10}")
    for kind in kinds:
        # Text-only steps read the text corpus at its own (longer) length.
        length = min(cfg.DataLoader.Train.max_text_len_corpus, cfg.Arch.text.max_positions - 2) \
            if kind == "text" else text_len
        b = synthetic_batch(kind, cfg.Arch, batch, length)

        def step():
            out = model(b)
            out["loss"].backward()
            opt.step()
            opt.clear_grad(set_to_zero=False)
        counter = FlopCounter()
        with counter.count():
            with paddle.no_grad():
                model(b)
        flops = 3 * counter.flops
        sec = timeit(step, repeat=repeat, warmup=1)
        print(f"{kind:<10} {sec:8.3f} {batch / sec:10.1f} {flops / 1e9:11.1f} {flops / sec / 1e9:8.1f} "
              f"{flops / sec / ceiling:10.0%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", help="config(s) to time (default: demo and base)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 32 for the demo, 8 otherwise")
    ap.add_argument("--text-len", type=int, default=None, help="caption length (default: 20 demo, 40 base)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default="pairs,text,images", help="input kinds to time")
    args = ap.parse_args()
    header()
    ceiling = matmul_ceiling()
    print(f"fp32 matmul ceiling (2048^3): {ceiling / 1e9:.1f} GFLOP/s")
    configs = args.config or [os.path.join(ROOT, "configs", "unimo2_demo.yaml"),
                              os.path.join(ROOT, "configs", "unimo2_base.yaml")]
    for path in configs:
        demo = "demo" in os.path.basename(path)
        bench_config(path, args.batch_size or (32 if demo else 8), args.text_len or (20 if demo else 40),
                     args.repeat, ceiling, args.kinds.split(","))


if __name__ == "__main__":
    main()
