"""Small reusable layers (timm-style): attention with its plans (grounded,
full, padded), transformer stacks, linear and dropout variants with CPU fast
paths, heads, and the weighted sum of objectives."""
from vlcore.layers.attention import AttentionBlock, AttentionPlan, MultiHeadAttention
from vlcore.layers.dropout import Dropout
from vlcore.layers.linear import Linear, add_bias
from vlcore.layers.transformer import FeedForward, TransformerLayer, TransformerStack, truncated_normal_attr

__all__ = ["AttentionBlock", "AttentionPlan", "Dropout", "Linear", "add_bias", "MultiHeadAttention", "FeedForward",
           "TransformerLayer", "TransformerStack", "truncated_normal_attr"]
