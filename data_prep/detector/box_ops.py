"""Box arithmetic in detectron2's conventions (continuous coordinates: a box's
width is ``x2 - x1``, no "+1"), which is what the converted weights were
trained and evaluated with.

``paddle.vision.ops.box_coder`` is not used for decoding: it has no clamp on
the predicted log-scales (detectron2 clamps at log(1000/16), which keeps an
untrained or unlucky delta from producing inf boxes) and mixes in the "+1"
convention unless ``box_normalized``. ``paddle.vision.ops.nms`` matches
detectron2's NMS (suppress when IoU > threshold, no "+1"; tested).
"""
import math

import numpy as np
import paddle
from paddle.vision import ops

SCALE_CLAMP = math.log(1000.0 / 16)


def decode(deltas, boxes, weights=(1.0, 1.0, 1.0, 1.0), clamp=SCALE_CLAMP):
    """Apply ``deltas [N, 4k]`` (dx, dy, dw, dh per class) to ``boxes [N, 4]``
    -> ``[N, 4k]`` boxes (detectron2's ``Box2BoxTransform.apply_deltas``)."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * widths
    cy = boxes[:, 1] + 0.5 * heights
    n, k4 = deltas.shape
    d = deltas.reshape([n, k4 // 4, 4])
    wx, wy, ww, wh = weights
    dx, dy = d[:, :, 0] / wx, d[:, :, 1] / wy
    dw = paddle.clip(d[:, :, 2] / ww, max=clamp)
    dh = paddle.clip(d[:, :, 3] / wh, max=clamp)
    pcx = dx * widths.unsqueeze(1) + cx.unsqueeze(1)
    pcy = dy * heights.unsqueeze(1) + cy.unsqueeze(1)
    pw = paddle.exp(dw) * widths.unsqueeze(1)
    ph = paddle.exp(dh) * heights.unsqueeze(1)
    out = paddle.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], axis=-1)
    return out.reshape([n, k4])


def clip(boxes, height, width):
    """Clamp ``[N, 4]`` boxes to ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = paddle.unbind(boxes, axis=1)
    return paddle.stack([x1.clip(0, width), y1.clip(0, height), x2.clip(0, width), y2.clip(0, height)], axis=1)


def nonempty(boxes, min_size=0.0):
    return ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)


def nms(boxes, scores, thresh):
    """Indices of the kept boxes, best score first."""
    if boxes.shape[0] == 0:
        return paddle.zeros([0], "int64")
    return ops.nms(boxes, thresh, scores)


def iou_matrix(a, b):
    """Pairwise IoU of NumPy boxes ``[N, 4]`` x ``[M, 4]`` (no "+1")."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
