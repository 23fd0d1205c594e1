"""Heads shared by the model packages: the masked-LM head and the L2-normalised
projection used by contrastive objectives."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers.dropout import Dropout
from vlcore.layers.linear import Linear, add_bias
from vlcore.layers.transformer import truncated_normal_attr


class MLMHead(nn.Layer):
    """Dense + activation + LayerNorm, then a decoder tied to the word
    embeddings (RoBERTa's LM head; ``mask_lm_*`` in the official code)."""

    def __init__(self, hidden_size, word_embedding, layer_norm_eps=1e-5, init_std=0.02):
        super().__init__()
        self.transform = Linear(hidden_size, hidden_size, weight_attr=truncated_normal_attr(init_std))
        self.norm = nn.LayerNorm(hidden_size, epsilon=layer_norm_eps)
        self.word_embedding = word_embedding  # shared weight [V, D]
        self.bias = self.create_parameter([word_embedding.shape[0]], is_bias=True)

    def forward(self, hidden):
        h = self.norm(F.gelu(self.transform(hidden)))
        return add_bias(paddle.matmul(h, self.word_embedding, transpose_y=True), self.bias)


class ProjectionHead(nn.Layer):
    """MLP projection to a normalised embedding (SimCLR's g(.) for VCL; the
    official ``cmcl_pooled_fc_*`` ReLU FC for image-text contrast)."""

    def __init__(self, hidden_size, out_dim, num_layers=2, init_std=0.02, final_act="none", normalize=True):
        super().__init__()
        self.normalize = normalize
        attr = truncated_normal_attr(init_std)
        layers = []
        for i in range(num_layers):
            last = i == num_layers - 1
            layers.append(Linear(hidden_size, out_dim if last else hidden_size, weight_attr=attr))
            # final_act="relu": the official cmcl_pooled_fc_* applies ReLU before normalising
            if not last or final_act == "relu":
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        x = self.mlp(x)
        return F.normalize(x, axis=-1) if self.normalize else x


class MatchHead(nn.Layer):
    """Image-text matching from the [CLS] outputs of a fusion: each pooled by
    a ReLU FC, fused, then a linear layer to ``num_outputs`` logits.

    ``fusion="concat"`` is the UNIMO-2 paper's text; the official UNIMO and
    UNIMO-2 code multiplies (``"mul"``) or adds (``"sum"``) the pooled
    vectors (``get_match_output``), which the released checkpoints need.
    UNIMO-2's ITM head has 2 outputs; UNIMO's retrieval head
    (``match_fc``) has one score.
    """

    def __init__(self, hidden_size, fusion="concat", dropout=0.1, init_std=0.02, num_outputs=2):
        super().__init__()
        if fusion not in ("concat", "mul", "sum"):
            raise ValueError(f"ITM fusion must be concat, mul or sum, got {fusion!r}")
        attr = truncated_normal_attr(init_std)
        self.fusion = fusion
        self.pool_text = Linear(hidden_size, hidden_size, weight_attr=attr)
        self.pool_image = Linear(hidden_size, hidden_size, weight_attr=attr)
        self.dropout = Dropout(dropout)
        self.classifier = Linear(hidden_size * (2 if fusion == "concat" else 1), num_outputs, weight_attr=attr)

    def forward(self, text_cls, image_cls):
        t, v = F.relu(self.pool_text(text_cls)), F.relu(self.pool_image(image_cls))
        fused = {"concat": lambda: paddle.concat([t, v], axis=-1), "mul": lambda: t * v,
                 "sum": lambda: t + v}[self.fusion]()
        return self.classifier(self.dropout(fused))


def cross_entropy_with_accuracy(logits, labels):
    """Mean cross-entropy and accuracy of ``logits [N, C]`` against ``labels [N]``
    (MLM / seq2seq over the gathered labelled rows, matching heads). With no
    row (a batch without a masked token) both are a zero that keeps the graph,
    so backward runs and gives zero gradients instead of NaN. (Paddle's fused
    ``F.cross_entropy`` is fast on the 50265-word vocabulary, unlike
    ``F.log_softmax``: 0.27 s forward + backward on [200, 50265] here.)"""
    if labels.shape[0] == 0:
        zero = logits.sum() * 0.0
        return zero, zero
    return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).astype("float32").mean()
