"""The benchmarks' own honesty (bench/common.py): interleaved rounds, the
median ratio with its spread, and a flag instead of a number when the rounds
disagree; a step benchmark writes per-kind figures with peak RSS as JSON."""
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def common():
    os.environ["VLCORE_NO_REEXEC"] = "1"  # importing bench/common.py must not re-execute pytest
    import common  # bench/ is on pytest's pythonpath
    return common


def test_ratio_summary_median_its_interval_and_flag(common):
    import math
    steady = common.ratio_summary([2.0, 2.31, 1.96, 1.98, 2.04], [1.0, 1.1, 1.0, 1.0, 1.0])
    # ratios 2.0, 2.1, 1.96, 1.98, 2.04: median 2.0, deviations 0, .1, .04, .02, .04 -> MAD 0.04
    assert steady["ratio"] == 2.0 and steady["mad"] == pytest.approx(0.04)
    # the median's 95 % half-width: 1.96 * sqrt(pi / 2) * 1.4826 * MAD / sqrt(5)
    half = 1.96 * math.sqrt(math.pi / 2) * 1.4826 * 0.04 / math.sqrt(5)
    assert steady["spread"] == pytest.approx(half, abs=1e-4) and steady["stable"]
    assert common.show_ratio(steady).startswith("2.00x (+-0.07, 5 rounds)")
    # one round measured during a burst of other work moves neither the median nor the MAD
    bumped = common.ratio_summary([2.0, 2.0, 3.5, 2.0, 2.01], [1.0] * 5)
    assert bumped["ratio"] == 2.0 and bumped["stable"]
    # rounds that disagree throughout: the median is not known to 5 %, and no figure is printed as a result
    noisy = common.ratio_summary([1.0, 1.5, 2.0, 1.2, 1.8], [1.0] * 5)
    assert noisy["mad"] == pytest.approx(0.3) and not noisy["stable"]
    assert noisy["shown"].startswith("UNSTABLE")
    # the same dispersion over more rounds pins the median down: a busy machine needs more of them
    wide = [1.0, 1.1, 0.9, 1.05, 0.95]
    assert not common.ratio_summary(wide, [1.0] * 5)["stable"]
    assert common.ratio_summary(wide * 5, [1.0] * 25)["stable"]
    pct = common.ratio_summary([0.64, 0.65, 0.63], [1.0, 1.0, 1.0])
    assert common.show_ratio(pct, "{:.0%}", "").startswith("64% (+-2%, 3 rounds)")
    # the text the docs print is the same line, "UNSTABLE ..." included
    assert common.ratio_summary([0.64, 0.65, 0.63], [1.0] * 3, fmt="{:.0%}", unit="")["shown"] == \
        common.show_ratio(pct, "{:.0%}", "")
    assert noisy["shown"] == common.show_ratio(noisy) and steady["shown"] == common.show_ratio(steady)
    assert not common.ratio_summary([1.0, 1.0], [1.0, 1.0])["stable"]  # two rounds are too few to trust


def test_more_rounds_until_settled(common):
    assert list(common.more_rounds(3, 10, lambda: True, warmup=1)) == [0, 1, 2, 3]
    assert list(common.more_rounds(3, 10, lambda: False, warmup=1)) == list(range(11))
    # stops at the first round after which it holds
    done = []
    assert [done.append(r) or r for r in common.more_rounds(2, 10, lambda: len(done) >= 4)] == [0, 1, 2, 3]
    # interleaved: a series that settles after 6 rounds stops there, one that never does at the cap
    times = common.interleaved({"a": lambda: None}, rounds=3, warmup=1, max_rounds=8,
                               settled=lambda t: len(t["a"]) >= 6)
    assert len(times["a"]) == 6
    times = common.interleaved({"a": lambda: None}, rounds=3, warmup=0, max_rounds=8,
                               settled=lambda t: False)
    assert len(times["a"]) == 8
    # a cap without a test of settling: the rounds asked for, no more
    assert len(common.interleaved({"a": lambda: None}, rounds=2, warmup=0, max_rounds=5)["a"]) == 2


