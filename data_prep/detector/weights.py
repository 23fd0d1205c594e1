"""Weights: loading a ``.safetensors`` (or ``.pdparams``) of :class:`~.model.BottomUpAttention`, and
turning a detectron2 state dict of the bottom-up-attention model into one.

The detectron2 names (airsplay/py-bottom-up-attention: ``modeling/backbone/
resnet.py``, ``proposal_generator/rpn.py``, ``roi_heads/roi_heads.py``,
``roi_heads/fast_rcnn.py``) are the names of this model's state dict:

- ``backbone.stem.conv1.weight``, ``backbone.res{2,3,4}.{i}.{conv1,conv2,conv3,shortcut}.weight``
  and ``....norm.{weight,bias,running_mean,running_var}`` (FrozenBatchNorm2d)
- ``proposal_generator.rpn_head.{conv,objectness_logits,anchor_deltas}.{weight,bias}``
- ``roi_heads.res5.{0,1,2}.*`` (as the backbone blocks)
- ``roi_heads.box_predictor.{cls_score,bbox_pred}.{weight,bias}``
- attribute head: ``roi_heads.box_predictor.cls_embedding.weight`` [1601, 256],
  ``.fc_attr.{weight,bias}`` [512, 2304], ``.attr_score.{weight,bias}`` [401, 512]

Conv and embedding weights have the same layout in both frameworks; PyTorch's
``Linear.weight`` is ``[out, in]`` and Paddle's ``[in, out]``, so linear
weights are transposed. A FrozenBN converted from Caffe may carry only
``weight`` and ``bias`` (the statistics already folded in, as detectron2's
FrozenBatchNorm2d docstring describes): its statistics are then set to the
identity (mean 0, var 1 - eps), as detectron2 leaves them.
"""
import re

import numpy as np
import paddle.nn as nn

from vlcore.formats import weights_file

from .config import DetectorConfig, WeightsError  # noqa: F401  (WeightsError is part of this module's API)


def _names_list(names, limit=12):
    names = sorted(names)
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def linear_weight_names(model):
    return {f"{name}.weight" for name, layer in model.named_sublayers() if isinstance(layer, nn.Linear)}


def _shape_of(value):
    return tuple(value.shape)


def check_state(model, state, where):
    """Raise :class:`WeightsError` naming every missing, unexpected or
    wrongly shaped entry of ``state`` for ``model``."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    wrong = [f"{k} {list(_shape_of(state[k]))} (model {list(expected[k])})"
             for k in sorted(set(state) & set(expected)) if _shape_of(state[k]) != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_names_list(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_names_list(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {len(wrong)}: {', '.join(wrong[:8])}")
    if problems:
        raise WeightsError(f"{where}: does not fit the detector config; " + "; ".join(problems))


def infer_config(state, base: DetectorConfig = None) -> DetectorConfig:
    """The structural settings a state dict (Paddle or detectron2 names)
    implies -- depth per stage, widths, classes, attributes -- on top of
    ``base``'s test-time settings. Shapes the rules cannot read stay as in
    ``base`` and are checked by :func:`check_state`."""
    base = base or DetectorConfig()
    d = base.to_dict()

    def shape(name):
        return _shape_of(state[name]) if name in state else None

    blocks = {}
    for k in state:
        m = re.match(r"(backbone\.res(\d)|roi_heads\.res5)\.(\d+)\.", k)
        if m:
            stage = 5 if m.group(1).startswith("roi") else int(m.group(2))
            blocks[stage] = max(blocks.get(stage, 0), int(m.group(3)) + 1)
    if all(s in blocks for s in (2, 3, 4)):
        d["trunk_blocks"] = tuple(blocks[s] for s in sorted(s for s in blocks if s < 5))
    if 5 in blocks:
        d["res5_blocks"] = blocks[5]
    if shape("backbone.stem.conv1.weight"):
        d["stem_channels"] = shape("backbone.stem.conv1.weight")[0]
    if shape("backbone.res2.0.conv3.weight"):
        d["res2_channels"], d["bottleneck_channels"] = shape("backbone.res2.0.conv3.weight")[:2]
    if shape("proposal_generator.rpn_head.conv.weight"):
        d["rpn_channels"] = shape("proposal_generator.rpn_head.conv.weight")[0]
    cls = shape("roi_heads.box_predictor.cls_score.bias")
    if cls:
        d["num_classes"] = cls[0] - 1
    attr = shape("roi_heads.box_predictor.attr_score.bias")
    d["num_attrs"] = attr[0] - 1 if attr else 0
    return DetectorConfig.from_dict(d)


def load_weights_file(path):
    try:
        state = weights_file.load(str(path))  # arrays only; no code from the file
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such weights file") from None
    except weights_file.WeightsFileError as e:
        raise WeightsError(str(e)) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state


def build_detector(weights=None, cfg: DetectorConfig = None):
    """The detector with ``weights`` (a weights file path or a state dict)
    loaded strictly; its structure is inferred from the weights unless
    ``cfg`` is given. Random weights if ``weights`` is None."""
    from .model import BottomUpAttention
    if weights is None:
        return BottomUpAttention(cfg or DetectorConfig())
    where = weights if isinstance(weights, str) else "<state dict>"
    state = load_weights_file(weights) if isinstance(weights, str) else weights
    model = BottomUpAttention(infer_config(state, cfg))
    check_state(model, state, where)
    model.set_state_dict(state)
    return model


def convert_detectron2_state(d2_state, model, where="<detectron2 state>"):
    """detectron2 name -> array  =>  Paddle state dict for ``model``.

    Every name must land somewhere (an unmapped name is an error listing all
    of them), every model entry must be filled (except the identity statistics
    of weight/bias-only FrozenBN, reported in ``notes``), shapes must agree."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    linear = linear_weight_names(model)
    out, notes = {}, []
    unmapped = sorted(k for k in d2_state if k not in expected)
    if unmapped:
        hint = ""
        if any(re.match(r"res\d_\d+_branch", k) or k.endswith("_w") for k in unmapped):
            hint = " (Caffe2/Detectron1 blob names: convert with detectron2 first)"
        raise WeightsError(f"{where}: {len(unmapped)} name(s) the detector does not have{hint}: "
                           f"{_names_list(unmapped)}")
    for name, value in d2_state.items():
        arr = np.asarray(value)
        if arr.dtype == np.float64 or arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        if name in linear:
            arr = arr.T
        if tuple(arr.shape) != expected[name]:
            raise WeightsError(f"{where}: {name} has shape {list(np.asarray(value).shape)}, the detector needs "
                               f"{list(expected[name][::-1] if name in linear else expected[name])}")
        out[name] = np.ascontiguousarray(arr)
    eps = model.cfg.bn_eps
    missing = sorted(set(expected) - set(out))
    for name in list(missing):
        stem, leaf = name.rsplit(".", 1)
        if leaf in ("running_mean", "running_var") and f"{stem}.weight" in out and f"{stem}.bias" in out:
            size = expected[name][0]
            out[name] = np.zeros(size, np.float32) if leaf == "running_mean" else np.full(size, 1 - eps, np.float32)
            missing.remove(name)
            notes.append(name)
    if missing:
        raise WeightsError(f"{where}: {len(missing)} detector weight(s) not in the file: {_names_list(missing)}")
    return out, notes
