"""Turn img2dataset's webdataset output into a training corpus entry.

    python -m data_prep.from_img2dataset OUTPUT_DIR [--name cc3m] [--kind pairs] [--index] [--out corpus.yaml]

img2dataset (rom1504/img2dataset, README "output format" and ``writer.py`` /
``logger.py``) writes, per shard ``NNNNN``: ``NNNNN.tar`` (``{key}.jpg``,
``{key}.txt``, ``{key}.json``), ``NNNNN.parquet`` (the metadata of every
input row, failures included) and, when the shard is finished,
``NNNNN_stats.json`` (``count``, ``successes``, ``failed_to_download``,
``failed_to_resize``, ...). A ``.tar`` without its ``_stats.json`` is a shard
whose download was interrupted: it is left out and named (``--partial``
keeps it; the reader keeps the whole samples of a cut tar).

Prints (and with ``--out`` writes) the corpus entry for
``DataLoader.Train.corpora`` -- a brace pattern of the shards, a range when
they are consecutive -- with the counts in a comment. ``--index`` builds
each shard's member index now (cached beside it) so that the first
training step does not wait for it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from data_prep.cli import run_cli
from vlcore.formats.sharded import atomic_open
from vlcore.formats.tar_shards import ShardError, load_index

_SHARD = re.compile(r"^(\d+)\.tar$")


def shard_pattern(directory, ids, width):
    """A brace pattern of shard ids: ``{00000..00331}`` when consecutive, a
    list otherwise."""
    names = [f"{i:0{width}d}" for i in ids]
    if len(ids) == 1:
        return os.path.join(directory, f"{names[0]}.tar")
    if ids == list(range(ids[0], ids[-1] + 1)):
        return os.path.join(directory, f"{{{names[0]}..{names[-1]}}}.tar")
    return os.path.join(directory, "{" + ",".join(names) + "}.tar")


def scan(directory, partial=False):
    """``(ids, width, totals, left_out)`` of an img2dataset output directory."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    found = sorted((int(m.group(1)), len(m.group(1))) for m in map(_SHARD.match, os.listdir(directory)) if m)
    if not found:
        raise FileNotFoundError(f"{directory}: no NNNNN.tar shards (is it img2dataset's output with "
                                f"--output_format webdataset?)")
    widths = {w for _, w in found}
    if len(widths) > 1:
        raise ValueError(f"{directory}: shard names of different widths {sorted(widths)}: two jobs mixed?")
    totals, ids, left_out = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}, [], []
    width = widths.pop()
    for i, _ in found:
        stats_path = os.path.join(directory, f"{i:0{width}d}_stats.json")
        if not os.path.isfile(stats_path):
            left_out.append(f"{i:0{width}d}.tar")
            if not partial:
                continue
        else:
            try:
                with open(stats_path, encoding="utf-8") as f:
                    stats = json.load(f)
            except ValueError as e:
                raise ValueError(f"{stats_path}: not JSON ({e})") from None
            for k in totals:
                totals[k] += int(stats.get(k, 0) or 0)
        ids.append(i)
    if not ids:
        raise ValueError(f"{directory}: no finished shard (none has its _stats.json); --partial takes them as they are")
    return ids, width, totals, left_out


def run(args, log=print):
    directory = os.path.abspath(args.dir)
    ids, width, totals, left_out = scan(directory, args.partial)
    pattern = shard_pattern(directory, ids, width)
    samples = None
    if args.index:
        from tqdm import tqdm
        samples = 0
        for i in tqdm(ids, desc="indexing shards", unit="shard", disable=None, file=sys.stderr):
            samples += len(load_index(os.path.join(directory, f"{i:0{width}d}.tar"))["samples"])
    if left_out:
        verb = "kept as they are" if args.partial else "left out"
        log(f"{len(left_out)} shards without _stats.json (interrupted downloads), {verb}: "
            f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}")
    counts = (f"{len(ids)} shards, {totals['successes']} of {totals['count']} images downloaded "
              f"({totals['failed_to_download']} failed to download, {totals['failed_to_resize']} to resize)")
    if samples is not None:
        counts += f"; {samples} samples indexed"
    text = (f"# {counts}\n# made by python -m data_prep.from_img2dataset {args.dir}\n"
            f"- name: {args.name}\n  kind: {args.kind}\n  path: \"{pattern}\"\n")
    if args.out:
        with atomic_open(args.out) as f:
            f.write(text)
        log(f"wrote {args.out}")
    log(text.rstrip("\n"))
    return {"pattern": pattern, "shards": len(ids), "left_out": left_out, **totals,
            **({"samples": samples} if samples is not None else {})}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m data_prep.from_img2dataset", description=__doc__.split("\n")[0])
    p.add_argument("dir", help="img2dataset's --output_folder (webdataset output format)")
    p.add_argument("--name", default="web", help="the corpus name in the config")
    p.add_argument("--kind", default="pairs", choices=("pairs", "images"), help="read as pairs or image-only")
    p.add_argument("--partial", action="store_true", help="keep shards without _stats.json")
    p.add_argument("--index", action="store_true", help="build the shards' member indexes now")
    p.add_argument("--out", default="", help="also write the corpus entry (YAML) here")
    args = p.parse_args(argv)
    return run_cli(run, args, (ValueError, FileNotFoundError, ShardError, OSError))


if __name__ == "__main__":
    sys.exit(main())
