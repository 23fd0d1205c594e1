"""Tokenize a text corpus or a manifest once into token shards
(:mod:`vlcore.formats.token_shards`) that training streams instead of
tokenizing on the fly.

    python -m data_prep.tokenize_shards --text corpus.txt --tokenizer-dir DIR --out OUT
    python -m data_prep.tokenize_shards --manifest pairs.jsonl [--field captions] --tokenizer-dir DIR --out OUT
        [--shard-size 1000000] [--workers 2] [--batch-size 2000] [--force] [--strict]
        [--shard i/N] [--wait-timeout SECONDS]

The input is split into shards of ``--shard-size`` non-blank lines; each
worker process tokenizes whole shards with the Rust ``tokenizers`` batch
encoder (one thread per worker: the workers are the parallelism) and writes
them atomically, so a killed run continues with the missing shards
(:mod:`data_prep.shards`). ``OUT/tokens.index.json`` is written when all
shards exist; point a text corpus's ``path`` at it.

Under ``python -m paddle.distributed.launch`` / ``fleetrun`` each rank
tokenizes its shards and rank 0 writes the index once all are there;
``--shard i/N`` does one part and stops (run the command again without it to
write the index). See :mod:`data_prep.job_part`.

Bad input: a text line that is not UTF-8 is reported with file and line and
kept as an empty sequence (training skips it, like the raw line); a manifest
record that is malformed or lacks the field is reported and skipped. With
``--strict`` the first one stops the run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from data_prep.cli import run_cli
from data_prep.job_part import PartError, add_part_args, args_part
from data_prep.shards import JobError, check_layout, run_shards, spec_of
from vlcore.formats.records import LineFile, RecordError
from vlcore.formats.sharded import atomic_open, atomic_path, list_shards
from vlcore.formats.token_shards import FORMAT, INDEX, NAME, VERSION, shard_files, tokenizer_fingerprint

_S: dict = {}


class StrictStop(RuntimeError):
    pass


def _init(path, kind, field, tokenizer_dir, out_dir, shard_size, num_shards, batch_size, strict):
    from vlcore.text.tokenizer import load_tokenizer
    _S.update(lines=LineFile(path), kind=kind, field=field, tok=load_tokenizer(tokenizer_dir),
              out_dir=out_dir, shard_size=shard_size, num_shards=num_shards, batch_size=batch_size,
              strict=strict)


def _texts(start, stop, bad):
    """``(row, text)`` of rows ``start..stop-1``; ``text`` None for a bad row
    (kept in text corpora to hold the row's place)."""
    lines, kind, field = _S["lines"], _S["kind"], _S["field"]
    for i in range(start, stop):
        where = f"{lines.path}:{lines.line_number(i)}"
        try:
            line = lines[i]
        except RecordError as e:
            bad.append(str(e))
            if kind == "text":
                yield i, None
            continue
        if kind == "text":
            yield i, line
            continue
        try:
            rec = json.loads(line)
            value = rec[field]
        except (ValueError, KeyError, TypeError) as e:
            bad.append(f"{where}: no usable {field!r} ({type(e).__name__}: {e})")
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            bad.append(f"{where}: {field!r} must be a string or a list of strings")
            continue
        for v in values:
            yield i, v


def _work(shard):
    n_rows, size = len(_S["lines"]), _S["shard_size"]
    start, stop = shard * size, min(n_rows, (shard + 1) * size)
    bad: list = []
    rows, texts = [], []
    for row, text in _texts(start, stop, bad):
        rows.append(row)
        texts.append(text)
    if bad and _S["strict"]:
        raise StrictStop(bad[0])
    for msg in bad[:20]:
        print(f"tokenize_shards: bad row: {msg}", file=sys.stderr)
    if len(bad) > 20:
        print(f"tokenize_shards: ... {len(bad) - 20} more bad rows in shard {shard}", file=sys.stderr)
    tok, bs = _S["tok"], _S["batch_size"]
    lengths = np.zeros(len(texts), np.int64)
    chunks = []
    for b in range(0, len(texts), bs):
        batch = texts[b:b + bs]
        good = [j for j, t in enumerate(batch) if t is not None]
        encoded = tok.encode_batch([batch[j] for j in good])
        for j, ids in zip(good, encoded):
            lengths[b + j] = len(ids)
            chunks.append(np.asarray(ids, dtype=np.int32))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    names = shard_files(shard, _S["num_shards"])
    out = _S["out_dir"]
    # ids last: its existence marks the shard complete (run_shards checks it)
    parts = [("offsets", offsets)] + ([("rows", np.asarray(rows, np.int64))] if _S["kind"] == "manifest" else [])
    for part, array in parts + [("ids", ids)]:
        with atomic_path(os.path.join(out, names[part])) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    return {"rows": stop - start, "sequences": len(texts), "tokens": int(offsets[-1]),
            "chars": sum(len(t) for t in texts if t), "bad": len(bad)}


def write_index(out_dir, layout, num_shards):
    shards = []
    for i in range(num_shards):
        names = shard_files(i, num_shards)
        offsets = np.load(os.path.join(out_dir, names["offsets"]), mmap_mode="r")
        entry = {"ids": names["ids"], "offsets": names["offsets"], "sequences": len(offsets) - 1,
                 "tokens": int(offsets[-1])}
        if layout["source"]["kind"] == "manifest":
            entry["rows"] = names["rows"]
        shards.append(entry)
    index = {"format": FORMAT, "version": VERSION, "dtype": "int32", "source": layout["source"],
             "tokenizer": layout["tokenizer"], "shards": shards,
             "sequences": sum(s["sequences"] for s in shards), "tokens": sum(s["tokens"] for s in shards)}
    with atomic_open(os.path.join(out_dir, INDEX)) as f:
        json.dump(index, f, indent=1)
    return index


def run(args, log=print):
    from vlcore.text.tokenizer import load_tokenizer
    t0 = time.time()
    part = args_part(args)
    path = args.text or args.manifest
    kind = "text" if args.text else "manifest"
    lines = LineFile(path)  # builds (and caches) the byte offsets of the rows once
    n_rows = len(lines)
    if n_rows == 0:
        raise JobError(f"{path}: no non-blank lines")
    tok = load_tokenizer(args.tokenizer_dir)
    num_shards = max(1, -(-n_rows // args.shard_size))
    st = os.stat(path)
    source = {"kind": kind, "path": os.path.abspath(path), "field": args.field if kind == "manifest" else None,
              "rows": n_rows, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    layout = {"source": source, "tokenizer": tokenizer_fingerprint(tok), "shard_size": args.shard_size,
              "num_shards": num_shards}
    check_layout(args.out, NAME, layout, force=args.force, part=part, log=log)
    index_path = os.path.join(args.out, INDEX)
    if os.path.exists(index_path) and part.finishes:
        os.remove(index_path)  # never valid while shards are (re)written; rewritten below
    stats = run_shards(args.out, NAME, num_shards, spec_of(_work), ext="ids.npy", init=spec_of(_init),
                       init_args=(path, kind, args.field, args.tokenizer_dir, args.out, args.shard_size,
                                  num_shards, args.batch_size, args.strict),
                       workers=args.workers, desc="tokenize", log=log, part=part)
    secs = stats["seconds"]
    log(f"tokenize_shards: {part.prefix}{stats.get('sequences', 0)} sequences, {stats.get('tokens', 0)} tokens in "
        f"{stats['shards_run']} shards ({args.workers} workers), {secs:.1f} s: "
        f"{stats.get('tokens', 0) / max(secs, 1e-9):,.0f} tokens/s, "
        f"{stats.get('chars', 0) / max(secs, 1e-9) / 1e6:.2f} M chars/s")
    if not part.finishes:
        log(f"tokenize_shards: {part}: done; {part.finisher} writes {index_path}")
        return stats, None
    list_shards(args.out, NAME, ext="ids.npy")  # all there?
    index = write_index(args.out, layout, num_shards)
    log(f"tokenize_shards: bad rows {stats.get('bad', 0)}; index {index_path}: {index['sequences']} sequences, "
        f"{index['tokens']} tokens in {num_shards} shards; total {time.time() - t0:.1f} s")
    return stats, index


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.tokenize_shards", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text corpus, one sample per line")
    src.add_argument("--manifest", help="JSONL manifest; see --field")
    ap.add_argument("--field", default="captions", help="manifest field to tokenize (a string or a list of "
                                                      "strings; default captions)")
    ap.add_argument("--tokenizer-dir", required=True, help="the toolkit tokenizer (as Global.tokenizer_dir)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--shard-size", type=int, default=1_000_000, help="input lines per shard")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--batch-size", type=int, default=2000, help="texts per encode_batch call")
    ap.add_argument("--force", action="store_true", help="discard shards of a different earlier job in --out")
    ap.add_argument("--strict", action="store_true", help="stop at the first bad line")
    add_part_args(ap)
    args = ap.parse_args(argv)
    if args.shard_size < 1 or args.batch_size < 1 or args.workers < 1:
        ap.error("--shard-size, --batch-size and --workers must be >= 1")
    return run_cli(run, args, (JobError, PartError, StrictStop, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
