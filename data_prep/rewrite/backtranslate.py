"""Back-translated positives (UNIMO Section 3.1: "each caption is translated
into another language and back", two positives per image-text pair).

    python -m data_prep.rewrite.backtranslate --pairs pairs.jsonl --out rw/bt
        --forward paddle:mt/en-de --backward paddle:mt/de-en
        [--positives 2] [--pivots 2] [--nbest 4] [--mode beam|sample]
        [--beam-size 4] [--topk 0] [--temperature 1.0] [--max-len 64] [--min-len 1]
        [--length-penalty 0.0] [--batch-size 32] [--seed 0]
        [--shard-size 50000] [--workers 2] [--shard i/N] [--wait-timeout SECONDS]

Each caption goes source -> pivot (``--pivots`` best pivots, by beam search
or sampling) -> source (``--nbest`` per pivot). The round-trip candidates
are taken pivot by pivot in rank order (1st of every pivot, then 2nd, ...),
so the positives come from different pivots when there are several; a
candidate equal to the caption (after ``normalize_text``) or to an earlier
candidate is dropped, and the first ``--positives`` remain, kind ``bt``.

Translators (``--forward``/``--backward``): ``paddle:DIR``, ``ct2:DIR`` or
``file:PATH``, see :mod:`data_prep.rewrite.translators`. Without
``--forward``, ``--backward`` receives the captions themselves (e.g. a file
of round-trip paraphrases made elsewhere).

Shards ``bt-NNNNN-of-NNNNN.jsonl`` in ``--out`` (the rewrites format), one
per ``--shard-size`` captions, written atomically: a re-run skips finished
shards. Sampling uses ``--seed`` plus the shard index, so results do not
depend on ``--workers`` or on how the job is split: under
``python -m paddle.distributed.launch`` / ``fleetrun`` each rank writes its
shards (rank 0 returns when all are there); ``--shard i/N`` writes one part
(:mod:`data_prep.job_part`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from data_prep.cli import run_cli
from data_prep.job_part import PartError, add_part_args, args_part
from data_prep.rewrite.captions import CaptionIndex, add_input_args
from data_prep.rewrite.translators import TranslatorError, build_translator, parse_spec
from data_prep.shards import JobError, check_layout, run_shards, spec_of
from vlcore.formats.rewrites import make_record, write_rewrites
from vlcore.formats.sharded import shard_name

NAME = "bt"
DECODE_KEYS = ("mode", "beam_size", "max_len", "min_len", "length_penalty", "topk", "temperature", "batch_size", "seed")
_S: dict = {}


def round_trip(texts, forward, backward, pivots=1, nbest=2):
    """For each text, the back-translations in the order the positives are
    picked (see module doc); no de-duplication yet."""
    uniq = list(dict.fromkeys(texts))
    if forward is None:
        piv = {t: [t] for t in uniq}
    else:
        res = forward.translate(uniq, pivots)
        piv = {t: [p for p, _ in hyps] for t, hyps in zip(uniq, res)}
    pivot_texts = list(dict.fromkeys(p for t in uniq for p in piv[t]))
    back = dict(zip(pivot_texts, backward.translate(pivot_texts, nbest))) if pivot_texts else {}
    out = {}
    for t in uniq:
        ranked = [[h for h, _ in back[p]] for p in piv[t]]
        out[t] = [r[j] for j in range(nbest) for r in ranked if j < len(r)]
    return [out[t] for t in texts]


def _init(pairs, out_dir, forward, backward, decode, positives, pivots, nbest):
    import json
    with open(os.path.join(out_dir, f"{NAME}.layout.json"), encoding="utf-8") as f:
        bounds = json.load(f)["record_bounds"]
    _S.update(index=CaptionIndex(pairs, log=lambda m: None), out=out_dir, bounds=bounds, decode=decode,
              positives=positives, pivots=pivots, nbest=nbest,
              forward=build_translator(forward, **decode) if forward else None,
              backward=build_translator(backward, **decode))


def _reseed(translator, seed):
    if translator is None:
        return
    if hasattr(translator, "rng"):
        import numpy as np
        translator.rng = np.random.default_rng(seed)
    elif hasattr(translator, "tr"):
        import ctranslate2
        ctranslate2.set_random_seed(seed)


def _work(shard):
    b = _S["bounds"]
    for tr in (_S["forward"], _S["backward"]):
        _reseed(tr, _S["decode"]["seed"] * 100003 + shard)  # same samples whatever the worker count
    missing0 = sum(getattr(t, "missing", 0) for t in (_S["forward"], _S["backward"]) if t)
    caps = list(_S["index"].captions(b[shard], b[shard + 1]))
    cands = round_trip([c[2] for c in caps], _S["forward"], _S["backward"], _S["pivots"], _S["nbest"])
    records, stats = [], {"captions": len(caps), "positives": 0, "without_positives": 0, "candidates": 0}
    for (cid, _, text), cand in zip(caps, cands):
        rec = make_record(cid, text, positives=[{"text": c, "kind": "bt"} for c in cand])
        rec["positives"] = rec["positives"][:_S["positives"]]
        stats["candidates"] += len(cand)
        stats["positives"] += len(rec["positives"])
        stats["without_positives"] += not rec["positives"]
        records.append(rec)
    write_rewrites(os.path.join(_S["out"], shard_name(NAME, shard, len(b) - 1)), records)
    missing = sum(getattr(t, "missing", 0) for t in (_S["forward"], _S["backward"]) if t)
    stats["missing_translations"] = missing - missing0
    return stats


def _translator_fingerprint(spec):
    kind, path = parse_spec(spec)
    path = os.path.abspath(path)
    files = [path] if os.path.isfile(path) else [os.path.join(path, f) for f in sorted(os.listdir(path))]
    return {"kind": kind, "path": path,
            "files": {os.path.basename(f): os.stat(f).st_size for f in files if os.path.isfile(f)}}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.rewrite.backtranslate",
                                 description=__doc__.split("\n")[0])
    add_input_args(ap)
    ap.add_argument("--forward", help="source -> pivot translator (paddle:DIR, ct2:DIR, file:PATH)")
    ap.add_argument("--backward", required=True, help="pivot -> source translator")
    ap.add_argument("--positives", type=int, default=2, help="positives kept per caption (paper: 2)")
    ap.add_argument("--pivots", type=int, default=2, help="pivot translations per caption")
    ap.add_argument("--nbest", type=int, default=2, help="back-translations per pivot")
    ap.add_argument("--mode", choices=("beam", "sample"), default="beam")
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--topk", type=int, default=0, help="sampling: keep the k likeliest tokens (0: all)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-len", type=int, default=64, help="tokens per translation")
    ap.add_argument("--min-len", type=int, default=1, help="tokens before </s> may end a translation")
    ap.add_argument("--length-penalty", type=float, default=0.0, help="scores / length ** this")
    ap.add_argument("--batch-size", type=int, default=32, help="sentences per decoder batch")
    ap.add_argument("--seed", type=int, default=0)
    add_part_args(ap)
    args = ap.parse_args(argv)
    return run_cli(run, args, (JobError, PartError, TranslatorError, ValueError, OSError))


def run(args):
    t0 = time.time()
    part = args_part(args)
    for name in ("positives", "pivots", "nbest", "beam_size", "max_len", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    decode = {k: getattr(args, k) for k in DECODE_KEYS}
    specs = [s for s in (args.forward, args.backward) if s]
    for s in specs:  # fail here, with the reason, rather than in every worker
        build_translator(s, **decode)
    index = CaptionIndex(args.pairs, strict=args.strict)
    layout = {"input": index.fingerprint(), "shard_size": args.shard_size,
              "forward": _translator_fingerprint(args.forward) if args.forward else None,
              "backward": _translator_fingerprint(args.backward), "decode": decode,
              "positives": args.positives, "pivots": args.pivots, "nbest": args.nbest,
              "record_bounds": index.record_bounds(args.shard_size)}
    check_layout(args.out, NAME, layout, force=args.force, part=part)
    n = len(layout["record_bounds"]) - 1
    st = run_shards(args.out, NAME, n, spec_of(_work), init=spec_of(_init),
                    init_args=(args.pairs, args.out, args.forward, args.backward, decode, args.positives,
                               args.pivots, args.nbest),
                    workers=args.workers, desc="backtranslate", part=part)
    caps = st.get("captions", 0)
    print(f"backtranslate: {part.prefix}{caps} captions, {st.get('positives', 0)} positives "
          f"({st.get('without_positives', 0)} captions without any; {st.get('candidates', 0)} round-trip "
          f"candidates before de-duplication; {st.get('missing_translations', 0)} texts missing from "
          f"translation files) in {st['shards_run']} shards, {st['seconds']:.1f} s "
          f"({caps / max(st['seconds'], 1e-9):.1f} captions/s); total {time.time() - t0:.1f} s; "
          f"skipped records: {index.skipped}")
    return st


if __name__ == "__main__":
    sys.exit(main())
