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
    (N steps of [C] work instead of C separate NMS runs in Python). The
    per-class "suppressed" sets and the rows of the overlap matrix are bit
    sets (N bits in N/64 words), so a step ORs a few words per class instead
    of N bytes: at 300 RoIs x 1600 classes that is what makes the selection
    cost little next to the network."""
    n, c = scores.shape
    if n == 0 or c == 0:
        return np.zeros(n, np.float64)
    over = _bitsets(iou_matrix(boxes, boxes) > nms_thresh)     # [N, W] uint64
    order = np.argsort(-scores, axis=0, kind="stable")         # [N, C]: rank -> box, per class
    suppressed = np.zeros((c, over.shape[1]), np.uint64)
    kept = np.zeros((n, c), bool)                               # box survives its class's NMS
    classes = np.arange(c)
    one = np.uint64(1)
    for rank in range(n):
        box = order[rank]                                       # [C]
        alive = ((suppressed[classes, box >> 6] >> (box & 63).astype(np.uint64)) & one) == 0
        kb = box[alive]
        kept[kb, classes[alive]] = True
        suppressed[alive] |= over[kb]
    # a box's confidence: its best score among the classes it survives in
    return np.where(kept, scores, 0).max(axis=1).astype(np.float64)


def _bitsets(mask):
    """Rows of a bool ``[N, M]`` matrix as little-endian bit sets ``[N, ceil(M / 64)]``
    of uint64 (column j is bit ``j % 64`` of word ``j // 64``)."""
    n, m = mask.shape
    words = -(-m // 64)
    packed = np.zeros((n, words * 8), np.uint8)
    packed[:, :-(-m // 8)] = np.packbits(mask, axis=1, bitorder="little")
    return packed.view("<u8")


def select_regions(conf, min_thresh, min_boxes, max_boxes):
    """Indices of the kept regions (see the module docstring)."""
    keep = np.nonzero(conf >= min_thresh)[0]
    if len(keep) < min_boxes:
        keep = np.argsort(-conf, kind="stable")[:min_boxes]
    elif len(keep) > max_boxes:
        keep = np.argsort(-conf, kind="stable")[:max_boxes]
    return keep
