"""Random access to the samples of webdataset tar shards (the layout
img2dataset writes), without unpacking them.

The layout (webdataset's format specification and its
``tariterators.base_plus_ext`` / ``group_by_keys``; img2dataset
``writer.py`` ``WebDatasetSampleWriter`` and ``downloader.py``
``compute_key``):

- a corpus is numbered uncompressed ``.tar`` files, named by a brace pattern
  (``cc3m/{00000..00331}.tar``), a directory (its ``*.tar``, sorted) or one
  file;
- the members of one sample sit next to each other and share a key: the
  member's path up to the first dot of its base name (``000010005.jpg``,
  ``000010005.txt``, ``000010005.json``: key ``000010005``; the extension is
  everything after that dot, lower-cased); members named ``__...__`` are
  metadata, not samples;
- img2dataset writes ``{key}.jpg`` (or png/webp), ``{key}.txt`` (the
  caption), ``{key}.json`` (url, caption, status, sizes, ...), and beside each
  ``NNNNN.tar`` a ``NNNNN.parquet`` (metadata of every row, failed downloads
  included) and ``NNNNN_stats.json`` (counts); keys are the shard id followed
  by the zero-padded position in the shard.

Why not the webdataset package: its ``WebDataset`` pipeline streams the
shards in order (https://webdataset.github.io/webdataset/webdataset/), and
the toolkit's exact resume needs sample ``i`` of (seed, step, rank) at
random. Its indexed reader ``wids.ShardListDataset``
(https://webdataset.github.io/webdataset/wids) starts from a JSON shard
list with each shard's ``nsamples`` (``wids-shard-index-v1``), which
img2dataset does not write, and it depends on PyTorch, which the toolkit
does not install. So the standard library's ``tarfile`` parses the headers.

Random access: one pass over a shard's headers with the standard library's
``tarfile`` (the data itself is not read) records each sample's members as
(extension, byte offset, size). The index is cached beside the shard as
``<shard>.index.json`` keyed by the shard's size and mtime (not cached for a
file modified within the last 2 s, as :mod:`vlcore.formats.records` does, or
when the directory is read-only), so later runs and the other ranks and
workers start at once. A sample is read with one ``seek`` and ``read`` per
member. A shard cut short (a copy or a download that stopped) keeps the
samples whose members are all whole; the index counts the rest as
``truncated``.
"""
import bisect
import json
import os
import tarfile
import time
from typing import Dict, List, NamedTuple

import numpy as np

_RACY_NS = 2_000_000_000
_OPEN_FILES = 64
INDEX_VERSION = 2


class ShardError(ValueError):
    """A shard cannot be used at all (not a tar, compressed); names it."""


class Member(NamedTuple):
    """The bytes of one member (a read-only ``memoryview`` into the sample's
    one read: an image is not copied again), with where they came from
    (``shard:name``) for error messages."""
    where: str
    data: memoryview


def expand(spec) -> List[str]:
    """The shard files of ``spec``: a brace pattern, a directory (its
    ``*.tar``), one ``.tar``, or a list of these."""
    from braceexpand import braceexpand
    if isinstance(spec, (list, tuple)):
        return [p for s in spec for p in expand(s)]
    if os.path.isdir(spec):
        found = sorted(os.path.join(spec, n) for n in os.listdir(spec) if n.endswith(".tar"))
        if not found:
            raise FileNotFoundError(f"{spec}: no .tar shards in this directory")
        return found
    paths = list(braceexpand(spec))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such shard" + (f" (and {len(missing) - 1} more of {spec})"
                                                                  if len(missing) > 1 else ""))
    return paths


def is_shards(spec) -> bool:
    """Whether a corpus ``path`` names tar shards rather than a manifest."""
    return isinstance(spec, str) and (spec.endswith(".tar") or (os.path.isdir(spec) and any(
        n.endswith(".tar") for n in os.listdir(spec))))


