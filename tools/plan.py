#!/usr/bin/env python
"""What one pre-training step of a config costs, and the batch that fits:

    python tools/plan.py -c configs/unimo2_base.yaml [-o KEY=VALUE ...] [--batch 8] [--memory-gb 24]
        [--kinds pairs,text,images] [--measure none|plain|both] [--json OUT.json]
        [--gpus a100-80gb,h100-80gb [--sharding none|os|os_g] [--dp 8] [--mfu 0.4]]
        [--compare BENCH.json ...]

Prints the parameters (per sub-layer), the FLOPs per sample and step of each
input kind (the objectives it trains), the activation memory per sample with
and without recomputation (and how much of it is attention maps, which a
fused GPU attention kernel does not keep), the weights, gradients and AdamW
moments, the peak memory of a CPU fp32 step at ``--batch``, and the largest
batch that fits ``--memory-gb``. The peak is the line through two measured
steps, at batch 1 and a larger one, each in a fresh process (``--measure``: without
recomputation by default, ``both`` adds it, ``none`` keeps to the model's
account, which reads low). How each figure is obtained:
``vlcore/framework/plan.py``. The step benchmarks (bench/bench_train_step.py,
bench/bench_unimo_step.py) measure the same peaks; ``--compare`` puts a
benchmark's measured peak (its ``--json``) beside this plan's at the same
batch, and docs/benchmarks.md shows the comparison for the base configs.

``--gpus``: the same model on 80 GB GPUs, on paper (bf16, fused attention,
the stated MFU; ``vlcore/framework/gpu_plan.py`` names every assumption):
the batch per GPU without and with recomputation, samples/s, GPU-hours per
million samples and for the paper's schedule; docs/gpu_plan.md.
"""
from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)

GB = 1024 ** 3


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--override", action="append", default=[], nargs="+", metavar="KEY=VALUE")
    p.add_argument("--batch", type=int, default=8, help="batch per step for the predicted peak")
    p.add_argument("--memory-gb", type=float, default=24.0, help="memory budget for the largest batch")
    p.add_argument("--kinds", default="", help="input kinds (default: all of the model family)")
    p.add_argument("--measure", choices=("none", "plain", "both"), default="plain",
                   help="measure the peak of steps at two batches (plain: without recompute; both: and with)")
    p.add_argument("--json", default="", help="write the plan here")
    p.add_argument("--gpus", default="", help="also plan these GPUs (a100-80gb, h100-80gb), on paper")
    p.add_argument("--sharding", default="none", choices=("none", "os", "os_g"),
                   help="with --gpus: group_sharded_parallel level (os: stage 1, os_g: stage 2)")
    p.add_argument("--dp", type=int, default=8, help="with --gpus: data-parallel GPUs the state is sharded over")
    p.add_argument("--mfu", type=float, default=0.4, help="with --gpus: model FLOPs utilisation assumed")
    p.add_argument("--compare", action="append", default=[], metavar="BENCH_JSON",
                   help="a step benchmark's --json output: its measured peaks beside this plan's")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # account KIND RECOMPUTE | step KIND BATCH RECOMPUTE
    args = p.parse_args()
    args.override = [item for group in args.override for item in group]
    return args


def _builders(cfg):
    """``(build(recompute), synthetic(kind, batch), family module)`` of a
    pre-training config; vocab_size 0 is resolved from the tokenizer."""
    import copy

    from vlcore.framework.registry import ARCH
    synthetic = ARCH.hook(cfg.Arch.name, "synthetic")
    if synthetic is None:
        raise ValueError(f"Arch {cfg.Arch.name}: tools/plan.py plans pre-training models (UNIMO2, UNIMO)")
    family = "unimo2" if hasattr(cfg.Arch, "vit") else "unimo"
    mod = __import__(f"{family}.synthetic", fromlist=["KINDS"])

    def build(recompute):
        import paddle
        c = copy.deepcopy(cfg)
        c.Arch.recompute = recompute
        paddle.seed(cfg.Global.seed)
        return ARCH.build(c.Arch, loss=c.Loss)
    resolve = ARCH.hook(cfg.Arch.name, "resolve")
    if resolve is not None and cfg.Global.tokenizer_dir and os.path.isdir(cfg.Global.tokenizer_dir):
        # e.g. vocab_size 0: the tokenizer's size
        from vlcore.text.tokenizer import load_tokenizer
        resolve(cfg.Arch, load_tokenizer(cfg.Global.tokenizer_dir))
    return build, (lambda kind, b: synthetic(cfg, kind, b)), mod