def test_interleaved_alternates_the_variants(common):
    calls = []
    times = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "b", "a"] * 2 and {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_interleaved_counterbalances_the_order(common):
    """Forward, then reversed: over two turns every variant follows each of
    its neighbours once, instead of always the same one."""
    calls = []
    common.interleaved({n: (lambda n=n: calls.append(n)) for n in "abc"}, rounds=4, warmup=0)
    assert "".join(calls) == "abccba" * 2
    after = {}
    for prev, cur in zip(calls, calls[1:]):
        after.setdefault(cur, set()).add(prev)
    assert after["b"] == {"a", "c"}


def test_interleaved_gives_cpu_time_beside_wall_time(common):
    """A variant that sleeps takes wall time and no CPU time; one that
    computes takes both alike."""
    import time

    def spin(seconds=0.05):
        t0 = time.thread_time()
        while time.thread_time() - t0 < seconds:
            pass
    cpu = {}
    wall = common.interleaved({"sleep": lambda: time.sleep(0.05), "spin": spin}, rounds=2, warmup=1, cpu=cpu)
    assert list(cpu) == ["sleep", "spin"] and all(len(v) == 2 for v in cpu.values())
    assert min(wall["sleep"]) >= 0.05 and max(cpu["sleep"]) < 0.02
    assert min(cpu["spin"]) >= 0.05 and min(wall["spin"]) >= min(cpu["spin"])


def test_interleaved_setup_is_untimed_and_the_collector_paused(common):
    import gc
    import time
    seen = []
    times = common.interleaved({"a": lambda: seen.append(gc.isenabled())}, rounds=2, warmup=0,
                               before=lambda name: time.sleep(0.2))
    assert max(times["a"]) < 0.1 and seen == [False, False] and gc.isenabled()


def test_interleaved_takes_turns_piece_by_piece(common):
    calls = []
    times = common.interleaved({"a": lambda c: calls.append(("a", c)), "b": lambda c: calls.append(("b", c))},
                               rounds=2, warmup=0, chunks=[1, 2])
    assert calls == [("a", 1), ("b", 1), ("b", 2), ("a", 2)] * 2 and len(times["a"]) == 2


def test_where_the_time_goes_and_its_bound(common):
    """Matrix products vs the rest, by hand: a 10 s step whose 3 GFLOP would
    take 3 s at a 1 GFLOP/s ceiling."""
    ops = {"matmul": 4.0, "matmul_grad": 2.0, "layer_norm_grad": 1.5, "add": 0.5}
    w = common.where_time_goes(10.0, ops, 3e9, 1e9)
    assert (w["matmul_s"], w["other_ops_s"], w["outside_ops_s"]) == (6.0, 2.0, 2.0)
    assert w["matmuls_of_ceiling"] == 0.5                        # 3 s of work in 6 s
    assert w["bound_of_ceiling"] == pytest.approx(3 / (3 + 2 + 2), abs=1e-4)
    assert list(w["top_other_ops"]) == ["layer_norm_grad", "add"]


def test_profiled_operators_carry_the_library_names(common):
    import paddle
    lin = paddle.nn.Linear(64, 64)
    x = paddle.randn([32, 64])

    def step():
        lin(x).sum().backward()
    wall, ops = common.profile_ops(step, steps=2)
    assert common.MATMUL_OPS.match("matmul") and common.MATMUL_OPS.match("matmul_grad")
    assert any(common.MATMUL_OPS.match(n) for n in ops) and "sum_grad" in ops
    assert not any(" dygraph" in n or n.startswith("Global_") and n.endswith("GradNode") for n in ops)
    assert 0 < sum(ops.values()) <= wall * 1.05


@pytest.mark.slow
def test_grounded_attention_bench_writes_its_figures(tmp_path):
    out = tmp_path / "ga.json"
    r = subprocess.run([sys.executable, "bench/bench_grounded_attention.py", "--batch", "1", "--image", "17",
                        "--grounded", "4", "--text", "12", "--hidden", "32", "--heads", "2", "--rounds", "3",
                        "--max-rounds", "4", "--pieces", "2", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    for label in ("attention only", "whole post-LN layer"):
        x = data["results"][label]
        assert len(x["speedup"]["rounds"]) in (3, 4) and x["max_abs_diff"] < 1e-3
        assert x["masked_flops"] > x["grounded_flops"] > 0   # the block plan skips the forbidden blocks
    assert len(data["load_avg"]) == 2 and data["peak_rss_mb"] > 0 and data["pieces"] == 2
    assert "speed-up" in r.stdout


def test_each_kind_in_its_own_process_and_an_oom_kill_is_a_finding(common, tmp_path):
    """A kind killed by the kernel for memory (signal 9) is reported as not
    fitting; the other kinds still report their figures."""
    script = tmp_path / "child.py"
    script.write_text("import json, os, signal, sys\n"
                      "kind, out = sys.argv[sys.argv.index('--kinds') + 1], sys.argv[sys.argv.index('--child-json') + 1]\n"
                      "if kind == 'huge':\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                      "if kind == 'bad':\n    sys.exit(3)\n"
                      "json.dump({'kind': kind, 'pid': os.getpid()}, open(out, 'w'))\n")
    out = common.in_children(str(script), ["--x", "1"], ["small", "huge", "bad", "other"])
    assert out["small"]["kind"] == "small" and out["other"]["pid"] != out["small"]["pid"]
    assert "out of memory" in out["huge"]["error"] and out["bad"] == {"error": "exit 3"}
    assert common.step_row("huge", out["huge"]).startswith("huge       killed by signal 9")


def test_a_benchmark_runs_on_every_core():
    """Paddle's import sets OMP_NUM_THREADS=1 when it is unset, so a
    benchmark must import bench/common.py (which sets it to the cores) before
    Paddle; the import order is kept by ruff's isort section for `common`
    (pyproject.toml). Sorted after Paddle, it had left the benchmarks on one
    thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VLCORE_NO_REEXEC")}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_grounded_attention.py"), "--batch", "1",
                        "--image", "8", "--grounded", "2", "--text", "8", "--hidden", "32", "--heads", "2",
                        "--rounds", "1", "--max-rounds", "1"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"OMP_NUM_THREADS={len(os.sched_getaffinity(0))}," in r.stdout, r.stdout[:400]


def test_ceiling_divides_each_round_by_its_own_ceiling(common):
    """"Of ceiling" per round, by hand: a round whose ceiling ran half as
    fast (a busy moment) counts the step against that slower ceiling."""
    ceiling = common.Ceiling(0.01, n=64)
    assert ceiling.repeat >= 3 and ceiling.flops == ceiling.repeat * 2 * 64 ** 3
    ceiling()  # runs
    f = ceiling.flops
    # step work f/2 per call; round 1: step 1 s, ceiling 1 s (50 %); round 2: both twice as slow (50 %);
    # round 3: the step alone slowed (25 %)
    x = ceiling.of(f / 2, [1.0, 2.0, 2.0], [1.0, 2.0, 1.0])
    assert x["rounds"] == [0.5, 0.5, 0.25] and x["ratio"] == 0.5
    assert list(ceiling.gflops([1.0, 2.0])) == [f / 1e9, f / 2e9]


def test_threads_that_did_not_get_their_cores_give_no_figure(common, monkeypatch):
    """Several threads sharing their cores with other work measure the
    scheduler: the ratio is then shown as OVERSUBSCRIBED, not as a figure,
    and more rounds would not help. One thread is never flagged: it loses
    the same share of every variant."""
    ceiling = common.Ceiling(0.01, n=64)
    ceiling()
    # measured: process CPU seconds over wall seconds, here one thread (the tests' OMP_NUM_THREADS=1)
    assert 0.0 < ceiling.cores[-1] <= 1.2
    x = common.ratio_summary([1.3] * 5, [1.0] * 5)
    ceiling.cores = [1.9, 2.0, 1.95]  # quiet: both threads ran
    ok = ceiling.vet(x, threads=2)
    assert ok["stable"] and not ok["oversubscribed"] and ok["cores_obtained"] == 1.95
    assert ok["shown"].startswith("1.30x")
    ceiling.cores = [1.1, 1.2, 0.9]  # beside other jobs: 2 threads on 1.1 cores
    bad = ceiling.vet(x, threads=2)
    assert bad["oversubscribed"] and not bad["stable"]
    assert bad["shown"].startswith("OVERSUBSCRIBED: 2 threads got 1.10 cores") and "1.30x" not in bad["shown"]
    assert not ceiling.vet(x, threads=1)["oversubscribed"]  # a single thread is only time-sliced
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    noisy = common.ratio_summary([1.0, 1.5, 2.0, 2.5, 3.0], [1.0] * 5)
    assert ceiling.settled(ceiling.vet(noisy))  # noisy, but stop
    ceiling.cores = [2.0]
    assert not ceiling.settled(ceiling.vet(noisy))  # noisy: go on
