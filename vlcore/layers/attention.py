"""Multi-head attention that can skip whole blocks of the attention matrix.

A transformer over a concatenated sequence (e.g. UNIMO-2's [image; grounded;
text]) often lets some query ranges see only some key ranges. Computing the
full matrix and masking it (what the official UNIMO-2 code does) spends the
FLOPs and, worse, the softmax over blocks that are thrown away. An
:class:`AttentionPlan` lists, for contiguous query ranges, the contiguous key
range they may see plus an optional key-padding mask; each block is one call
of ``F.scaled_dot_product_attention`` and blocks never computed cost nothing.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers._device import eager_cpu
from vlcore.layers.dropout import dropout as apply_dropout
from vlcore.layers.linear import Linear


@dataclass
class AttentionBlock:
    """Queries ``[q0, q1)`` attend to keys ``[k0, k1)``.

    ``key_mask``: optional bool tensor ``[B, k1 - k0]`` (True = real key).
    ``causal``: queries also only see keys at or before their own position
    (positions compared in the concatenated sequence).
    """
    q0: int
    q1: int
    k0: int
    k1: int
    key_mask: Optional[paddle.Tensor] = None
    causal: bool = False
    dense_mask: Optional[paddle.Tensor] = None  # [B or 1, 1, q1-q0, k1-k0] bool, ANDed with the above


@dataclass
class AttentionPlan:
    """Query blocks covering ``[0, length)`` in order, without overlap."""
    length: int
    blocks: List[AttentionBlock]

    @classmethod
    def full(cls, length, key_mask=None):
        """Ordinary self-attention (every token sees every real token)."""
        return cls(length, [AttentionBlock(0, length, 0, length, key_mask)])

    @classmethod
    def masked(cls, dense_mask):
        """The whole matrix, computed and then masked with a dense bool
        ``[B or 1, 1, L, L]`` mask: the reference the block plans are tested
        and benchmarked against (and what the official code does)."""
        length = dense_mask.shape[-1]
        return cls(length, [AttentionBlock(0, length, 0, length, dense_mask=dense_mask)])

    def padded_queries_see_all(self, query_mask):
        """The plan with the official UNIMO-2 treatment of padded queries.

        The official code (PaddlePaddle/Research NLP/UNIMO-2,
        ``src/model/unimo_grounded.py``: ``text_encode`` and ``_gen_input``)
        builds its attention bias as ``(q_mask^T k_mask - 1) * 1e4``: a padded
        query row gets -1e4 on *every* key, a constant that cancels in the
        softmax, so that row attends to every key of the sequence with its
        raw scores -- padding and blocked ranges included. Those padded
        states matter where padding votes in the grounding (Eq. 2).
        ``query_mask``: bool ``[B, L]``, True = real query. Blocks without a
        padded query are kept as they are; the others are widened to all
        keys with a dense mask (real rows keep exactly their old keys)."""
        blocks = []
        for blk in self.blocks:
            qm = query_mask[:, blk.q0:blk.q1].astype("bool")
            if bool(qm.all()):
                blocks.append(blk)
                continue
            b, nq = qm.shape
            allowed = paddle.ones([b, 1, nq, blk.k1 - blk.k0], dtype="bool")
            if blk.key_mask is not None:
                allowed = paddle.logical_and(allowed, blk.key_mask.astype("bool").reshape([b, 1, 1, -1]))
            if blk.dense_mask is not None:
                allowed = paddle.logical_and(allowed, blk.dense_mask.astype("bool"))
            if blk.causal:
                q = paddle.arange(blk.q0, blk.q1).unsqueeze(1)
                k = paddle.arange(blk.k0, blk.k1).unsqueeze(0)
                allowed = paddle.logical_and(allowed, (k <= q).reshape([1, 1, nq, -1]))
            pieces = [paddle.zeros([b, 1, nq, blk.k0], dtype="bool")] if blk.k0 else []
            pieces.append(allowed)
            if blk.k1 < self.length:
                pieces.append(paddle.zeros([b, 1, nq, self.length - blk.k1], dtype="bool"))
            allowed = paddle.concat(pieces, axis=-1) if len(pieces) > 1 else allowed
            allowed = paddle.logical_or(allowed, paddle.logical_not(qm).reshape([b, 1, nq, 1]))
            blocks.append(AttentionBlock(blk.q0, blk.q1, 0, self.length, dense_mask=allowed))
        return AttentionPlan(self.length, blocks)

    def dense_mask(self):
        """The equivalent dense bool mask ``[B or 1, 1, L, L]`` (for tests and
        the masked reference implementation)."""
        batch = 1
        for blk in self.blocks:
            for m in (blk.key_mask, blk.dense_mask):
                if m is not None and m.shape[0] > 1:
                    batch = m.shape[0]
        mask = np.zeros([batch, 1, self.length, self.length], dtype=bool)
        for blk in self.blocks:
            allowed = np.ones([batch, blk.k1 - blk.k0], dtype=bool)
            if blk.key_mask is not None:
                allowed = blk.key_mask.numpy().astype(bool)
            mask[:, 0, blk.q0:blk.q1, blk.k0:blk.k1] = allowed[:, None, :]
            if blk.dense_mask is not None:
                mask[:, :, blk.q0:blk.q1, blk.k0:blk.k1] &= blk.dense_mask.numpy().astype(bool)
            if blk.causal:
                q = np.arange(blk.q0, blk.q1)[:, None]
                k = np.arange(blk.k0, blk.k1)[None, :]
                mask[:, 0, blk.q0:blk.q1, blk.k0:blk.k1] &= (k <= q)[None]
        return paddle.to_tensor(mask)


def _sdpa(q, k, v, key_mask, causal_offset, dropout, training, dense_mask=None, heads_first=False):
    """``q,k,v``: ``[B, S, H, Dh]``, or ``[B, H, S, Dh]`` with ``heads_first``
    (eager CPU only; the result is laid out alike). ``key_mask``: ``[B, Sk]``
    bool or None."""
    mask = dense_mask
    if causal_offset is not None:
        sq, sk = q.shape[2 if heads_first else 1], k.shape[2 if heads_first else 1]
        qpos = paddle.arange(sq).unsqueeze(1) + causal_offset
        kpos = paddle.arange(sk).unsqueeze(0)
        causal = (kpos <= qpos).unsqueeze([0, 1])  # [1, 1, Sq, Sk]
        mask = causal if mask is None else paddle.logical_and(mask, causal)
    if heads_first:
        return _cpu_heads_attention(q, k, v, key_mask, mask, dropout if training else 0.0)
    if eager_cpu(q):
        return _cpu_attention(q, k, v, key_mask, mask, dropout if training else 0.0)
    if key_mask is not None:
        km = key_mask.astype("bool").unsqueeze([1, 2])  # [B, 1, 1, Sk]
        mask = km if mask is None else paddle.logical_and(mask, km)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, training=training)


# Added to the scores of padded keys; finite so that 0 * bias stays 0 in the
# backward pass of the folded-mask matmul below.
_MASKED = -1e9


def _cpu_attention(q, k, v, key_mask, dense_mask, dropout_p):
    """:func:`_cpu_heads_attention` of ``q,k,v``: ``[B, S, H, Dh]``."""
    t = [0, 2, 1, 3]
    return _cpu_heads_attention(q.transpose(t), k.transpose(t), v.transpose(t), key_mask, dense_mask,
                                dropout_p).transpose(t)


def _cpu_heads_attention(q, k, v, key_mask, dense_mask, dropout_p):
    """softmax(QK^T / sqrt(d) + mask) V on CPU, ``q,k,v``: ``[B, H, S, Dh]``, where ``F.scaled_dot_product_attention``
    falls back to a composition whose mask addition broadcasts ``[B, 1, 1, Sk]``
    over ``[B, H, Sq, Sk]``: Paddle's CPU broadcast kernel is 16x slower than a
    same-shape add (0.39 s vs 0.025 s at 8 x 12 x 610 x 610), more than the
    softmax and the QK^T matmul together. Here the key-padding mask is folded
    into the matmul instead: ``[q | 1] . [k | bias]`` adds the bias of each key
    for one extra column (+1/Dh of the matmul). A batch without padding skips
    the mask altogether. Timed by ``bench/bench_cpu_fast_paths.py``; dropout:
    vlcore.layers.dropout."""
    b, h, sq, dh = q.shape
    if key_mask is not None and bool(key_mask.all()):
        key_mask = None  # no padding in this batch (packed text): nothing to fold
    q = q * (dh ** -0.5)
    if key_mask is not None:
        bias = paddle.where(key_mask.astype("bool"), paddle.zeros([], q.dtype),
                            paddle.full([], _MASKED, q.dtype))  # [B, Sk]
        bias = bias.unsqueeze([1, 3]).expand([b, h, k.shape[2], 1])
        q = paddle.concat([q, paddle.ones([b, h, sq, 1], q.dtype)], axis=-1)
        k = paddle.concat([k, bias], axis=-1)
    scores = paddle.matmul(q, k, transpose_y=True)
    if dense_mask is not None:  # causal / arbitrary masks: rare outside decoding
        scores = scores + paddle.where(dense_mask, paddle.zeros([], q.dtype), paddle.full([], _MASKED, q.dtype))
    probs = apply_dropout(F.softmax(scores, axis=-1), dropout_p)
    return paddle.matmul(probs, v)


class MultiHeadAttention(nn.Layer):
    """Self-attention with separate q/k/v/out projections.

    Separate projections (not one fused qkv matrix) keep a one-to-one mapping
    to the official checkpoints' ``*_query_fc``/``*_key_fc``/... variables.
    """

    def __init__(self, d_model, n_heads, attn_dropout=0.0, weight_attr=None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.attn_dropout = attn_dropout
        self.q_proj = Linear(d_model, d_model, weight_attr=weight_attr)
        self.k_proj = Linear(d_model, d_model, weight_attr=weight_attr)
        self.v_proj = Linear(d_model, d_model, weight_attr=weight_attr)
        self.out_proj = Linear(d_model, d_model, weight_attr=weight_attr)

    def _heads(self, x):
        b, s, _ = x.shape
        return x.reshape([b, s, self.n_heads, self.head_dim])

    def forward(self, x, plan: AttentionPlan, cache=None):
        """``x``: ``[B, L, D]``. ``cache``: dict with ``k``/``v`` ``[B, Lc, H, Dh]``
        of earlier positions (incremental decoding); updated in place. With a
        cache, plan positions index the concatenation [cached; x]."""
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        offset = 0
        if cache is not None:
            if "k" in cache:
                offset = cache["k"].shape[1]
                k = paddle.concat([cache["k"], k], axis=1)
                v = paddle.concat([cache["v"], v], axis=1)
            cache["k"], cache["v"] = k, v
        dropout = self.attn_dropout if self.training else 0.0
        if len(plan.blocks) == 1 and offset == 0:
            blk = plan.blocks[0]
            causal_offset = (blk.q0 - blk.k0) if blk.causal else None
            out = _sdpa(q, k, v, blk.key_mask, causal_offset, dropout, self.training, blk.dense_mask)
        else:
            # On CPU the heads move in front once, before the cut, not once
            # per block: the key and value ranges of the blocks overlap (the
            # grounded tokens are in all three), so per-block transposes
            # copied k and v about twice over.
            heads_first = eager_cpu(q)
            axis = 2 if heads_first else 1
            if heads_first:
                q, k, v = (t.transpose([0, 2, 1, 3]) for t in (q, k, v))
            # Cut q/k/v at every block boundary with split (whose backward is
            # a cheap concat; slicing's backward zero-fills the full tensor
            # for every slice, which dominated small CPU steps).
            q_parts = _Segments(q, [b.q0 - offset for b in plan.blocks] + [b.q1 - offset for b in plan.blocks], axis)
            k_parts = _Segments(k, [b.k0 for b in plan.blocks] + [b.k1 for b in plan.blocks], axis)
            v_parts = _Segments(v, [b.k0 for b in plan.blocks] + [b.k1 for b in plan.blocks], axis)
            outs = []
            for blk in plan.blocks:
                causal_offset = (blk.q0 - blk.k0) if blk.causal else None
                outs.append(_sdpa(q_parts.range(blk.q0 - offset, blk.q1 - offset), k_parts.range(blk.k0, blk.k1),
                                  v_parts.range(blk.k0, blk.k1), blk.key_mask, causal_offset, dropout,
                                  self.training, blk.dense_mask, heads_first))
            out = paddle.concat(outs, axis=axis)
            if heads_first:
                out = out.transpose([0, 2, 1, 3])
        b, s = out.shape[0], out.shape[1]
        return self.out_proj(out.reshape([b, s, self.n_heads * self.head_dim]))


class _Segments:
    """A tensor split along ``axis`` at the given cut points; ``range(a, b)``
    returns the (concatenated) pieces covering ``[a, b)``."""

    def __init__(self, x, cuts, axis=1):
        self.x, self.axis, n = x, axis, x.shape[axis]
        self.bounds = sorted({0, n, *[c for c in cuts if 0 <= c <= n]})
        sizes = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
        self.parts = paddle.split(x, sizes, axis=axis) if len(sizes) > 1 else [x]

    def range(self, start, end):
        if (start, end) == (0, self.x.shape[self.axis]):
            return self.x  # the whole sequence: no copy
        i, j = self.bounds.index(start), self.bounds.index(end)
        return self.parts[i] if j == i + 1 else paddle.concat(self.parts[i:j], axis=self.axis)
