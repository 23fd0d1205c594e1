"""Throughput of vlcore.text.tokenizer (Rust `tokenizers`) vs pure-Python BPE.

Usage:  python bench/bench_tokenizer.py [--text FILE] [--merges 8000]
                                        [--sentences 20000] [--threads N] [--rounds 7] [--json OUT]

Trains a byte-level BPE (~``--merges`` merges) on the text (``--text``: one
sentence per line; otherwise generated caption-like sentences), then encodes
the same lines with every implementation in one run and prints tokens/s.
The pure-Python baselines start with an empty word cache, as they would on a
fresh data-preparation worker (a new one per round, built outside the
timing).

The three main implementations take turns on every piece of 500 lines
(Rust batch, Rust loop, Python, then Python, Rust loop, Rust batch, ...:
the order is reversed every other piece), a round being one pass over the
text, after a warm-up round, with the garbage collector run before and
paused during each timing; the speed-ups are the medians of the per-round
ratios with their spread, and a speed-up whose rounds disagree is printed
as UNSTABLE instead (bench/common.py interleaved, ratio_summary).

The one-thread Rust loop is compared with the one-thread reference in the
calling thread's CPU time (time.thread_time), the cost of the code itself,
which other jobs on the machine do not stretch; the parallel batch in wall
time. That one is a ratio of core counts as much as of code: beside other
jobs it gets fewer cores, so it is expected to differ under load; the
one-thread ratio is the one that should hold.
"""
import argparse
import os
import random
import shutil
import statistics
import tempfile
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--text", help="UTF-8 text file, one sentence per line")
ap.add_argument("--merges", type=int, default=8000)
ap.add_argument("--sentences", type=int, default=20000, help="generated sentences (no --text)")
ap.add_argument("--nocache-lines", type=int, default=2000,
                help="lines for the ReferenceBPE-without-word-cache row (slow)")
ap.add_argument("--threads", type=int, default=None,
                help="rayon threads for encode_batch (default: $RAYON_NUM_THREADS or all cores)")
ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds after the warm-up")
ap.add_argument("--max-rounds", type=int, default=25,
                help="more rounds, up to this many, while a speed-up is not yet stable (a busy machine)")
ap.add_argument("--json", default="", help="write the figures here")
args = ap.parse_args()

# Must be set before `tokenizers` creates its rayon pool (first parallel call).
if args.threads is not None:
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
else:
    os.environ.setdefault("RAYON_NUM_THREADS", str(os.cpu_count() or 1))
os.environ["TOKENIZERS_PARALLELISM"] = "true"  # explicit: we never fork here

from common import interleaved, ratio_summary, run_record, show_ratio, show_record, write_json  # noqa: E402

from vlcore.text.tokenizer import ReferenceBPE, train_bpe  # noqa: E402


def generated_sentences(n, seed):
    """Caption-like sentences over a Zipf-distributed pseudo-word lexicon, with
    some digits, punctuation and non-ASCII so every code path is exercised."""
    rng = random.Random(seed)
    syl = ["ka", "ro", "mi", "ten", "sho", "la", "vel", "qu", "an", "dor", "is", "eth", "ul",
           "bri", "zo", "nak", "pe", "ré", "ñu", "ö", "st", "ing", "ed", "er", "tion"]
    lex = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(30000)]
    lex += "a the of and in on with is man woman dog street red two people café 🙂".split()
    cum, acc = [], 0.0
    for r in range(len(lex)):
        acc += 1.0 / (r + 1)
        cum.append(acc)  # cumulative weights: rng.choices would re-sum 30k weights per call
    rng.shuffle(lex)
    out = []
    for _ in range(n):
        words = rng.choices(lex, cum_weights=cum, k=rng.randint(4, 20))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2025)))
        s = " ".join(words)
        out.append(s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?", " ...", ","]))
    return out


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return "unknown"


def n_tok_of(ids):
    return sum(map(len, ids))


def timed(fn, texts):
    t0 = time.perf_counter()
    ids = fn(texts)
    return ids, time.perf_counter() - t0


if args.text:
    with open(args.text, encoding="utf-8") as f:
        texts = [l.rstrip("\n") for l in f if l.strip()]
    train_texts = texts
else:
    train_texts = generated_sentences(args.sentences, seed=0)
    texts = generated_sentences(args.sentences, seed=1)

out_dir = tempfile.mkdtemp(prefix="bench_bpe_")
t0 = time.perf_counter()
tok = train_bpe(train_texts, vocab_size=args.merges + 256 + 5, out_dir=out_dir)
with open(os.path.join(out_dir, "merges.txt"), encoding="utf-8") as f:
    n_merges = sum(1 for l in f if l.strip() and not l.startswith("#version"))
print(f"trained {n_merges} merges (vocab {tok.vocab_size}) on {len(train_texts)} lines "
      f"in {time.perf_counter() - t0:.1f}s; benchmarking {len(texts)} lines, "
      f"{sum(len(t) for t in texts) / 1e6:.2f} M chars")

load_start = os.getloadavg()[0]


def fresh_reference():
    return ReferenceBPE.from_files(os.path.join(out_dir, "vocab.json"), os.path.join(out_dir, "merges.txt"))


PARALLEL = "BPETokenizer.encode_batch (Rust, parallel)"
variants = {  # name -> (setup outside the timing, run)
    PARALLEL: (lambda: tok, lambda t, ts: t.encode_batch(ts)),
    "BPETokenizer.encode loop (Rust, 1 thread)": (lambda: tok, lambda t, ts: [t.encode(x) for x in ts]),
    "ReferenceBPE (pure Python, word cache)": (fresh_reference, lambda r, ts: [r.encode(x) for x in ts]),
}
SHORT = {PARALLEL: "rust_batch",
         "BPETokenizer.encode loop (Rust, 1 thread)": "rust_loop"}
ready, outputs = {}, {}
CHUNK = 500  # lines per piece: the variants take turns every few tens of milliseconds


def setup(name):
    ready[name] = variants[name][0]()
    outputs[name] = []


def timed_run(name, lines):
    outputs[name] += variants[name][1](ready[name], lines)


ref_name = "ReferenceBPE (pure Python, word cache)"


# The parallel batch against the reference in wall time: its point is the
# cores it spreads over. The one-thread loop against the reference in this
# thread's CPU time, the cost of the code alone: beside other jobs a
# time-sliced core stretches wall times by a share that changes from one
# piece to the next (beside two training jobs the loop's wall ratio read
# 1.38 against 1.43 quiet, its interval 5x wider than in CPU time, where
# the ratio read 1.44).
cpu = {}


def clock_of(name, wall):
    return wall if name == PARALLEL else cpu


def speedups_of(wall):
    return {name: ratio_summary(clock_of(name, wall)[ref_name], clock_of(name, wall)[name], fmt="{:.1f}")
            for name in variants if name != ref_name}


times = interleaved({name: (lambda lines, name=name: timed_run(name, lines)) for name in variants},
                    rounds=args.rounds, before=setup, max_rounds=args.max_rounds, cpu=cpu,
                    settled=lambda t: all(x["stable"] for x in speedups_of(t).values()),
                    chunks=[texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)])
