"""Join the outputs of the rewriting tools into the final CMCL rewrites.

    python -m data_prep.rewrite.merge --pairs pairs.jsonl --inputs rw/bt rw/tfidf rw/sg
        --out rw/final [--max-positives 2] [--max-negatives 100]
        [--cap tfidf=50 --cap sg-object=20 ...] [--workers 2]

Every input is an output directory of ``backtranslate``, ``tfidf`` or
``scene_graph`` (its ``<tool>.layout.json`` says which), all run on the same
manifests with the same ``--shard-size``, so shard ``i`` of each covers the
same records and the merge is shard by shard (parallel, resumable, constant
memory). The output has one record per caption of the manifests, in
manifest order, in ``rewrites-NNNNN-of-NNNNN.jsonl`` (the format of
:mod:`vlcore.formats.rewrites`).

Checks: each input's captions must be captions of the manifest with the
same text (else the error names the input file and line: rewrites of an
edited manifest are not mixed in), each caption id at most once per input.
De-duplication across inputs: a text equal to the caption or to a text
already kept is dropped, positives first (a back-translation that happens to
equal a retrieved caption stays a positive, not a negative).

Caps (UNIMO Section 3.1: two back-translated positives, up to 100 hard
negatives): at most ``--max-positives`` positives; each negative kind keeps
at most its ``--cap`` (in the order its tool wrote them: TF-IDF by
similarity); then kinds are interleaved round-robin (tfidf, sg-object,
sg-attribute, sg-relation, ...) up to ``--max-negatives``, so a reader taking
the first N negatives gets a mix of kinds. Totals are printed and written to
``merge.stats.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from data_prep.cli import run_cli
from data_prep.rewrite.captions import CaptionIndex, add_input_args
from data_prep.shards import JobError, check_layout, run_shards, spec_of
from vlcore.formats.rewrites import (
    NEGATIVE_KINDS,
    POSITIVE_KINDS,
    RewriteFormatError,
    RewriteMerger,
    iter_rewrites,
    write_rewrites,
)
from vlcore.formats.sharded import atomic_open, list_shards, shard_name

NAME = "rewrites"
TOOLS = ("bt", "tfidf", "sg")  # layout names of the tools, in merge priority (positives first)
_S: dict = {}


def find_tool(directory):
    """The tool name of a rewriting output directory, from its layout file."""
    if not os.path.isdir(directory):
        raise JobError(f"{directory}: no such directory")
    names = [t for t in TOOLS if os.path.isfile(os.path.join(directory, f"{t}.layout.json"))]
    if len(names) != 1:
        raise JobError(f"{directory}: expected the output directory of one rewriting tool "
                       f"(one of {', '.join(t + '.layout.json' for t in TOOLS)}), found {names or 'none'}")
    return names[0]


def select(rec, max_positives, max_negatives, caps):
    """Apply the caps to a merged record (see module doc); returns the new
    record and the number of texts the caps removed."""
    by_kind: dict[str, list] = {}
    for n in rec["negatives"]:
        by_kind.setdefault(n["kind"], []).append(n)
    kinds = [k for k in NEGATIVE_KINDS if k in by_kind]
    queues = [by_kind[k][:caps.get(k, max_negatives)] for k in kinds]
    negatives, depth = [], 0
    while len(negatives) < max_negatives and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(negatives) < max_negatives:
                negatives.append(q[depth])
        depth += 1
    positives = rec["positives"][:max_positives]
    cut = len(rec["positives"]) - len(positives) + len(rec["negatives"]) - len(negatives)
    return {**rec, "positives": positives, "negatives": negatives}, cut


def _init(pairs, out_dir, inputs, max_positives, max_negatives, caps):
    with open(os.path.join(out_dir, f"{NAME}.layout.json"), encoding="utf-8") as f:
        bounds = json.load(f)["record_bounds"]
    _S.update(index=CaptionIndex(pairs, log=lambda m: None), out=out_dir, bounds=bounds, inputs=inputs,
              max_positives=max_positives, max_negatives=max_negatives, caps=caps)


def _work(shard):
    b, total = _S["bounds"], len(_S["bounds"]) - 1
    merger = RewriteMerger()
    manifest = {}
    for cid, iid, text in _S["index"].captions(b[shard], b[shard + 1]):
        manifest[cid] = text
        merger.add({"caption_id": cid, "image_id": iid, "caption": text, "positives": [], "negatives": []},
                   f"manifest caption {cid}", file_key="<manifest>")
    stats = {"captions": len(manifest)}
    for directory, tool in _S["inputs"]:
        path = os.path.join(directory, shard_name(tool, shard, total))
        seen = 0
        for rec, where in iter_rewrites(path):
            if rec["caption_id"] not in manifest:
                raise RewriteFormatError(f"{where}: caption id {rec['caption_id']!r} is not a caption of "
                                         f"manifest records {b[shard]}..{b[shard + 1] - 1} (shard {shard}); "
                                         f"was this input made from other manifests?")
            merger.add(rec, where, file_key=path)  # raises if the caption text differs
            seen += 1
        stats[f"missing_in_{tool}"] = len(manifest) - seen
    records, cut = [], 0
    for cid in manifest:
        rec, c = select(merger.records[cid], _S["max_positives"], _S["max_negatives"], _S["caps"])
        cut += c
        records.append(rec)
        for item in rec["positives"] + rec["negatives"]:
            stats[item["kind"]] = stats.get(item["kind"], 0) + 1
        stats["without_positives"] = stats.get("without_positives", 0) + (not rec["positives"])
        stats["without_negatives"] = stats.get("without_negatives", 0) + (not rec["negatives"])
    stats.update(duplicates_dropped=merger.dropped, capped=cut)
    with atomic_open(_stats_path(_S["out"], shard, total)) as f:  # before the shard: its existence = done
        json.dump(stats, f)
    write_rewrites(os.path.join(_S["out"], shard_name(NAME, shard, total)), records)
    return stats


def _stats_path(out_dir, shard, total):
    return os.path.join(out_dir, "_stats", shard_name(NAME, shard, total, "json"))


def parse_caps(items):
    caps = {}
    for item in items or []:
        kind, sep, num = item.partition("=")
        if not sep or kind not in NEGATIVE_KINDS or not num.isdigit():
            raise ValueError(f"--cap {item!r}: expected KIND=N with KIND one of {list(NEGATIVE_KINDS)}")
        caps[kind] = int(num)
    return caps


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.rewrite.merge", description=__doc__.split("\n")[0])
    add_input_args(ap)
    ap.set_defaults(shard_size=None)
    ap.add_argument("--inputs", nargs="+", required=True, help="output directories of the rewriting tools")
    ap.add_argument("--max-positives", type=int, default=2, help="positives per caption (paper: 2)")
    ap.add_argument("--max-negatives", type=int, default=100, help="negatives per caption (paper: up to 100)")
    ap.add_argument("--cap", action="append", metavar="KIND=N", help="most negatives of one kind (repeatable)")
    args = ap.parse_args(argv)
    return run_cli(run, args, (JobError, RewriteFormatError, ValueError, OSError))


def run(args):
    t0 = time.time()
    caps = parse_caps(args.cap)
    if args.max_positives < 0 or args.max_negatives < 0:
        raise ValueError("--max-positives and --max-negatives must be >= 0")
    inputs = sorted(((os.path.abspath(d), find_tool(d)) for d in args.inputs), key=lambda x: TOOLS.index(x[1]))
    index = CaptionIndex(args.pairs, strict=args.strict)
    bounds, sizes = None, set()
    for directory, tool in inputs:
        with open(os.path.join(directory, f"{tool}.layout.json"), encoding="utf-8") as f:
            layout = json.load(f)
        sizes.add(layout["shard_size"])
        mine = index.record_bounds(layout["shard_size"])
        if _record_bounds(directory, tool, layout) != mine or \
                [layout["input"][k] for k in ("records", "captions")] != [index.num_records, index.num_captions]:
            raise JobError(f"{directory}: its shards cover other records than --pairs gives "
                           f"(different manifests?); re-run the tool on these manifests")
        bounds = mine
        list_shards(directory, tool)  # all shards present (raises naming the first missing one)
    if len(sizes) != 1:
        raise JobError(f"inputs were made with different --shard-size values {sorted(sizes)}; "
                       f"re-run them with one value so their shards line up")
    if args.shard_size is not None and args.shard_size not in sizes:
        raise JobError(f"--shard-size {args.shard_size} differs from the inputs' {sizes.pop()}")
    check_layout(args.out, NAME, {"input": index.fingerprint(), "inputs": [list(x) for x in inputs],
                                  "max_positives": args.max_positives, "max_negatives": args.max_negatives,
                                  "caps": caps, "record_bounds": bounds}, force=args.force)
    n = len(bounds) - 1
    st = run_shards(args.out, NAME, n, spec_of(_work), init=spec_of(_init),
                    init_args=(args.pairs, args.out, inputs, args.max_positives, args.max_negatives, caps),
                    workers=args.workers, desc="merge")
    if st["shards_run"] < n:  # a resumed run: the totals of all shards, not only of those it ran
        st = {**total_stats(args.out, n), "seconds": st["seconds"], "shards_run": st["shards_run"]}
    kinds = {k: st.get(k, 0) for k in (*POSITIVE_KINDS, *NEGATIVE_KINDS)}
    with atomic_open(os.path.join(args.out, "merge.stats.json")) as f:
        json.dump(st, f, indent=1)
    print(f"merge: {st.get('captions', 0)} captions from {len(inputs)} inputs "
          f"({', '.join(t for _, t in inputs)}); kept {kinds}; {st.get('without_positives', 0)} captions "
          f"without positives, {st.get('without_negatives', 0)} without negatives; "
          f"{st.get('duplicates_dropped', 0)} duplicate texts dropped, {st.get('capped', 0)} cut by the caps; "
          + "".join(f"{st[k]} captions missing in {k[11:]}; " for k in sorted(st) if k.startswith("missing_in_"))
          + f"total {time.time() - t0:.1f} s")
    return st


def _record_bounds(directory, tool, layout):
    """The record ranges of a tool's shards (scene_graph keeps them in the
    layout of its parse stage)."""
    if "record_bounds" in layout:
        return layout["record_bounds"]
    with open(os.path.join(directory, "_parsed", "sgparse.layout.json"), encoding="utf-8") as f:
        return json.load(f)["record_bounds"]


def total_stats(out_dir, n):
    """Sum of the per-shard totals each finished shard left in ``_stats/``."""
    st: dict = {}
    for i in range(n):
        with open(_stats_path(out_dir, i, n), encoding="utf-8") as f:
            for k, v in json.load(f).items():
                st[k] = st.get(k, 0) + v
    return st


if __name__ == "__main__":
    sys.exit(main())
