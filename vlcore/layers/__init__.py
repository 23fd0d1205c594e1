from .attention import AttentionBlock, AttentionPlan, MultiHeadAttention
from .dropout import Dropout
from .linear import Linear, add_bias
from .transformer import FeedForward, TransformerLayer, TransformerStack, truncated_normal_attr

__all__ = ["AttentionBlock", "AttentionPlan", "Dropout", "Linear", "add_bias", "MultiHeadAttention", "FeedForward",
           "TransformerLayer", "TransformerStack", "truncated_normal_attr"]
