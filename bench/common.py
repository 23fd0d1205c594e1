"""Shared helpers of the benchmarks: the machine's matmul ceiling, a FLOP
counter, interleaved timing and the ratio of two interleaved series with its
spread, so every figure is a ratio measured in the same run and a figure the
run cannot vouch for is flagged rather than printed as a result."""
import gc
import json
import math
import os
import re
import resource
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vlcore.framework.env import apply_cpu_defaults, cpu_settings, describe_cpu_defaults, reexec_with_malloc_tuning  # noqa: E402

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


def interleaved(fns, rounds=5, warmup=1, before=None, chunks=None, max_rounds=None, settled=None, cpu=None):
    """``{name: [seconds per round]}``: every function once per round, in
    turn, after ``warmup`` untimed rounds, so a change of load
    during the run hits every variant alike instead of one of them.
    ``before(name)``, when given, runs untimed for every variant at the
    start of each round (a fresh object per round). ``chunks``: the work split into
    pieces, each function called as ``fn(chunk)`` and the variants taking
    turns piece by piece, a round's time being the
    sum over its pieces: on these virtual machines the speed drifts over
    seconds, and variants timed a second apart see different machines. As
    in ``timeit``, the garbage collector runs before each timed call and is
    paused during it: otherwise a variant pays, at a moment that varies
    from round to round, for the objects another one left behind.
    ``settled(times)``: after ``rounds`` rounds, more are run (up to
    ``max_rounds``) until it holds (:func:`more_rounds`).

    The order is counterbalanced: forward on one turn, reversed on the next
    (A B C, C B A, A B C, ...). In a fixed order a variant always follows
    the same other one and inherits what that one leaves running: beside
    other jobs, a parallel variant's worker threads still spinning took
    the core from the one-thread variant after it (bench_tokenizer.py,
    beside two training jobs: its one-thread ratio read 1.27 in a fixed
    order, 1.38 counterbalanced, 1.43 quiet).

    ``cpu``: a dict, filled like the result with the calling thread's CPU
    seconds (``time.thread_time``) beside the wall seconds. For a variant
    that runs on this one thread, that is the cost of the code alone:
    beside other jobs a time-sliced core stretches wall time by a share
    that changes from one piece to the next, and CPU time not
    (bench_tokenizer.py beside the jobs: the ratio's interval 5x narrower
    in CPU time than in wall time)."""
    times = {name: [] for name in fns}
    cpu_times = {} if cpu is None else cpu
    cpu_times.update({name: [] for name in fns})
    pieces = [None] if chunks is None else list(chunks)
    turn = 0
    for r in more_rounds(rounds, max_rounds, None if settled is None else (lambda: settled(times)), warmup):
        spent, spent_cpu = dict.fromkeys(fns, 0.0), dict.fromkeys(fns, 0.0)
        if before is not None:
            for name in fns:
                before(name)
        for piece in pieces:
            for name in turn_order(fns, turn):
                gc.collect()
                gc.disable()
                try:
                    sync()
                    t0, c0 = time.perf_counter(), time.thread_time()
                    fns[name]() if chunks is None else fns[name](piece)
                    sync()
                    spent[name] += time.perf_counter() - t0
                    spent_cpu[name] += time.thread_time() - c0
                finally:
                    gc.enable()
            turn += 1
        if r >= warmup:
            for name in fns:
                times[name].append(spent[name])
                cpu_times[name].append(spent_cpu[name])
    return times


def turn_order(names, turn):
    """The variants' order on turn ``turn``: forward on even turns,
    reversed on odd ones (see :func:`interleaved`)."""
    names = list(names)
    return names if turn % 2 == 0 else names[::-1]


def more_rounds(rounds, max_rounds=None, settled=None, warmup=0):
    """Round indices ``0, 1, ...``: ``warmup + rounds`` of them, then one
    more at a time while ``settled()`` is false, up to ``warmup +
    max_rounds``. A busy machine makes the rounds disagree more; more of
    them pin the median down again (:func:`ratio_summary`), so a benchmark
    beside another job runs longer instead of giving up."""
    r = 0
    while r < warmup + rounds or (settled is not None and r < warmup + (max_rounds or rounds) and not settled()):
        yield r
        r += 1


# A figure is trusted when the median of its per-round ratios is known to
# within this fraction of itself: the half-width of its 95 % interval.
MAX_SPREAD = 0.05
# That half-width from the rounds' median absolute deviation (MAD): a median
# of n rounds has a standard error of sqrt(pi / 2) sigma / sqrt(n), and
# sigma = 1.4826 MAD for normal rounds. Both are robust: a round measured
# while a burst of other work ran moves neither much, where a mean and a
# standard deviation would follow it.
Z95_MAD = 1.96 * math.sqrt(math.pi / 2) * 1.4826


