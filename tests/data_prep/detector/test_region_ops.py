"""The detector's geometric operations against independent NumPy references
(small cases): RoIAlign with and without the half-pixel alignment, Caffe's
RoI pooling, NMS, box decoding, anchors, and the region selection."""
import math

import numpy as np
import paddle
import pytest

from data_prep.detector import box_ops
from data_prep.detector.config import DetectorConfig
from data_prep.detector.roi_heads import Res5ROIHeads
from data_prep.detector.rpn import cell_anchors, grid_anchors
from data_prep.detector.selection import max_class_confidence, select_regions


# ------------------------------------------------------------- references
def bilinear(f, y, x):
    """detectron2/torchvision's RoIAlign sample of ``f [C, H, W]`` at (y, x)."""
    _, h, w = f.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(f.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1]
            + ly * (1 - lx) * f[:, y1, x0] + ly * lx * f[:, y1, x1])


def roi_align_ref(f, box, out, scale, aligned):
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - off for v in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:  # the legacy op forces RoIs to be at least one cell
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bw, bh = rw / out, rh / out
    gw, gh = max(1, math.ceil(rw / out)), max(1, math.ceil(rh / out))
    res = np.zeros((f.shape[0], out, out))
    for py in range(out):
        for px in range(out):
            acc = 0
            for iy in range(gh):
                for ix in range(gw):
                    acc = acc + bilinear(f, y1 + py * bh + (iy + 0.5) * bh / gh, x1 + px * bw + (ix + 0.5) * bw / gw)
            res[:, py, px] = acc / (gw * gh)
    return res


def roi_pool_ref(f, box, out, scale):
    """Caffe's ROIPooling (what the bottom-up-attention model was trained with)."""
    rnd = lambda v: math.floor(v * scale + 0.5)   # C round(): half away from zero, boxes are >= 0
    x1, y1, x2, y2 = (rnd(v) for v in box)
    rw, rh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    c, h, w = f.shape
    res = np.zeros((c, out, out))
    for py in range(out):
        hs = min(max(math.floor(py * rh / out) + y1, 0), h)
        he = min(max(math.ceil((py + 1) * rh / out) + y1, 0), h)
        for px in range(out):
            ws = min(max(math.floor(px * rw / out) + x1, 0), w)
            we = min(max(math.ceil((px + 1) * rw / out) + x1, 0), w)
            if he > hs and we > ws:
                res[:, py, px] = f[:, hs:he, ws:we].max(axis=(1, 2))
    return res


def iou_ref(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def nms_ref(boxes, scores, thresh):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou_ref(boxes[i], boxes[j]) <= thresh for j in keep):
            keep.append(i)
    return keep


def butd_confidence_ref(boxes, scores, thresh):
    """tools/generate_tsv.py: a separate NMS for every class."""
    conf = np.zeros(len(boxes))
    for c in range(scores.shape[1]):
        for i in nms_ref(boxes, scores[:, c], thresh):
            conf[i] = max(conf[i], scores[i, c])
    return conf


def random_boxes(rng, n, size):
    xy = rng.random((n, 2)) * size * 0.7
    wh = 1 + rng.random((n, 2)) * size * 0.5
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


