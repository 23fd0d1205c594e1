"""Run a job as independent output shards, in parallel, resumably.

Every tool of ``data_prep`` that can take hours (rewriting, tokenizing)
splits its input into ``num_shards`` contiguous pieces and writes one output
shard per piece (atomically, see :mod:`vlcore.formats.sharded`). A shard file
that exists is finished, so a re-run after a kill only does the missing ones.
``<out>/<name>.layout.json`` records what the shards were made from; a re-run
with a different input or layout stops instead of mixing two jobs.

Workers are separate processes started with ``spawn``: the tools hold Paddle,
spaCy or Rust thread pools, none of which survive ``fork`` reliably. Worker
functions are named as ``"module:function"`` so a worker imports them only
after its thread variables are set (one thread per worker: the workers are
the parallelism).

Test hook: ``DATA_PREP_KILL_AFTER_SHARDS=N`` SIGKILLs the main process after
the N-th shard of a run has finished, as a crash would.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from vlcore.formats.sharded import atomic_open, shard_name

_WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


class JobError(RuntimeError):
    """A job cannot run as asked (the message says why and what to do)."""


def _resolve(spec: str):
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)


def _die_with_parent(parent_pid):
    """Linux: have the kernel kill this worker when the main process dies
    (a SIGKILLed job must not leave workers behind holding its pipes)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def _worker_init(env, parent_pid, init_spec, init_args):
    _die_with_parent(parent_pid)
    os.environ.update(env)
    if init_spec:
        _resolve(init_spec)(*init_args)


def _worker_run(work_spec, index):
    return _resolve(work_spec)(index)


def check_layout(out_dir: str, name: str, layout: dict, force: bool = False) -> None:
    """Write ``<name>.layout.json`` or check it matches ``layout``. With
    ``force``, a mismatching job's shards are removed instead."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.layout.json")
    layout = json.loads(json.dumps(layout))  # tuples -> lists, as read back
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old == layout:
            return
        if not force:
            diff = sorted(k for k in set(old) | set(layout) if old.get(k) != layout.get(k))
            raise JobError(f"{path}: {out_dir} holds shards of a different '{name}' job (differs in "
                           f"{', '.join(diff)}); use a fresh output directory or --force")
        for f in os.listdir(out_dir):
            if f.startswith(f"{name}-") and "-of-" in f:
                os.remove(os.path.join(out_dir, f))
    with atomic_open(path) as f:
        json.dump(layout, f, indent=1)


def stage_is_current(path: str, key: str, settings) -> bool:
    """Was the finished-stage file ``path`` (JSON) written with ``settings``
    under ``key``? A missing or unreadable file is not: the stage is redone."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get(key) == json.loads(json.dumps(settings))


def run_shards(out_dir: str, name: str, num_shards: int, work: str, *, ext: str = "jsonl",
               init: str | None = None, init_args=(), workers: int = 1, desc: str | None = None,
               log=print) -> dict:
    """Run ``work(index)`` for every shard whose file does not exist yet.

    ``work`` and ``init`` are ``"module:function"``; ``init(*init_args)``
    runs once per worker process (in this process when ``workers <= 1``).
    ``work`` writes its shard and returns a dict of counts, summed here
    (list values are concatenated).
    """
    from tqdm import tqdm
    todo = [i for i in range(num_shards)
            if not os.path.exists(os.path.join(out_dir, shard_name(name, i, num_shards, ext)))]
    if len(todo) < num_shards:
        log(f"{name}: {num_shards - len(todo)} of {num_shards} shards already done, skipped")
    totals: dict = {}
    kill_after = int(os.environ.get("DATA_PREP_KILL_AFTER_SHARDS", "0") or 0)
    bar = tqdm(total=num_shards, initial=num_shards - len(todo), desc=desc or name, unit="shard",
               disable=None, file=sys.stderr)
    t0, finished = time.time(), 0

    def done(stats):
        nonlocal finished
        for k, v in (stats or {}).items():
            if isinstance(v, list):  # e.g. examples of bad records: gathered, not summed
                totals.setdefault(k, []).extend(v)
            else:
                totals[k] = totals.get(k, 0) + v
        finished += 1
        bar.update(1)
        if kill_after and finished >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    if workers <= 1 or len(todo) <= 1:
        if todo and init:
            _resolve(init)(*init_args)
        for i in todo:
            done(_resolve(work)(i))
    elif todo:
        import multiprocessing as mp
        worker_args = (_WORKER_ENV, os.getpid(), init, init_args)
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=worker_args) as pool:
            futures = [pool.submit(_worker_run, work, i) for i in todo]
            for fut in as_completed(futures):
                done(fut.result())
    bar.close()
    totals["seconds"] = round(time.time() - t0, 3)
    totals["shards_run"] = len(todo)
    return totals


def spec_of(func) -> str:
    """``"module:function"`` of a module-level function, also when its module
    runs as ``python -m`` (``__main__``)."""
    module = func.__module__
    if module == "__main__":
        module = sys.modules["__main__"].__spec__.name
    return f"{module}:{func.__name__}"
