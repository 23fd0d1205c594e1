"""TF-IDF hard negatives: for each caption, the most similar captions of
OTHER images (UNIMO Section 3.1, sentence-level rewriting).

    python -m data_prep.rewrite.tfidf --pairs pairs.jsonl --out rw/tfidf
        [--k 30] [--method auto|pruned|exact|champion] [--champions N]
        [--shard-size 50000] [--workers 2] [--measure-recall 500] [--shard i/N]

Under ``python -m paddle.distributed.launch`` / ``fleetrun`` the ranks split
the queries (:mod:`data_prep.job_part`): rank 0 builds the index once, the
other ranks wait for it, each rank searches its shards, and rank 0 waits for
all of them before measuring recall. ``--shard i/N`` tasks do the same
without waiting at the end (task 0 builds the index; the others wait for it).

Similarity is the cosine of scikit-learn TF-IDF vectors (English stop words
removed unless ``--keep-stop-words``). A neighbour is never a caption of the
same image, never a text equal (after normalisation) to the query or to any
caption of the query's image, and each text appears once; ties are broken
by corpus position, so results do not depend on sharding or workers.

Three searches, all scoring candidates exactly (float32 sums in term order,
as the sparse product of ``exact`` adds them, so a pair found by two
searches has bit-identical scores in both):

* ``pruned`` (the default, ``auto``): exact, with the output of ``exact``
  byte for byte, reading only what can matter. Terms are numbered by
  document frequency, most common first. If t is the rarest term a caption
  y shares with query x, Cauchy-Schwarz over the entries up to t gives
  ``cos(x, y) <= |x[:t]| |y[:t]|`` (prefix L2 norms, as in the all-pairs
  similarity joins AllPairs, Bayardo, Ma & Srikant, WWW 2007, and L2AP,
  http://glaros.dtc.umn.edu/gkhome/node/1084). Each term's postings are
  sorted by ``|y[:t]|``, so per query term, rarest first, only the head of
  the list can hold a caption reaching the k-th score found so far; the
  walk stops there. In the head, a 64-bit Bloom signature of the caption's
  other terms stored with the posting tells which query terms it may share,
  and ``x_t y_t + |x on those| |y[:t] without y_t|`` skips most captions
  without reading their row; the rest are scored from a copy of their row
  stored next to the posting (read in order: at 10M captions a random row
  read is a cache miss). This index is ~7x the size of X (at 3M captions
  0.86 GB; most of it the rows copy, whose entries are the sum over
  captions of their number of terms squared), memory-mapped by the workers
  and shared through the page cache.
* ``exact``: chunks of queries times the whole inverted index (a sparse
  product), every caption sharing a term is scored. Cost grows with the
  square of the corpus: 10.8 ms per query at 1M captions here, 35 ms at 3M.
* ``champion`` (approximate): each term keeps only its ``--champions``
  highest-weighted postings ("champion lists"); candidates are the union of
  the query terms' champion lists, rescored exactly. What can be missed is a
  neighbour that shares only common words with the query. Lists of a fixed
  size cover less of a common term's postings as the corpus grows, so the
  default size is 0.3% of the corpus (at least 1000; recall@30 0.996 at 1M
  captions with lists of 3000), and the cost per query grows with it.

``--measure-recall N`` compares pruned or champion search with exact search
on N sampled queries and writes ``tfidf.recall.json`` (recall@k, and the
share of queries whose neighbours and scores are identical).

Measured (``python bench/bench_tfidf.py --captions 10000000 1000000 3000000
--method pruned``, synthetic Zipf captions, k 30, 2 workers on the 2 cores,
shared with other jobs: 1-min load 1.3-1.9; figures in
docs/results/bench/bench_tfidf.json). Search CPU-microseconds per query:

    captions   pruned (exact)   champion (recall@30)      exact
    1M         85               666 (0.996)               10,800
    3M         174              2,164 (sampled; 9000/term) 25,800
    10M        357              not run (lists of 30,000)  117,000

Pruned, whole job (read, fit, search, write, and the recall check): 1M in
80 s wall (133 CPU-s), 3M in 374 s (670 CPU-s), 10M in 2,473 s = 41 min
(4,137 CPU-s: index 408 s in one process, search 3,569 and JSON 254 in
the workers), recall@30 1.0 against exact search on 300 sampled queries
at every size, the lists and float32 scores identical for all of them.
Peak memory at 10M: 5.1 GB summed PSS of the job's processes (sampled every
2 s); no process above 6.6 GB RSS over the three jobs. The per-query cost
still grows, about as N^0.6 (the synthetic vocabulary stays at 3,701
terms, so every list grows with the corpus), so the job grows as ~N^1.6:
10M took 31x the CPU of 1M, not 10x. At 1M, champion search costs 7.8x
pruned per query, exact search 127x.

Measured alternatives, all slower: Fagin's threshold algorithm over
weight-sorted lists with an L2 stopping bound (exact, 3.6x the captions
scored of prefix-norm lists at 200k, ~N^0.74 per query); sparse_dot_topn
1.2.0 (exact top-n of the sparse product in C++, no exclusions): 4.5 ms per
query at 1M on one thread, 35x pruned and quadratic like ``exact``.

The last lines printed give the CPU seconds the shard workers spent
searching and writing (summed over workers: on a shared machine the wall
time says little); ``tfidf.stats.json`` keeps them with the captions
scored from their rows.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import time

import numpy as np

from data_prep.cli import run_cli
from data_prep.job_part import PartError, add_part_args, args_part, wait_until
from data_prep.rewrite.captions import CaptionIndex, add_input_args
from data_prep.rewrite.textstore import CaptionStore, _save, _Strings
from data_prep.shards import JobError, check_layout, run_shards, spec_of, stage_is_current
from vlcore.formats.sharded import atomic_open, atomic_path, shard_name

NAME = "tfidf"
CHAMPIONS_MIN, CHAMPIONS_PER_MILLE = 1000, 3
# pruned search skips a caption only if its bound is below the k-th score by this much: float32
# sums of a few dozen products in [0, 1], and the float32 norms, are within 1e-6 of the reals
PRUNE_MARGIN = 1e-5
# 2: pre-serialised negatives, 3: champion rows, 4: terms by df, pruned index; another version is refitted
INDEX_VERSION = 4
_S: dict = {}  # per-process state: the index, opened by _init


# ---------------------------------------------------------------- index
def build_index(texts, directory, keep_stop_words=False, min_df=1, champions=None):
    """Fit TF-IDF on all captions and save the matrices the workers map.
    Terms are numbered by document frequency, most common first (the order
    pruned search's prefix bounds need; the other searches do not care)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    vec = TfidfVectorizer(stop_words=None if keep_stop_words else "english", min_df=min_df,
                          dtype=np.float32)
    X = vec.fit_transform(texts).tocsr()
    df = np.bincount(X.indices, minlength=X.shape[1])
    X = X[:, np.argsort(-df, kind="stable")].tocsr()
    X.sort_indices()
    XT = X.T.tocsr()  # the inverted index: row t = postings of term t
    XT.sort_indices()
    _save_csr(os.path.join(directory, "X"), X)
    _save_csr(os.path.join(directory, "XT"), XT)
    del XT
    build_pruned_index(X, directory)
    if champions:
        XT = _load_csr(os.path.join(directory, "XT"))
        CT = champion_lists(XT, champions)
        _save_csr(os.path.join(directory, "CT"), CT)
        # row p = the TF-IDF row of the caption of champion posting p: scoring a
        # candidate then reads the postings' rows in order, not random rows of X
        _save_csr(os.path.join(directory, "CR"), X[CT.indices])
    return X.shape


