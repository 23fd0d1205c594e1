"""Training-step throughput and peak memory of UNIMO-2, as a fraction of
this machine's matmul ceiling measured in the same run.

    python bench/bench_train_step.py                       # demo and base configs
    python bench/bench_train_step.py --config configs/unimo2_base.yaml --batch-size 8 [--recompute]
        [--rounds 5] [--profile] [--json OUT.json]

For each input kind (image-text pairs, text, images) a synthetic batch of the
config's shapes goes through forward + backward + AdamW; data loading is not
timed (it runs in worker processes during training). FLOPs are counted from
the matmuls/linears/convs actually executed in the forward pass, times 3 for
forward + backward.

Each input kind runs in its own process (its peak RSS is that kind's
alone), and its steps alternate with the ceiling matmuls round by round, so
"of ceiling" is the median of per-round ratios taken under the same load,
with its spread; rounds that disagree are reported as such (bench/common.py).
A kind killed for memory is reported as not fitting. ``--recompute`` turns
on activation recomputation (``Arch.recompute``). ``--profile`` then runs
two more steps under Paddle's profiler and splits their time into matrix
products, other operators and time outside operators: the bound on "of
ceiling" while the other operators cost what they do (bench/common.py).
"""
import argparse
import os
import sys

from common import ROOT, STEP_HEADER, header, in_children, run_record, step_row, train_step_figures, write_json  # noqa: E402

import paddle  # noqa: E402


def bench_kind(path, kind, batch, text_len, rounds, recompute=False, profile=False, max_rounds=None):
    """One input kind of one config: forward FLOPs counted, then steps
    interleaved with the ceiling (this process: run alone per kind)."""
    import unimo2.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.optim import build_optimizer
    from vlcore.framework.registry import ARCH
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, path, [f"Arch.recompute={str(recompute).lower()}"])
    if cfg.Arch.text.vocab_size == 0:
        cfg.Arch.text.vocab_size = 512
    paddle.seed(0)
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    opt, _ = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, 1000)
    model.train()
    from unimo2.synthetic import synthetic_batch, text_length
    # Text-only steps read the text corpus at its own (longer) length.
    length = text_length(cfg, kind) if kind == "text" else text_len
    x = train_step_figures(model, opt, synthetic_batch(cfg, kind, batch, text_len=length), batch, rounds, profile,
                           max_rounds)
    x.update(batch=batch, text_len=length, recompute=recompute, image_size=cfg.Arch.vit.image_size)
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", help="config(s) to time (default: demo and base)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 32 for the demo, 4 otherwise (fits 24 GB)")
    ap.add_argument("--text-len", type=int, default=None, help="caption length (default: 20 demo, 40 base)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds after the warm-up")
    ap.add_argument("--max-rounds", type=int, default=10,
                    help="more rounds, up to this many, while the ratio is not yet stable (a busy machine)")
    ap.add_argument("--recompute", action="store_true", help="Arch.recompute=true")
    ap.add_argument("--kinds", default="pairs,text,images", help="input kinds to time")
    ap.add_argument("--profile", action="store_true",
                    help="after the timing, profile two steps of each kind: where the time goes")
    ap.add_argument("--json", default="", help="write the figures here")
    ap.add_argument("--child-json", default="", help=argparse.SUPPRESS)  # one kind, in a child process
    args = ap.parse_args()
    configs = args.config or [os.path.join(ROOT, "configs", "unimo2_demo.yaml"),
                              os.path.join(ROOT, "configs", "unimo2_base.yaml")]
    # base: batch 4 fits a 24 GB machine (its text step peaks near 14 GB; batch 8 does not fit)
    sizes = {p: (args.batch_size or (32 if "demo" in os.path.basename(p) else 4),
                 args.text_len or (20 if "demo" in os.path.basename(p) else 40)) for p in configs}
    if args.child_json:
        (path,) = configs
        x = bench_kind(path, args.kinds, *sizes[path], args.rounds, args.recompute, args.profile, args.max_rounds)
        write_json(args.child_json, {**x, **run_record(os.getloadavg()[0])}, quiet=True)
        return
    load_start = os.getloadavg()[0]
    header()
    results = {}
    for path in configs:
        batch, text_len = sizes[path]
        argv = ["--config", path, "--batch-size", str(batch), "--text-len", str(text_len),
                "--rounds", str(args.rounds), "--max-rounds", str(args.max_rounds)]
        argv += ["--recompute"] if args.recompute else []
        argv += ["--profile"] if args.profile else []
        print(f"\n{os.path.relpath(path, ROOT)}: batch {batch}, captions {text_len} tokens"
              f"{', recompute' if args.recompute else ''}; each kind in its own process")
        print(STEP_HEADER)
        kinds = in_children(os.path.abspath(__file__), argv, args.kinds.split(","))
        for kind, x in kinds.items():
            print(step_row(kind, x), flush=True)
        results[os.path.splitext(os.path.basename(path))[0]] = kinds  # "unimo2_base": a dotted path's key
    rec = run_record(load_start)
    print(f"\nload average {rec['load_avg'][0]} at the start, {rec['load_avg'][1]} at the end "
          f"(peak GB: each kind's process, RSS)")
    if args.json:
        write_json(args.json, {"command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                               "rounds": args.rounds, "recompute": args.recompute, "results": results,
                               "load_avg": rec["load_avg"]})


if __name__ == "__main__":
    main()
