"""The C4 RoI head: pool each region from the stride-16 map, run res5 on it,
mean-pool to one vector (the region feature), and predict classes and
attributes from it (detectron2's ``Res5ROIHeads`` + the bottom-up-attention
port's ``FastRCNNOutputLayers`` with its attribute branch)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.vision import ops

from .resnet_c4 import make_res5


class BoxPredictor(nn.Layer):
    def __init__(self, dim, num_classes, num_attrs):
        super().__init__()
        normal = lambda std: dict(weight_attr=nn.initializer.Normal(0.0, std), bias_attr=nn.initializer.Constant(0.0))
        self.cls_score = nn.Linear(dim, num_classes + 1, **normal(0.01))
        self.bbox_pred = nn.Linear(dim, num_classes * 4, **normal(0.001))
        self.num_attrs = num_attrs
        if num_attrs:
            # the arg-max class, embedded, is appended to the feature: attributes
            # are predicted for "what this box is"
            self.cls_embedding = nn.Embedding(num_classes + 1, dim // 8)
            self.fc_attr = nn.Linear(dim + dim // 8, dim // 4)
            self.attr_score = nn.Linear(dim // 4, num_attrs + 1)

    def forward(self, x, with_deltas=True):
        """-> class logits ``[R, C+1]`` (background last), class-specific deltas
        ``[R, 4C]`` (None unless ``with_deltas``), attribute logits ``[R, A+1]``
        (None without the attribute head)."""
        logits = self.cls_score(x)
        deltas = self.bbox_pred(x) if with_deltas else None
        attr = None
        if self.num_attrs:
            emb = self.cls_embedding(paddle.argmax(logits, axis=-1))
            attr = self.attr_score(F.relu(self.fc_attr(paddle.concat([x, emb], axis=-1))))
        return logits, deltas, attr


class Res5ROIHeads(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.res5 = make_res5(cfg)
        self.box_predictor = BoxPredictor(cfg.head_channels, cfg.num_classes, cfg.num_attrs)

    def pool(self, feature, boxes):
        """``feature [1, C, H, W]``, ``boxes [R, 4]`` (input pixels) -> ``[R, C, S, S]``."""
        cfg = self.cfg
        num = paddle.to_tensor([boxes.shape[0]], "int32")
        scale = 1.0 / cfg.stride
        if cfg.pooler_type == "roipool":
            return ops.roi_pool(feature, boxes, num, cfg.pooler_resolution, scale)
        # sampling_ratio -1: ceil(bin size) samples per bin (detectron2's 0)
        return ops.roi_align(feature, boxes, num, cfg.pooler_resolution, scale, sampling_ratio=-1,
                             aligned=cfg.pooler_type == "roialignv2")

    def region_features(self, feature, boxes):
        """Mean-pooled res5 output ``[R, D]`` of each box, ``roi_chunk`` boxes
        at a time (res5 on 300 RoIs at 14x14 would otherwise hold several GB)."""
        chunk = max(1, self.cfg.roi_chunk)
        out = []
        for s in range(0, boxes.shape[0], chunk):
            x = self.res5(self.pool(feature, boxes[s:s + chunk]))
            out.append(x.mean(axis=[2, 3]))
        if not out:
            return paddle.zeros([0, self.cfg.head_channels], feature.dtype)
        return paddle.concat(out, axis=0) if len(out) > 1 else out[0]