def build_pruned_index(X, directory):
    """The index of pruned search (:func:`tfidf_kernels.pruned_topk`): PT,
    each term's postings sorted by the caption's prefix norm up to that
    term, descending, then by position (data = the norm), and PR, the X row
    of each posting's caption, in posting order. PR is the big one (entries
    = sum over captions of their terms squared), written straight to disk."""
    import scipy.sparse as sp

    from data_prep.rewrite import tfidf_kernels as kern
    norms = kern.prefix_norms(X.indptr, X.data)
    docs = np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(X.indptr))
    order = np.lexsort((docs, -norms, X.indices))
    idoc, key = docs[order], norms[order]
    del docs, norms, order
    ip = np.zeros(X.shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(X.indices, minlength=X.shape[1]), out=ip[1:])
    _save_csr(os.path.join(directory, "PT"), sp.csr_matrix((key, idoc, ip), shape=(X.shape[1], X.shape[0])))
    del key
    term_of = np.repeat(np.arange(X.shape[1], dtype=np.int32), np.diff(ip))
    pw, psig = np.empty(len(idoc), np.float32), np.empty(len(idoc), np.uint64)
    kern.posting_signatures(X.indptr, X.indices, X.data, idoc, term_of, pw, psig)
    del term_of
    _save(os.path.join(directory, "PW.npy"), pw)
    _save(os.path.join(directory, "PS.npy"), psig)
    del pw, psig
    row_len = np.diff(X.indptr)[idoc]
    total = int(row_len.sum(dtype=np.int64))
    del row_len
    prefix = os.path.join(directory, "PR")
    with contextlib.ExitStack() as stack:
        arrays = []
        for part, dtype, size in (("indptr", np.int64, len(idoc) + 1), ("indices", X.indices.dtype, total),
                                  ("data", np.float32, total)):
            tmp = stack.enter_context(atomic_path(f"{prefix}.{part}.npy"))
            arrays.append(np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(size,)))
        rp, ri, rd = arrays
        rp[0] = 0
        kern.posting_rows(X.indptr, X.indices, X.data, idoc, rp, ri, rd)
        for a in arrays:
            a.flush()
        del arrays, rp, ri, rd
    _save(f"{prefix}.shape.npy", np.asarray((len(idoc), X.shape[1]), dtype=np.int64))


