"""Which detected regions become an image's features: bottom-up attention's
rule (``tools/generate_tsv.py`` of peteanderson80/bottom-up-attention).

For every foreground class, NMS (IoU > ``nms`` suppresses) over all RoIs by
that class's score; a RoI's confidence is the best score among the classes in
which it survives. RoIs with confidence >= ``conf`` are kept, in RoI order;
if fewer than ``min_boxes``, the ``min_boxes`` most confident are kept, if
more than ``max_boxes``, the ``max_boxes`` most confident (sorted by
confidence). ``min_boxes = max_boxes = N`` gives a fixed N (36 in most
papers) unless the image has fewer RoIs than N.
"""
import numpy as np

from .box_ops import iou_matrix


def max_class_confidence(boxes, scores, nms_thresh):
    """``boxes [N, 4]``, foreground ``scores [N, C]`` -> confidence ``[N]``.

    All classes share the same boxes, so the IoU matrix is computed once and
    the greedy NMS of all C classes advances together, one rank at a time
    (N steps of [C, N] work instead of C separate NMS runs in Python)."""
    n, c = scores.shape
    conf = np.zeros(n, np.float64)
    if n == 0 or c == 0:
        return conf
    over = iou_matrix(boxes, boxes) > nms_thresh
    order = np.argsort(-scores, axis=0, kind="stable")     # [N, C]: rank -> box, per class
    suppressed = np.zeros((c, n), bool)
    classes = np.arange(c)
    for rank in range(n):
        box = order[rank]                                   # [C]
        kept = ~suppressed[classes, box]
        if not kept.any():
            continue
        kb, kc = box[kept], classes[kept]
        np.maximum.at(conf, kb, scores[kb, kc])
        suppressed[kc] |= over[kb]
    return conf


def select_regions(conf, min_thresh, min_boxes, max_boxes):
    """Indices of the kept regions (see the module docstring)."""
    keep = np.nonzero(conf >= min_thresh)[0]
    if len(keep) < min_boxes:
        keep = np.argsort(-conf, kind="stable")[:min_boxes]
    elif len(keep) > max_boxes:
        keep = np.argsort(-conf, kind="stable")[:max_boxes]
    return keep