def split_name(name):
    """``(key, extension)`` of a member name, webdataset's way (the key ends
    at the first dot of the base name); (None, None) without an extension."""
    directory, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None, None
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def build_index(path) -> Dict:
    """Scan the headers of one shard: ``{"samples": [[key, {ext: [offset,
    size]}], ...], "truncated": [member names], "duplicates": [key, ...]}``."""
    size = os.path.getsize(path)
    samples, truncated, duplicates = [], [], []
    try:
        tf = tarfile.open(path, "r:")  # uncompressed only: compressed data has no offsets to seek to
    except tarfile.ReadError as e:
        raise ShardError(f"{path}: not an uncompressed tar file ({e}); shards are read at random, "
                         f"so they must not be compressed") from None
    with tf:
        try:
            for info in tf:
                if not info.isfile():
                    continue
                key, ext = split_name(info.name)
                if key is None or os.path.basename(key).startswith("__"):
                    continue
                if info.offset_data + info.size > size:
                    truncated.append(info.name)
                    continue
                if not samples or samples[-1][0] != key:
                    samples.append([key, {}])
                if ext in samples[-1][1]:
                    duplicates.append(key)
                samples[-1][1][ext] = [info.offset_data, info.size]
        except (tarfile.ReadError, EOFError):  # cut: what came before is whole
            if not truncated:  # cut inside a header (after a cut member, tarfile fails on the next one)
                truncated.append("(a member header)")
    return {"version": INDEX_VERSION, "samples": samples, "truncated": truncated, "duplicates": duplicates}


def load_index(path) -> Dict:
    """The index of a shard, from its cache beside it when that is current."""
    st = os.stat(path)
    cache = path + ".index.json"
    key = [st.st_size, st.st_mtime_ns]
    try:
        with open(cache, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("key") == key and data.get("version") == INDEX_VERSION:
            return data
    except (OSError, ValueError):
        pass
    data = build_index(path)
    if time.time_ns() - st.st_mtime_ns < _RACY_NS:  # may still change without changing its key
        return data
    data["key"] = key
    tmp = f"{cache}.tmp-{os.getpid()}"
    try:  # a read-only data directory only costs the cache
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, cache)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
    return data


class TarShards:
    """``len()`` and ``[i]`` over the samples of a set of shards: ``[i]`` is
    ``{extension: Member}``; :meth:`where` names sample ``i`` as
    ``shard.tar:key`` for error messages."""

    def __init__(self, spec):
        self.spec = spec
        self.paths = expand(spec)
        self.keys, self.members, starts = [], [], [0]
        self.truncated, self.duplicates = [], []
        for p in self.paths:
            index = load_index(p)
            for key, members in index["samples"]:
                self.keys.append(key)
                self.members.append(members)
            self.truncated += [f"{p}:{name}" for name in index["truncated"]]
            self.duplicates += [f"{p}:{k}" for k in index["duplicates"]]
            starts.append(len(self.keys))
        self.starts = np.asarray(starts, dtype=np.int64)
        self._starts = starts
        self._files, self._pid = {}, None

    def __len__(self):
        return len(self.keys)

    def __getstate__(self):  # file handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None
        return state

    def shard_of(self, i) -> int:
        return bisect.bisect_right(self._starts, i) - 1  # on a list: numpy's per-call overhead is larger

    def where(self, i) -> str:
        return f"{self.paths[self.shard_of(i)]}:{self.keys[i]}"

    def _file(self, shard):
        """An open handle per shard (random access jumps between shards; at
        most ``_OPEN_FILES`` stay open), opened anew in a forked worker."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            if len(self._files) >= _OPEN_FILES:
                self._files.pop(next(iter(self._files))).close()
            f = self._files[shard] = open(self.paths[shard], "rb")
        return f

    def __getitem__(self, i) -> Dict[str, Member]:
        shard = self.shard_of(i)
        f = self._file(shard)
        members = self.members[i]
        # the members of a sample are adjacent: one read covers them all
        start = min(o for o, _ in members.values())
        end = max(o + n for o, n in members.values())
        f.seek(start)
        data = memoryview(f.read(end - start))
        out = {}
        for ext, (offset, size) in members.items():
            if offset + size - start > len(data):  # the shard shrank after it was indexed
                raise ShardError(f"{self.paths[shard]}: member {self.keys[i]}.{ext} cut short; "
                                 f"the shard changed after it was indexed")
            out[ext] = Member(f"{self.paths[shard]}:{self.keys[i]}.{ext}", data[offset - start:offset - start + size])
        return out

    def describe(self) -> str:
        parts = [f"{len(self)} samples in {len(self.paths)} shards"]
        if self.truncated:
            parts.append(f"{len(self.truncated)} truncated members left out (first: {self.truncated[0]})")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} samples with a repeated member (the last one kept), "
                         f"e.g. {self.duplicates[0]}")
        return "; ".join(parts)
