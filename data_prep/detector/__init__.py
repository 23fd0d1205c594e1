"""A Paddle port of the bottom-up-attention region-feature detector (Faster
R-CNN, ResNet-101 C4, Visual Genome 1600 classes + 400 attributes).

- ``config.py``      sizes and test-time settings (real R101 by default, ``tiny()`` for tests)
- ``resnet_c4.py``   ResNet trunk (stem, res2-res4) and res5 head, frozen BN
- ``rpn.py``         anchors, RPN head, proposals
- ``roi_heads.py``   RoI pooling, res5, mean pool, class/box/attribute predictor
- ``box_ops.py``     box decoding, clipping, NMS, IoU
- ``selection.py``   per-class NMS + max-class confidence selection (min/max/fixed boxes)
- ``preprocess.py``  image decoding and the input transform
- ``model.py``       the detector: ``BottomUpAttention(cfg).extract(images[, given_boxes])``
- ``weights.py``     loading ``.pdparams`` and converting detectron2 state dicts
"""
from .config import DetectorConfig, WeightsError

__all__ = ["DetectorConfig", "WeightsError", "BottomUpAttention", "Regions"]


def __getattr__(name):  # Paddle is imported only when the model is wanted
    if name in ("BottomUpAttention", "Regions"):
        from . import model
        return getattr(model, name)
    raise AttributeError(name)
