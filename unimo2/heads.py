"""Task heads specific to UNIMO-2 (the shared ones are in vlcore.layers.heads)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers import truncated_normal_attr


class ITMHead(nn.Layer):
    """Image-text matching from the grounded transformer's [CLS] outputs.

    The paper concatenates text [CLS] and image [CLS] (``fusion="concat"``);
    the official code pools each with a ReLU FC and multiplies (``"mul"``) or
    adds (``"sum"``) them, which the released checkpoints need.
    """

    def __init__(self, hidden_size, fusion="concat", dropout=0.1, init_std=0.02):
        super().__init__()
        if fusion not in ("concat", "mul", "sum"):
            raise ValueError(f"ITM fusion must be concat, mul or sum, got {fusion!r}")
        attr = truncated_normal_attr(init_std)
        self.fusion = fusion
        self.pool_text = nn.Linear(hidden_size, hidden_size, weight_attr=attr)
        self.pool_image = nn.Linear(hidden_size, hidden_size, weight_attr=attr)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if fusion == "concat" else 1), 2, weight_attr=attr)

    def forward(self, text_cls, image_cls):
        t, v = F.relu(self.pool_text(text_cls)), F.relu(self.pool_image(image_cls))
        fused = {"concat": lambda: paddle.concat([t, v], axis=-1), "mul": lambda: t * v,
                 "sum": lambda: t + v}[self.fusion]()
        return self.classifier(self.dropout(fused))