def child(cfg, what, kind, *rest):
    """One measurement in this (fresh) process, printed as a JSON line."""
    from vlcore.framework.plan import account, measure_step_peak
    build, synthetic, mod = _builders(cfg)
    if what == "account":
        print(json.dumps(account(build, synthetic, kind, _heads(cfg, mod), rest[0] == "1")))
    else:
        from vlcore.framework.optim import build_optimizer
        peak = measure_step_peak(cfg, lambda m: build_optimizer(cfg.Optimizer, cfg.LRScheduler, m, 1000)[0], build,
                                 synthetic, kind, int(rest[0]), rest[1] == "1")
        print(json.dumps({"peak_bytes": peak}))


def _heads(cfg, mod):
    return cfg.Arch.fusion.num_heads if mod.__name__.startswith("unimo2") else cfg.Arch.num_heads


def run_child(args, *what):
    """Run ``tools/plan.py -c ... --child WHAT...`` in a fresh process and
    return its JSON line; a failure is one line naming what was measured."""
    import subprocess
    argv = [sys.executable, os.path.abspath(__file__), "-c", args.config, "--child", *map(str, what)]
    for o in args.override:
        argv += ["-o", o]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        why = "killed for memory: it does not fit this machine" if r.returncode in (-9, 137) else tail
        raise ValueError(f"measuring {' '.join(map(str, what))}: exit {r.returncode}: {why}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(args, plan, recompute):
    """``{kind: [fixed, per sample, batches, peaks]}`` of step peaks measured
    at two batches (1 and one whose activations differ by at least 256 MB by
    the model's account, at most 64), each in a fresh process."""
    out = {}
    for kind, k in plan.kinds.items():
        per = k.act_per_sample_recompute if recompute else k.act_per_sample
        batches = (1, int(min(64, max(2, -(-256 * 1024 ** 2 // max(per, 1))))))
        peaks = [run_child(args, "step", kind, b, int(recompute))["peak_bytes"] for b in batches]
        slope = (peaks[1] - peaks[0]) / (batches[1] - batches[0])
        out[kind] = [peaks[0] - slope * batches[0], slope, list(batches), peaks]
    return out


def make(args, cfg, config_name, kinds=None):
    """The plan of ``cfg`` from the model: parameters here, each kind's
    account in fresh processes."""
    from vlcore.framework.plan import Plan, count_parameters, kind_plan
    build, _, mod = _builders(cfg)
    kinds = kinds or list(mod.KINDS)
    plan = None
    for kind in kinds:
        plain, recomputed = (run_child(args, "account", kind, r) for r in (0, 1))
        if plan is None:
            plan = Plan(config_name, count_parameters(lambda: build(False)), float(plain["runtime"]))
        plan.kinds[kind] = kind_plan(kind, mod.OBJECTIVES.get(kind, ""), mod.text_length(cfg, kind), plain,
                                     recomputed)
    return plan


def show(plan, batch, memory_gb):
    n = plan.n_params
    parts = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sorted(plan.parameters.items(), key=lambda kv: -kv[1]))
    print(f"{plan.config}: {n / 1e6:.1f}M parameters ({parts})")
    print(f"  fp32 weights {4 * n / GB:.2f} GB + gradients {4 * n / GB:.2f} GB + AdamW moments {8 * n / GB:.2f} GB; "
          f"the runtime before the model {plan.runtime_bytes / GB:.2f} GB")
    print(f"  {'kind':<7}{'tokens':>7}{'GFLOP/sample':>13}{'act GB/sample':>14}{'(maps)':>8}{'recompute':>10}"
          f"{f'peak @{batch}':>10}{'(model)':>9}{'recompute':>10}{f'max batch {memory_gb:g} GB':>18}  objectives")
    mem = memory_gb * GB
    for kind, k in plan.kinds.items():
        measured = "plain" in k.measured
        print(f"  {kind:<7}{k.text_len:>7}{k.step_gflop_per_sample:>13.1f}{k.act_per_sample / GB:>14.3f}"
              f"{k.act_attention_per_sample / GB:>8.3f}{k.act_per_sample_recompute / GB:>10.3f}"
              f"{plan.peak(kind, batch) / GB:>9.2f}{'' if measured else '*'}{plan.model_peak(kind, batch) / GB:>9.2f}"
              f"{plan.peak(kind, batch, True) / GB:>9.2f}{'' if 'recompute' in k.measured else '*'}"
              f"{plan.max_batch(kind, mem):>9d} / {plan.max_batch(kind, mem, True):<7d}  {k.objectives}")
    print("  GFLOP/sample: one training step (3x the forward); act: activations autograd keeps per sample "
          "((maps): attention maps among them; recompute: with Arch.recompute); peak: a CPU fp32 step, from steps "
          "measured at two batches (* the model's account only); (model): the model's account; max batch: "
          "without / with recompute")
    for kind in plan.kinds:
        u = plan.unaccounted_per_sample(kind)
        if u is not None:
            print(f"  {kind}: measured minus the model's account, per sample: {u / GB:+.3f} GB")


def compare(plan, cfg, paths):
    """``{kind: {"plain"|"recompute": {...}}}``: each step benchmark's
    measured peak RSS (``bench/bench_train_step.py`` / ``bench_unimo_step.py
    --json``) beside this plan's prediction at the benchmark's batch and
    recompute setting. The benchmark must have run this config at this
    plan's shapes (text length; UNIMO's regions and CMCL texts): a mismatch
    is an error naming the file and key, since the two would measure
    different steps."""
    name = os.path.splitext(os.path.basename(plan.config))[0]
    data = cfg.DataLoader.Train
    out = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            runs = json.load(f).get("results", {})
        if name not in runs:
            raise ValueError(f"{path}: no results for {name} (it has {', '.join(sorted(runs)) or 'none'})")
        for kind, x in runs[name].items():
            if kind not in plan.kinds or "peak_rss_mb" not in x:
                continue  # another kind, or one that did not fit (no peak)
            shapes = {"text_len": None if kind == "images" else plan.kinds[kind].text_len}
            if "regions" in x:  # UNIMO
                shapes["regions"] = None if kind == "text" else data.max_regions
                shapes["cmcl_texts"] = (1 + cfg.Loss.cmcl.num_positives + cfg.Loss.cmcl.num_negatives
                                        if kind == "pairs" else None)
            for key, want in shapes.items():
                if want is not None and x.get(key) != want:
                    raise ValueError(f"{path}: results.{name}.{kind}.{key} is {x.get(key)}, this plan's is {want}; "
                                     f"plan the benchmark's shapes with -o")
            recompute = bool(x.get("recompute"))
            mode = "recompute" if recompute else "plain"
            planned = plan.peak(kind, x["batch"], recompute) / GB
            measured = x["peak_rss_mb"] / 1024
            out.setdefault(kind, {})[mode] = {
                "batch": x["batch"], "measured_gb": round(measured, 3), "planned_gb": round(planned, 3),
                "error": round(planned / measured - 1, 4),
                "from": "measured steps" if plan.kinds[kind].measured.get(mode) else "the model's account",
                "bench": path}
            print(f"  {kind:<7} {mode:<9} batch {x['batch']:>3}: planned {planned:6.2f} GB, measured "
                  f"{measured:6.2f} GB ({planned / measured - 1:+.1%}; {path})")
    return out


def show_gpus(plan, per_gpu, sched):
    from vlcore.framework.gpu_plan import GPUS
    for g, kinds in per_gpu.items():
        first = next(iter(kinds.values()))
        print(f"  on {GPUS[g].name} ({GPUS[g].memory_gb:g} GB, {GPUS[g].bf16_tflops:g} bf16 TFLOPS), training "
              f"state {first['state_gb']:.1f} GB:")
        for kind, k in kinds.items():
            p, r = k["plain"], k["recompute"]
            print(f"    {kind:<7} batch/GPU {p['batch']:>5} / {r['batch']:<5} (recompute)  samples/s "
                  f"{p['samples_per_s']:>8.1f} / {r['samples_per_s']:<8.1f} GPU-h per 1M samples "
                  f"{p['gpu_hours_per_million']:.2f} / {r['gpu_hours_per_million']:.2f}")
        if sched:
            h = sched["gpu_hours"][g]
            print(f"    {sched['what']}: {h['plain']} GPU-hours ({h['recompute']} with recompute)")


def main():
    args = _args()

    def go():
        cfg = _cli.load(args)
        if args.child:
            return child(cfg, *args.child)
        plan = make(args, cfg, os.path.relpath(os.path.abspath(args.config)),
                    [k for k in args.kinds.split(",") if k] or None)
        for recompute in {"none": (), "plain": (False,), "both": (False, True)}[args.measure]:
            for kind, line in measure(args, plan, recompute).items():
                plan.kinds[kind].measured["recompute" if recompute else "plain"] = line
        show(plan, args.batch, args.memory_gb)
        per_gpu, sched = {}, {}
        if args.gpus:
            from vlcore.framework import gpu_plan
            family = "unimo2" if hasattr(cfg.Arch, "vit") else "unimo"
            stacks = (cfg.Arch.vit, cfg.Arch.text, cfg.Arch.fusion) if family == "unimo2" else (cfg.Arch,)
            per_gpu = gpu_plan.gpu_plan(plan, [g for g in args.gpus.split(",") if g], args.sharding, args.dp,
                                        args.mfu, min(s.num_layers for s in stacks))
            sched = gpu_plan.schedule_hours(family, per_gpu)
            show_gpus(plan, per_gpu, sched)
        compared = compare(plan, cfg, args.compare) if args.compare else {}
        if args.json:
            from vlcore.formats.sharded import atomic_open
            d = plan.to_dict()
            d.update(batch=args.batch, memory_gb=args.memory_gb,
                     peak_gb={k: round(plan.peak(k, args.batch) / GB, 3) for k in plan.kinds},
                     model_peak_gb={k: round(plan.model_peak(k, args.batch) / GB, 3) for k in plan.kinds},
                     peak_gb_recompute={k: round(plan.peak(k, args.batch, True) / GB, 3) for k in plan.kinds},
                     max_batch={k: plan.max_batch(k, args.memory_gb * GB) for k in plan.kinds},
                     max_batch_recompute={k: plan.max_batch(k, args.memory_gb * GB, True) for k in plan.kinds},
                     command=" ".join(["python tools/plan.py"] + sys.argv[1:]))
            if per_gpu:
                from vlcore.framework.gpu_plan import assumptions
                d.update(gpu=per_gpu, schedule=sched, gpu_assumptions=assumptions(args.sharding, args.dp, args.mfu))
            if compared:
                d["compare"] = compared
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with atomic_open(args.json) as f:
                json.dump(d, f, indent=1)
            print(f"wrote {args.json}")
    _cli.run(go)


if __name__ == "__main__":
    main()
