"""Sizes and test-time settings of the bottom-up-attention detector.

The defaults are the Visual Genome Faster R-CNN of Anderson et al. (2018) as
ported to detectron2 by airsplay/py-bottom-up-attention
(``configs/VG-Detection/faster_rcnn_R_101_C4_attr_caffemaxpool.yaml`` on top
of ``Base-RCNN-C4.yaml`` and detectron2's ``config/defaults.py``, and the
settings of its ``demo/demo_feature_extraction_attr.ipynb``):

- ResNet-101 (``RESNETS.DEPTH 101``), MSRA/Caffe blocks with the stride in
  the first 1x1 conv (``STRIDE_IN_1X1``), frozen batch norm, stem max-pool
  without padding and with ceil rounding (``CAFFE_MAXPOOL``); res2-res4 form
  the stride-16 trunk ("C4").
- BGR input minus ``PIXEL_MEAN [102.9801, 115.9465, 122.7717]`` (std 1),
  shorter side 600, longer side at most 1000 (the Caffe test scales).
- RPN: 3x3 conv to 512 channels (``PROPOSAL_GENERATOR.HID_CHANNELS``),
  anchors of sizes 64/128/256/512 x aspect ratios 0.5/1/2 at stride 16,
  6000 proposals before NMS 0.7, 300 after (the demo's ``POST_NMS_TOPK_TEST``).
- RoI head: 14x14 RoI *pooling* (``POOLER_TYPE: "ROIPool"`` -- the Caffe
  model was trained with it; ``roialign``/``roialignv2`` are available), then
  res5 with its first block at stride 1 and dilation 2 in every 3x3
  (``RES5HALVE: False``), mean-pooled to 2048-d.
- Box predictor: 1601 class logits (background last, the detectron2 order),
  1600 x 4 class-specific deltas (weights 10/10/5/5); attribute head: an
  embedding of the arg-max class (1601 x 256) concatenated to the feature,
  a 2304 -> 512 ReLU layer and 401 attribute logits (``ATTR``,
  ``NUM_ATTRS: 400``).
- Region selection as in bottom-up-attention's ``tools/generate_tsv.py``:
  per-class NMS 0.3 over the RoIs, a box's confidence is its best surviving
  class score, keep confidence >= 0.2, at least 10 and at most 100 boxes
  (or exactly 36: ``min_boxes = max_boxes = 36``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Tuple


class WeightsError(ValueError):
    """Weights that do not fit the detector; the message lists the names."""


@dataclass
class DetectorConfig:
    # backbone (ResNet, C4)
    trunk_blocks: Tuple[int, ...] = (3, 4, 23)   # res2, res3, res4
    res5_blocks: int = 3
    stem_channels: int = 64
    res2_channels: int = 256                     # res3/4/5 double it each stage
    bottleneck_channels: int = 64                # width of res2's 3x3; doubles per stage
    stride_in_1x1: bool = True
    caffe_maxpool: bool = True
    res5_dilation: int = 2                       # 2: BUTD (stride 1, dilated); 1: stride 2
    bn_eps: float = 1e-5
    # input
    pixel_mean_bgr: Tuple[float, float, float] = (102.9801, 115.9465, 122.7717)
    min_size: int = 600
    max_size: int = 1000
    # RPN
    rpn_channels: int = 512
    anchor_sizes: Tuple[float, ...] = (64, 128, 256, 512)
    anchor_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_topk: int = 6000
    rpn_post_nms_topk: int = 300
    rpn_nms: float = 0.7
    rpn_min_size: float = 0.0
    # RoI head
    pooler_type: str = "roipool"                 # roipool | roialign | roialignv2 (aligned)
    pooler_resolution: int = 14
    roi_chunk: int = 100                         # RoIs per res5 pass: bounds peak memory
    num_classes: int = 1600
    num_attrs: int = 400                         # 0: no attribute head
    bbox_reg_weights: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    # region selection
    nms: float = 0.3
    conf: float = 0.2
    min_boxes: int = 10
    max_boxes: int = 100

    def __post_init__(self):
        if self.pooler_type not in ("roipool", "roialign", "roialignv2"):
            raise ValueError(f"pooler_type must be roipool, roialign or roialignv2, not {self.pooler_type!r}")
        if self.res5_dilation not in (1, 2):
            raise ValueError(f"res5_dilation must be 1 or 2, not {self.res5_dilation}")
        if not 0 < self.min_boxes <= self.max_boxes:
            raise ValueError(f"need 0 < min_boxes <= max_boxes, got {self.min_boxes}, {self.max_boxes}")

    @property
    def stride(self) -> int:
        return 16  # stem 4 x res3 2 x res4 2

    @property
    def trunk_channels(self) -> int:
        return self.res2_channels * 4    # res4's output

    @property
    def head_channels(self) -> int:
        return self.res2_channels * 8    # res5's output = the region feature size

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_sizes) * len(self.anchor_ratios)

    @classmethod
    def tiny(cls, **overrides) -> "DetectorConfig":
        """A few-thousand-parameter variant for tests: the same structure
        (every layer kind, stride 16, dilated res5, attribute head) at small
        widths, depths and image sizes."""
        base = dict(trunk_blocks=(1, 1, 1), res5_blocks=1, stem_channels=8, res2_channels=16,
                    bottleneck_channels=4, rpn_channels=16, anchor_sizes=(16, 32, 64, 128),
                    min_size=64, max_size=96, rpn_pre_nms_topk=300, rpn_post_nms_topk=40,
                    pooler_resolution=6, num_classes=20, num_attrs=8, min_boxes=3, max_boxes=10)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where="config") -> "DetectorConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown detector setting(s) {', '.join(unknown)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fixed)

    @classmethod
    def load(cls, path) -> "DetectorConfig":
        """A JSON or YAML file of settings (``preset: tiny`` starts from
        :meth:`tiny`); unknown keys are an error naming the file."""
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
        if str(path).endswith((".yaml", ".yml")):
            import yaml
            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping of detector settings")
        preset = d.pop("preset", None)
        if preset not in (None, "tiny", "r101"):
            raise ValueError(f"{path}: unknown preset {preset!r} (tiny or r101)")
        base = cls.tiny().to_dict() if preset == "tiny" else {}
        base.update(d)
        return cls.from_dict(base, where=str(path))