Csr = collections.namedtuple("Csr", "indptr indices data")


def load_pruned(directory):
    """The index of :func:`build_pruned_index`: ``(PT, PW, PS, PR)``, PT and
    PR as :class:`Csr` of memory-mapped arrays. Not scipy matrices: scipy
    checks every index and converts index arrays to a common type, which
    copies gigabytes into each worker at 10M captions."""
    def load(name):
        return np.load(os.path.join(directory, f"{name}.npy"), mmap_mode="r")
    return (Csr(*(load(f"PT.{p}") for p in Csr._fields)), load("PW"), load("PS"),
            Csr(*(load(f"PR.{p}") for p in Csr._fields)))


def champion_lists(XT, size):
    """Keep each term's ``size`` highest-weighted postings (all if fewer);
    ties go to the earlier caption so the lists are deterministic."""
    import scipy.sparse as sp
    df = np.diff(XT.indptr)
    keep = np.ones(XT.nnz, dtype=bool)
    for t in np.nonzero(df > size)[0]:
        a, b = XT.indptr[t], XT.indptr[t + 1]
        order = np.lexsort((XT.indices[a:b], -XT.data[a:b]))
        keep[a + order[size:]] = False
    rows = np.repeat(np.arange(XT.shape[0]), df)[keep]
    return sp.csr_matrix((XT.data[keep], (rows, XT.indices[keep])), shape=XT.shape, dtype=np.float32)


def _save_csr(prefix, m):
    for part in ("data", "indices", "indptr"):
        _save(f"{prefix}.{part}.npy", getattr(m, part))
    _save(f"{prefix}.shape.npy", np.asarray(m.shape, dtype=np.int64))


def _load_csr(prefix):
    import scipy.sparse as sp
    parts = [np.load(f"{prefix}.{p}.npy", mmap_mode="r") for p in ("data", "indices", "indptr")]
    shape = tuple(int(x) for x in np.load(f"{prefix}.shape.npy"))
    return sp.csr_matrix(tuple(parts), shape=shape, copy=False)


