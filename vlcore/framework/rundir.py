"""What keeps a run directory consistent: one writer at a time, a full disk
reported in one line, no half-written files, no leftovers of dead writers.

- :class:`RunLock`: ``<output_dir>/.lock``, held with ``flock`` by rank 0 of
  a training run. The kernel drops an flock lock when the last descriptor of
  its open file description is closed, which includes the death of the
  holder by SIGKILL (flock(2), Linux man-pages,
  https://man7.org/linux/man-pages/man2/flock.2.html; M. Kerrisk, *The Linux
  Programming Interface*, 55.2.1): a lock left by a dead process is free, so
  no "stale lock" heuristics are needed. The file holds the holder's pid,
  host and start time for the message a second run prints, and is emptied
  on a clean exit: finding it non-empty means the previous holder died.
- :class:`DiskFullError` / :func:`writing`: ENOSPC or EDQUOT while writing a
  file becomes one line naming it ("no space left on device while writing
  X"), which the command-line tools print and exit 2 on.
- :class:`AppendFile`: append-only logs (``metrics.jsonl``, ``train.log``)
  that cut a line that could not be written completely back off, so a full
  disk leaves no half line behind.
- :func:`remove_stale_temps`: temporary files and directories of writers
  that are no longer running (``.step_N.tmp-<pid>``, ``X.tmp-<pid>``).
"""
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time

from vlcore.formats.sharded import disk_full_message, is_disk_full

LOCK_FILE = ".lock"


class RunDirError(RuntimeError):
    """A run-directory failure the user can act on; always one line."""


class DiskFullError(RunDirError):
    def __init__(self, path):
        super().__init__(disk_full_message(path))
        self.path = path


class RunLockedError(RunDirError):
    pass


@contextlib.contextmanager
def writing(path):
    """Report a full disk inside the block as :class:`DiskFullError` naming
    ``path`` (the file the user knows, not a temporary name)."""
    try:
        yield
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(path) from e
        raise


def fsync_dir(path):
    """Make renames and new entries in ``path`` durable (a renamed file is
    only safe from power loss once its directory is on disk)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AppendFile:
    """A line-oriented append-only file written unbuffered, so every line is
    on its way to the disk when :meth:`append` returns and a line that fails
    half-way (disk full) is cut off again instead of left half-written."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "ab", buffering=0)

    def append(self, text):
        data = memoryview(text.encode("utf-8"))
        start = os.fstat(self._f.fileno()).st_size
        try:
            while data:
                data = data[self._f.write(data):]
        except OSError as e:
            with contextlib.suppress(OSError):  # shrinking a file needs no space
                self._f.truncate(start)
            if is_disk_full(e):
                raise DiskFullError(self.path) from e
            raise

    def close(self):
        with contextlib.suppress(OSError):
            self._f.close()


# ------------------------------------------------------------------ the lock
class RunLock:
    """Exclusive lock on a run directory (see the module docstring)."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._fd = None

    def acquire(self):
        """Take the lock or raise :class:`RunLockedError` naming the holder.
        Returns a note to log when the lock file was left by a dead process."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise RunLockedError(f"{os.path.dirname(self.path)} is in use by another training run "
                                 f"({holder}; lock file {self.path}); wait for it to finish or use "
                                 "another Global.output_dir") from None
        try:
            previous = _read_holder(fd)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
                os.fsync(fd)
        except BaseException:
            os.close(fd)  # closing drops the lock
            raise
        self._fd = fd
        if previous is None:
            return None
        return (f"took over the lock file {self.path} left by a process that is no longer running "
                f"({_describe(previous)})")

    def release(self):
        """Empty the file (a clean exit leaves no holder info) and unlock. The
        file itself stays: deleting it would let two runs lock two different
        files of the same name."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # releases the flock
        self._fd = None


def _read_holder(fd):
    """The holder info in the lock file: a dict, {} if unreadable, None if empty."""
    try:
        raw = os.pread(fd, 4096, 0)
    except OSError:
        return {}
    if not raw.strip():
        return None
    try:
        info = json.loads(raw)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info):
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {info.get('started', '?')}"


# --------------------------------------------------- leftovers of dead writers
# ``.step_12.tmp-345`` (a checkpoint being written), ``.step_12.old-345`` (one
# being replaced or rotated away), ``X.tmp-345`` (an atomic file write) and
# ``config.yaml.tmp`` (vlcore.framework.config.dump_yaml writes it without a pid).
_TEMP = re.compile(r"^(?:\.step_\d+\.(?:tmp|old)-(?P<pid>\d+)|.+\.tmp-(?P<fpid>\d+)|config\.yaml\.tmp)$")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(run_dir):
    """Delete the temporary files and directories in ``run_dir`` whose writer
    is not running. Call it while holding the run's lock (so no other
    training run is writing here); a temp file of a live process (e.g. a
    tools/eval.py writing eval_metrics.json) is left alone. Returns the
    names removed."""
    removed = []
    if not os.path.isdir(run_dir):
        return removed
    for name in sorted(os.listdir(run_dir)):
        m = _TEMP.match(name)
        if not m:
            continue
        pid = m.group("pid") or m.group("fpid")
        if pid is not None and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(name)
    return removed
