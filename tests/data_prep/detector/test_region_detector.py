"""The detector end to end on generated images with random weights (tiny
config): output shapes, box validity, the selection rules against a
reference recomputed from the pipeline's own intermediate results, the
given-box mode, and frozen batch norm."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from test_region_ops import butd_confidence_ref

from data_prep.detector.config import DetectorConfig
from data_prep.detector.model import BottomUpAttention
from data_prep.detector.preprocess import batch_tensor, prepare, read_bgr, target_size
from data_prep.detector.resnet_c4 import ConvNorm

from region_helpers import make_images

SIZES = [(70, 90), (96, 60), (64, 64)]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return [read_bgr(p) for p in make_images(str(tmp_path_factory.mktemp("imgs")), SIZES)]


@pytest.fixture()
def model():
    paddle.seed(1)
    m = BottomUpAttention(DetectorConfig.tiny())
    # sharper class scores than a random init gives, so confidences spread
    # over (0, 1) (larger factors saturate them at 1 and make ties)
    w = m.roi_heads.box_predictor.cls_score.weight
    w.set_value(w * 2.0)
    return m


def _check_regions(r, img, cfg):
    h, w = img.shape[:2]
    n = r.boxes.shape[0]
    assert r.features.shape == (n, cfg.head_channels) and np.isfinite(r.features).all()
    assert r.cls_probs.shape == (n, cfg.num_classes + 1) and r.attr_probs.shape == (n, cfg.num_attrs)
    np.testing.assert_allclose(r.cls_probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(r.attr_probs.sum(1), 1, rtol=1e-5)
    b = r.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


def test_shapes_and_boxes_inside_the_image(model, images):
    cfg = model.cfg
    single = [model.extract([prepare(img, cfg)])[0] for img in images]
    batched = model.extract([prepare(img, cfg) for img in images])   # padded to one tensor
    for img, r, rb in zip(images, single, batched):
        for reg in (r, rb):
            _check_regions(reg, img, cfg)
            assert cfg.min_boxes <= reg.boxes.shape[0] <= cfg.max_boxes
            assert reg.num_proposals > cfg.max_boxes   # the selection had a choice to make
    # the input transform: shorter side min_size unless the longer exceeds max_size
    assert target_size(70, 90, 64, 96) == (64, 82) and target_size(50, 200, 64, 96) == (24, 96)


def _reference(model, img):
    """Proposals, their original-image boxes and BUTD confidences, recomputed
    step by step from the pipeline's parts."""
    cfg = model.cfg
    p = prepare(img, cfg)
    with paddle.no_grad():
        feat = model.backbone(batch_tensor([p]))
        rois = model.proposal_generator(feat, [(p.h, p.w)])[0]
        logits, _, _ = model.roi_heads.box_predictor(model.roi_heads.region_features(feat, rois))
    probs = F.softmax(logits, axis=-1).numpy()
    sx, sy = p.scale_xy
    boxes = np.clip(rois.numpy() / [sx, sy, sx, sy], 0, [p.orig_w, p.orig_h] * 2)
    return boxes, butd_confidence_ref(boxes, probs[:, :-1], cfg.nms)


def test_selection_follows_bottom_up_attention(model, images):
    cfg = model.cfg
    img = images[0]
    boxes, conf = _reference(model, img)
    assert conf.max() - conf.min() > 0.1                 # confidences spread: the rules are exercised

    def run(**settings):
        for k, v in settings.items():
            setattr(cfg, k, v)
        return model.extract([prepare(img, cfg)])[0]

    # threshold: exactly the RoIs with confidence >= conf, in RoI order
    thr = float(np.unique(conf)[-6])
    r = run(conf=thr, min_boxes=1, max_boxes=1000)
    want = np.nonzero(conf >= thr)[0]
    assert 6 <= len(want) < len(conf) // 2
    np.testing.assert_allclose(r.boxes, boxes[want], rtol=1e-6)
    assert (r.cls_probs[:, :-1].max(1) <= conf[want] + 1e-6).all()  # best surviving class <= max prob
    # too few above the threshold: the min_boxes most confident
    r = run(conf=1.01, min_boxes=4, max_boxes=8)
    np.testing.assert_allclose(r.boxes, boxes[np.argsort(-conf, kind="stable")[:4]], rtol=1e-6)
    # too many: the max_boxes most confident
    r = run(conf=0.0, min_boxes=1, max_boxes=5)
    np.testing.assert_allclose(r.boxes, boxes[np.argsort(-conf, kind="stable")[:5]], rtol=1e-6)
    # fixed N whatever the threshold
    for c in (0.0, 0.5, 1.01):
        assert run(conf=c, min_boxes=7, max_boxes=7).boxes.shape[0] == 7


