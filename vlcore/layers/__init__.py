from .attention import AttentionBlock, AttentionPlan, MultiHeadAttention
from .transformer import FeedForward, TransformerLayer, TransformerStack, truncated_normal_attr

__all__ = ["AttentionBlock", "AttentionPlan", "MultiHeadAttention", "FeedForward",
           "TransformerLayer", "TransformerStack", "truncated_normal_attr"]
