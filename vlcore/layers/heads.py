"""Heads shared by the model packages: the masked-LM head and the L2-normalised
projection used by contrastive objectives."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .transformer import truncated_normal_attr


class MLMHead(nn.Layer):
    """Dense + activation + LayerNorm, then a decoder tied to the word
    embeddings (RoBERTa's LM head; ``mask_lm_*`` in the official code)."""

    def __init__(self, hidden_size, word_embedding, layer_norm_eps=1e-5, init_std=0.02):
        super().__init__()
        self.transform = nn.Linear(hidden_size, hidden_size, weight_attr=truncated_normal_attr(init_std))
        self.norm = nn.LayerNorm(hidden_size, epsilon=layer_norm_eps)
        self.word_embedding = word_embedding  # shared weight [V, D]
        self.bias = self.create_parameter([word_embedding.shape[0]], is_bias=True)

    def forward(self, hidden):
        h = self.norm(F.gelu(self.transform(hidden)))
        return paddle.matmul(h, self.word_embedding, transpose_y=True) + self.bias


class ProjectionHead(nn.Layer):
    """MLP projection to a normalised embedding (SimCLR's g(.) for VCL; the
    official ``cmcl_pooled_fc_*`` ReLU FC for image-text contrast)."""

    def __init__(self, hidden_size, out_dim, num_layers=2, init_std=0.02, final_act="none"):
        super().__init__()
        attr = truncated_normal_attr(init_std)
        layers = []
        for i in range(num_layers):
            last = i == num_layers - 1
            layers.append(nn.Linear(hidden_size, out_dim if last else hidden_size, weight_attr=attr))
            # final_act="relu": the official cmcl_pooled_fc_* applies ReLU before normalising
            if not last or final_act == "relu":
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        return F.normalize(self.mlp(x), axis=-1)
