"""An :class:`~vlcore.layers.attention.AttentionPlan` as FlashMask's
column-wise indices, for ``paddle.nn.functional.flashmask_attention`` on a
GPU (docs/gpu_plan.md). Nothing here calls the kernel: it needs a CUDA build
of Paddle (fp16/bf16 inputs), which these machines do not have; the indices
are built and checked on the CPU.

The kernel's contract (Paddle 3.x, ``help(paddle.nn.functional.flashmask_attention)``;
https://paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/functional/flashmask_attention_en.html;
the FlashMask paper, arXiv 2410.01359): with ``causal=False`` and
``startend_row_indices`` of shape ``[batch, heads, key_len, 2]``, column
``j`` (a key) is masked in the lower-left triangle from row
``startend_row_indices[..., j, 0]`` down (inclusive) and in the upper-right
triangle above row ``startend_row_indices[..., j, 1]`` (exclusive). So a key
whose visible query rows are one interval ``[lo, hi)`` holding the diagonal
(``lo <= j < hi``) is ``(hi, lo)``, and a key no query sees is ``(j, j)``.

UNIMO-2's Grounded Transformer lays its sequence out as ``[image (M);
grounded (K); text (N)]`` so that every key's rows are one interval: an
image key is seen by rows ``[0, M+K)`` (images and grounded tokens), a
grounded key by every row, a text key by ``[M, M+K+N)``; padded keys by
none. Captioning's causal text block is the same with a text key ``j`` seen
by ``[j, L)``. UNIMO's and Unicoder-VL's single stream is full attention
with padded keys.
"""
import numpy as np


def startend_row_indices(plan) -> np.ndarray:
    """``int32 [batch, 1, L, 2]``: the plan's mask in FlashMask's
    bidirectional two-index form (one head: broadcast over heads). Raises
    ValueError naming the key when the form cannot express the plan."""
    dense = plan.dense_mask().numpy()[:, 0]          # [B, L (queries), L (keys)]
    b, length, _ = dense.shape
    out = np.zeros([b, 1, length, 2], np.int32)
    rows = np.arange(length)
    for s in range(b):
        for j in range(length):
            seen = rows[dense[s, :, j]]
            if seen.size == 0:
                out[s, 0, j] = (j, j)
                continue
            lo, hi = int(seen[0]), int(seen[-1]) + 1
            if seen.size != hi - lo or not lo <= j < hi:
                raise ValueError(f"key {j} (batch row {s}) is seen by rows {seen.tolist()[:8]}...: not one "
                                 f"interval holding the diagonal, which FlashMask's two-index form needs")
            out[s, 0, j] = (hi, lo)
    return out


def dense_from_indices(indices: np.ndarray) -> np.ndarray:
    """The bool ``[batch, L, L]`` (query, key) mask that ``indices`` stand
    for under the kernel's contract above: the reference the tests compare
    plans against."""
    b, _, length, _ = indices.shape
    i = np.arange(length)[:, None]                   # query row
    j = np.arange(length)[None, :]                   # key column
    lts, ute = indices[:, 0, :, 0][:, None, :], indices[:, 0, :, 1][:, None, :]
    masked_lower = (i >= j) & (i >= lts)
    masked_upper = (i < j) & (i < ute)
    return ~(masked_lower | masked_upper)
