"""Run under paddle.distributed.launch with 2 ranks. Each rank holds its
shard of a global batch; the contrastive losses computed with the
gradient-carrying gather must give every rank exactly the gradient of the
single-process loss on the whole batch (after DataParallel's 1/W mean).
Writes ``<out>/rank<r>.json`` with the largest deviations."""
import json
import os
import sys

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from unimo2.objectives import contrastive_loss, nt_xent_loss  # noqa: E402
from vlcore.framework import dist  # noqa: E402


def reference_grads(full_a, full_b, fn):
    a = paddle.to_tensor(full_a, stop_gradient=False)
    b = paddle.to_tensor(full_b, stop_gradient=False) if full_b is not None else None
    loss = fn(a, b)
    loss.backward()
    return a.grad.numpy(), (b.grad.numpy() if b is not None else None)


def infonce(a, b, tau=0.1):
    logits = paddle.matmul(a, b, transpose_y=True) / tau
    t = paddle.arange(a.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def simclr(z, _unused, tau=0.2):
    # rows ordered per rank as [view1_r; view2_r]: rebuild the positive index
    logits = paddle.matmul(z, z, transpose_y=True) / tau
    logits = logits - paddle.eye(z.shape[0]) * 1e4
    return F.cross_entropy(logits, paddle.to_tensor(POS))


def main(out):
    global POS
    paddle.set_default_dtype("float64")
    dist.init()
    r, w = dist.rank(), dist.world_size()
    assert w == 2, w
    rng = np.random.default_rng(0)
    n, d = 3, 5
    full_a = rng.normal(size=(n * w, d))
    full_b = rng.normal(size=(n * w, d))
    full_a /= np.linalg.norm(full_a, axis=1, keepdims=True)
    full_b /= np.linalg.norm(full_b, axis=1, keepdims=True)
    result = {}
    # image-text InfoNCE
    a = paddle.to_tensor(full_a[r * n:(r + 1) * n], stop_gradient=False)
    b = paddle.to_tensor(full_b[r * n:(r + 1) * n], stop_gradient=False)
    loss, _ = contrastive_loss(a, b, 0.1)
    loss.backward()
    ga, gb = reference_grads(full_a, full_b, infonce)
    total = loss.detach().clone()
    paddle.distributed.all_reduce(total)  # float64: the mean of the ranks' losses
    result["infonce_loss"] = abs(float(total) / w - float(infonce(paddle.to_tensor(full_a), paddle.to_tensor(full_b))))
    result["infonce_grad"] = float(max(np.abs(a.grad.numpy() / w - ga[r * n:(r + 1) * n]).max(),
                                       np.abs(b.grad.numpy() / w - gb[r * n:(r + 1) * n]).max()))
    # NT-Xent: rank r holds [view1 of its n images; view2 of them]
    views = rng.normal(size=(2 * n * w, d))
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    POS = np.array([(i // (2 * n)) * 2 * n + (i % (2 * n) + n) % (2 * n) for i in range(2 * n * w)])
    z = paddle.to_tensor(views[r * 2 * n:(r + 1) * 2 * n], stop_gradient=False)
    loss, _ = nt_xent_loss(z, 0.2)
    loss.backward()
    gz, _ = reference_grads(views, None, simclr)
    result["ntxent_grad"] = float(np.abs(z.grad.numpy() / w - gz[r * 2 * n:(r + 1) * 2 * n]).max())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
