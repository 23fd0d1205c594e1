"""TF-IDF hard negatives at scale: wall, CPU-seconds, memory and recall.

Usage:  python bench/bench_tfidf.py [--captions 1000000 3000000 10000000]
            [--method pruned|champion|exact|auto] [--workers 2] [--champions N]
            [--k 30] [--recall-queries 300] [--exact-queries 200] [--json PATH]

Builds, per size, a synthetic caption corpus (5 captions per image) whose
words follow Zipf laws like real captions ("a adj12 noun7 verb3 near the
noun250"; 3,000 nouns, 400 adjectives, 300 verbs, 8 prepositions), runs
``data_prep.rewrite.tfidf`` on it, and reports:

* wall seconds of the whole job (read, fit, search, write) and the
  CPU-seconds of the job's processes (``wait4``: the job and its workers),
  and the workers' own search / write CPU-seconds with the search
  CPU-microseconds per query;
* recall@k of the method against exact search on sampled queries (the
  tool's ``--measure-recall``) and the per-query time of exact search on
  one core (a sample: exact search over a large corpus takes hours);
* peak memory: the largest single process (``ru_maxrss``, counting the
  index pages it maps) and the peak of
  the job's process tree summed (PSS from ``/proc/<pid>/smaps_rollup``,
  sampled every 2 s: the workers share the index pages, PSS counts them
  once);
* the 1-minute load average at the start and the end (the 2 cores are
  shared: a load above the job's own workers means the wall time is
  inflated, the CPU-seconds much less so).

``--json PATH`` writes all figures (docs/results/bench/bench_tfidf.json holds the
committed measurements; the module doc of ``data_prep.rewrite.tfidf`` quotes
them). Measured with ``--captions 10000000 1000000 3000000 --method pruned``
(load 1.3-1.9 from this and other jobs): 10M captions in 2,473 s wall, 4,137
CPU-s, 357 search CPU-us per query (1M: 85, 3M: 174), recall@30 1.0 vs exact
on 300 queries at each size, 5.1 GB peak PSS at 10M. The champion search it
replaced: 1M in 934 s wall (load up to 3.4), 732 CPU-s, 666 us per query,
recall 0.996.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_captions(n, seed=0, n_nouns=3000, n_adj=400, n_verbs=300):
    rng = np.random.default_rng(seed)

    def zipf(k):
        p = 1.0 / np.arange(1, k + 1) ** 1.07
        return rng.choice(k, size=n, p=p / p.sum())
    preps = ["on", "in", "near", "under", "behind", "next to", "with", "at"]
    n1, n2, a1, a2, v = zipf(n_nouns), zipf(n_nouns), zipf(n_adj), zipf(n_adj), zipf(n_verbs)
    pr, second_adj = rng.integers(0, len(preps), n), rng.random(n) < 0.5
    return [f"a adj{a1[i]} noun{n1[i]} verb{v[i]} {preps[pr[i]]} the "
            f"{f'adj{a2[i]} ' if second_adj[i] else ''}noun{n2[i]}" for i in range(n)]


def write_pairs(path, n):
    caps = synthetic_captions(n)
    with open(path, "w") as f:
        for i in range(0, len(caps), 5):
            f.write(json.dumps({"id": f"syn{i // 5}", "image": f"{i // 5}.jpg", "captions": caps[i:i + 5]}) + "\n")


def _tree_pss(pid):
    """PSS bytes of ``pid`` and all its descendants (Linux)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total