def ratio_summary(num, den, max_spread=MAX_SPREAD, fmt="{:.2f}", unit="x"):
    """The per-round ratios ``num[i] / den[i]`` of two interleaved series:
    ``{"ratio": median, "spread": half-width of its 95 % interval, "mad":
    median absolute deviation of the rounds, "rounds": [...], "stable":
    bool, "shown": str}``. Stable when the spread is within ``max_spread``
    of the ratio (and there are at least 3 rounds); ``shown`` is
    :func:`show_ratio`'s line (``fmt``, ``unit``), the text the docs'
    tables print, "UNSTABLE ..." included."""
    r = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    med = float(np.median(r))
    mad = float(np.median(np.abs(r - med)))
    spread = Z95_MAD * mad / math.sqrt(len(r))
    x = {"ratio": round(med, 4), "spread": round(spread, 4), "mad": round(mad, 4),
         "rounds": [round(float(x), 4) for x in r],
         "stable": bool(len(r) >= 3 and spread <= max_spread * abs(med))}
    x["shown"] = show_ratio(x, fmt, unit)
    return x


def show_ratio(x, fmt="{:.2f}", unit="x"):
    """``1.31x (+-0.02, 5 rounds)`` (or with ``fmt="{:.0%}", unit=""``,
    ``64% (+-1%, 5 rounds)``), the +- being the 95 % interval of the
    median, or, when that interval is too wide for the figure to mean
    anything, a line that says so instead of a figure."""
    n = len(x["rounds"])
    if x["stable"]:
        return f"{fmt.format(x['ratio'])}{unit} (+-{fmt.format(x['spread'])}, {n} rounds)"
    return (f"UNSTABLE: the {n} rounds disagree (median {fmt.format(x['ratio'])}{unit} +-"
            f"{fmt.format(x['spread'])}, more than {MAX_SPREAD:.0%} of it): not a result; re-run on a quieter "
            f"machine")


