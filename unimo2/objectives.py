"""Pre-training losses (UNIMO-2 Section 3.2), written against the global batch.

Contrastive losses gather features from every rank with a gradient-carrying
all_gather (``vlcore.framework.dist.all_gather_with_grad``) and average the loss over
this rank's own rows; after DataParallel's mean over ranks the gradient equals
that of the same loss on the concatenated global batch in one process.
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from vlcore.framework import dist
from vlcore.layers.heads import cross_entropy_with_accuracy

_NEG_INF = -1e4  # finite: a row made entirely of masked entries stays finite


# cross-entropy over the masked positions only (rows gathered by the caller); (loss, accuracy)
mlm_loss = cross_entropy_with_accuracy


def _same_group_mask(local_groups, all_groups, offset):
    """True where a column shares the row's group but is not its positive
    (e.g. another caption of the same image): such pairs are not negatives."""
    n = local_groups.shape[0]
    same = local_groups.unsqueeze(1) == all_groups.unsqueeze(0)
    target = paddle.arange(n).unsqueeze(1) + offset == paddle.arange(all_groups.shape[0]).unsqueeze(0)
    return paddle.logical_and(same, paddle.logical_not(target))


def contrastive_loss(a, b, temperature, groups=None):
    """Symmetric InfoNCE between matched rows of ``a`` and ``b`` (normalised,
    ``[B, d]`` on this rank); negatives are every other row of the global
    batch. Returns (loss, accuracy of a->b)."""
    n = a.shape[0]
    offset = dist.rank() * n
    a_all, b_all = dist.all_gather_with_grad(a), dist.all_gather_with_grad(b)
    target = paddle.arange(offset, offset + n, dtype="int64")
    logits_ab = paddle.matmul(a, b_all, transpose_y=True) / temperature
    logits_ba = paddle.matmul(b, a_all, transpose_y=True) / temperature
    if groups is not None:
        invalid = _same_group_mask(groups, dist.all_gather_nograd(groups), offset)
        logits_ab = paddle.where(invalid, paddle.full_like(logits_ab, _NEG_INF), logits_ab)
        logits_ba = paddle.where(invalid, paddle.full_like(logits_ba, _NEG_INF), logits_ba)
    loss = (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, target)) / 2
    acc = (logits_ab.argmax(-1) == target).astype("float32").mean()
    return loss, acc


def nt_xent_loss(z, temperature):
    """SimCLR's NT-Xent. ``z``: ``[2B, d]`` normalised, rows ``[view1; view2]``
    of this rank's B images. Each view's positive is the other view of the
    same image; the other ``2*B*world - 2`` views of the global batch are
    negatives. Returns (loss, accuracy)."""
    n2 = z.shape[0]
    n = n2 // 2
    offset = dist.rank() * n2
    z_all = dist.all_gather_with_grad(z)
    logits = paddle.matmul(z, z_all, transpose_y=True) / temperature  # [2B, 2BW]
    rows = paddle.arange(n2)
    self_mask = (rows.unsqueeze(1) + offset) == paddle.arange(z_all.shape[0]).unsqueeze(0)
    logits = paddle.where(self_mask, paddle.full_like(logits, _NEG_INF), logits)
    target = (offset + (rows + n) % n2).astype("int64")
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(-1) == target).astype("float32").mean()
    return loss, acc


def choose_negatives(groups, rng, similarity=None):
    """For every item pick a partner from another group (image-text matching
    negatives). ``similarity`` (``[B, B]`` numpy, rows = queries) picks the
    hardest partner; without it the partner is uniform at random. Items whose
    every partner is in the same group get a random other item (rare: a batch
    of one group)."""
    groups = np.asarray(groups)
    b = len(groups)
    valid = groups[:, None] != groups[None, :]
    out = np.empty(b, dtype=np.int64)
    for i in range(b):
        cand = np.flatnonzero(valid[i])
        if cand.size == 0:
            cand = np.array([j for j in range(b) if j != i] or [i])
        if similarity is None:
            out[i] = cand[rng.integers(cand.size)]
        else:
            out[i] = cand[np.argmax(similarity[i, cand])]
    return out
