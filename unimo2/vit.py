"""Visual encoder: a ViT over image patches (UNIMO-2 Section 4, "ViT-B/16").

[CLS] + one token per PxP patch, learned position embeddings, pre-LN layers
and a final LayerNorm. Pre-training runs at 224 px (14x14 patches); fine-tuning
at 384 px interpolates the position grid bicubically (Dosovitskiy et al.),
either once when loading a checkpoint (:func:`resize_pos_embed`) or on the fly
when an image of another size comes in.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from vlcore.layers import AttentionPlan, Dropout, TransformerStack, truncated_normal_attr


def resize_pos_embed(pos_embed, new_grid, num_prefix=1):
    """Bicubically resize ``[1, prefix + g*g, D]`` to ``new_grid`` x ``new_grid``.

    The [CLS] position (``num_prefix`` leading entries) is kept as is; only the
    square patch grid is interpolated. Works on Paddle tensors and keeps the
    gradient (used on the fly in forward as well as by checkpoint loaders).
    """
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = int(round(math.sqrt(grid.shape[1])))
    if old * old != grid.shape[1]:
        raise ValueError(f"position embedding grid of {grid.shape[1]} entries is not square")
    if old == new_grid:
        return pos_embed
    dim = grid.shape[-1]
    grid = grid.reshape([1, old, old, dim]).transpose([0, 3, 1, 2])
    grid = F.interpolate(grid, size=[new_grid, new_grid], mode="bicubic", align_corners=False)
    grid = grid.transpose([0, 2, 3, 1]).reshape([1, new_grid * new_grid, dim])
    return paddle.concat([prefix, grid], axis=1)


class VisionTransformer(nn.Layer):
    def __init__(self, *, image_size=224, patch_size=16, patch_padding=0, hidden_size=768,
                 num_layers=12, num_heads=12, dropout=0.0, attn_dropout=0.0,
                 layer_norm_eps=1e-6, act="gelu", init_std=0.02, recompute=False):
        super().__init__()
        self.patch_size, self.patch_padding = patch_size, patch_padding
        self.grid = self._grid(image_size)
        # The official UNIMO-2 ViT pads the patch conv by (P-1)//2; standard
        # ViT-B/16 weights (PaddleClas, timm) use no padding. Both give 14x14
        # at 224 px but see different pixels, so the checkpoint decides.
        self.patch_embed = nn.Conv2D(3, hidden_size, patch_size, stride=patch_size,
                                     padding=patch_padding, weight_attr=truncated_normal_attr(init_std))
        self.cls_token = self.create_parameter([1, 1, hidden_size],
                                               default_initializer=nn.initializer.TruncatedNormal(std=init_std))
        self.pos_embed = self.create_parameter([1, 1 + self.grid ** 2, hidden_size],
                                               default_initializer=nn.initializer.TruncatedNormal(std=init_std))
        self.dropout = Dropout(dropout)
        self.encoder = TransformerStack(num_layers, hidden_size, num_heads, recompute=recompute, final_norm=True,
                                        dropout=dropout, attn_dropout=attn_dropout, act=act, pre_norm=True,
                                        eps=layer_norm_eps, init_std=init_std)

    def _grid(self, image_size):
        return (image_size + 2 * self.patch_padding - self.patch_size) // self.patch_size + 1

    def forward(self, pixels):
        """``pixels``: ``[B, 3, H, W]`` normalised floats -> ``[B, 1 + g*g, D]``."""
        x = self.patch_embed(pixels)  # [B, D, g, g]
        b, d, gh, gw = x.shape
        if gh != gw:
            raise ValueError(f"non-square patch grid {gh}x{gw}: images must be square")
        x = x.flatten(2).transpose([0, 2, 1])
        cls = self.cls_token.expand([b, 1, d])
        pos = self.pos_embed if gh == self.grid else resize_pos_embed(self.pos_embed, gh)
        x = self.dropout(paddle.concat([cls, x], axis=1) + pos)
        return self.encoder(x, AttentionPlan.full(x.shape[1]))
