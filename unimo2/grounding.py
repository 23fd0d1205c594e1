"""The grounded dictionary (UNIMO-2 Section 3.1, Eq. 1-3).

A dictionary ``G`` of ``C`` embeddings shared by images and texts. For the
visual tokens ``v_i`` (patches) and textual tokens ``t_k`` of one input:

- Eq. 1: ``x_ij = sigmoid(eta * v_i . g_j)`` with a learnable temperature
  ``eta``, clipped to ``[temperature_min, temperature_max]``;
- Eq. 2: accumulated score ``s_j = sum_i x_ij + sum_k y_kj`` over the *real*
  tokens only. The official code lets padding tokens vote, which makes the
  grounded tokens of a caption depend on how much it was padded;
  ``exclude_padding=False`` reproduces that behaviour;
- the top-K dictionary entries by ``s_j`` are the grounded tokens;
- Eq. 3 (grounding loss): ``alpha * ||sg(v_i) - sum_j x_ij / sum_k x_ik g_j||^2
  + beta * ||sg(g_j) - sum_i x_ij / s_j v_i||^2``. As in the official code the
  sums over ``j``/``k`` run over the top-K entries and the squared errors are
  averaged (per element) rather than summed, which keeps the loss scale
  independent of sequence length and width.

Image-only and text-only inputs simply pass one modality. The "1-to-1 map"
ablation (Table 4/5) maps every token to its nearest entry as in VQ-VAE.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

_EPS = 1e-12


class GroundingOutput(NamedTuple):
    tokens: paddle.Tensor            # [B, K, D] grounded token embeddings (rows of G)
    indices: paddle.Tensor           # [B, K] dictionary ids
    token_mask: Optional[paddle.Tensor]  # [B, K] bool, None when every token is real
    loss: paddle.Tensor              # scalar grounding loss (Eq. 3)
    scores: Optional[paddle.Tensor]  # [B, C] accumulated scores (Eq. 2), top-K mode only


def concat_modalities(inputs: Sequence[Tuple[paddle.Tensor, Optional[paddle.Tensor]]]):
    """Join ``(features [B, L, D], mask [B, L] or None)`` pairs along L."""
    feats = paddle.concat([f for f, _ in inputs], axis=1) if len(inputs) > 1 else inputs[0][0]
    masks = [m if m is not None else paddle.ones(f.shape[:2], dtype="bool") for f, m in inputs]
    mask = paddle.concat(masks, axis=1) if len(masks) > 1 else masks[0]
    return feats, mask


class GroundedDictionary(nn.Layer):
    def __init__(self, *, dict_size=2048, dim=768, top_k=100, beta=0.25, alpha=1.0, mode="topk",
                 temperature_init=100.0, temperature_min=1.0, temperature_max=10000.0,
                 exclude_padding=True):
        super().__init__()
        if mode not in ("topk", "one_to_one"):
            raise ValueError(f"grounding mode {mode!r} is not 'topk' or 'one_to_one'")
        if mode == "topk" and not 0 < top_k <= dict_size:
            raise ValueError(f"top_k={top_k} must be in [1, dict_size={dict_size}]")
        self.dict_size, self.top_k, self.mode = dict_size, top_k, mode
        self.alpha, self.beta, self.exclude_padding = alpha, beta, exclude_padding
        self.temperature_min, self.temperature_max = temperature_min, temperature_max
        bound = 1.0 / dict_size  # the official initialisation
        self.embedding = self.create_parameter(
            [dict_size, dim], default_initializer=nn.initializer.Uniform(-bound, bound))
        self.temperature = self.create_parameter(
            [1], default_initializer=nn.initializer.Constant(temperature_init))

    def eta(self):
        return paddle.clip(self.temperature, self.temperature_min, self.temperature_max)

    def similarity(self, feats):
        """Eq. 1 for every token and entry: ``[B, L, D] -> [B, L, C]``."""
        return F.sigmoid(self.eta() * paddle.matmul(feats, self.embedding, transpose_y=True))

    def forward(self, inputs: Sequence[Tuple[paddle.Tensor, Optional[paddle.Tensor]]],
                loss_rows: Optional[paddle.Tensor] = None) -> GroundingOutput:
        """``inputs``: the visual and/or textual token features with their masks.
        ``loss_rows`` (``[B]`` bool): the rows the grounding loss is averaged
        over (e.g. not the mismatched pairs of image-text matching); all by
        default. Grounded tokens are computed for every row."""
        feats, mask = concat_modalities(inputs)
        if not self.exclude_padding:
            mask = paddle.ones_like(mask)
        rows = None if loss_rows is None else loss_rows.astype(feats.dtype).reshape([-1, 1, 1])
        if self.mode == "one_to_one":
            return self._one_to_one(feats, mask, rows)
        return self._top_k(feats, mask, rows)

    def _top_k(self, v, mask, rows=None):
        w = mask.astype(v.dtype).unsqueeze(-1)                         # [B, L, 1]
        x = self.similarity(v)                                          # Eq. 1
        scores = (x * w).sum(axis=1)                                    # Eq. 2, [B, C]
        s_top, idx = paddle.topk(scores, self.top_k, axis=1)            # [B, K]
        g = F.embedding(idx, self.embedding)                            # [B, K, D]
        b, l, _ = x.shape
        x_k = paddle.take_along_axis(x, idx.unsqueeze(1).expand([b, l, self.top_k]), axis=2)  # [B, L, K]
        # First term: each real token is reconstructed from the grounded
        # tokens, weighted by its normalised similarity; sg on v_i.
        recon_v = paddle.matmul(x_k / (x_k.sum(-1, keepdim=True) + _EPS), g)
        w_loss = w if rows is None else w * rows
        err_v = ((v.detach() - recon_v) ** 2 * w_loss).sum() / (w_loss.sum() * v.shape[-1] + _EPS)
        # Second term (commitment): each grounded token against the
        # similarity-weighted mean of the tokens that voted for it; sg on g_j.
        xw = x_k * w
        recon_g = paddle.matmul((xw / (xw.sum(1, keepdim=True) + _EPS)).transpose([0, 2, 1]), v)
        err_g = (g.detach() - recon_g) ** 2
        err_g = err_g.mean() if rows is None else (err_g * rows).sum() / (rows.sum() * err_g[0].size + _EPS)
        loss = self.alpha * err_v + self.beta * err_g
        return GroundingOutput(g, idx, None, loss, scores)

    def _one_to_one(self, v, mask, rows=None):
        """VQ-VAE nearest-entry map (the "1-to-1 Map" ablation)."""
        w = mask.astype(v.dtype).unsqueeze(-1)
        dist = ((v ** 2).sum(-1, keepdim=True) + (self.embedding ** 2).sum(-1)
                - 2 * paddle.matmul(v, self.embedding, transpose_y=True))  # [B, L, C]
        idx = paddle.argmin(dist, axis=-1)                                 # [B, L]
        g = F.embedding(idx, self.embedding)                               # [B, L, D]
        if rows is not None:
            w = w * rows
        denom = w.sum() * v.shape[-1] + _EPS
        dict_loss = ((g - v.detach()) ** 2 * w).sum() / denom
        commit_loss = ((g.detach() - v) ** 2 * w).sum() / denom
        loss = self.alpha * dict_loss + self.beta * commit_loss
        return GroundingOutput(g, idx, mask, loss, None)