def test_given_boxes_skip_detection(model, images):
    cfg = model.cfg
    img = images[1]
    p = prepare(img, cfg)
    detected = model.extract([p])[0]
    given = model.extract([p], [detected.boxes])[0]
    np.testing.assert_array_equal(given.boxes, detected.boxes)          # same boxes, same order, no selection
    np.testing.assert_allclose(given.features, detected.features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(given.cls_probs, detected.cls_probs, rtol=1e-4, atol=1e-5)
    odd = np.array([[-5, -5, 20, 30], [10, 10, 500, 500], [1, 2, 3, 4]], np.float32)   # partly outside
    r = model.extract([p], [odd])[0]
    assert r.boxes.shape[0] == 3 and r.num_proposals == 3
    np.testing.assert_array_equal(r.boxes, [[0, 0, 20, 30], [10, 10, img.shape[1], img.shape[0]], [1, 2, 3, 4]])


def test_frozen_bn_fused_and_unfused_match_formula():
    paddle.seed(0)
    layer = ConvNorm(3, 4, 3, padding=1)
    rng = np.random.default_rng(0)
    stats = {k: rng.random(4).astype(np.float32) + 0.5 for k in ("weight", "bias", "running_mean", "running_var")}
    for k, v in stats.items():
        getattr(layer.norm, k).set_value(paddle.to_tensor(v))
    x = paddle.to_tensor(rng.standard_normal((1, 3, 5, 5)).astype(np.float32))
    conv = F.conv2d(x, layer.weight, padding=1).numpy()
    scale = stats["weight"] / np.sqrt(stats["running_var"] + 1e-5)
    want = conv * scale[None, :, None, None] + (stats["bias"] - stats["running_mean"] * scale)[None, :, None, None]
    layer.unfuse()
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-5)
    layer.fuse()
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_loading_weights_refuses_stale_fused_convs(images):
    paddle.seed(2)
    a, b = BottomUpAttention(DetectorConfig.tiny()), BottomUpAttention(DetectorConfig.tiny())
    sd = {k: v * 0.9 if k.endswith("norm.weight") else v for k, v in a.state_dict().items()}
    a.set_state_dict(sd)
    b.set_state_dict(sd)
    p = prepare(images[2], a.cfg)
    with paddle.no_grad():
        x = batch_tensor([p])
        fused = a.backbone(x).numpy()
        for layer in b.sublayers():
            if isinstance(layer, ConvNorm):
                layer.unfuse()
        np.testing.assert_allclose(fused, b.backbone(x).numpy(), rtol=1e-4, atol=1e-4)


def test_config_files(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("preset: tiny\nconf: 0.3\nanchor_sizes: [8, 16]\n")
    cfg = DetectorConfig.load(str(good))
    assert cfg.conf == 0.3 and cfg.anchor_sizes == (8, 16) and cfg.num_anchors == 6 and cfg.num_classes == 20
    bad = tmp_path / "b.json"
    bad.write_text('{"pooler": "roialign"}')
    with pytest.raises(ValueError, match="b.json: unknown detector setting.*pooler"):
        DetectorConfig.load(str(bad))
    with pytest.raises(ValueError, match="min_boxes"):
        DetectorConfig(min_boxes=10, max_boxes=5)
    real = DetectorConfig()
    assert (real.head_channels, real.trunk_channels, real.num_anchors, real.stride) == (2048, 1024, 12, 16)
