"""Transformer encoder layers: post-LN (BERT/RoBERTa) and pre-LN (ViT).

UNIMO-2 stacks both kinds: the ViT is pre-LN with a final LayerNorm, the text
encoder and the grounded transformer are post-LN like RoBERTa. One layer class
with a ``pre_norm`` switch keeps the parameter layout identical for both, so
converters and initialisers treat them alike.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers.attention import AttentionPlan, MultiHeadAttention
from vlcore.layers.dropout import Dropout
from vlcore.layers.linear import Linear

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "gelu_tanh": lambda x: F.gelu(x, approximate=True)}


def truncated_normal_attr(std=0.02):
    """BERT-style initialiser used for every weight matrix in the family."""
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(mean=0.0, std=std))


class FeedForward(nn.Layer):
    def __init__(self, d_model, d_inner, act="gelu", weight_attr=None):
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {sorted(_ACTIVATIONS)}")
        self.fc1 = Linear(d_model, d_inner, weight_attr=weight_attr)
        self.fc2 = Linear(d_inner, d_model, weight_attr=weight_attr)
        self.act = _ACTIVATIONS[act]

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TransformerLayer(nn.Layer):
    """One encoder layer; ``pre_norm`` picks ViT (True) or BERT (False) order."""

    def __init__(self, d_model, n_heads, d_inner=None, dropout=0.1, attn_dropout=0.1,
                 act="gelu", pre_norm=False, eps=1e-12, init_std=0.02):
        super().__init__()
        attr = truncated_normal_attr(init_std)
        self.pre_norm = pre_norm
        self.attn = MultiHeadAttention(d_model, n_heads, attn_dropout, weight_attr=attr)
        self.ffn = FeedForward(d_model, d_inner or 4 * d_model, act, weight_attr=attr)
        self.norm1 = nn.LayerNorm(d_model, epsilon=eps)
        self.norm2 = nn.LayerNorm(d_model, epsilon=eps)
        self.dropout = Dropout(dropout)

    def forward(self, x, plan: AttentionPlan, cache=None):
        if self.pre_norm:
            x = x + self.dropout(self.attn(self.norm1(x), plan, cache))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attn(x, plan, cache)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class TransformerStack(nn.Layer):
    """``n_layers`` layers sharing one attention plan; optional recompute.

    ``recompute`` trades compute for memory (activation checkpointing per
    layer) and only applies in training, where it matters.
    """

    def __init__(self, n_layers, d_model, n_heads, recompute=False, final_norm=False, **layer_kw):
        super().__init__()
        self.layers = nn.LayerList([TransformerLayer(d_model, n_heads, **layer_kw) for _ in range(n_layers)])
        self.final_norm = nn.LayerNorm(d_model, epsilon=layer_kw.get("eps", 1e-12)) if final_norm else None
        self.recompute = recompute

    def forward(self, x, plan: AttentionPlan, caches=None):
        for i, layer in enumerate(self.layers):
            cache = caches[i] if caches is not None else None
            if self.recompute and self.training and cache is None:
                from paddle.distributed.fleet.utils import recompute
                x = recompute(layer, x, plan)
            else:
                x = layer(x, plan, cache)
        return self.final_norm(x) if self.final_norm is not None else x
