"""Sharded output files and atomic writes, shared by every resumable tool.

A sharded output is a set of files ``<name>-<i>-of-<n>.<ext>`` (five-digit,
zero-padded, ``i`` from 0), e.g. ``tfidf-00003-of-00016.jsonl``. Each shard
is written to a temporary file in the same directory and renamed into place
only when complete, so a shard that exists is whole: a killed job leaves at
most a ``*.tmp-<pid>`` file behind, which the next run ignores and
overwrites. That is what lets a re-run skip finished shards.
:func:`atomic_files` does the same for outputs that belong together (the
splits of one dataset): all of them appear, or none does.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil

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


# A full disk: out of space, or out of the user's quota.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def disk_full_message(path: str) -> str:
    """The one line every tool prints for a full disk."""
    return f"no space left on device while writing {path}"


class OutputError(OSError):
    """Writing an output failed; ``str()`` is one line naming the file."""

    def __str__(self):
        return self.strerror


def output_error(e: OSError, path: str) -> OutputError:
    """``e`` (raised while writing ``path``) as one line naming ``path``;
    a full disk reads "no space left on device while writing <path>"."""
    if isinstance(e, OutputError):
        return e
    return OutputError(e.errno, disk_full_message(path) if is_disk_full(e)
                       else f"{e.strerror or e} while writing {path}")


@contextlib.contextmanager
def atomic_files(paths, mode: str = "w", encoding: str | None = "utf-8"):
    """Open several outputs at once; all of them appear, or none does.

    Yields ``{path: file}`` of temporary files beside the outputs. When the
    block succeeds, every temporary file is flushed and fsynced first (a full
    disk or an I/O error shows up there, before anything is renamed), then all
    are renamed into place. If anything fails -- the block, a flush, a
    rename -- every temporary file is removed and the renames already done are
    undone (a file that existed before is put back as it was). Errors while
    committing are :class:`OutputError` naming the file.
    """
    paths = list(dict.fromkeys(paths))
    tmps = {p: f"{p}.tmp-{os.getpid()}" for p in paths}
    files, done = {}, []  # done: (path, backup or None) of renames already made
    try:
        for p in paths:
            os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
            files[p] = open(tmps[p], mode, encoding=None if "b" in mode else encoding)
        yield files
        for p, f in files.items():  # data reaches the disk before any rename
            try:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            except OSError as e:
                raise output_error(e, p) from None
        for p in paths:
            backup = None
            try:
                backup = _keep_old(p)
                os.replace(tmps[p], p)
            except OSError as e:
                _drop(backup)
                raise output_error(e, p) from None
            done.append((p, backup))
    except BaseException:
        for f in files.values():
            with contextlib.suppress(OSError):
                f.close()
        for p, backup in reversed(done):  # undo: put back what was there
            with contextlib.suppress(OSError):
                if backup is None:
                    os.remove(p)
                else:
                    os.replace(backup, p)
        for tmp in tmps.values():
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise
    for _, backup in done:
        _drop(backup)


def _keep_old(path):
    """A second name for an existing ``path`` (so a rename over it can be
    undone), or None if there is no file there."""
    if not os.path.exists(path):
        return None
    backup = f"{path}.old-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.remove(backup)
    try:
        os.link(path, backup)  # no copy on filesystems with hard links
    except OSError:
        shutil.copy2(path, backup)
    return backup


def _drop(backup):
    if backup is not None:
        with contextlib.suppress(OSError):
            os.remove(backup)


def shard_bounds(weights, num_shards: int):
    """Split items (with ``weights``, e.g. captions per record) into
    ``num_shards`` contiguous ranges of roughly equal total weight.
    Returns ``num_shards + 1`` item boundaries (start of each, then the end)."""
    import numpy as np
    cum = np.concatenate([[0], np.cumsum(np.asarray(weights, dtype=np.int64))])
    targets = np.linspace(0, cum[-1], num_shards + 1)
    bounds = np.searchsorted(cum, targets[1:-1], side="left")
    return [0, *map(int, bounds), len(cum) - 1]