def run_record(load_start):
    """Where a figure was measured: the 1-minute load average at the start
    and the end, this process's peak RSS and its CPU settings."""
    return {"load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "cpu_settings": cpu_settings()}


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


# A process of T > 1 threads whose matrix products got fewer than this share
# of T cores shares them with other work. Its threads then wait for each
# other at every barrier of a product, for as long as the scheduler keeps one
# of them off its core: its times measure the scheduler, and ratios between
# them do not repeat (the grounded layer beside two training jobs on 2 cores,
# 2 threads: 1.32x and 1.24x in two runs, where its 2-thread ceiling fell to a
# third of a 1-thread ceiling beside the same jobs; docs/benchmarks.md).
# Quiet, both threads of a 2048^2 matmul run all the time; a single thread is
# time-sliced and loses the same share of every variant, which a ratio cancels.
MIN_CORE_SHARE = 0.8


def omp_threads():
    """The thread count of this process's matrix products (OMP_NUM_THREADS,
    which every entry point sets; 1 if unset)."""
    return int(os.environ.get("OMP_NUM_THREADS", "1") or 1)


class Ceiling:
    """The matmul ceiling as one variant of interleaved rounds (call it):
    an ``n``^3 fp32 matmul repeated for about ``seconds``, so that the
    figure a time is divided by is measured in the same rounds, under the
    same load, as that time. A ceiling taken once at the start read 10-20x
    low beside other jobs and turned "of ceiling" into 300-500 %.

    Every call also records the cores the process got: its CPU seconds (all
    threads) over the wall seconds of the call, from which :meth:`vet`
    tells whether the rounds' times mean anything (:data:`MIN_CORE_SHARE`)."""

    def __init__(self, seconds, n=2048):
        self.a, self.b = paddle.randn([n, n]), paddle.randn([n, n])
        t0 = time.perf_counter()
        for _ in range(3):
            paddle.matmul(self.a, self.b)
        per_matmul = (time.perf_counter() - t0) / 3
        self.repeat = max(3, int(np.ceil(seconds / per_matmul)))
        self.seconds = self.repeat * per_matmul  # the estimate, before any round
        self.flops = self.repeat * 2 * n ** 3
        self.cores = []

    def __call__(self):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(self.repeat):
            paddle.matmul(self.a, self.b)
        self.cores.append((time.process_time() - c0) / (time.perf_counter() - t0))

    def vet(self, x, threads=None):
        """``x`` (a :func:`ratio_summary`) with the threads and the cores they
        got (the median over the calls so far); when they got fewer than
        :data:`MIN_CORE_SHARE` of one core each, not stable and shown as
        OVERSUBSCRIBED instead of a figure: more rounds would not help."""
        threads = omp_threads() if threads is None else threads
        got = float(np.median(self.cores)) if self.cores else float(threads)
        x = dict(x, threads=threads, cores_obtained=round(got, 2))
        x["oversubscribed"] = bool(threads > 1 and got < MIN_CORE_SHARE * threads)
        if x["oversubscribed"]:
            x["stable"] = False
            x["shown"] = (f"OVERSUBSCRIBED: {threads} threads got {got:.2f} cores in the ceiling's rounds (other work "
                          f"on them); median {x['ratio']:.2f}, not a result: set OMP_NUM_THREADS to the free cores")
        return x

    @staticmethod
    def settled(x):
        """Whether interleaved rounds can stop at ``x`` (a :meth:`vet` result):
        stable, or oversubscribed, which more rounds do not cure."""
        return x["stable"] or x["oversubscribed"]

    def gflops(self, ceiling_times):
        """The ceiling of each round, GFLOP/s."""
        return np.array([self.flops / c / 1e9 for c in ceiling_times])

    def of(self, flops, times, ceiling_times):
        """Work of ``flops`` per call, timed ``times`` in the rounds whose
        ceiling took ``ceiling_times``: per round (flops / time) / (ceiling
        flops / ceiling time), summarised by :func:`ratio_summary`."""
        return self.vet(ratio_summary([flops * c for c in ceiling_times], [self.flops * t for t in times],
                                      fmt="{:.0%}", unit=""))


def step_figures(step, flops, batch, rounds=5, warmup=1, n=2048, ceiling_s=2.0, ceiling_share=0.25,
                 max_rounds=None):
    """A training step timed in rounds interleaved with the matmul ceiling,
    so the ratio "of ceiling" is taken from measurements made under the
    same load. ``flops``: the step's (forward x 3).

    Each ceiling round repeats an n^3 fp32 matmul for ``ceiling_share`` of
    a step's time (at least ``ceiling_s`` seconds; the first step, untimed,
    sets it): on these virtual machines the matmul speed drifts from one
    moment to the next, quiet or not, and a ceiling sampled for a moment
    beside a half-minute step divides the step by a different machine. The
    ceiling's own variation between rounds is reported beside the ratio.
    Rounds continue up to ``max_rounds`` until the ratio is stable
    (:func:`ratio_summary`)."""
    t0 = time.perf_counter()
    step()  # the first warm-up step
    step_s = time.perf_counter() - t0
    ceiling = Ceiling(max(ceiling_s, ceiling_share * step_s), n)
    times = interleaved({"step": step, "ceiling": ceiling}, rounds, max(0, warmup - 1), max_rounds=max_rounds,
                        settled=lambda t: ceiling.settled(ceiling.of(flops, t["step"], t["ceiling"])))
    sec = float(np.median(times["step"]))
    ceilings = ceiling.gflops(times["ceiling"])
    mid = float(np.median(ceilings))
    return {"s_per_step": round(sec, 4), "samples_per_s": round(batch / sec, 2),
            "gflop_per_step": round(flops / 1e9, 2), "gflops": round(flops / sec / 1e9, 2),
            "ceiling_gflops": round(mid, 1), "ceiling_round_s": round(ceiling.seconds, 1),
            "ceiling_rounds_gflops": [round(float(c), 1) for c in ceilings],
            # the machine's own drift: median absolute deviation of the ceiling over its median
            "ceiling_variation": round(float(np.median(np.abs(ceilings - mid))) / mid, 4),
            "step_rounds_s": [round(float(t), 3) for t in times["step"]],
            "threads": omp_threads(),
            "of_ceiling": ceiling.of(flops, times["step"], times["ceiling"])}


# Operators that the FLOP counter counts (vlcore.framework.flops) and MKL runs
# as matrix products, with their gradients: the part of a step that can run
# at the matmul ceiling.
MATMUL_OPS = re.compile(r"^(matmul|bmm|addmm|linear|conv2d|depthwise_conv2d|fused_gemm_epilogue)(_grad)*$")


def profile_ops(step, steps=2):
    """``(wall seconds per step, {operator: seconds per step})`` of
    ``step()`` (after one untimed call), from Paddle's CPU profiler: the
    outermost operator events of its event trees
    (``Profiler.profiler_result.get_data()``, the trees its ``summary()``
    reads), so that an operator run inside another counts once, in its
    parent. Names as in the operator library: Paddle's "matmul dygraph"
    becomes ``matmul`` and its backward node "Global_MatmulGradNode"
    ``matmul_grad``."""
    import paddle.profiler as profiler
    from paddle.profiler.profiler_statistic import TracerEventType
    step()
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda p: None)
    prof.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - t0) / steps
    prof.stop()
    ops = {}

    def walk(node, inside):
        is_op = node.type == TracerEventType.Operator
        if is_op and not inside:
            name = _op_name(node.name)
            ops[name] = ops.get(name, 0.0) + (node.end_ns - node.start_ns) / 1e9 / steps
        for child in node.children_node:
            walk(child, inside or is_op)
    for root in prof.profiler_result.get_data().values():
        walk(root, False)
    return wall, ops


