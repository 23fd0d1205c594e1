"""Random access to line-oriented files (JSONL manifests, text corpora)
without loading them into memory.

A pass over the file records the byte offset of every non-blank line; the
offsets (8 bytes per record, 80 MB for 10M records) are cached beside the
file as ``<file>.offsets.npy`` keyed by size and mtime, so later runs and the
other ranks start at once. A file modified less than ``_RACY_NS`` before
the pass is not cached: with coarse timestamps, a same-size rewrite within one
tick keeps size and mtime, and stale offsets would silently return wrong
records (git's "racily clean" rule). Records are read with ``seek`` +
``readline`` by whichever worker process needs them; the official code
instead loads every image of the corpus into every process.
"""
import os
import time

import numpy as np

from vlcore.formats.jsonl import parse_line

_RACY_NS = 2_000_000_000  # 2 s: FAT's mtime resolution, the coarsest in use


class RecordError(ValueError):
    """A malformed record; the message names the file and line."""


def _build_offsets(path):
    offsets, lines = [], []
    with open(path, "rb") as f:
        pos, lineno = 0, 0
        for raw in f:
            lineno += 1
            if raw.strip():
                offsets.append(pos)
                lines.append(lineno)
            pos += len(raw)
    return np.asarray(offsets, dtype=np.int64), np.asarray(lines, dtype=np.int64)


def load_offsets(path):
    """Byte offsets and 1-based line numbers of the non-blank lines of ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    st = os.stat(path)
    racy = time.time_ns() - st.st_mtime_ns < _RACY_NS
    cache = path + ".offsets.npy"
    key = np.asarray([st.st_size, st.st_mtime_ns], dtype=np.int64)
    try:
        data = np.load(cache)
        if data.ndim == 2 and data.shape[0] == 2 and np.array_equal(data[:, 0], key):
            return data[0, 1:], data[1, 1:]
    except (OSError, ValueError):
        pass
    offsets, lines = _build_offsets(path)
    if racy:  # the file may still change without changing its key
        return offsets, lines
    data = np.stack([np.concatenate([key[:1], offsets]), np.concatenate([key[1:], lines])])
    tmp = f"{cache}.tmp-{os.getpid()}.npy"
    try:  # a read-only data directory only costs the cache
        np.save(tmp, data)
        os.replace(tmp, cache)
    except OSError:
        pass
    return offsets, lines


class LineFile:
    """``len()`` and ``[i]`` over the non-blank lines of a UTF-8 file."""

    def __init__(self, path):
        self.path = path
        self.offsets, self.lines = load_offsets(path)
        self._fh = None
        self._pid = None

    def __len__(self):
        return len(self.offsets)

    def __getstate__(self):  # file handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_fh"], state["_pid"] = None, None
        return state

    def raw(self, i):
        if self._fh is None or self._pid != os.getpid():
            self._fh, self._pid = open(self.path, "rb"), os.getpid()
        self._fh.seek(int(self.offsets[i]))
        return self._fh.readline()

    def line_number(self, i):
        return int(self.lines[i])

    def where(self, i):
        """``file:line`` of record ``i``, for error messages."""
        return f"{self.path}:{self.line_number(i)}"

    def __getitem__(self, i):
        raw = self.raw(i)
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise RecordError(f"{self.path}:{self.line_number(i)}: not UTF-8 ({e.reason})") from None


class JsonlFile(LineFile):
    """A JSONL manifest; ``required`` keys are checked on every read."""

    def __init__(self, path, required=()):
        super().__init__(path)
        self.required = tuple(required)

    def __getitem__(self, i):
        text = super().__getitem__(i)
        where = f"{self.path}:{self.line_number(i)}"
        record = parse_line(text, where, RecordError)
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in self.required if k not in record]
        if missing:
            raise RecordError(f"{where}: missing key(s) {missing}")
        return record
