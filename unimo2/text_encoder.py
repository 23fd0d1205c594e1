"""Text encoder shaped like RoBERTa (UNIMO-2 Section 4, "RoBERTa-Base").

Word + learned position embeddings, LayerNorm, post-LN layers. Position ids
start at 2 as in RoBERTa/fairseq (ids 0 and 1 are reserved next to the padding
index), so RoBERTa checkpoints load without shifting the table.

``official_padding`` computes the padded positions as the official UNIMO-2
code does (PaddlePaddle/Research NLP/UNIMO-2): its reader pads the position
ids with the pad id, 1 (``pad_batch_data(batch_pos_ids, pad_idx=pad_id)`` in
``src/reader/retrieval_grounded_reader.py``), and its attention bias lets a
padded query attend to every key (:meth:`AttentionPlan.padded_queries_see_all`).
Real tokens' states are the same either way; the padded states differ, and
they vote in the official grounding. By default a padded position attends to
the real tokens only and its state is never used.
"""
import paddle
import paddle.nn as nn

from vlcore.layers import AttentionBlock, AttentionPlan, Dropout, TransformerStack

POSITION_OFFSET = 2
PAD_POSITION = POSITION_OFFSET - 1  # RoBERTa's padding_idx; the official reader's padded position id


class TextEncoder(nn.Layer):
    def __init__(self, *, vocab_size=50265, hidden_size=768, max_positions=514, num_layers=12,
                 num_heads=12, dropout=0.1, attn_dropout=0.1, layer_norm_eps=1e-5, act="gelu",
                 init_std=0.02, recompute=False, official_padding=False):
        super().__init__()
        init = nn.initializer.TruncatedNormal(std=init_std)
        self.max_positions = max_positions
        self.official_padding = official_padding
        self.word_embed = nn.Embedding(vocab_size, hidden_size, weight_attr=paddle.ParamAttr(initializer=init))
        self.pos_embed = nn.Embedding(max_positions, hidden_size, weight_attr=paddle.ParamAttr(initializer=init))
        self.norm = nn.LayerNorm(hidden_size, epsilon=layer_norm_eps)
        self.dropout = Dropout(dropout)
        self.encoder = TransformerStack(num_layers, hidden_size, num_heads, recompute=recompute,
                                        dropout=dropout, attn_dropout=attn_dropout, act=act,
                                        pre_norm=False, eps=layer_norm_eps, init_std=init_std)

    def forward(self, ids, mask, causal=False, caches=None, start=0):
        """``ids``: ``[B, N]`` int64, ``mask``: ``[B, N]`` bool (True = real token).
        ``causal``: each token sees itself and earlier ones (captioning);
        ``caches``/``start``: incremental decoding, ``ids`` being tokens
        ``start..start+N`` after the cached ones."""
        n = ids.shape[1]
        if start + n + POSITION_OFFSET > self.max_positions:
            raise ValueError(f"text of {start + n} tokens exceeds max_positions={self.max_positions} "
                             f"(minus {POSITION_OFFSET} reserved)")
        pos = paddle.arange(start + POSITION_OFFSET, start + n + POSITION_OFFSET, dtype="int64").unsqueeze(0)
        official = self.official_padding and not causal and mask is not None
        if official:
            pos = paddle.where(mask.astype("bool"), pos, paddle.full([], PAD_POSITION, "int64"))
        x = self.dropout(self.norm(self.word_embed(ids) + self.pos_embed(pos)))
        if not causal:
            plan = AttentionPlan.full(n, key_mask=mask)
            return self.encoder(x, plan.padded_queries_see_all(mask) if official else plan, caches)
        total = start + n
        if start and mask is not None:  # the cached tokens are real
            mask = paddle.concat([paddle.ones([ids.shape[0], start], dtype="bool"), mask.astype("bool")], axis=1)
        return self.encoder(x, AttentionPlan(total, [AttentionBlock(start, total, 0, total, mask, causal=True)]),
                            caches)