def _op_name(raw):
    name = raw.replace(" dygraph", "")
    grad = re.match(r"^Global_(\w+)GradNode$", name)
    if grad:  # "Global_Conv2dGradNode" -> "conv2d_grad"
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", grad.group(1)).lower() + "_grad"
    return name


def where_time_goes(wall, ops, flops, ceiling_flops_per_s, top=6):
    """A step's time split into matrix products (:data:`MATMUL_OPS`), other
    operators and time outside any operator (Python, autograd bookkeeping),
    and the bound this sets: the fraction of the ceiling the step would
    reach if its matrix products ran at the ceiling and everything else
    took the time it takes now."""
    rest = sorted(((n, t) for n, t in ops.items() if not MATMUL_OPS.match(n)), key=lambda kv: -kv[1])
    other = sum(t for _, t in rest)
    mm = sum(t for n, t in ops.items() if MATMUL_OPS.match(n))
    outside = max(0.0, wall - mm - other)
    ideal = flops / ceiling_flops_per_s
    return {"wall_s": round(wall, 4), "matmul_s": round(mm, 4), "other_ops_s": round(other, 4),
            "outside_ops_s": round(outside, 4), "matmul_share": round(mm / wall, 4),
            "other_ops_share": round(other / wall, 4), "outside_ops_share": round(outside / wall, 4),
            "matmuls_of_ceiling": round(ideal / mm, 4) if mm else None,
            "bound_of_ceiling": round(ideal / (ideal + other + outside), 4),
            "top_other_ops": {n: round(t, 4) for n, t in rest[:top]},
            "top_other_ops_shown": ", ".join(f"{n} {t / wall:.0%}" for n, t in rest[:top])}


def train_step_figures(model, opt, b, batch, rounds=5, profile=False, max_rounds=None):
    """A training step (forward, backward, AdamW) on batch ``b``: its forward
    FLOPs counted once, then timed against the ceiling (step_figures);
    ``profile``: then where its time goes (:func:`where_time_goes`)."""
    from vlcore.framework.plan import forward_flops

    def step():
        model(b)["loss"].backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)
    flops = forward_flops(model, b)
    model.train()
    x = step_figures(step, 3 * flops, batch, rounds=rounds, max_rounds=max_rounds)
    x["parameters"] = sum(int(p.size) for p in model.parameters())
    if profile:  # after the timing, so that the profiler's overhead stays out of it
        x["profile"] = where_time_goes(*profile_ops(step), 3 * flops, x["ceiling_gflops"] * 1e9)
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
    """One printed row of a step benchmark (and, profiled, where its time
    goes)."""
    if "error" in x:
        return f"{kind:<10} {x['error']}"
    row = (f"{kind:<10} {x['s_per_step']:8.3f} {x['samples_per_s']:10.2f} {x['gflop_per_step']:11.1f} "
           f"{x['gflops']:8.1f} {x['ceiling_gflops']:8.1f} {x['peak_rss_mb'] / 1024:8.2f}  "
           f"{show_ratio(x['of_ceiling'], '{:.0%}', '')}")
    if "ceiling_variation" in x:
        row += f"\n{'':<10} the ceiling itself varied +-{x['ceiling_variation']:.0%} between rounds"
    p = x.get("profile")
    if p:
        row += (f"\n{'':<10} profiled: matrix products {p['matmul_share']:.0%} of the step, at "
                f"{p['matmuls_of_ceiling']:.0%} of the ceiling; other operators {p['other_ops_share']:.0%}; "
                f"outside operators {p['outside_ops_share']:.0%}; with the matrix products at the ceiling the "
                f"step would reach {p['bound_of_ceiling']:.0%}\n{'':<10} largest others: {p['top_other_ops_shown']}")
    return row


STEP_HEADER = (f"{'input kind':<10} {'s/step':>8} {'samples/s':>10} {'GFLOP/step':>11} {'GFLOP/s':>8} "
               f"{'ceiling':>8} {'peak GB':>8}  of ceiling (median of interleaved rounds)")
