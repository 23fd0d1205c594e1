"""UNIMO-base training-step throughput at 100 regions + 128 text tokens, as a
fraction of this machine's matmul ceiling measured in the same run.

    python bench/bench_unimo_step.py [--batch-size 8] [--regions 100] [--text-len 128] [--negatives 8]
        [--rounds 5] [--recompute] [--profile] [--json OUT.json]

Synthetic batches of each input kind go through forward + backward + AdamW
(data loading runs in worker processes during training and is not timed).
Pairs carry the CMCL texts of ``configs/unimo_base.yaml`` (caption + 2
positives + ``--negatives`` rewrites per image, each encoded alone).
As in bench_train_step.py, each kind runs in its own process (its peak RSS)
with its steps interleaved with the ceiling matmuls (bench/common.py);
``--profile``: where the time goes, as there.
"""
import argparse
import os
import sys

from common import ROOT, STEP_HEADER, header, in_children, run_record, step_row, train_step_figures, write_json  # noqa: E402

import paddle  # noqa: E402


def bench_kind(args, kind):
    import unimo.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.optim import build_optimizer
    from vlcore.framework.registry import ARCH
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, args.config, [f"Arch.recompute={str(args.recompute).lower()}"])
    if cfg.Arch.vocab_size == 0:  # the demo's: the tokenizer's size
        cfg.Arch.vocab_size = 512
    paddle.seed(0)
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    opt, _ = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, 1000)
    model.train()
    from unimo.synthetic import synthetic_batch
    b = synthetic_batch(cfg, kind, args.batch_size, text_len=args.text_len, regions=args.regions,
                        negatives=args.negatives)
    x = train_step_figures(model, opt, b, args.batch_size, args.rounds, args.profile, args.max_rounds)
    x.update(batch=args.batch_size, regions=args.regions, text_len=args.text_len, recompute=args.recompute,
             cmcl_texts=1 + cfg.Loss.cmcl.num_positives + args.negatives)
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "unimo_base.yaml"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--regions", type=int, default=100)
    ap.add_argument("--text-len", type=int, default=128)
    ap.add_argument("--negatives", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds after the warm-up")
    ap.add_argument("--max-rounds", type=int, default=10,
                    help="more rounds, up to this many, while the ratio is not yet stable (a busy machine)")
    ap.add_argument("--recompute", action="store_true", help="Arch.recompute=true")
    ap.add_argument("--kinds", default="pairs,images,text")
    ap.add_argument("--profile", action="store_true",
                    help="after the timing, profile two steps of each kind: where the time goes")
    ap.add_argument("--json", default="", help="write the figures here")
    ap.add_argument("--child-json", default="", help=argparse.SUPPRESS)  # one kind, in a child process
    args = ap.parse_args()
    if args.child_json:
        write_json(args.child_json, {**bench_kind(args, args.kinds), **run_record(os.getloadavg()[0])}, quiet=True)
        return
    load_start = os.getloadavg()[0]
    header()
    argv = ["--config", args.config, "--batch-size", str(args.batch_size), "--regions", str(args.regions),
            "--text-len", str(args.text_len), "--negatives", str(args.negatives), "--rounds", str(args.rounds),
            "--max-rounds", str(args.max_rounds)]
    argv += ["--recompute"] if args.recompute else []
    argv += ["--profile"] if args.profile else []
    print(f"{os.path.relpath(args.config, ROOT)}: batch {args.batch_size}, {args.regions} regions, "
          f"{args.text_len} tokens, {args.negatives} CMCL negatives{', recompute' if args.recompute else ''}; "
          f"each kind in its own process")
    print(STEP_HEADER)
    kinds = in_children(os.path.abspath(__file__), argv, args.kinds.split(","))
    for kind, x in kinds.items():
        print(step_row(kind, x), flush=True)
    rec = run_record(load_start)
    print(f"\nload average {rec['load_avg'][0]} at the start, {rec['load_avg'][1]} at the end")
    if args.json:
        name = os.path.splitext(os.path.basename(args.config))[0]  # "unimo_base": a dotted path's key
        write_json(args.json, {"command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                               "rounds": args.rounds, "results": {name: kinds},
                               "load_avg": rec["load_avg"]})


if __name__ == "__main__":
    main()