# --------------------------------------------------------------- search
def default_champions(num_captions):
    """Champion list size that keeps recall@30 >= 0.99 on the benchmark corpus
    (see the module doc): a fixed share of the corpus, at least 1000."""
    return max(CHAMPIONS_MIN, -(-num_captions * CHAMPIONS_PER_MILLE // 1000))


def load_champions(directory):
    """The champion index of :func:`build_index`: ``(CT, CR)``, the
    champion lists and the rows of their postings' captions."""
    return _load_csr(os.path.join(directory, "CT")), _load_csr(os.path.join(directory, "CR"))


def search(q0, q1, X, XT, CT, image, hashes, first, k, chunk=256, pruned=None):
    """Neighbours of queries ``q0..q1-1``: a list of (positions, scores) per
    query, best first, filtered as the module doc says. ``CT`` is None for
    exact or pruned search, else the champion index of :func:`load_champions`;
    ``pruned`` is the index of :func:`load_pruned` for pruned search."""
    pos, val, cnt = search_arrays(q0, q1, X, XT, CT, image, hashes, first, k, chunk, pruned)[:3]
    return [(pos[i, :cnt[i]].tolist(), val[i, :cnt[i]].tolist()) for i in range(q1 - q0)]


def search_arrays(q0, q1, X, XT, CT, image, hashes, first, k, chunk=256, pruned=None):
    """:func:`search` as arrays: positions ``(n, k)`` int64, scores ``(n, k)``
    float32, the count found per query (rows are valid up to it) and the
    captions scored (pruned search only, else None)."""
    from data_prep.rewrite import tfidf_kernels as kern
    n = q1 - q0
    pos, val, cnt = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32), np.zeros(n, np.int64)
    image, hashes, first = np.asarray(image), np.asarray(hashes), np.asarray(first)
    if pruned is not None:  # exact, reading only the postings that can matter, in one compiled loop
        A, scored, (P, PW, PS, R) = np.asarray, np.zeros(n, np.int64), pruned
        kern.pruned_topk(q0, q1, A(X.indptr), A(X.indices), A(X.data), A(P.indptr), A(P.indices), A(P.data),
                         A(PW), A(PS), A(R.indptr), A(R.indices), A(R.data), X.shape[1], image, hashes, first, k,
                         PRUNE_MARGIN, pos, val, cnt, scored)
        return pos, val, cnt, scored
    if CT is not None:  # candidates from champion lists, each scored exactly, all in one compiled loop
        A, (C, R) = np.asarray, CT
        kern.champion_topk(q0, q1, A(X.indptr), A(X.indices), A(X.data), A(C.indptr), A(C.indices),
                           A(R.indptr), A(R.indices), A(R.data), X.shape[1], image, hashes, first, k,
                           pos, val, cnt)
        return pos, val, cnt, None
    for c0 in range(q0, q1, chunk):  # every caption sharing a term, scored by the sparse product itself
        c1 = min(q1, c0 + chunk)
        S = (X[c0:c1] @ XT).tocsr()
        i0, i1 = c0 - q0, c1 - q0
        kern.select_rows(c0, S.indptr, S.indices, S.data.astype(np.float32), image, hashes, first, k,
                         pos[i0:i1], val[i0:i1], cnt[i0:i1])
    return pos, val, cnt, None


# ------------------------------------------------------- output JSON
# Every caption is some query's neighbour about k times, so its negative
# entry is serialised once, when the index is built, into NEG_FRAGMENTS
# (one JSON object per caption, mapped by all workers); a shard's records
# are then byte joins, the same bytes vlcore.formats.rewrites.dumps gives.
NEG_FRAGMENTS = "tfidf_neg"


def write_neg_fragments(directory, texts):
    """``{"text":...,"kind":"tfidf","source":"<id>#<k>"}`` of every caption."""
    store = CaptionStore(directory)
    rec = np.load(os.path.join(directory, "cap_record.npy")).tolist()
    ks = np.load(os.path.join(directory, "cap_k.npy")).tolist()
    rids = _all_strings(store.rids)
    _Strings(directory, NEG_FRAGMENTS).write(
        f'{{"text":{_js(t)},"kind":"tfidf","source":{_js(f"{rids[r]}#{k}")}}}' for t, r, k in zip(texts, rec, ks))


def _js(text):
    return json.dumps(text, ensure_ascii=False)


def _all_strings(strings):
    with open(strings.bin, "rb") as f:
        data = f.read()
    offs = np.load(strings.idx).tolist()
    return [data[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:])]


