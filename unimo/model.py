"""UNIMO (Li et al., 2021): one transformer over region features and text.

A sequence is ``[IMG] v_1..v_t [CLS] w_1..w_n [SEP]`` for a pair, its image
half for an image, its text half for text (Section 3). Region embedding =
FC(pooled RoI feature) + FC(location), LayerNorm; text embedding = word +
position (+ segment for Unicoder-VL), LayerNorm. Unicoder-VL is the same
network with ``layout: unicoder`` (``[CLS] text [SEP] regions``), 4-d
locations and segment embeddings.

Seq2seq (UniLM) inputs append a target to the text: the image and the source
attend bidirectionally, the target causally (and to everything before it).
The same attention plan serves incremental decoding with key/value caches.
"""
from typing import NamedTuple, Optional

import paddle
import paddle.nn as nn

from vlcore.layers import AttentionBlock, AttentionPlan, Dropout, Linear, TransformerStack, truncated_normal_attr


class Encoded(NamedTuple):
    image: Optional[paddle.Tensor]   # [B, M, D] ([IMG] + regions) or None
    text: Optional[paddle.Tensor]    # [B, N, D] (source text) or None
    target: Optional[paddle.Tensor]  # [B, T, D] (seq2seq target) or None


def region_locations(boxes, image_w, image_h, dim=5):
    """Normalised location features: x1/W, y1/H, x2/W, y2/H (+ area/(W*H))."""
    w = image_w.reshape([-1, 1]).astype("float32")
    h = image_h.reshape([-1, 1]).astype("float32")
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    parts = [x1 / w, y1 / h, x2 / w, y2 / h]
    if dim == 5:
        parts.append((x2 - x1) * (y2 - y1) / (w * h))
    return paddle.stack(parts, axis=-1)


