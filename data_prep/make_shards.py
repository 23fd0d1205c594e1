"""Write a manifest and its image files as webdataset tar shards, the
layout training reads as a corpus (:mod:`vlcore.data.shard_records`).

    python -m data_prep.make_shards --manifest pairs_train.jsonl --kind pairs --out shards/cc \\
        [--shard-size 10000] [--workers 2] [--force] [--shard i/N] [--wait-timeout SECONDS]

Record ``i`` of the manifest goes to shard ``i // shard_size`` as the
members ``{key}.{ext}`` (the image file's bytes as they are; the extension is
the file's, ``.jpeg`` written ``.jpg``), ``{key}.json`` (``id`` and
``captions`` or ``label``) and, for pairs, ``{key}.txt`` (the first caption,
what CLIP-style readers of img2dataset's shards take). Keys are the global
record number, zero-padded to 9 digits: no dots (webdataset cuts the key at
the first dot). Member order, names, times and owners are fixed, so the same
input gives byte-identical shards.

Shards are ``shards-00000-of-00012.tar`` (point a corpus's ``path`` at the
directory) and are written atomically, one per worker task: a killed run
continues with the shards that are missing (:mod:`data_prep.shards`).
``shards.json`` (written last) has the counts and the corpus entry to use.
Under ``python -m paddle.distributed.launch`` / ``fleetrun`` each rank
writes its shards and rank 0 writes ``shards.json`` once all are there;
``--shard i/N`` writes one part and stops (the command without ``--shard``
then writes ``shards.json``). See :mod:`data_prep.job_part`.

Bad input: a record that is malformed or whose image file is missing or
empty is reported (file and line) and left out; ``--strict`` stops at the
first one. A pairs record needs ``image`` and a non-empty ``captions`` list
(or string); labelled needs ``label``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile

from data_prep.cli import run_cli
from data_prep.job_part import SINGLE, PartError, add_part_args, args_part
from data_prep.shards import JobError, check_layout, run_shards, spec_of
from vlcore.formats.records import JsonlFile, RecordError
from vlcore.formats.sharded import atomic_open, atomic_path, shard_name

NAME = "shards"
SUMMARY = "shards.json"
_S: dict = {}


class StrictStop(ValueError):
    """--strict: the first bad record (a ValueError, so it is one line also
    when it comes from this module imported under its package name while the
    command runs as ``__main__``)."""


def _init(manifest, kind, out_dir, shard_size, num_shards, strict):
    _S.update(records=JsonlFile(manifest), kind=kind, out_dir=out_dir, shard_size=shard_size,
              num_shards=num_shards, strict=strict, root=os.path.dirname(os.path.abspath(manifest)))


def _sample(i):
    """``(members [(name suffix, bytes)], problem)`` of record ``i``."""
    records, kind = _S["records"], _S["kind"]
    where = records.where(i)
    try:
        rec = records[i]
    except RecordError as e:
        return None, str(e)
    image = rec.get("image")
    if not isinstance(image, str) or not image:
        return None, f"{where}: no 'image' path"
    path = image if os.path.isabs(image) else os.path.join(_S["root"], image)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, f"{where}: image {path}: {e.strerror}"
    if not data:
        return None, f"{where}: image {path} is empty"
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "jpg"
    ext = "jpg" if ext == "jpeg" else ext
    meta = {"id": rec.get("id", str(i))}
    members = [(ext, data)]
    if kind == "pairs":
        caps = rec.get("captions")
        caps = [caps] if isinstance(caps, str) else caps
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            return None, f"{where}: 'captions' must be a non-empty list of non-empty strings"
        meta["captions"] = caps
        members.append(("txt", caps[0].encode("utf-8")))
    elif kind == "labelled":
        label = rec.get("label")
        if not isinstance(label, str) or not label.strip():
            return None, f"{where}: 'label' must be a non-empty string"
        meta["label"] = label
    members.append(("json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")))
    return members, None


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444  # fixed: the same input, the same bytes
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _work(index):
    start = index * _S["shard_size"]
    stop = min(start + _S["shard_size"], len(_S["records"]))
    bad, written = [], 0
    path = os.path.join(_S["out_dir"], shard_name(NAME, index, _S["num_shards"], "tar"))
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, stop):
                members, problem = _sample(i)
                if problem:
                    if _S["strict"]:
                        raise StrictStop(problem)
                    bad.append(problem)
                    continue
                for ext, data in members:
                    _add(tar, f"{i:09d}.{ext}", data)
                written += 1
    return {"records": stop - start, "samples": written, "bad": len(bad), "bad_examples": bad[:3]}


def convert(manifest, kind, out_dir, shard_size=10000, workers=1, strict=False, force=False, log=print,
            part=SINGLE):
    """Write the shards (the missing ones of ``part``) and, if ``part``
    finishes the job, ``shards.json``; returns it (None for other parts)."""
    if kind not in ("pairs", "labelled", "images"):
        raise ValueError(f"--kind {kind}: one of pairs, labelled, images")
    if shard_size < 1:
        raise ValueError("--shard-size must be at least 1")
    records = JsonlFile(manifest)  # FileNotFoundError names it
    num_shards = max(1, -(-len(records) // shard_size))
    st = os.stat(manifest)
    check_layout(out_dir, NAME, {"manifest": os.path.abspath(manifest), "size": st.st_size,
                                 "mtime_ns": st.st_mtime_ns, "kind": kind, "shard_size": shard_size,
                                 "num_shards": num_shards}, force, part=part, log=log)
    if force and part.finishes and os.path.exists(os.path.join(out_dir, SUMMARY)):
        os.remove(os.path.join(out_dir, SUMMARY))
    init_args = (manifest, kind, out_dir, shard_size, num_shards, strict)
    totals = run_shards(out_dir, NAME, num_shards, spec_of(_work), ext="tar", init=spec_of(_init),
                        init_args=init_args, workers=workers, desc="shards", log=log, part=part)
    examples = totals.pop("bad_examples", [])[:5]
    if not part.finishes:
        for e in examples:
            log(f"left out: {e}")
        log(f"{out_dir}: {part}: {totals.get('shards_run', 0)} shards written now ({totals.get('samples', 0)} "
            f"samples, {totals.get('bad', 0)} bad records left out); {part.finisher} writes {SUMMARY}")
        return None
    summary_path = os.path.join(out_dir, SUMMARY)
    previous = {}
    if os.path.isfile(summary_path):  # shards done by an earlier, killed run
        with open(summary_path, encoding="utf-8") as f:
            previous = json.load(f)
    pattern = os.path.join(out_dir, f"{NAME}-{{00000..{num_shards - 1:05d}}}-of-{num_shards:05d}.tar")
    summary = {"source": os.path.abspath(manifest), "kind": kind, "shards": num_shards, "shard_size": shard_size,
               "records": len(records), "this_run": {k: totals.get(k, 0) for k in ("samples", "bad", "shards_run")},
               "bad_examples": examples or previous.get("bad_examples", []),
               "corpus": {"kind": kind, "path": pattern}}
    with atomic_open(summary_path) as f:
        json.dump(summary, f, indent=1)
    for e in examples:
        log(f"left out: {e}")
    log(f"{out_dir}: {num_shards} shards of up to {shard_size} samples ({totals.get('shards_run', 0)} written now, "
        f"{totals.get('samples', 0)} samples, {totals.get('bad', 0)} bad records left out); corpus path: {pattern}")
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m data_prep.make_shards", description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True, help="JSONL manifest (pairs, labelled or images)")
    p.add_argument("--kind", default="pairs", choices=("pairs", "labelled", "images"))
    p.add_argument("--out", required=True, help="output directory of the shards")
    p.add_argument("--shard-size", type=int, default=10000, help="samples per shard (img2dataset's default)")
    p.add_argument("--workers", type=int, default=1, help="processes writing shards in parallel")
    p.add_argument("--strict", action="store_true", help="stop at the first bad record")
    p.add_argument("--force", action="store_true", help="replace the shards of a different job in --out")
    add_part_args(p)
    args = p.parse_args(argv)
    return run_cli(lambda a: convert(a.manifest, a.kind, a.out, a.shard_size, a.workers, a.strict, a.force,
                                     part=args_part(a)),
                   args, (ValueError, FileNotFoundError, JobError, PartError, StrictStop, OSError))


if __name__ == "__main__":
    sys.exit(main())