class _MappedStrings:
    """Byte slices of a :class:`textstore._Strings` file (plain ``mmap``:
    slicing it is ~10x cheaper than ``np.memmap``)."""

    def __init__(self, strings):
        import mmap
        self.offsets = np.load(strings.idx, mmap_mode="r")
        self.size = int(self.offsets[-1])
        with open(strings.bin, "rb") as f:
            self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""

    def many(self, positions):
        """Bytes of the strings at ``positions`` (an integer array)."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, ends = self.offsets[positions].tolist(), self.offsets[positions + 1].tolist()
        data = self.data
        return [data[a:b] for a, b in zip(starts, ends)]


# ------------------------------------------------------- shard workers
def _init(out_dir, k, method):
    idx = os.path.join(out_dir, "_index")
    store = CaptionStore(idx).open()
    with open(os.path.join(out_dir, f"{NAME}.layout.json"), encoding="utf-8") as f:
        bounds = json.load(f)["record_bounds"]
    _S.update(out_dir=out_dir, k=k, store=store, bounds=bounds, X=_load_csr(os.path.join(idx, "X")),
              XT=_load_csr(os.path.join(idx, "XT")),
              CT=load_champions(idx) if method == "champion" else None,
              pruned=load_pruned(idx) if method == "pruned" else None,
              neg=_MappedStrings(_Strings(idx, NEG_FRAGMENTS)), texts=_MappedStrings(store.texts),
              rids=_MappedStrings(store.rids))


def _work(shard):
    s, bounds = _S["store"], _S["bounds"]
    q0, q1 = int(s.first[bounds[shard]]), int(s.first[bounds[shard + 1]])
    t0 = time.process_time()  # CPU seconds per stage: the machine is shared, wall time lies
    pos, _, cnt, scored = search_arrays(q0, q1, _S["X"], _S["XT"], _S["CT"], s.record, s.hash, s.first, _S["k"],
                                        pruned=_S["pruned"])
    t1 = time.process_time()
    k, cnt_l = _S["k"], cnt.tolist()
    frags = _S["neg"].many(pos.ravel())
    texts = _S["texts"].many(np.arange(q0, q1))
    rec = np.asarray(s.record[q0:q1])
    rids = _S["rids"].many(rec)
    ks = s.k[q0:q1].tolist()
    lines = []
    for i in range(q1 - q0):
        rid = rids[i].decode("utf-8")
        head = (f'{{"caption_id":{_js(f"{rid}#{ks[i]}")},"image_id":{_js(rid)},'
                f'"caption":{_js(texts[i].decode("utf-8"))},"positives":[],"negatives":[')
        lines.append(head.encode("utf-8") + b",".join(frags[i * k:i * k + cnt_l[i]]) + b"]}\n")
    path = os.path.join(_S["out_dir"], shard_name(NAME, shard, len(bounds) - 1))
    with atomic_open(path, "wb") as f:
        f.write(b"".join(lines))
    return {"captions": q1 - q0, "negatives": int(cnt.sum()), "scored": 0 if scored is None else int(scored.sum()),
            "cpu_search": t1 - t0, "cpu_write": time.process_time() - t1}


# ---------------------------------------------------------------- recall
def measure_recall(out_dir, k, n, seed=0, method="champion"):
    """``method`` (champion or pruned) vs exact search on ``n`` sampled
    queries: recall@k, the tie-aware version (a returned neighbour scoring at
    least the exact k-th score counts as found) and the share of queries
    whose neighbours and float32 scores are identical to exact search's."""
    idx = os.path.join(out_dir, "_index")
    s = CaptionStore(idx).open()
    X, XT = _load_csr(os.path.join(idx, "X")), _load_csr(os.path.join(idx, "XT"))
    CT = load_champions(idx) if method == "champion" else None
    pruned = load_pruned(idx) if method == "pruned" else None
    qs = np.sort(np.random.default_rng(seed).choice(len(s), size=min(n, len(s)), replace=False))
    hits = tie_hits = total = same = 0
    t0 = time.time()
    for q in qs:
        exact_pos, exact_val = search(q, q + 1, X, XT, None, s.record, s.hash, s.first, k)[0]
        approx_pos, approx_val = search(q, q + 1, X, XT, CT, s.record, s.hash, s.first, k, pruned=pruned)[0]
        total += len(exact_pos)
        hits += len(set(exact_pos) & set(approx_pos))
        same += (exact_pos, exact_val) == (approx_pos, approx_val)
        if exact_val:
            tie_hits += min(len(exact_pos), sum(v >= exact_val[-1] - 1e-6 for v in approx_val))
    return {"method": method, "queries": int(len(qs)), "k": k, "recall": hits / max(1, total),
            "recall_tie_aware": tie_hits / max(1, total), "identical_queries": same / max(1, len(qs)),
            "seconds": round(time.time() - t0, 2)}


