"""Shared helpers of the benchmarks: the machine's matmul ceiling, a FLOP
counter, interleaved timing and the ratio of two interleaved series with its
spread, so every figure is a ratio measured in the same run and a figure the
run cannot vouch for is flagged rather than printed as a result."""
import json
import os
import resource
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vlcore.framework.env import apply_cpu_defaults, describe_cpu_defaults, reexec_with_malloc_tuning  # noqa: E402

reexec_with_malloc_tuning()
apply_cpu_defaults()

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402,F401

from vlcore.framework.flops import FlopCounter  # noqa: E402,F401  (the benchmarks' and tools/plan.py's counter)


def header():
    dev = paddle.device.get_device()
    print(f"paddle {paddle.__version__} on {dev}; {describe_cpu_defaults()}")


def sync():
    if paddle.device.get_device().startswith("gpu"):
        paddle.device.synchronize()


def timeit(fn, repeat=5, warmup=1):
    """Median seconds of ``fn()`` over ``repeat`` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_ceiling(n=2048, repeat=10):
    """Achieved fp32 FLOP/s of one large square matmul: the ceiling the
    model's step is compared with."""
    a, b = paddle.randn([n, n]), paddle.randn([n, n])
    sec = timeit(lambda: paddle.matmul(a, b), repeat=repeat, warmup=2)
    return 2 * n ** 3 / sec


def interleaved(fns, rounds=5, warmup=1):
    """``{name: [seconds per round]}``: every function once per round, in
    turn (A B A B ...), after ``warmup`` untimed rounds, so a change of load
    during the run hits every variant alike instead of one of them."""
    times = {name: [] for name in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


# A series is trusted when its rounds agree: the median absolute deviation of
# the per-round ratios within this fraction of their median, and no round
# further than 3 deviations (plus 2 % of the median) from it.
MAX_SPREAD = 0.05


def ratio_summary(num, den, max_spread=MAX_SPREAD, fmt="{:.2f}", unit="x"):
    """The per-round ratios ``num[i] / den[i]`` of two interleaved series:
    ``{"ratio": median, "spread": median absolute deviation, "rounds": [...],
    "rounds_outside_spread": [indices], "stable": bool, "shown": str}``;
    ``shown`` is :func:`show_ratio`'s line (``fmt``, ``unit``), the text the
    docs' tables print, "UNSTABLE ..." included."""
    r = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    med = float(np.median(r))
    spread = float(np.median(np.abs(r - med)))
    outside = [i for i, x in enumerate(r) if abs(x - med) > 3 * spread + 0.02 * abs(med)]
    x = {"ratio": round(med, 4), "spread": round(spread, 4), "rounds": [round(float(x), 4) for x in r],
         "rounds_outside_spread": outside, "stable": bool(spread <= max_spread * abs(med) and not outside)}
    x["shown"] = show_ratio(x, fmt, unit)
    return x


def show_ratio(x, fmt="{:.2f}", unit="x"):
    """``1.31x (+-0.02, 5 rounds)`` (or with ``fmt="{:.0%}", unit=""``,
    ``64% (+-1%, 5 rounds)``) or, when the rounds disagree, a line that says
    so instead of a figure."""
    n = len(x["rounds"])
    if x["stable"]:
        return f"{fmt.format(x['ratio'])}{unit} (+-{fmt.format(x['spread'])}, {n} rounds)"
    return (f"UNSTABLE: the {n} rounds disagree (median {fmt.format(x['ratio'])}{unit}, spread "
            f"{fmt.format(x['spread'])}, rounds outside {x['rounds_outside_spread']}): not a result; re-run on a "
            f"quieter machine")


def run_record(load_start):
    """Where a figure was measured: the 1-minute load average at the start
    and the end, and this process's peak RSS."""
    return {"load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def show_record(rec):
    """The printed line of :func:`run_record`."""
    return (f"load average {rec['load_avg'][0]} at the start, {rec['load_avg'][1]} at the end; "
            f"peak RSS {rec['peak_rss_mb']} MB")


def write_json(path, obj, quiet=False):
    """Write the benchmark's figures atomically (the docs' tables are read
    from them by tools/results.py)."""
    from vlcore.formats.sharded import atomic_open
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    if not quiet:
        print(f"wrote {path}")


def step_figures(step, flops, batch, rounds=5, warmup=1, n=2048):
    """A training step timed in rounds interleaved with the matmul ceiling
    (three n^3 fp32 matmuls per round), so the ratio "of ceiling" is taken
    from measurements made under the same load. ``flops``: the step's
    (forward x 3)."""
    a, b = paddle.randn([n, n]), paddle.randn([n, n])

    def ceiling():
        for _ in range(3):
            paddle.matmul(a, b)
    times = interleaved({"step": step, "ceiling": ceiling}, rounds, warmup)
    mm_flops = 3 * 2 * n ** 3
    sec = float(np.median(times["step"]))
    return {"s_per_step": round(sec, 4), "samples_per_s": round(batch / sec, 2),
            "gflop_per_step": round(flops / 1e9, 2), "gflops": round(flops / sec / 1e9, 2),
            "ceiling_gflops": round(mm_flops / float(np.median(times["ceiling"])) / 1e9, 1),
            # per round: (flops / step time) / (ceiling flops / ceiling time)
            "of_ceiling": ratio_summary([flops * c for c in times["ceiling"]], [mm_flops * s for s in times["step"]],
                                        fmt="{:.0%}", unit="")}


def train_step_figures(model, opt, b, batch, rounds=5):
    """A training step (forward, backward, AdamW) on batch ``b``: its forward
    FLOPs counted once, then timed against the ceiling (step_figures)."""
    from vlcore.framework.plan import forward_flops

    def step():
        model(b)["loss"].backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)
    flops = forward_flops(model, b)
    model.train()
    x = step_figures(step, 3 * flops, batch, rounds=rounds)
    x["parameters"] = sum(int(p.size) for p in model.parameters())
    return x


def in_children(script, argv, kinds):
    """Run ``script argv --kinds K --child-json F`` once per kind, each in its
    own process so that its peak RSS is that kind's alone; a child killed
    for memory (signal 9) is reported as not fitting, not as a crash."""
    import subprocess
    import sys
    import tempfile
    out = {}
    for kind in kinds:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        try:
            r = subprocess.run([sys.executable, script, *argv, "--kinds", kind, "--child-json", path])
            if r.returncode == 0:
                with open(path, encoding="utf-8") as f:
                    out[kind] = json.load(f)
            elif r.returncode in (-9, 137):
                out[kind] = {"error": "killed by signal 9 (out of memory): does not fit this machine"}
            else:
                out[kind] = {"error": f"exit {r.returncode}"}
        finally:
            os.unlink(path)
    return out


def step_row(kind, x):
    """One printed row of a step benchmark."""
    if "error" in x:
        return f"{kind:<10} {x['error']}"
    return (f"{kind:<10} {x['s_per_step']:8.3f} {x['samples_per_s']:10.2f} {x['gflop_per_step']:11.1f} "
            f"{x['gflops']:8.1f} {x['ceiling_gflops']:8.1f} {x['peak_rss_mb'] / 1024:8.2f}  "
            f"{show_ratio(x['of_ceiling'], '{:.0%}', '')}")


STEP_HEADER = (f"{'input kind':<10} {'s/step':>8} {'samples/s':>10} {'GFLOP/step':>11} {'GFLOP/s':>8} "
               f"{'ceiling':>8} {'peak GB':>8}  of ceiling (median of interleaved rounds)")
