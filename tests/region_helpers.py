"""Shared pieces of the region-feature tests: generated images, a tiny
detector config, random records, the detectron2 parameter layout written
out independently of the Paddle model (from detectron2's naming rules), and
the selection's old path (also swapped back in by bench_region_fast_paths)."""
import json
import os

import cv2
import numpy as np

from data_prep.detector.box_ops import iou_matrix


def make_images(directory, sizes, seed=0):
    """PNG images of coloured rectangles on noise; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        for _ in range(3):
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            x1, y1 = x0 + rng.integers(8, w // 2), y0 + rng.integers(8, h // 2)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), rng.integers(80, 255, 3).tolist(), -1)
        path = os.path.join(directory, f"img{i:03d}.png")
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


def tiny_config_file(directory, **overrides):
    path = os.path.join(directory, "tiny_detector.json")
    with open(path, "w") as f:
        json.dump({"preset": "tiny", **overrides}, f)
    return path


def random_record(image_id, n, dim=16, classes=7, k=3, ka=2, probs=True, seed=0):
    from vlcore.formats.region_store import RegionFeatures, top_k
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 50
    boxes = np.concatenate([xy, xy + 1 + rng.random((n, 2)) * 40], 1).astype(np.float32)
    p = rng.random((n, classes + 1)).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    ids, scores = top_k(p[:, :-1], k)
    a = rng.random((n, 5)).astype(np.float32)
    aids, ascores = top_k(a, ka)
    return RegionFeatures(image_id, 100, 80, boxes, rng.standard_normal((n, dim)).astype(np.float32), ids, scores,
                          aids, ascores, p if probs else None)


def detectron2_layout(cfg):
    """name -> PyTorch shape of the bottom-up-attention detectron2 state dict
    for a :class:`DetectorConfig` (rules of detectron2's ResNet, StandardRPNHead,
    Res5ROIHeads and the port's FastRCNNOutputLayers with attributes)."""
    shapes = {}

    def conv_norm(prefix, cout, cin, k):
        shapes[f"{prefix}.weight"] = (cout, cin, k, k)
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.norm.{leaf}"] = (cout,)

    def stage(prefix, blocks, cin, cout, width):
        for i in range(blocks):
            c_in = cin if i == 0 else cout
            if c_in != cout:
                conv_norm(f"{prefix}.{i}.shortcut", cout, c_in, 1)
            conv_norm(f"{prefix}.{i}.conv1", width, c_in, 1)
            conv_norm(f"{prefix}.{i}.conv2", width, width, 3)
            conv_norm(f"{prefix}.{i}.conv3", cout, width, 1)

    conv_norm("backbone.stem.conv1", cfg.stem_channels, 3, 7)
    cin, cout, width = cfg.stem_channels, cfg.res2_channels, cfg.bottleneck_channels
    for s, n in enumerate(cfg.trunk_blocks):
        stage(f"backbone.res{s + 2}", n, cin, cout, width)
        cin, cout, width = cout, cout * 2, width * 2
    a, hid, c4 = cfg.num_anchors, cfg.rpn_channels, cfg.res2_channels * 4
    rpn = "proposal_generator.rpn_head"
    shapes.update({f"{rpn}.conv.weight": (hid, c4, 3, 3), f"{rpn}.conv.bias": (hid,),
                   f"{rpn}.objectness_logits.weight": (a, hid, 1, 1), f"{rpn}.objectness_logits.bias": (a,),
                   f"{rpn}.anchor_deltas.weight": (4 * a, hid, 1, 1), f"{rpn}.anchor_deltas.bias": (4 * a,)})
    stage("roi_heads.res5", cfg.res5_blocks, c4, c4 * 2, cfg.bottleneck_channels * 8)
    d, c, na = c4 * 2, cfg.num_classes, cfg.num_attrs
    bp = "roi_heads.box_predictor"
    shapes.update({f"{bp}.cls_score.weight": (c + 1, d), f"{bp}.cls_score.bias": (c + 1,),
                   f"{bp}.bbox_pred.weight": (4 * c, d), f"{bp}.bbox_pred.bias": (4 * c,)})
    if na:
        shapes.update({f"{bp}.cls_embedding.weight": (c + 1, d // 8),
                       f"{bp}.fc_attr.weight": (d // 4, d + d // 8), f"{bp}.fc_attr.bias": (d // 4,),
                       f"{bp}.attr_score.weight": (na + 1, d // 4), f"{bp}.attr_score.bias": (na + 1,)})
    return shapes


def selection_before_bitsets(boxes, scores, nms_thresh):
    """The selection's first vectorised version (bool matrices, np.maximum.at):
    the old path the bit-set version must reproduce exactly."""
    n, c = scores.shape
    conf = np.zeros(n, np.float64)
    if n == 0 or c == 0:
        return conf
    over = iou_matrix(boxes, boxes) > nms_thresh
    order = np.argsort(-scores, axis=0, kind="stable")
    suppressed = np.zeros((c, n), bool)
    classes = np.arange(c)
    for rank in range(n):
        box = order[rank]
        kept = ~suppressed[classes, box]
        kb, kc = box[kept], classes[kept]
        np.maximum.at(conf, kb, scores[kb, kc])
        suppressed[kc] |= over[kb]
    return conf