# ------------------------------------------------------------------- CLI
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.rewrite.tfidf", description=__doc__.split("\n")[0])
    add_input_args(ap)
    ap.add_argument("--k", type=int, default=30, help="negatives per caption")
    ap.add_argument("--method", choices=("auto", "exact", "pruned", "champion"), default="auto")
    ap.add_argument("--champions", type=int, default=None,
                    help="postings kept per term (champion); default 0.3%% of the captions, at least 1000")
    ap.add_argument("--keep-stop-words", action="store_true")
    ap.add_argument("--min-df", type=int, default=1)
    ap.add_argument("--measure-recall", type=int, default=0, metavar="N",
                    help="after a champion or pruned run, compare with exact search on N sampled queries")
    add_part_args(ap)
    args = ap.parse_args(argv)
    return run_cli(run, args, (JobError, ValueError, OSError, PartError))


def run(args):
    t0 = time.time()
    index = CaptionIndex(args.pairs, strict=args.strict)
    method = args.method
    if method == "auto":
        method = "pruned"
    layout = {"input": index.fingerprint(), "shard_size": args.shard_size, "k": args.k, "method": method,
              "champions": (args.champions or default_champions(index.num_captions)) if method == "champion" else None,
              "keep_stop_words": args.keep_stop_words, "min_df": args.min_df,
              "record_bounds": index.record_bounds(args.shard_size)}
    part = args_part(args)
    check_layout(args.out, NAME, layout, force=args.force, part=part)
    idx = os.path.join(args.out, "_index")
    done_flag = os.path.join(idx, "done.json")
    params = {k: layout[k] for k in ("input", "champions", "keep_stop_words", "min_df")}
    params["index_version"] = INDEX_VERSION
    if part.index > 0:  # the index is built once, by rank 0 (or shard 0/N); the other parts wait for it
        wait_until(lambda: [] if stage_is_current(done_flag, "params", params) else [done_flag], part,
                   "the TF-IDF index (built by rank 0 / shard 0)")
    elif not stage_is_current(done_flag, "params", params):
        # (re)fit whole: never there, interrupted, or made with other settings
        texts = CaptionStore(idx).build(index)
        shape = build_index(texts, idx, args.keep_stop_words, args.min_df, params["champions"])
        write_neg_fragments(idx, texts)
        del texts
        with atomic_open(done_flag) as f:
            json.dump({"params": params, "captions": shape[0], "terms": shape[1]}, f)
        print(f"tfidf: index of {shape[0]} captions x {shape[1]} terms in {time.time() - t0:.1f} s")
    t_index = time.time() - t0
    n_shards = len(layout["record_bounds"]) - 1
    stats = run_shards(args.out, NAME, n_shards, spec_of(_work), init=spec_of(_init),
                       init_args=(args.out, args.k, method), workers=args.workers, desc="tfidf", part=part)
    rate = stats.get("captions", 0) / max(stats["seconds"], 1e-9)
    print(f"tfidf ({method}): {part.prefix}{stats.get('captions', 0)} captions, {stats.get('negatives', 0)} negatives "
          f"in {stats['shards_run']} shards, {stats['seconds']:.1f} s ({rate:.0f} captions/s); "
          f"total {time.time() - t0:.1f} s; skipped records: {index.skipped}")
    if stats.get("captions"):
        print(f"tfidf: CPU seconds in the shard workers: search {stats['cpu_search']:.1f}, "
              f"records and JSON {stats['cpu_write']:.1f}")
    if not part.finishes:
        print(f"tfidf: {part}: done; the shards are the output (nothing to finish)")
        return stats
    with atomic_open(os.path.join(args.out, f"{NAME}.stats.json")) as f:  # this run's figures (bench_tfidf.py)
        json.dump({**stats, "method": method, "index_seconds": round(t_index, 1), "part": str(part)}, f, indent=1)
    if args.measure_recall and method in ("champion", "pruned"):
        rec = measure_recall(args.out, args.k, args.measure_recall, method=method)
        with atomic_open(os.path.join(args.out, f"{NAME}.recall.json")) as f:
            json.dump(rec, f, indent=1)
        print(f"tfidf: {method} recall@{args.k} vs exact on {rec['queries']} queries: "
              f"{rec['recall']:.4f} (tie-aware {rec['recall_tie_aware']:.4f}; identical lists and scores "
              f"for {rec['identical_queries']:.1%} of the queries)")
    return stats


if __name__ == "__main__":
    sys.exit(main())
