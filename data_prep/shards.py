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

Several processes (ranks of ``paddle.distributed.launch``, or ``--shard i/N``
tasks) share a job through :class:`data_prep.job_part.Part`: each runs the
shards of its part, and under a launcher rank 0 waits until every shard file
exists before the tool's finishing step. A shard file is the only record of
work done, so a killed rank, re-run, does only its missing shards.

Test hook: ``DATA_PREP_KILL_AFTER_SHARDS=N`` SIGKILLs the main process after
the N-th shard of a run has finished, as a crash would; with
``DATA_PREP_KILL_RANK=r`` only in the process of part ``r``.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from data_prep.job_part import SINGLE, Part, wait_until
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


def _layout_diff(path: str, layout: dict):
    """The keys where the layout file ``path`` differs from ``layout`` (empty: the same job)."""
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    return sorted(k for k in set(old) | set(layout) if old.get(k) != layout.get(k))


def _different_job(path, out_dir, name, diff):
    return JobError(f"{path}: {out_dir} holds shards of a different '{name}' job (differs in "
                    f"{', '.join(diff)}); use a fresh output directory or --force")


def check_layout(out_dir: str, name: str, layout: dict, force: bool = False, part: Part = SINGLE,
                 log=print) -> None:
    """Write ``<name>.layout.json`` or check it matches ``layout``. With
    ``force``, a mismatching job's shards are removed instead. Under a
    launcher only rank 0 writes it (and removes with ``force``); the other
    ranks wait until it is this job's, so no rank writes a shard that
    rank 0 then removes."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.layout.json")
    layout = json.loads(json.dumps(layout))  # tuples -> lists, as read back
    if part.waits and part.index != 0:
        def missing():
            if not os.path.isfile(path):
                return [f"{path} (written by rank 0)"]
            diff = _layout_diff(path, layout)
            if diff and not force:
                raise _different_job(path, out_dir, name, diff)
            return [f"{path} of this job (rank 0 replaces the old one)"] if diff else []
        wait_until(missing, part, f"the layout of '{name}'", log=log)
        return
    if os.path.isfile(path):
        diff = _layout_diff(path, layout)
        if not diff:
            return
        if not force:
            raise _different_job(path, out_dir, name, diff)
        for f in os.listdir(out_dir):
            if f.startswith(f"{name}-") and "-of-" in f:
                os.remove(os.path.join(out_dir, f))
    with atomic_open(path) as f:
        json.dump(layout, f, indent=1)


def missing_shards(out_dir: str, name: str, num_shards: int, ext: str = "jsonl", shards=None) -> list[int]:
    """The shards (of ``shards``, default all) whose file does not exist."""
    return [i for i in (range(num_shards) if shards is None else shards)
            if not os.path.exists(os.path.join(out_dir, shard_name(name, i, num_shards, ext)))]


def wait_for_shards(out_dir: str, name: str, num_shards: int, ext: str, part: Part, log=print) -> None:
    """Under a launcher, rank 0: return when every shard file exists; stop
    naming the missing shards (and their ranks) after ``part.wait_timeout``
    seconds without a new one. A no-op for other parts."""
    if not (part.waits and part.finishes):
        return

    def missing():
        return [f"{shard_name(name, i, num_shards, ext)} (rank {part.owner(i)})"
                for i in missing_shards(out_dir, name, num_shards, ext)]
    wait_until(missing, part, f"the shards of '{name}' in {out_dir}", log=log)


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
               log=print, part: Part = SINGLE) -> dict:
    """Run ``work(index)`` for every shard of ``part`` whose file does not
    exist yet; under a launcher, rank 0 then waits for the other ranks'
    shards (:func:`wait_for_shards`).

    ``work`` and ``init`` are ``"module:function"``; ``init(*init_args)``
    runs once per worker process (in this process when ``workers <= 1``).
    ``work`` writes its shard and returns a dict of counts, summed here
    (list values are concatenated): the counts of this process's shards.
    """
    from tqdm import tqdm
    mine = part.mine(num_shards)
    todo = missing_shards(out_dir, name, num_shards, ext, mine)
    if part.count > 1:
        log(f"{name}: {part}: {len(mine)} of {num_shards} shards (index % {part.count} == {part.index}), "
            f"{len(mine) - len(todo)} already done")
    elif len(todo) < num_shards:
        log(f"{name}: {num_shards - len(todo)} of {num_shards} shards already done, skipped")
    totals: dict = {}
    kill_after = int(os.environ.get("DATA_PREP_KILL_AFTER_SHARDS", "0") or 0)
    if os.environ.get("DATA_PREP_KILL_RANK", "") not in ("", str(part.index)):
        kill_after = 0
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=desc or name, unit="shard",
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
    wait_for_shards(out_dir, name, num_shards, ext, part, log=log)
    return totals


def spec_of(func) -> str:
    """``"module:function"`` of a module-level function, also when its module
    runs as ``python -m`` (``__main__``)."""
    module = func.__module__
    if module == "__main__":
        module = sys.modules["__main__"].__spec__.name
    return f"{module}:{func.__name__}"
