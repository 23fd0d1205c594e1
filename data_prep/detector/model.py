"""The bottom-up-attention detector: trunk -> RPN -> RoI pooling -> res5 ->
mean-pooled region features, class and attribute probabilities, and the
region selection of ``selection.py``.

Sub-layer names follow detectron2 (``backbone``, ``proposal_generator.rpn_head``,
``roi_heads.res5``, ``roi_heads.box_predictor``) so its weights map by name.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .config import DetectorConfig
from .preprocess import batch_tensor
from .resnet_c4 import ResNetC4, fuse_frozen_bn
from .roi_heads import Res5ROIHeads
from .rpn import ProposalGenerator
from .selection import max_class_confidence, select_regions


@dataclass
class Regions:
    """One image's regions, boxes in original-image pixels."""
    boxes: np.ndarray                 # float32 [N, 4]
    features: np.ndarray              # float32 [N, D]
    cls_probs: np.ndarray             # float32 [N, C+1], background last
    attr_probs: Optional[np.ndarray]  # float32 [N, A] ("no attribute" dropped) or None
    num_proposals: int                # RoIs the selection chose from


class BottomUpAttention(nn.Layer):
    def __init__(self, cfg: DetectorConfig = None, fuse=True):
        super().__init__()
        self.cfg = cfg or DetectorConfig()
        self.backbone = ResNetC4(self.cfg)
        self.proposal_generator = ProposalGenerator(self.cfg)
        self.roi_heads = Res5ROIHeads(self.cfg)
        self.eval()
        if fuse:  # not under paddle.LazyGuard (shapes only, no values to fold)
            fuse_frozen_bn(self)

    def set_state_dict(self, state_dict, *args, **kwargs):
        out = super().set_state_dict(state_dict, *args, **kwargs)
        fuse_frozen_bn(self)  # the folded conv weights must follow the loaded ones
        return out

    @paddle.no_grad()
    def extract(self, prepared, given_boxes: Optional[List[np.ndarray]] = None) -> List[Regions]:
        """Regions of a batch of :class:`~.preprocess.Prepared` images. With
        ``given_boxes`` (one ``[N_i, 4]`` array of original-image boxes per
        image) the RPN and the selection are skipped: every given box gets its
        feature and probabilities, in the given order."""
        features = self.backbone(batch_tensor(prepared))
        if given_boxes is None:
            rois = self.proposal_generator(features, [(p.h, p.w) for p in prepared])
        else:
            rois = [paddle.to_tensor(_to_input(b, p), "float32") for b, p in zip(given_boxes, prepared)]
        return [self._image_regions(features[i:i + 1], rois[i], p,
                                    None if given_boxes is None else _clip_orig(given_boxes[i], p))
                for i, p in enumerate(prepared)]

    def _image_regions(self, feature, rois, p, given=None):
        cfg = self.cfg
        region = self.roi_heads.region_features(feature, rois)
        logits, _, attr_logits = self.roi_heads.box_predictor(region, with_deltas=False)
        cls_probs = F.softmax(logits, axis=-1).numpy()
        # the port scores attributes without the last ("no attribute") logit
        attr_probs = F.softmax(attr_logits[:, :-1], axis=-1).numpy() if attr_logits is not None else None
        feats = region.numpy()
        if given is not None:
            return Regions(given, feats, cls_probs, attr_probs, int(rois.shape[0]))
        sx, sy = p.scale_xy
        boxes = _clip_orig(rois.numpy() / np.asarray([sx, sy, sx, sy], np.float32), p)
        conf = max_class_confidence(boxes, cls_probs[:, :-1], cfg.nms)
        keep = select_regions(conf, cfg.conf, cfg.min_boxes, cfg.max_boxes)
        boxes, feats, cls_probs = boxes[keep], feats[keep], cls_probs[keep]
        attr_probs = attr_probs[keep] if attr_probs is not None else None
        return Regions(boxes, feats, cls_probs, attr_probs, int(rois.shape[0]))


def _clip_orig(boxes, p):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.clip(b, 0, np.asarray([p.orig_w, p.orig_h, p.orig_w, p.orig_h], np.float32))


def _to_input(boxes, p):
    """Original-image boxes -> the resized input's pixels."""
    sx, sy = p.scale_xy
    b = np.asarray(boxes, np.float32).reshape(-1, 4) * np.asarray([sx, sy, sx, sy], np.float32)
    return np.clip(b, 0, [p.w, p.h, p.w, p.h])
