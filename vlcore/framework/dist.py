"""Fleet glue: collective data parallel on GPU (NCCL) or CPU (gloo).

Kept apart from the training loop so the loop reads the same on one process
and on many. Launch with ``python -m paddle.distributed.launch
--nproc_per_node N tools/train.py ...`` or ``fleetrun``; the launcher sets the
``PADDLE_*`` variables this module reads.
"""
import os

import paddle
import paddle.distributed as dist

_STATE = {"initialised": False}


def launched():
    """True when started by paddle.distributed.launch / fleetrun with >1 rank."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1


def init(find_unused_parameters=True):
    """Initialise fleet once (a no-op for a single process)."""
    if _STATE["initialised"] or not launched():
        return
    from paddle.distributed import fleet
    strategy = fleet.DistributedStrategy()
    # Steps alternate between corpora (pairs / images / text) that use
    # different sub-networks, so some parameters get no gradient in a step.
    strategy.find_unused_parameters = find_unused_parameters
    fleet.init(is_collective=True, strategy=strategy)
    _STATE["initialised"] = True


def world_size():
    return dist.get_world_size() if _STATE["initialised"] else 1


def rank():
    return dist.get_rank() if _STATE["initialised"] else 0


def is_main():
    return rank() == 0


def wrap_model(model):
    """DataParallel wrapper; only when there is more than one rank (fleet
    asserts otherwise)."""
    if world_size() <= 1:
        return model
    from paddle.distributed import fleet
    return fleet.distributed_model(model)


def unwrap(model):
    return getattr(model, "_layers", model)


def barrier():
    if world_size() > 1:
        dist.barrier()


def all_reduce_mean(value):
    """Mean of a Python float over ranks (for logging)."""
    if world_size() <= 1:
        return float(value)
    t = paddle.to_tensor([float(value)], dtype="float32")
    dist.all_reduce(t)
    return float(t.numpy()[0]) / world_size()


def all_reduce_sum_int(value):
    if world_size() <= 1:
        return int(value)
    t = paddle.to_tensor([int(value)], dtype="int64")
    dist.all_reduce(t)
    return int(t.numpy()[0])


def parameter_checksums(model):
    """Every rank's (sum, sum of squares) over all parameters, as a list; data
    parallel ranks must agree exactly, so this catches a silent divergence."""
    total = paddle.to_tensor([0.0, 0.0], dtype="float64")
    with paddle.no_grad():
        for p in model.parameters():
            x = p.astype("float64")
            total += paddle.stack([x.sum(), (x * x).sum()])
    gathered = all_gather_nograd(total.reshape([1, 2]))
    return [tuple(float(v) for v in row) for row in gathered.numpy()]


def _contiguous(x):
    """Collectives refuse strided views (e.g. ``x[:, 0]``); copy those."""
    return x.contiguous() if hasattr(x, "is_contiguous") and not x.is_contiguous() else x


def all_gather_nograd(x):
    """Concatenate ``x`` from every rank along axis 0 (equal shapes)."""
    if world_size() <= 1:
        return x
    parts = []
    dist.all_gather(parts, _contiguous(x))
    return paddle.concat(parts, axis=0)


def sharded_rows(n_rows, n_cols, row_fn):
    """A ``[n_rows, n_cols]`` numpy matrix whose rows are computed by
    ``row_fn(i) -> [n_cols]`` on the rank ``i % world`` and gathered, so an
    exhaustive cross-encoder evaluation is split across ranks."""
    import numpy as np
    world, me = world_size(), rank()
    mine = list(range(me, n_rows, world))
    per_rank = -(-n_rows // world)
    out = np.zeros([per_rank, n_cols], dtype=np.float32)
    for r, i in enumerate(mine):
        out[r] = row_fn(i)
    if world == 1:
        return out[:n_rows]
    gathered = all_gather_nograd(paddle.to_tensor(out)).numpy()  # rank-major
    scores = np.zeros([n_rows, n_cols], dtype=np.float32)
    for rk in range(world):
        idx = list(range(rk, n_rows, world))
        scores[idx] = gathered[rk * per_rank: rk * per_rank + len(idx)]
    return scores


class _GatherWithGrad(paddle.autograd.PyLayer):
    """all_gather whose backward sums the gradients of every rank's copy and
    returns this rank's slice. With it, a loss computed on the global batch
    has exactly the gradient of the single-process loss on the concatenated
    batch (after DataParallel's mean over ranks)."""

    @staticmethod
    def forward(ctx, x):
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = []
        dist.all_gather(parts, _contiguous(x))
        return paddle.concat(parts, axis=0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x):
    if world_size() <= 1:
        return x
    return _GatherWithGrad.apply(x)
