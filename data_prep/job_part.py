"""Which part of a sharded data-preparation job this process does.

A job is split into output shards (:mod:`data_prep.shards`). It can run

* as one process (every shard; ``--workers`` processes inside it);
* under ``python -m paddle.distributed.launch`` / ``fleetrun``, on one node
  or several: rank ``r`` of ``W`` takes the shards ``i`` with
  ``i % W == r``; rank 0 then waits until every shard file exists and does
  the finishing step (an index, a summary, a merge);
* as ``--shard i/N`` tasks started by a scheduler (a Slurm array): task
  ``i`` takes the shards with ``index % N == i`` and waits for nobody, since
  array tasks need not run at the same time; the finishing step is the same
  command run once more without ``--shard`` (it skips every finished shard).

The launcher's environment, as Paddle publishes it:
``paddle.distributed.get_rank()`` / ``ParallelEnv.rank`` "is equal to the
value of the environment variable PADDLE_TRAINER_ID" and ``get_world_size()``
/ ``ParallelEnv.world_size`` to "PADDLE_TRAINERS_NUM", default 0 and 1
(https://paddlepaddle.org.cn/documentation/docs/en/api/paddle/distributed/ParallelEnv_en.html,
https://paddlepaddle.org.cn/documentation/docs/en/2.2/api/paddle/distributed/get_rank_en.html,
https://paddlepaddle.org.cn/documentation/docs/en/2.2/api/paddle/distributed/get_world_size_en.html).
``ParallelEnv.device_id`` is "the value of the environment variable
FLAGS_selected_gpus" (same page). The collective launcher sets these per
process together with ``PADDLE_LOCAL_RANK`` / ``PADDLE_LOCAL_SIZE`` (the rank
and process count on this node) and ``PADDLE_NNODES``
(python/paddle/distributed/launch/controllers/collective.py,
https://github.com/PaddlePaddle/Paddle/blob/develop/python/paddle/distributed/launch/controllers/collective.py;
the ``--nnodes``/``--master``/``--rank``/``--nproc_per_node`` options:
https://paddlepaddle.org.cn/documentation/docs/en/api/paddle/distributed/launch_en.html).
No process group is set up: the parts meet through their files, which is
all the finishing step needs, and a rank that dies makes the launcher stop
the job (its ``--elastic_level`` default), so a re-run does the rest.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

# Rank 0 gives up when no new part has appeared for this long (a shard of
# back-translation on CPU can take hours, so it is generous; --wait-timeout).
DEFAULT_WAIT_TIMEOUT = 6 * 3600.0


class PartError(ValueError):
    """This process cannot tell or do its part (one line: what and why)."""


@dataclass(frozen=True)
class Part:
    index: int = 0
    count: int = 1
    origin: str = "single"  # "single", "launcher" or "--shard"
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT

    def mine(self, num_shards: int) -> list[int]:
        """The shards this part writes: every ``count``-th from ``index``
        (interleaved, so the parts' loads stay even when shards differ)."""
        return list(range(self.index, num_shards, self.count))

    def owner(self, shard: int) -> int:
        return shard % self.count

    @property
    def finishes(self) -> bool:
        """Does this process do the job's finishing step (after all parts)?"""
        return self.origin != "--shard" and self.index == 0

    @property
    def waits(self) -> bool:
        """Do the parts run at once, so rank 0 can wait for the others?"""
        return self.origin == "launcher" and self.count > 1

    @property
    def finisher(self) -> str:
        """Who does the finishing step of a job this part belongs to."""
        return "rank 0" if self.waits else "the same command run without --shard"

    @property
    def prefix(self) -> str:
        """``"rank 1 of 2: "`` for log lines of a part; empty for the whole job."""
        return "" if self.count == 1 and self.origin == "single" else f"{self}: "

    def __str__(self):
        if self.origin == "launcher":
            return f"rank {self.index} of {self.count}"
        if self.origin == "--shard":
            return f"shard {self.index}/{self.count}"
        return "single process"


SINGLE = Part()


def _env_int(environ, key, default):
    text = environ.get(key, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise PartError(f"{key}={text!r}: not a whole number (set by paddle.distributed.launch)") from None


def part_from(shard: str | None = None, wait_timeout: float = DEFAULT_WAIT_TIMEOUT, environ=None) -> Part:
    """This process's part: ``--shard i/N`` if given, else the launcher's rank
    and world size, else the whole job."""
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "PADDLE_TRAINERS_NUM", 1)
    rank = _env_int(environ, "PADDLE_TRAINER_ID", 0)
    if wait_timeout <= 0:
        raise PartError(f"--wait-timeout {wait_timeout}: must be > 0 seconds")
    if shard is not None:
        if world > 1:
            raise PartError(f"--shard {shard} under a launcher with {world} ranks: the launcher already splits "
                            f"the job; give one or the other")
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise PartError(f"--shard {shard!r}: expected i/N, e.g. 0/4") from None
        if not 0 <= i < n:
            raise PartError(f"--shard {shard}: need 0 <= i < N")
        return Part(i, n, "--shard", wait_timeout)
    if world < 1 or not 0 <= rank < world:
        raise PartError(f"PADDLE_TRAINER_ID={rank} with PADDLE_TRAINERS_NUM={world}: need 0 <= rank < world size")
    if world == 1:
        return Part(wait_timeout=wait_timeout)
    return Part(rank, world, "launcher", wait_timeout)


def add_part_args(parser, finish: str = "the same command without --shard") -> None:
    """``--shard`` and ``--wait-timeout``, the same on every tool; ``finish``
    names the step that completes a job run as ``--shard`` parts."""
    parser.add_argument("--shard", metavar="i/N",
                        help=f"do part i of N (e.g. a Slurm array task), then stop; finish with {finish}. Under "
                             f"paddle.distributed.launch / fleetrun the ranks split the job by themselves")
    parser.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                        help="under a launcher: rank 0 stops waiting for the other ranks' parts after this long "
                             "without a new one (default %(default).0f)")


def args_part(args) -> Part:
    return part_from(getattr(args, "shard", None), getattr(args, "wait_timeout", DEFAULT_WAIT_TIMEOUT))


def selected_device(environ=None) -> str | None:
    """``"gpu:<id>"`` of the GPU the launcher gave this process
    (``FLAGS_selected_gpus``, first id), or None."""
    environ = os.environ if environ is None else environ
    ids = environ.get("FLAGS_selected_gpus", "").split(",")[0].strip()
    return f"gpu:{int(ids)}" if ids.isdigit() else None


def wait_until(missing, part: Part, what: str, log=print, poll: float = 0.5) -> None:
    """Poll ``missing()`` (a list of descriptions of what is not there yet)
    until it is empty. Raises :class:`PartError` naming what is missing when
    nothing new has appeared for ``part.wait_timeout`` seconds."""
    left = missing()
    if not left:
        return
    log(f"{part}: waiting for {what}: {len(left)} missing (first: {left[0]})")
    last, last_change = len(left), time.monotonic()
    while left:
        if time.monotonic() - last_change > part.wait_timeout:
            shown = "; ".join(left[:5]) + (f"; ... {len(left) - 5} more" if len(left) > 5 else "")
            raise PartError(f"{part}: waited {part.wait_timeout:.0f} s with no progress for {what}; missing: "
                            f"{shown}. Check those ranks' logs, then run the same command again: finished "
                            f"parts are kept")
        time.sleep(poll)
        left = missing()
        if len(left) != last:
            last, last_change = len(left), time.monotonic()
    log(f"{part}: {what}: all there")
