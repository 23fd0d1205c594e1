"""The captions of pairs manifests, enumerated once, read back by range.

Every rewriting tool works on the same enumeration: the manifests in the
order given, their records in file order, the captions of a record in list
order. Caption ``k`` of record ``X`` has id ``X#k`` (see
:mod:`vlcore.formats.rewrites`). Shards are ranges of whole records, so all
captions of an image are in the same shard (the "same image" checks need
them together) and every tool run with the same ``--shard-size`` on the same
manifests gets the same shard layout, which ``merge`` relies on.

Only offsets and counts are kept in memory (a few bytes per record); shards
re-read their records with ``seek``.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from vlcore.formats.rewrites import caption_id
from vlcore.formats.sharded import shard_bounds


class ManifestError(ValueError):
    """A pairs manifest that cannot be used (names the file and line)."""


class CaptionIndex:
    def __init__(self, manifests, strict: bool = False, log=None):
        log = log or (lambda msg: print(msg, file=sys.stderr))
        self.paths = [os.path.abspath(p) for p in manifests]
        files, offsets, counts, lines = [], [], [], []
        seen: dict[str, str] = {}
        self.skipped = 0
        for fi, path in enumerate(self.paths):
            if not os.path.isfile(path):
                raise ManifestError(f"{path}: no such file")
            with open(path, "rb") as f:
                pos = 0
                for lineno, raw in enumerate(f, 1):
                    start, pos = pos, pos + len(raw)
                    if not raw.strip():
                        continue
                    where = f"{path}:{lineno}"
                    try:
                        rec = json.loads(raw)
                        rid, caps = rec["id"], rec["captions"]
                        if not isinstance(rid, str) or not isinstance(caps, list):
                            raise TypeError("'id' must be a string and 'captions' a list")
                    except (ValueError, KeyError, TypeError) as e:
                        msg = f"{where}: not a pairs record ({type(e).__name__}: {e})"
                        if strict:
                            raise ManifestError(msg) from None
                        log(f"skipped {msg}")
                        self.skipped += 1
                        continue
                    if rid in seen:
                        raise ManifestError(f"{where}: record id {rid!r} repeated (first at {seen[rid]}); "
                                            f"caption ids must be unique")
                    seen[rid] = where
                    files.append(fi)
                    offsets.append(start)
                    counts.append(len(caps))
                    lines.append(lineno)
        self.file = np.asarray(files, dtype=np.int32)
        self.offset = np.asarray(offsets, dtype=np.int64)
        self.count = np.asarray(counts, dtype=np.int64)
        self.line = np.asarray(lines, dtype=np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.count)])  # caption position of each record
        self.num_records = len(self.offset)
        self.num_captions = int(self.first[-1])

    def fingerprint(self) -> dict:
        """What a job's shards depend on (checked on resume)."""
        files = []
        for p in self.paths:
            st = os.stat(p)
            files.append({"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        return {"manifests": files, "records": self.num_records, "captions": self.num_captions}

    def num_shards(self, shard_size: int) -> int:
        return max(1, -(-self.num_captions // max(1, shard_size)))

    def record_bounds(self, shard_size: int) -> list[int]:
        return shard_bounds(self.count, self.num_shards(shard_size))

    def records(self, start: int, stop: int):
        """Yield ``(record_id, captions)`` of records ``start..stop-1``."""
        handles = {}
        try:
            for r in range(start, stop):
                fi = int(self.file[r])
                fh = handles.get(fi) or handles.setdefault(fi, open(self.paths[fi], "rb"))
                fh.seek(int(self.offset[r]))
                rec = json.loads(fh.readline())
                yield rec["id"], rec["captions"]
        finally:
            for fh in handles.values():
                fh.close()

    def captions(self, start: int, stop: int):
        """Yield ``(caption_id, image_id, text)`` of the captions of records
        ``start..stop-1``; captions that are not non-empty strings are left
        out (their index is not reused)."""
        for rid, caps in self.records(start, stop):
            for k, text in enumerate(caps):
                if isinstance(text, str) and text.strip():
                    yield caption_id(rid, k), rid, text


def add_input_args(parser) -> None:
    """The arguments every rewriting tool shares."""
    parser.add_argument("--pairs", nargs="+", required=True, help="pairs manifest(s) (JSONL)")
    parser.add_argument("--out", required=True, help="output directory for the shards")
    parser.add_argument("--shard-size", type=int, default=50000,
                        help="captions per shard (use the same value for every tool you merge)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--force", action="store_true",
                        help="discard shards of a different earlier job in --out")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed record")
