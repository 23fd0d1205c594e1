"""UNIMO-base training-step throughput at 100 regions + 128 text tokens, as a
fraction of this machine's matmul ceiling measured in the same run.

    python bench/bench_unimo_step.py [--batch-size 8] [--regions 100] [--text-len 128] [--negatives 8]

Synthetic batches of each input kind go through forward + backward + AdamW
(data loading runs in worker processes during training and is not timed).
Pairs carry the CMCL texts of ``configs/unimo_base.yaml`` (caption + 2
positives + ``--negatives`` rewrites per image, each encoded alone).
"""
import argparse
import os

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from common import ROOT, FlopCounter, header, matmul_ceiling, timeit  # noqa: E402


def synthetic_batch(kind, arch, loss, b, r, n, negatives, seed=0):
    rng = np.random.default_rng(seed)
    t = lambda x: paddle.to_tensor(x)  # noqa: E731
    batch = {"kind": kind, "seed": seed, "lang_task": "mlm"}
    if kind in ("pairs", "images"):
        feats = rng.normal(size=(b, r, arch.feature_dim)).astype("float32")
        masked_at = rng.random((b, r)) < 0.15
        rows, cols = np.nonzero(masked_at)
        dist = rng.random((len(rows), arch.num_classes)).astype("float32")
        batch.update(features=t(feats), masked_features=t(np.where(masked_at[..., None], 0, feats)),
                     locations=t(rng.random((b, r, arch.location_dim)).astype("float32")),
                     region_mask=t(np.ones((b, r), bool)), region_positions=t(rows * r + cols),
                     mrfr_targets=t(feats[rows, cols]), mrc_dist=t(dist / dist.sum(1, keepdims=True)),
                     mrc_ids=t(dist.argmax(1)), groups=t(np.arange(b)))
    if kind in ("pairs", "text"):
        ids = rng.integers(5, arch.vocab_size, size=(b, n))
        ids[:, 0], ids[:, -1] = 0, 2
        pos = np.concatenate([i * n + 1 + rng.choice(n - 2, int(0.15 * n), replace=False) for i in range(b)])
        batch.update(ids=t(ids), mlm_ids=t(ids), mask=t(np.ones((b, n), bool)), mlm_positions=t(pos),
                     mlm_labels=t(ids.reshape(-1)[pos]))
    if kind == "pairs":
        k = 1 + loss.cmcl.num_positives + negatives
        cm = rng.integers(5, arch.vocab_size, size=(b * k, 24))
        cm[:, 0] = 0
        is_pos = np.zeros((b, k), bool)
        is_pos[:, :1 + loss.cmcl.num_positives] = True
        batch.update(cmcl_ids=t(cm), cmcl_mask=t(np.ones(cm.shape, bool)), cmcl_is_pos=t(is_pos),
                     cmcl_valid=t(np.ones((b, k), bool)))
    return batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "unimo_base.yaml"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--regions", type=int, default=100)
    ap.add_argument("--text-len", type=int, default=128)
    ap.add_argument("--negatives", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--kinds", default="pairs,images,text")
    args = ap.parse_args()
    header()
    ceiling = matmul_ceiling()
    print(f"fp32 matmul ceiling (2048^3): {ceiling / 1e9:.1f} GFLOP/s")
    import unimo.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.optim import build_optimizer
    from vlcore.framework.registry import ARCH
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, args.config, [])
    paddle.seed(0)
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    opt, _ = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, 1000)
    model.train()
    print(f"{os.path.relpath(args.config, ROOT)}: {sum(int(p.size) for p in model.parameters()) / 1e6:.1f}M "
          f"parameters, batch {args.batch_size}, {args.regions} regions, {args.text_len} tokens, "
          f"CMCL {1 + cfg.Loss.cmcl.num_positives + args.negatives} texts per image")
    print(f"{'input kind':<10} {'s/step':>8} {'samples/s':>10} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of ceiling':>10}")
    for kind in args.kinds.split(","):
        b = synthetic_batch(kind, cfg.Arch, cfg.Loss, args.batch_size, args.regions, args.text_len, args.negatives)

        def step():
            model(b)["loss"].backward()
            opt.step()
            opt.clear_grad(set_to_zero=False)
        counter = FlopCounter()
        with counter.count():
            with paddle.no_grad():
                model(b)
        flops = 3 * counter.flops
        sec = timeit(step, repeat=args.repeat, warmup=1)
        print(f"{kind:<10} {sec:8.3f} {args.batch_size / sec:10.2f} {flops / 1e9:11.1f} {flops / sec / 1e9:8.1f} "
              f"{flops / sec / ceiling:10.0%}")


if __name__ == "__main__":
    main()
