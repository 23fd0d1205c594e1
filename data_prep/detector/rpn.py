"""Region proposal network (detectron2's ``StandardRPNHead`` and
``find_top_rpn_proposals`` at test time, one feature level).

Anchors: for every size s and aspect ratio a (height / width), a box of
area s^2 centred on 0 (w = sqrt(s^2 / a), h = a w), placed at every stride-16
grid point with offset 0; the layout is (y, x, anchor), sizes outer and
ratios inner, matching the order of the head's output channels.
"""
import math

import numpy as np
import paddle
import paddle.nn as nn

from . import box_ops


def cell_anchors(sizes, ratios):
    out = []
    for size in sizes:
        for ratio in ratios:
            w = math.sqrt(size * size / ratio)
            h = ratio * w
            out.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.asarray(out, np.float32)


def grid_anchors(cell, height, width, stride):
    """``[height * width * A, 4]`` anchors for a ``height x width`` feature map."""
    xs = np.arange(width, dtype=np.float32) * stride
    ys = np.arange(height, dtype=np.float32) * stride
    sy, sx = np.meshgrid(ys, xs, indexing="ij")
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    return (shifts[:, None, :] + cell[None, :, :]).reshape(-1, 4)


class RPNHead(nn.Layer):
    def __init__(self, cin, hidden, num_anchors):
        super().__init__()
        init = dict(weight_attr=nn.initializer.Normal(0.0, 0.01), bias_attr=nn.initializer.Constant(0.0))
        self.conv = nn.Conv2D(cin, hidden, 3, padding=1, **init)
        self.objectness_logits = nn.Conv2D(hidden, num_anchors, 1, **init)
        self.anchor_deltas = nn.Conv2D(hidden, num_anchors * 4, 1, **init)

    def forward(self, x):
        t = nn.functional.relu(self.conv(x))
        return self.objectness_logits(t), self.anchor_deltas(t)


class ProposalGenerator(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.rpn_head = RPNHead(cfg.trunk_channels, cfg.rpn_channels, cfg.num_anchors)
        self._cell = cell_anchors(cfg.anchor_sizes, cfg.anchor_ratios)
        self._grid_cache = {}

    def anchors(self, height, width):
        key = (height, width)
        if key not in self._grid_cache:
            self._grid_cache = {key: paddle.to_tensor(grid_anchors(self._cell, height, width, self.cfg.stride))}
        return self._grid_cache[key]

    def forward(self, features, image_sizes):
        """Proposals ``[P_i, 4]`` (input-image pixels, best objectness first)
        for each image of the batch; ``image_sizes`` are the (h, w) of the
        images before batch padding."""
        cfg = self.cfg
        logits, deltas = self.rpn_head(features)
        b, a, fh, fw = logits.shape
        logits = logits.transpose([0, 2, 3, 1]).reshape([b, -1])
        deltas = deltas.reshape([b, a, 4, fh, fw]).transpose([0, 3, 4, 1, 2]).reshape([b, -1, 4])
        anchors = self.anchors(fh, fw)
        out = []
        for i, (h, w) in enumerate(image_sizes):
            k = min(cfg.rpn_pre_nms_topk, logits.shape[1])
            scores, idx = paddle.topk(logits[i], k)
            boxes = box_ops.decode(paddle.gather(deltas[i], idx), paddle.gather(anchors, idx))
            boxes = box_ops.clip(boxes, h, w)
            keep = paddle.nonzero(box_ops.nonempty(boxes, cfg.rpn_min_size)).flatten()
            boxes, scores = paddle.gather(boxes, keep), paddle.gather(scores, keep)
            keep = box_ops.nms(boxes, scores, cfg.rpn_nms)[:cfg.rpn_post_nms_topk]
            out.append(paddle.gather(boxes, keep))
        return out
