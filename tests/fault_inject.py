"""A fault-injecting writer for the run-directory tests.

:func:`inject` replaces ``builtins.open`` so that files opened for writing
under ``root`` are wrapped: the ``nth`` file whose name matches ``match``
(fnmatch on the base name) may take ``after`` bytes (characters in text
mode), then

- ``action="enospc"``: the write fails with OSError(ENOSPC) after writing
  what fit, and from then on every write under ``root`` fails the same way
  (the disk stays full);
- ``action="kill"``: the process SIGKILLs itself (``after=0``: right when
  the file is opened, i.e. before anything of it is written).

Every writer of a run goes through ``open``: weights_file.save (safetensors bytes into
``open(path, 'wb')``), json / yaml dumps, ``vlcore.framework.rundir.AppendFile``
(metrics.jsonl, train.log). ``kill_rmtree`` SIGKILLs inside
``shutil.rmtree`` of a directory matching it, after deleting one file (a
kill in the middle of a deletion).

Subprocesses: ``ckpt_scripts/train_with_faults.py PLAN_JSON tools/train.py
ARGS...`` installs a plan and runs the tool in-process.
"""
import builtins
import contextlib
import errno
import fnmatch
import os
import shutil
import signal

_real_open = builtins.open
_real_rmtree = shutil.rmtree


class _Plan:
    def __init__(self, root, match=None, nth=1, after=0, action="enospc", kill_rmtree=None):
        self.root = os.path.realpath(root)
        self.match, self.nth, self.after, self.action = match, nth, after, action
        self.kill_rmtree = kill_rmtree
        self.seen = 0
        self.full = False

    def under_root(self, path):
        try:
            return os.path.realpath(os.fspath(path)).startswith(self.root + os.sep)
        except TypeError:  # a file descriptor
            return False

    def budget_for(self, path):
        """Bytes this newly opened file may take, or None for unlimited."""
        if self.full:
            return 0
        if self.match and fnmatch.fnmatch(os.path.basename(os.fspath(path)), self.match):
            self.seen += 1
            if self.seen == self.nth:
                return self.after
        return None

    def fail(self, path):
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        self.full = True
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))


class _FaultyFile:
    def __init__(self, f, plan, path, budget):
        self._f, self._plan, self._path, self._budget = f, plan, path, budget

    def write(self, data):
        if self._plan.full and self._plan.action == "enospc":
            self._budget = 0
        if self._budget is not None and len(data) > self._budget:
            fits = data[:self._budget]
            if len(fits):
                self._f.write(fits)
            self._f.flush()
            self._budget = 0
            self._plan.fail(self._path)
        if self._budget is not None:
            self._budget -= len(data)
        return self._f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __iter__(self):
        return iter(self._f)

    def __getattr__(self, name):
        return getattr(self._f, name)


@contextlib.contextmanager
def inject(root, **plan_kw):
    plan = _Plan(root, **plan_kw)

    def faulty_open(file, mode="r", *args, **kwargs):
        f = _real_open(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax") or not plan.under_root(file):  # not "rb+" (opened to fsync)
            return f
        budget = plan.budget_for(file)
        if budget == 0 and plan.action == "kill":
            f.close()
            plan.fail(file)
        return _FaultyFile(f, plan, file, budget)

    def faulty_rmtree(path, *args, **kwargs):
        if plan.kill_rmtree and fnmatch.fnmatch(os.path.basename(os.fspath(path)), plan.kill_rmtree) \
                and os.path.isdir(path):
            for dirpath, _, files in os.walk(path):
                if files:
                    os.remove(os.path.join(dirpath, files[0]))
                    break
            os.kill(os.getpid(), signal.SIGKILL)
        return _real_rmtree(path, *args, **kwargs)

    builtins.open, shutil.rmtree = faulty_open, faulty_rmtree
    try:
        yield plan
    finally:
        builtins.open, shutil.rmtree = _real_open, _real_rmtree