ids_batch, ids_single, ids_ref = outputs.values()
assert ids_batch == ids_single == ids_ref, "implementations disagree"
n_tok = n_tok_of(ids_batch)
rows = [(name, statistics.median(t)) for name, t in times.items()]
cpu_s = {name: statistics.median(t) for name, t in cpu.items() if name != PARALLEL}
speedups = speedups_of(times)


class NoCache(dict):
    def __setitem__(self, k, v):  # never remember a word: every word runs the merge loop
        pass


ref_nc = ReferenceBPE.from_files(os.path.join(out_dir, "vocab.json"), os.path.join(out_dir, "merges.txt"))
ref_nc.cache = NoCache()
sub = texts[:args.nocache_lines]
ids_nc, dt = timed(lambda ts: [ref_nc.encode(t) for t in ts], sub)
assert ids_nc == ids_ref[:len(sub)]
rows.append(("ReferenceBPE, no word cache *", dt * n_tok / n_tok_of(ids_nc)))  # scaled to full text

skipped = None
try:
    import paddlenlp  # noqa: F401
    from paddlenlp.transformers import RobertaBPETokenizer
    pnlp = RobertaBPETokenizer(os.path.join(out_dir, "vocab.json"), os.path.join(out_dir, "merges.txt"))
    ids_p, dt = timed(lambda ts: [pnlp.convert_tokens_to_ids(pnlp.tokenize(t)) for t in ts], texts)
    rows.append(("paddlenlp RobertaBPETokenizer (pure Python)", dt))
    if ids_p != ids_ref:
        print("warning: paddlenlp output differs from ReferenceBPE")
except Exception as e:  # ImportError, or an API change in paddlenlp
    skipped = f"{type(e).__name__}: {e}"

print(f"RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}  cores={os.cpu_count()}  "
      f"OS threads in this process (main + rayon pool + helpers): {thread_count()}")
print(f"{n_tok} tokens per run (all implementations produced identical ids)\n")
ref_dt = dict(rows)[ref_name]
print(f"{'implementation':46s} {'seconds':>8s} {'CPU s':>6s} {'tokens/s':>12s}  vs ReferenceBPE (median of "
      f"{len(times[ref_name])} interleaved rounds; the parallel batch in wall time, the loop in CPU time)")
for name, dt in rows:
    vs = (show_ratio(speedups[name], "{:.1f}") if name in speedups else "the baseline" if name == ref_name
          else f"{ref_dt / dt:.1f}x (one timing)")
    cs = f"{cpu_s[name]:6.3f}" if name in cpu_s else f"{'':6s}"
    print(f"{name:46s} {dt:8.3f} {cs} {n_tok / dt:12,.0f}  {vs}")
print(f"* timed once on the first {len(sub)} lines, seconds extrapolated to the full text; the seconds of the "
      f"other rows are medians over the rounds (wall; CPU s: this thread's CPU time)")
rec = run_record(load_start)
print(show_record(rec))
if args.json:
    write_json(args.json, {"lines": len(texts), "tokens": n_tok, "merges": n_merges, "rounds": len(times[ref_name]),
                           "rayon_threads": os.environ["RAYON_NUM_THREADS"],
                           "seconds": {name: dt for name, dt in rows},
                           "tokens_per_s": {name: round(n_tok / dt) for name, dt in rows},
                           "cpu_seconds": cpu_s,
                           "tokens_per_cpu_s": {name: round(n_tok / dt) for name, dt in cpu_s.items()},
                           # short keys: the docs' tables read them as dotted paths
                           "speedup_over_reference": {SHORT[name]: x for name, x in speedups.items()}, **rec})
if skipped:
    print(f"\npaddlenlp RobertaBPETokenizer: skipped ({skipped})")
shutil.rmtree(out_dir, ignore_errors=True)
