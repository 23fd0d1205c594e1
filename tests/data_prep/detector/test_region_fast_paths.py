"""The extractor's speed-ups change nothing: each fast path against the
plain computation it replaced (1x1 convolutions as batched matmuls, the
bit-set per-class NMS of the selection), and the whole detector against a
run with every fast path swapped back for the original code."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from test_region_ops import butd_confidence_ref, random_boxes

from data_prep.detector import model as model_mod
from data_prep.detector import resnet_c4
from data_prep.detector.config import DetectorConfig
from data_prep.detector.model import BottomUpAttention
from data_prep.detector.preprocess import prepare, read_bgr
from data_prep.detector.selection import _bitsets, max_class_confidence

from region_helpers import make_images, selection_before_bitsets


@pytest.mark.parametrize("stride,shape", [(1, (3, 6, 7, 5)), (2, (2, 6, 7, 5)), (2, (1, 4, 8, 9))])
def test_pointwise_conv_equals_conv2d(stride, shape):
    rng = np.random.default_rng(stride)
    x = paddle.to_tensor(rng.standard_normal(shape).astype(np.float32))
    w = paddle.to_tensor(rng.standard_normal((11, shape[1], 1, 1)).astype(np.float32))
    b = paddle.to_tensor(rng.standard_normal(11).astype(np.float32))
    want = F.conv2d(x, w, b, stride).numpy()
    got = resnet_c4.pointwise_conv(x, w, b, stride).numpy()
    assert got.shape == want.shape   # odd sizes: ceil(H / stride) rows, as the conv
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(resnet_c4.pointwise_conv(x, w, None, stride).numpy(),
                               F.conv2d(x, w, None, stride).numpy(), rtol=1e-5, atol=1e-5)


def test_bitsets_layout():
    rng = np.random.default_rng(0)
    mask = rng.random((5, 130)) < 0.3                        # three 64-bit words per row
    words = _bitsets(mask)
    assert words.shape == (5, 3) and words.dtype == np.uint64
    for i in range(5):
        for j in range(130):
            assert bool((int(words[i, j // 64]) >> (j % 64)) & 1) == mask[i, j]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_equals_old_path_and_per_class_nms(seed):
    # more than 64 boxes (several bit-set words), tied scores, zero-area boxes
    rng = np.random.default_rng(seed)
    n, c = 150, 40
    boxes = random_boxes(rng, n, 120).astype(np.float32)
    scores = (rng.random((n, c)) ** 3).astype(np.float32)
    scores[10:20] = scores[20:30]                            # ties broken by the stable order
    got = max_class_confidence(boxes, scores, 0.3)
    np.testing.assert_array_equal(got, selection_before_bitsets(boxes, scores, 0.3))
    np.testing.assert_allclose(got, butd_confidence_ref(boxes, scores, 0.3), rtol=1e-7)
    # zero-area boxes overlap nothing (the NumPy reference divides 0 by 0 there: old path only)
    boxes[:5, 2:] = boxes[:5, :2]
    np.testing.assert_array_equal(max_class_confidence(boxes, scores, 0.3),
                                  selection_before_bitsets(boxes, scores, 0.3))


def test_detector_equals_the_path_without_speedups(tmp_path, monkeypatch):
    images = [read_bgr(p) for p in make_images(str(tmp_path), [(70, 90), (96, 60)], seed=3)]
    paddle.seed(5)
    model = BottomUpAttention(DetectorConfig.tiny())
    w = model.roi_heads.box_predictor.cls_score.weight
    w.set_value(w * 2.0)                                     # confidences spread over (0, 1)
    prepared = [prepare(img, model.cfg) for img in images]
    fast = model.extract(prepared)
    monkeypatch.setattr(resnet_c4, "pointwise_conv",
                        lambda x, w, b, stride=1: F.conv2d(x, w, b, stride))
    monkeypatch.setattr(model_mod, "max_class_confidence", selection_before_bitsets)
    slow = model.extract(prepared)
    for a, b in zip(fast, slow):
        assert a.num_proposals == b.num_proposals and a.boxes.shape[0] >= model.cfg.min_boxes
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.cls_probs, b.cls_probs, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(a.attr_probs, b.attr_probs, rtol=1e-5, atol=1e-7)


def test_fewer_proposals_is_an_explicit_setting_and_a_prefix(tmp_path):
    from data_prep.extract_region_features import detector_config, extract_parser
    from data_prep.region_extraction import settings_fingerprint

    from region_helpers import tiny_config_file
    cfg_file = tiny_config_file(str(tmp_path))
    base = ["--images", "x", "--out", "y", "--random-weights", "--detector-config", cfg_file]
    default = detector_config(extract_parser().parse_args(base))
    fewer = detector_config(extract_parser().parse_args(base + ["--proposals", "12"]))
    assert default.rpn_post_nms_topk == 40 and fewer.rpn_post_nms_topk == 12
    # the store's settings differ, so a re-run with another --proposals is refused, not mixed
    assert settings_fingerprint(default, None, False, 10, 10, False) != settings_fingerprint(fewer, None, False, 10, 10, False)
    with pytest.raises(ValueError, match="--proposals must be at least 1"):
        detector_config(extract_parser().parse_args(base + ["--proposals", "0"]))
    # the kept RoIs are the best-objectness prefix of the default ones
    img = read_bgr(make_images(str(tmp_path / "imgs"), [(80, 90)], seed=4)[0])
    paddle.seed(6)
    model = BottomUpAttention(default)
    p = prepare(img, default)
    with paddle.no_grad():
        feat = model.backbone(paddle.to_tensor(p.array[None]))
        all_rois = model.proposal_generator(feat, [(p.h, p.w)])[0].numpy()
        model.proposal_generator.cfg = fewer
        few_rois = model.proposal_generator(feat, [(p.h, p.w)])[0].numpy()
    assert len(all_rois) > 12 and len(few_rois) == 12
    np.testing.assert_array_equal(few_rois, all_rois[:12])