class UNIMOModel(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, std = cfg.hidden_size, cfg.init_std
        emb = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=std))
        self.word_embed = nn.Embedding(cfg.vocab_size, d, weight_attr=emb)
        self.pos_embed = nn.Embedding(cfg.max_positions, d, weight_attr=emb)
        self.type_embed = nn.Embedding(cfg.type_vocab_size, d, weight_attr=emb) if cfg.type_vocab_size else None
        self.text_norm = nn.LayerNorm(d, epsilon=cfg.layer_norm_eps)
        self.feature_fc = Linear(cfg.feature_dim, d, weight_attr=truncated_normal_attr(std))
        self.location_fc = Linear(cfg.location_dim, d, weight_attr=truncated_normal_attr(std))
        self.region_norm = nn.LayerNorm(d, epsilon=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        self.encoder = TransformerStack(cfg.num_layers, d, cfg.num_heads, recompute=cfg.recompute,
                                        dropout=cfg.dropout, attn_dropout=cfg.attn_dropout, act=cfg.act,
                                        pre_norm=False, eps=cfg.layer_norm_eps, init_std=std)

    # ------------------------------------------------------------ embeddings
    def embed_text(self, ids, positions=None, segment=0):
        """``positions``: ``[B, N]`` explicit ids (seq2seq targets reuse the
        source positions of their fragments); default: consecutive from the
        configured offset."""
        if positions is None:
            positions = paddle.arange(ids.shape[1], dtype="int64").unsqueeze(0) + self.cfg.position_offset
        x = self.word_embed(ids) + self.pos_embed(positions)
        if self.type_embed is not None:
            x = x + self.type_embed(paddle.full_like(ids, segment))
        return self.dropout(self.text_norm(x))

    def embed_regions(self, features, locations, mask):
        """``features [B, R, F]``, ``locations [B, R, L]``, ``mask [B, R]`` ->
        embeddings (with the [IMG] token first if configured) and key mask."""
        if self.cfg.image_token == "mean":
            w = mask.astype(features.dtype).unsqueeze(-1)
            mean = (features * w).sum(1, keepdim=True) / paddle.clip(w.sum(1, keepdim=True), min=1.0)
            whole = [0.0, 0.0, 1.0, 1.0, 1.0][:self.cfg.location_dim]
            loc = paddle.to_tensor(whole, dtype=locations.dtype).reshape([1, 1, -1]).expand(
                [features.shape[0], 1, self.cfg.location_dim])
            features = paddle.concat([mean, features], axis=1)
            locations = paddle.concat([loc, locations], axis=1)
            mask = paddle.concat([paddle.ones([mask.shape[0], 1], dtype="bool"), mask.astype("bool")], axis=1)
        x = self.feature_fc(features) + self.location_fc(locations)
        if self.type_embed is not None:
            x = x + self.type_embed(paddle.ones(mask.shape, dtype="int64"))
        return self.dropout(self.region_norm(x)), mask.astype("bool")

    # ------------------------------------------------------------ encoding
    def forward(self, regions=None, text=None, target=None, caches=None):
        """Encode any of: ``regions`` = (features, locations, mask) for an image,
        ``text`` = (ids, mask[, positions]) and a seq2seq ``target`` =
        (ids, mask, positions) generated causally after the text."""
        parts, masks, lengths = [], [], []
        image = None
        if regions is not None:
            image, image_mask = self.embed_regions(*regions)
        txt = tgt = None
        if text is not None:
            txt = self.embed_text(text[0], text[2] if len(text) > 2 else None, segment=0)
        if target is not None:
            tgt = self.embed_text(target[0], target[2], segment=0)
        order = [("image", image, image_mask if image is not None else None),
                 ("text", txt, text[1] if text is not None else None)]
        if self.cfg.layout == "unicoder":
            order.reverse()
        order.append(("target", tgt, target[1] if target is not None else None))
        for name, x, m in order:
            if x is not None:
                parts.append(x)
                masks.append(m.astype("bool"))
                lengths.append((name, x.shape[1]))
        if not parts:
            raise ValueError("nothing to encode")
        seq = paddle.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        key_mask = paddle.concat(masks, axis=1) if len(masks) > 1 else masks[0]
        plan = self._plan(seq.shape[1], key_mask, tgt.shape[1] if tgt is not None else 0)
        out = self.encoder(seq, plan, caches)
        pieces = dict(zip([n for n, _ in lengths], paddle.split(out, [n for _, n in lengths], axis=1)))
        return Encoded(pieces.get("image"), pieces.get("text"), pieces.get("target"))

    @staticmethod
    def _plan(total, key_mask, target_len):
        """Bidirectional over everything before the target, causal over it."""
        if target_len == 0:
            return AttentionPlan.full(total, key_mask)
        ctx = total - target_len
        ctx_mask, _ = paddle.split(key_mask, [ctx, target_len], axis=1)
        return AttentionPlan(total, [AttentionBlock(0, ctx, 0, ctx, ctx_mask),
                                     AttentionBlock(ctx, total, 0, total, key_mask, causal=True)])

    # ------------------------------------------------------------ decoding
    def encode_context(self, regions=None, text=None):
        """Encode the context (image and/or source text) once, returning the
        per-layer key/value caches and the context's key mask."""
        caches = [{} for _ in range(self.cfg.num_layers)]
        enc = self(regions=regions, text=text, caches=caches)
        masks = []
        if regions is not None:
            m = regions[2].astype("bool")
            if self.cfg.image_token == "mean":  # the [IMG] token is always real
                m = paddle.concat([paddle.ones([m.shape[0], 1], dtype="bool"), m], axis=1)
            masks.append(m)
        if text is not None:
            masks.append(text[1].astype("bool"))
        if self.cfg.layout == "unicoder":
            masks.reverse()
        return enc, caches, paddle.concat(masks, axis=1) if len(masks) > 1 else masks[0]

    def decode_step(self, ids, positions, context_mask, step, caches):
        """One target token per row (``ids, positions: [B, 1]``) at target
        index ``step``: it attends to the cached context and target so far."""
        x = self.embed_text(ids, positions)
        b, total = ids.shape[0], context_mask.shape[1] + step + 1
        key_mask = paddle.concat([context_mask, paddle.ones([b, step + 1], dtype="bool")], axis=1)
        plan = AttentionPlan(total, [AttentionBlock(total - 1, total, 0, total, key_mask)])
        return self.encoder(x, plan, caches)
