"""The classification head of fine-tuning and its losses, shared by UNIMO-2
and UNIMO.

Following the official fine-tuning code (``get_pooled_*_output``), the first
token of the text stream and of the image stream each go through an FC +
ReLU pooler; text-only tasks (GLUE) use the text one, image-only tasks the
image one, and image-text tasks combine them (``fusion``: the official
visual-entailment head sums them). Then either dropout + FC to the outputs
(``hidden: 0``, the official GLUE/regression head) or one hidden layer first
(``hidden: 2048, act: none`` is the official SNLI-VE head; ``act: gelu_ln``
is the UNITER-style VQA head, GELU + LayerNorm, for which the official
UNIMO/UNIMO-2 code is not released).
"""
from dataclasses import dataclass
from typing import Literal

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers.dropout import Dropout
from vlcore.layers.linear import Linear
from vlcore.layers.transformer import truncated_normal_attr


@dataclass
class ClsHeadConfig:
    fusion: Literal["sum", "mul", "concat"] = "sum"
    hidden: int = 0                    # 0: no hidden layer
    act: Literal["none", "gelu_ln"] = "none"
    dropout: float = 0.1


class PooledClassifier(nn.Layer):
    def __init__(self, hidden_size, num_outputs, cfg: ClsHeadConfig, init_std=0.02, layer_norm_eps=1e-5):
        super().__init__()
        attr = lambda: truncated_normal_attr(init_std)  # noqa: E731
        zero = lambda: paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))  # noqa: E731
        self.cfg = cfg
        self.pool_text = Linear(hidden_size, hidden_size, weight_attr=attr())
        self.pool_image = Linear(hidden_size, hidden_size, weight_attr=attr())
        d = hidden_size * 2 if cfg.fusion == "concat" else hidden_size
        self.hidden = None
        if cfg.hidden:
            self.hidden = Linear(d, cfg.hidden, weight_attr=attr(), bias_attr=zero())
            self.norm = nn.LayerNorm(cfg.hidden, epsilon=layer_norm_eps) if cfg.act == "gelu_ln" else None
            d = cfg.hidden
        self.dropout = Dropout(cfg.dropout)
        self.out = Linear(d, num_outputs, weight_attr=attr(), bias_attr=zero())

    def forward(self, text_cls=None, image_cls=None):
        t = F.relu(self.pool_text(text_cls)) if text_cls is not None else None
        v = F.relu(self.pool_image(image_cls)) if image_cls is not None else None
        if t is not None and v is not None:
            x = {"sum": lambda: t + v, "mul": lambda: t * v,
                 "concat": lambda: paddle.concat([t, v], axis=-1)}[self.cfg.fusion]()
        elif self.cfg.fusion == "concat":
            raise ValueError("fusion=concat needs both a text and an image input")
        else:
            x = t if t is not None else v
        if self.hidden is not None:
            x = self.hidden(x)
            if self.norm is not None:
                x = self.norm(F.gelu(x))
        return self.out(self.dropout(x))


def classification_loss(logits, targets, kind):
    """``(loss, accuracy-or-None)``.

    - ``ce``: softmax cross-entropy on class ids;
    - ``bce``: sigmoid cross-entropy on soft scores (VQA), summed over the
      answers and averaged over questions (UNITER's mean x num_answers);
    - ``mse``: squared error of the single output (STS-B)."""
    if kind == "ce":
        loss = F.cross_entropy(logits, targets)
        return loss, (logits.argmax(-1) == targets).astype("float32").mean()
    if kind == "bce":
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.shape[0]
        # the soft score of the top answer: VQA accuracy of the training batch
        top = paddle.take_along_axis(targets, logits.argmax(-1, keepdim=True), axis=1)
        return loss, top.mean()
    if kind == "mse":
        return F.mse_loss(logits.reshape([-1]), targets.astype(logits.dtype)), None
    raise ValueError(f"unknown loss kind {kind!r}")
