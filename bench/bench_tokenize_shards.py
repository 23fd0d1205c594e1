"""Throughput of data_prep.tokenize_shards, and what training saves by
reading token shards instead of tokenizing each sample on the fly.

Usage:  python bench/bench_tokenize_shards.py [--lines 200000] [--workers 1 2] [--shard-size 50000]

Builds a corpus of real English sentences (the papers in ../shared/papers,
sentence-split, shuffled and repeated to ``--lines`` lines), trains a
byte-level BPE on it (``--merges``), then times in one run:

1. ``tokenize_shards`` with each ``--workers`` count (fresh output each),
   tokens/s of the sharded job including writing the shards;
2. the training-side read of one sample: ``LineFile[i]`` + ``tokenizer.encode``
   (on the fly) vs ``TokenShards[i]`` (memory-mapped ids), samples/s in
   random order, and checks both give the same ids.
"""
import argparse
import glob
import os
import random
import re
import resource
import shutil
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--lines", type=int, default=200000)
ap.add_argument("--merges", type=int, default=8000)
ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
ap.add_argument("--shard-size", type=int, default=50000)
ap.add_argument("--reads", type=int, default=20000, help="random samples read in part 2")
args = ap.parse_args()


def sentences():
    papers = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "papers", "*.txt")))
    text = " ".join(open(p, encoding="utf-8").read() for p in papers)
    parts = [" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", text)]
    return [s for s in parts if len(s) > 20] or ["A man rides a red bike down the street."]


def cpu_seconds():
    """CPU time of this process and its finished children (the workers): on
    a shared machine the wall clock also measures the neighbours."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main():
    from data_prep.tokenize_shards import main as tokenize_main
    from vlcore.formats.records import LineFile
    from vlcore.formats.token_shards import TokenShards
    from vlcore.text.tokenizer import train_bpe

    work = tempfile.mkdtemp(prefix="bench_tokshards_")
    try:
        sents = sentences()
        rng = random.Random(0)
        corpus = os.path.join(work, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for _ in range(args.lines):
                f.write(" ".join(rng.sample(sents, rng.randint(1, 3))) + "\n")
        size = os.path.getsize(corpus)
        tok = train_bpe(sents, vocab_size=args.merges + 261, out_dir=os.path.join(work, "vocab"))
        print(f"corpus: {args.lines} lines, {size / 1e6:.1f} MB of English sentences; BPE vocab {tok.vocab_size}; "
              f"{os.cpu_count()} cores")
        LineFile(corpus)  # offsets index built once, outside the timings
        for w in args.workers:
            out = os.path.join(work, f"shards_w{w}")
            t0, c0 = time.perf_counter(), cpu_seconds()
            tokenize_main(["--text", corpus, "--tokenizer-dir", os.path.join(work, "vocab"), "--out", out,
                           "--shard-size", str(args.shard_size), "--workers", str(w)])
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            n_tok = TokenShards(out).meta["tokens"]
            print(f"  workers={w}: wall {wall:.1f} s (incl. process start-up), CPU {cpu:.1f} s: "
                  f"{n_tok / wall:,.0f} tokens/s wall, {n_tok / cpu:,.0f} tokens per CPU-second")
        lines = LineFile(corpus)
        shards = TokenShards(os.path.join(work, f"shards_w{args.workers[0]}"))
        order = [rng.randrange(len(lines)) for _ in range(args.reads)]
        t0 = time.process_time()
        fly = [tok.encode(lines[i]) for i in order]
        t_fly = time.process_time() - t0
        t0 = time.process_time()
        pre = [shards[i] for i in order]
        t_pre = time.process_time() - t0
        assert fly == pre, "token shards differ from on-the-fly tokenization"
        n_tok = sum(map(len, pre))
        print(f"training-side read of {args.reads} random samples ({n_tok} tokens), identical ids "
              "(per CPU-second of one process):")
        print(f"  on the fly (LineFile + encode): {args.reads / t_fly:12,.0f} samples/s "
              f"{n_tok / t_fly:14,.0f} tokens/s")
        print(f"  token shards (mmap):            {args.reads / t_pre:12,.0f} samples/s {n_tok / t_pre:14,.0f} tokens/s"
              f"  ({t_fly / t_pre:.1f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