def run_job(cmd):
    """Run ``cmd``; wall, CPU-seconds and peak RSS of it and its children
    (``wait4``: this job only, not every child the bench ever had, which is
    what ``getrusage(RUSAGE_CHILDREN)`` gives), and the peak summed PSS of
    the process tree."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.wait(2.0):
            peak[0] = max(peak[0], _tree_pss(proc.pid))
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"bench_tfidf: {' '.join(cmd)} failed with exit code {proc.returncode}")
    return {"wall_s": round(time.time() - t0, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_largest_process_gb": round(usage.ru_maxrss / 2 ** 20, 2),
            "peak_pss_tree_gb": round(peak[0] / 2 ** 30, 2)}


def bench_size(n, args, work):
    os.makedirs(work, exist_ok=True)
    pairs = os.path.join(work, "pairs.jsonl")
    t0 = time.time()
    write_pairs(pairs, n)
    gen = time.time() - t0
    out = os.path.join(work, "tfidf")
    load0 = os.getloadavg()
    cmd = [sys.executable, "-m", "data_prep.rewrite.tfidf", "--pairs", pairs, "--out", out,
           "--method", args.method, "--k", str(args.k),
           "--workers", str(args.workers), "--measure-recall", str(args.recall_queries)]
    if args.champions:
        cmd += ["--champions", str(args.champions)]
    job = run_job(cmd)
    load1 = os.getloadavg()
    layout = json.load(open(os.path.join(out, "tfidf.layout.json")))
    stats = json.load(open(os.path.join(out, "tfidf.stats.json")))
    rec_path = os.path.join(out, "tfidf.recall.json")
    rec = json.load(open(rec_path)) if os.path.exists(rec_path) else None

    from data_prep.rewrite.textstore import CaptionStore
    from data_prep.rewrite.tfidf import _load_csr, search
    idx = os.path.join(out, "_index")
    s = CaptionStore(idx).open()
    X, XT = _load_csr(os.path.join(idx, "X")), _load_csr(os.path.join(idx, "XT"))
    search(0, 1, X, XT, None, s.record, s.hash, s.first, args.k)  # compiles the kernel
    t1 = time.process_time()
    search(1, 1 + args.exact_queries, X, XT, None, s.record, s.hash, s.first, args.k)
    exact_q = (time.process_time() - t1) / args.exact_queries
    row = {"captions": n, "method": layout["method"], "champions": layout.get("champions"), "k": args.k,
           "workers": args.workers, "corpus_generation_s": round(gen, 1), **job,
           "index_s": stats.get("index_seconds"), "cpu_search_s": round(stats["cpu_search"], 1),
           "cpu_write_s": round(stats["cpu_write"], 1),
           "search_cpu_us_per_query": round(stats["cpu_search"] / n * 1e6, 1),
           "rows_scored_per_query": round(stats.get("scored", 0) / n, 1) if stats.get("scored") else None,
           "recall": rec, "exact_cpu_ms_per_query": round(exact_q * 1e3, 2),
           "exact_hours_on_all_workers": round(n * exact_q / 3600 / args.workers, 2),
           "load_1min_start": round(load0[0], 2), "load_1min_end": round(load1[0], 2)}
    print(f"\n{n:,} captions, {row['method']}, k={args.k}, {args.workers} workers: "
          f"job {job['wall_s']:.0f} s wall ({n / job['wall_s']:,.0f} captions/s), {job['cpu_s']:.0f} CPU-s; "
          f"workers' search {row['cpu_search_s']:.0f} CPU-s = {row['search_cpu_us_per_query']:.0f} us/query, "
          f"records+JSON {row['cpu_write_s']:.0f} CPU-s")
    if rec:
        print(f"recall@{args.k} vs exact on {rec['queries']} queries: {rec['recall']:.4f} "
              f"(tie-aware {rec['recall_tie_aware']:.4f})")
    print(f"peak memory: largest process {job['peak_rss_largest_process_gb']} GB RSS, process tree "
          f"{job['peak_pss_tree_gb']} GB PSS; load {row['load_1min_start']} at start, {row['load_1min_end']} at end")
    print(f"exact search: {exact_q * 1e3:.1f} ms/query on one core -> {row['exact_hours_on_all_workers']:.1f} h "
          f"for the corpus on {args.workers} cores")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--method", default="auto", choices=("auto", "pruned", "champion", "exact"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--champions", type=int, help="champion list size (default: the tool's, 0.3%% of the corpus)")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--recall-queries", type=int, default=300)
    ap.add_argument("--exact-queries", type=int, default=200)
    ap.add_argument("--json", help="write the figures here as JSON")
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = ap.parse_args()
    rows = []
    for n in args.captions:
        work = os.path.join(args.keep, str(n)) if args.keep else tempfile.mkdtemp(prefix="bench_tfidf_")
        try:
            rows.append(bench_size(n, args, work))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        if args.json:  # after every size: a long series stopped half-way keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"command": " ".join(["python", "bench/bench_tfidf.py"] + sys.argv[1:]),
                           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                       "date": time.strftime("%Y-%m-%d")}, "runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