# ------------------------------------------------------------------ tests
def _feature(seed=0, c=2, h=9, w=11):
    return np.random.default_rng(seed).standard_normal((1, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_matches_reference(aligned):
    f = _feature()
    boxes = np.array([[3.0, 5.0, 40.0, 30.0], [0.0, 0.0, 8.0, 8.0], [17.5, 9.25, 19.0, 11.0],
                      [100.0, 60.0, 170.0, 140.0]], np.float32)     # a tiny RoI and one past the border
    cfg = DetectorConfig.tiny(pooler_type="roialignv2" if aligned else "roialign", pooler_resolution=3)
    head = Res5ROIHeads(cfg)
    got = head.pool(paddle.to_tensor(f), paddle.to_tensor(boxes)).numpy()
    want = np.stack([roi_align_ref(f[0], b, 3, 1 / 16, aligned) for b in boxes])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_aligned_and_unaligned_roi_align_differ():
    """The half-pixel shift is a real difference (a classic source of silently
    different features); the config must pick the one the weights expect."""
    f = paddle.to_tensor(_feature(1))
    boxes = paddle.to_tensor(np.array([[8.0, 8.0, 72.0, 56.0]], np.float32))
    a = Res5ROIHeads(DetectorConfig.tiny(pooler_type="roialign", pooler_resolution=4)).pool(f, boxes).numpy()
    b = Res5ROIHeads(DetectorConfig.tiny(pooler_type="roialignv2", pooler_resolution=4)).pool(f, boxes).numpy()
    assert np.abs(a - b).max() > 0.05


def test_roi_pool_matches_caffe_reference():
    f = _feature(2)
    boxes = np.array([[3.0, 5.0, 40.0, 30.0], [0.0, 0.0, 8.0, 8.0], [24.0, 40.0, 25.0, 41.0],
                      [130.0, 100.0, 170.0, 160.0]], np.float32)
    cfg = DetectorConfig.tiny(pooler_type="roipool", pooler_resolution=3)
    got = Res5ROIHeads(cfg).pool(paddle.to_tensor(f), paddle.to_tensor(boxes)).numpy()
    want = np.stack([roi_pool_ref(f[0], b, 3, 1 / 16) for b in boxes])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 40, 60)
    scores = rng.random(40).astype(np.float32)
    for t in (0.3, 0.7):
        got = box_ops.nms(paddle.to_tensor(boxes), paddle.to_tensor(scores), t).numpy().tolist()
        assert got == nms_ref(boxes, scores, t)


def test_nms_boundary_is_strict_and_has_no_plus_one():
    b = paddle.to_tensor(np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32))   # IoU exactly 0.5
    s = paddle.to_tensor(np.array([0.9, 0.8], np.float32))
    assert box_ops.nms(b, s, 0.5).numpy().tolist() == [0, 1]   # suppress only when IoU > thr
    b = paddle.to_tensor(np.array([[0, 0, 10, 10], [1, 0, 11, 10]], np.float32))  # 90/110; with +1: 110/132
    assert box_ops.nms(b, s, 0.82).numpy().tolist() == [0, 1]


def test_decode_matches_reference():
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 6, 50)
    deltas = (rng.standard_normal((6, 8)) * 0.5).astype(np.float32)
    deltas[0, 2] = 20.0                                          # clamped at log(1000/16)
    weights = (10.0, 10.0, 5.0, 5.0)
    got = box_ops.decode(paddle.to_tensor(deltas), paddle.to_tensor(boxes), weights).numpy()
    for i in range(6):
        w, h = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
        cx, cy = boxes[i, 0] + w / 2, boxes[i, 1] + h / 2
        for k in range(2):
            dx, dy, dw, dh = deltas[i, 4 * k:4 * k + 4] / np.asarray(weights)
            dw, dh = min(dw, math.log(1000 / 16)), min(dh, math.log(1000 / 16))
            px, py, pw, ph = dx * w + cx, dy * h + cy, math.exp(dw) * w, math.exp(dh) * h
            np.testing.assert_allclose(got[i, 4 * k:4 * k + 4], [px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2],
                                       rtol=1e-5, atol=1e-3)


def test_anchors_layout():
    cell = cell_anchors((64, 128), (0.5, 1.0, 2.0))
    assert cell.shape == (6, 4)
    w, h = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    np.testing.assert_allclose(w * h, [64 ** 2] * 3 + [128 ** 2] * 3, rtol=1e-5)   # sizes outer
    np.testing.assert_allclose(h / w, [0.5, 1, 2, 0.5, 1, 2], rtol=1e-5)           # ratios inner, h / w
    np.testing.assert_allclose(cell[:, :2] + cell[:, 2:], 0, atol=1e-4)            # centred on 0
    grid = grid_anchors(cell, 2, 3, 16)
    assert grid.shape == (2 * 3 * 6, 4)
    np.testing.assert_allclose(grid[6 * 4 + 1], cell[1] + [16, 16, 16, 16])        # (y=1, x=1, anchor 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_max_class_confidence_matches_per_class_nms(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 30, 50)
    scores = rng.random((30, 7)) ** 3
    np.testing.assert_allclose(max_class_confidence(boxes, scores, 0.3), butd_confidence_ref(boxes, scores, 0.3))


def test_selection_rules():
    conf = np.array([0.1, 0.5, 0.25, 0.9, 0.05, 0.3])
    assert select_regions(conf, 0.2, 1, 10).tolist() == [1, 2, 3, 5]        # conf >= 0.2, in RoI order
    assert select_regions(conf, 0.25, 1, 10).tolist() == [1, 2, 3, 5]       # >=, not >
    assert select_regions(conf, 0.2, 5, 10).tolist() == [3, 1, 5, 2, 0]     # too few: the 5 most confident
    assert select_regions(conf, 0.2, 1, 2).tolist() == [3, 1]               # too many: the 2 most confident
    assert select_regions(conf, 0.2, 3, 3).tolist() == [3, 1, 5]            # fixed 3
    assert select_regions(conf, 0.2, 36, 36).tolist() == [3, 1, 5, 2, 0, 4]  # fewer RoIs than the fixed N
