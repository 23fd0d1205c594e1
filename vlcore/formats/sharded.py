"""Sharded output files and atomic writes, shared by every resumable tool.

A sharded output is a set of files ``<name>-<i>-of-<n>.<ext>`` (five-digit,
zero-padded, ``i`` from 0), e.g. ``tfidf-00003-of-00016.jsonl``. Each shard
is written to a temporary file in the same directory and renamed into place
only when complete, so a shard that exists is whole: a killed job leaves at
most a ``*.tmp-<pid>`` file behind, which the next run ignores and
overwrites. That is what lets a re-run skip finished shards.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re

SHARD_RE = re.compile(r"^(?P<name>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.(?P<ext>[A-Za-z0-9.]+)$")


def shard_name(name: str, index: int, total: int, ext: str = "jsonl") -> str:
    if not 0 <= index < total or total > 99999:
        raise ValueError(f"bad shard {index} of {total}")
    return f"{name}-{index:05d}-of-{total:05d}.{ext}"


def parse_shard_name(path: str):
    """``(name, index, total, ext)`` of a shard file name, or None."""
    m = SHARD_RE.match(os.path.basename(path))
    if not m:
        return None
    return m["name"], int(m["index"]), int(m["total"]), m["ext"]


def list_shards(directory: str, name: str, ext: str = "jsonl", require_complete: bool = True):
    """Sorted paths of the shards ``name-*-of-*.ext`` in ``directory``.

    Raises if shards of different totals are mixed (two runs with different
    layouts in one directory) or, with ``require_complete``, if any is missing.
    """
    pattern = os.path.join(glob.escape(directory), f"{glob.escape(name)}-[0-9]*-of-[0-9]*.{ext}")
    found = {}
    for path in glob.glob(pattern):
        parsed = parse_shard_name(path)
        if parsed and parsed[0] == name and parsed[3] == ext:
            found[path] = parsed
    totals = {p[2] for p in found.values()}
    if len(totals) > 1:
        raise ValueError(f"{directory}: shards of '{name}' from runs with different shard counts "
                         f"{sorted(totals)}; use a fresh output directory")
    paths = sorted(found, key=lambda p: found[p][1])
    if require_complete and found:
        total = totals.pop()
        missing = sorted(set(range(total)) - {found[p][1] for p in paths})
        if missing:
            raise FileNotFoundError(f"{directory}: {len(missing)} of {total} shards of '{name}' missing "
                                    f"(first: {shard_name(name, missing[0], total, ext)}); re-run the tool")
    return paths


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the
    block succeeds, delete it if it raises. fsync before the rename so a
    crash of the machine cannot leave a renamed but empty file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8"):
    """``open`` for writing that only ever leaves a complete file at ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f


def shard_bounds(weights, num_shards: int):
    """Split items (with ``weights``, e.g. captions per record) into
    ``num_shards`` contiguous ranges of roughly equal total weight.
    Returns ``num_shards + 1`` item boundaries (start of each, then the end)."""
    import numpy as np
    cum = np.concatenate([[0], np.cumsum(np.asarray(weights, dtype=np.int64))])
    targets = np.linspace(0, cum[-1], num_shards + 1)
    bounds = np.searchsorted(cum, targets[1:-1], side="left")
    return [0, *map(int, bounds), len(cum) - 1]
