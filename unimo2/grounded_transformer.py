"""The Grounded Transformer (UNIMO-2 Section 3.1, Figure 2).

Input ``[image; grounded; text]`` (``[image; grounded]`` for images alone,
``[grounded; text]`` for text alone). Image tokens attend to themselves and
the grounded tokens, text tokens likewise, and only the grounded tokens attend
to everything: cross-modal information flows through the grounded tokens.

Because the three parts are laid out in that order, every permitted key range
is contiguous (image: ``[0, M+K)``, grounded: all, text: ``[M, M+K+N)``) and the
layer computes exactly three attention blocks. The image-text and text-image
blocks are never computed, which is where the paper's efficiency claim comes
from; the official code builds the full matrix and masks it.

``attention="seq2seq"`` is captioning (UNIMO-2 Table 1; official
``img2txt_oscar``): the grounded tokens come from the image alone, image and
grounded tokens see each other but not the caption, and caption tokens see
the grounded tokens and the caption so far (causal) -- the same three
blocks, the text one causal. Decoding feeds one caption token at a time
against the cached keys (:mod:`unimo2.seq2seq`).

``attention="full"`` is the "w/o G.T." ablation (a plain transformer over the
same sequence) and the only choice when there are no grounded tokens
("Our Baseline": ``[image; text]``).

``official_padding``: a padded caption position attends to every key of the
sequence, as in the official code's mask (see
:meth:`vlcore.layers.AttentionPlan.padded_queries_see_all`); it changes
nothing but the padded positions' own states.
"""
from typing import NamedTuple, Optional

import paddle
import paddle.nn as nn

from vlcore.layers import AttentionBlock, AttentionPlan, Dropout, TransformerStack


class FusionOutput(NamedTuple):
    image: Optional[paddle.Tensor]     # [B, M, D]
    grounded: Optional[paddle.Tensor]  # [B, K, D]
    text: Optional[paddle.Tensor]      # [B, N, D]


def _join_masks(parts, batch):
    """Concatenate per-part key masks; ``None`` when every key is real."""
    parts = [(n, m) for n, m in parts if n]  # empty parts add no keys
    if all(m is None for _, m in parts):
        return None
    return paddle.concat([m.astype("bool") if m is not None else paddle.ones([batch, n], dtype="bool")
                          for n, m in parts], axis=1)


def grounded_attention_plan(m, k, n, batch, grounded_mask=None, text_mask=None, attention="grounded"):
    """Attention plan over ``[image (m); grounded (k); text (n)]``; any part may be 0."""
    total = m + k + n
    if attention == "full" or m == 0 or n == 0:
        # With one modality missing, the grounded rule *is* full attention.
        return AttentionPlan.full(total, _join_masks([(m, None), (k, grounded_mask), (n, text_mask)], batch))
    if attention == "seq2seq":
        # Without grounded tokens (the baseline) the caption sees the image itself.
        t0 = m if k else 0
        return AttentionPlan(total, [
            AttentionBlock(0, m + k, 0, m + k, _join_masks([(m, None), (k, grounded_mask)], batch)),
            AttentionBlock(m + k, total, t0, total, _join_masks([(m - t0, None), (k, grounded_mask), (n, text_mask)],
                                                                batch), causal=True),
        ])
    if attention != "grounded":
        raise ValueError(f"attention must be 'grounded', 'seq2seq' or 'full', got {attention!r}")
    if k == 0:
        raise ValueError("grounded attention needs grounded tokens; use attention='full' without them")
    return AttentionPlan(total, [
        AttentionBlock(0, m, 0, m + k, _join_masks([(m, None), (k, grounded_mask)], batch)),
        AttentionBlock(m, m + k, 0, total, _join_masks([(m, None), (k, grounded_mask), (n, text_mask)], batch)),
        AttentionBlock(m + k, total, m, total, _join_masks([(k, grounded_mask), (n, text_mask)], batch)),
    ])


def seq2seq_step_plan(m, k, step, batch, grounded_mask=None):
    """Plan of caption token ``step`` (one query) against the cached
    ``[image (m); grounded (k); caption so far]``: the last row of the
    ``seq2seq`` plan."""
    total, t0 = m + k + step + 1, (m if k else 0)
    mask = _join_masks([(m - t0, None), (k, grounded_mask), (step + 1, None)], batch)
    return AttentionPlan(total, [AttentionBlock(total - 1, total, t0, total, mask)])


class GroundedTransformer(nn.Layer):
    def __init__(self, *, hidden_size=768, num_layers=12, num_heads=12, dropout=0.1, attn_dropout=0.1,
                 layer_norm_eps=1e-5, act="gelu", attention="grounded", init_std=0.02, recompute=False,
                 official_padding=False):
        super().__init__()
        self.attention, self.official_padding = attention, official_padding
        # Grounded tokens are raw dictionary rows; normalise them like the
        # other inputs (the official "grounded.pre_encoder" LayerNorm).
        self.grounded_norm = nn.LayerNorm(hidden_size, epsilon=layer_norm_eps)
        self.dropout = Dropout(dropout)
        self.encoder = TransformerStack(num_layers, hidden_size, num_heads, recompute=recompute,
                                        dropout=dropout, attn_dropout=attn_dropout, act=act,
                                        pre_norm=False, eps=layer_norm_eps, init_std=init_std)

    def forward(self, image=None, grounded=None, text=None, grounded_mask=None, text_mask=None,
                attention=None, caches=None) -> FusionOutput:
        """``attention`` overrides the configured pattern (e.g. ``"full"`` to
        run without grounded tokens at inference, Table 4's "w/o GD (I)").
        ``caches``: per-layer dicts that receive the keys/values (decoding)."""
        parts = [image, None if grounded is None else self.dropout(self.grounded_norm(grounded)), text]
        present = [p for p in parts if p is not None]
        if not present:
            raise ValueError("the grounded transformer needs at least one input")
        batch = present[0].shape[0]
        m, k, n = (0 if p is None else p.shape[1] for p in parts)
        attention = attention or self.attention
        plan = grounded_attention_plan(m, k, n, batch, grounded_mask, text_mask, attention)
        if self.official_padding and text_mask is not None and attention != "seq2seq":
            plan = plan.padded_queries_see_all(_join_masks([(m, None), (k, grounded_mask), (n, text_mask)], batch))
        out = self.encoder(paddle.concat(present, axis=1) if len(present) > 1 else present[0], plan, caches)
        # split, not slicing: slicing's backward zero-fills the whole tensor.
        pieces = iter(paddle.split(out, [x for x in (m, k, n) if x], axis=1))
        return FusionOutput(*(next(pieces) if x else None for x in (m, k, n)))
