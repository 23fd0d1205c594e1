"""The detectron2 -> Paddle weight converter on generated pickles laid out as
the bottom-up-attention checkpoint (names and shapes written from
detectron2's rules in region_helpers, not from the Paddle model)."""
import pickle

import numpy as np
import paddle
import pytest

from data_prep.convert_detectron2_weights import convert, main
from data_prep.detector.config import DetectorConfig, WeightsError
from data_prep.detector.model import BottomUpAttention
from data_prep.detector.preprocess import prepare
from data_prep.detector.weights import build_detector, infer_config
from vlcore.formats import weights_file

from region_helpers import detectron2_layout

LINEAR = ("cls_score", "bbox_pred", "fc_attr", "attr_score")


def _is_linear(name):
    return name.endswith(".weight") and name.split(".")[-2] in LINEAR


def _pickle(path, layout, seed=0, wrap=True):
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in layout.items():
        v = rng.standard_normal(shape).astype(np.float32) * 0.1
        if name.endswith("running_var"):
            v = np.abs(v) + 0.5
        state[name] = v
    with open(path, "wb") as f:
        pickle.dump({"model": state, "__author__": "test"} if wrap else state, f)
    return state


def test_real_r101_layout_matches_the_model():
    layout = detectron2_layout(DetectorConfig())
    with paddle.LazyGuard():
        model = BottomUpAttention(DetectorConfig(), fuse=False)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(layout) == set(ours)
    for name, shape in layout.items():
        assert (shape[::-1] if _is_linear(name) else shape) == ours[name], name
    # spot checks against the published model (py-bottom-up-attention's printout)
    assert layout["roi_heads.box_predictor.cls_score.weight"] == (1601, 2048)
    assert layout["roi_heads.box_predictor.bbox_pred.weight"] == (6400, 2048)
    assert layout["roi_heads.box_predictor.cls_embedding.weight"] == (1601, 256)
    assert layout["roi_heads.box_predictor.fc_attr.weight"] == (512, 2304)
    assert layout["roi_heads.box_predictor.attr_score.weight"] == (401, 512)
    assert layout["proposal_generator.rpn_head.conv.weight"] == (512, 1024, 3, 3)
    assert "backbone.res4.22.conv3.weight" in layout and "backbone.res4.23.conv1.weight" not in layout
    assert "roi_heads.res5.0.shortcut.weight" in layout and "roi_heads.res5.1.shortcut.weight" not in layout
    assert infer_config(layout_as_arrays(layout)).to_dict() == DetectorConfig().to_dict()


def layout_as_arrays(layout):
    return {k: np.broadcast_to(np.float32(0), s) for k, s in layout.items()}


def test_round_trip_every_tensor_lands_in_place(tmp_path):
    cfg = DetectorConfig.tiny()
    src, dst = tmp_path / "w.pkl", tmp_path / "w.safetensors"
    d2 = _pickle(src, detectron2_layout(cfg))
    state, notes, got_cfg = convert(str(src), str(dst), DetectorConfig.tiny(), log=lambda m: None)
    assert notes == [] and got_cfg.to_dict() == cfg.to_dict()
    saved = weights_file.load(str(dst))
    assert set(saved) == set(d2)
    for name, value in d2.items():
        want = value.T if _is_linear(name) else value
        np.testing.assert_array_equal(saved[name], want, err_msg=name)
    model = build_detector(str(dst), DetectorConfig.tiny())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[name], err_msg=name)
    img = (np.random.default_rng(0).random((70, 80, 3)) * 255).astype(np.uint8)
    r = model.extract([prepare(img, model.cfg)])[0]
    assert np.isfinite(r.features).all() and r.boxes.shape[0] >= model.cfg.min_boxes


def test_linear_layers_compute_as_in_pytorch(tmp_path):
    """y = x W^T + b with PyTorch's [out, in] weight: the transposition is right."""
    cfg = DetectorConfig.tiny()
    d2 = _pickle(tmp_path / "w.pkl", detectron2_layout(cfg), seed=3)
    convert(str(tmp_path / "w.pkl"), str(tmp_path / "w.safetensors"), DetectorConfig.tiny(), log=lambda m: None)
    model = build_detector(str(tmp_path / "w.safetensors"), DetectorConfig.tiny())
    x = np.random.default_rng(1).standard_normal((3, cfg.head_channels)).astype(np.float32)
    logits, deltas, _ = model.roi_heads.box_predictor(paddle.to_tensor(x))
    w, b = d2["roi_heads.box_predictor.cls_score.weight"], d2["roi_heads.box_predictor.cls_score.bias"]
    np.testing.assert_allclose(logits.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)
    w, b = d2["roi_heads.box_predictor.bbox_pred.weight"], d2["roi_heads.box_predictor.bbox_pred.bias"]
    np.testing.assert_allclose(deltas.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_unmapped_missing_and_misshapen_names_are_listed(tmp_path):
    cfg = DetectorConfig.tiny()
    layout = detectron2_layout(cfg)
    extra = dict(layout, **{"roi_heads.box_predictor.extra_head.weight": (3, 3), "backbone.res9.0.conv1.weight": (1,)})
    _pickle(tmp_path / "extra.pkl", extra)
    with pytest.raises(WeightsError, match=r"2 name\(s\).*backbone\.res9\.0\.conv1\.weight.*extra_head\.weight"):
        convert(str(tmp_path / "extra.pkl"), str(tmp_path / "o.safetensors"), cfg, log=lambda m: None)
    missing = {k: v for k, v in layout.items() if not k.startswith("proposal_generator.rpn_head.conv.")}
    _pickle(tmp_path / "missing.pkl", missing)
    with pytest.raises(WeightsError, match=r"2 detector weight\(s\) not in the file.*conv\.bias.*conv\.weight"):
        convert(str(tmp_path / "missing.pkl"), str(tmp_path / "o.safetensors"), cfg, log=lambda m: None)
    wrong = dict(layout, **{"proposal_generator.rpn_head.anchor_deltas.bias": (7,)})
    _pickle(tmp_path / "wrong.pkl", wrong)
    with pytest.raises(WeightsError, match=r"anchor_deltas\.bias has shape \[7\]"):
        convert(str(tmp_path / "wrong.pkl"), str(tmp_path / "o.safetensors"), cfg, log=lambda m: None)
    assert not (tmp_path / "o.safetensors").exists()


def test_weight_and_bias_only_frozen_bn_gets_identity_statistics(tmp_path):
    cfg = DetectorConfig.tiny()
    layout = {k: v for k, v in detectron2_layout(cfg).items() if not k.endswith(("running_mean", "running_var"))}
    d2 = _pickle(tmp_path / "w.pkl", layout, wrap=False)   # a bare dict works too
    state, notes, _ = convert(str(tmp_path / "w.pkl"), str(tmp_path / "w.safetensors"), cfg, log=lambda m: None)
    assert len(notes) == sum(k.endswith("norm.weight") for k in layout) * 2
    np.testing.assert_array_equal(state["backbone.stem.conv1.norm.running_mean"], 0)
    np.testing.assert_array_equal(state["backbone.stem.conv1.norm.running_var"], np.float32(1 - cfg.bn_eps))
    model = build_detector(str(tmp_path / "w.safetensors"), cfg)
    scale, shift = model.backbone.stem.conv1.norm.scale_shift()   # the affine is weight, bias as stored
    np.testing.assert_allclose(scale.numpy(), d2["backbone.stem.conv1.norm.weight"], rtol=1e-6)
    np.testing.assert_allclose(shift.numpy(), d2["backbone.stem.conv1.norm.bias"], rtol=1e-6)


def test_checkpoint_without_attribute_head(tmp_path):
    cfg = DetectorConfig.tiny()
    layout = {k: v for k, v in detectron2_layout(cfg).items()
              if not any(s in k for s in ("cls_embedding", "fc_attr", "attr_score"))}
    _pickle(tmp_path / "w.pkl", layout)
    _, _, got = convert(str(tmp_path / "w.pkl"), str(tmp_path / "w.safetensors"), cfg, log=lambda m: None)
    assert got.num_attrs == 0
    model = build_detector(str(tmp_path / "w.safetensors"), DetectorConfig.tiny())
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    assert model.extract([prepare(img, model.cfg)])[0].attr_probs is None


def test_command_line_error_is_one_line(tmp_path, capsys):
    _pickle(tmp_path / "w.pkl", dict(detectron2_layout(DetectorConfig.tiny()), bogus=(1,)))
    cfg = tmp_path / "tiny.json"
    cfg.write_text('{"preset": "tiny"}')
    rc = main(["--src", str(tmp_path / "w.pkl"), "--dst", str(tmp_path / "w.safetensors"), "--detector-config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "bogus" in err[0] and err[0].startswith("error: ")
    assert main(["--src", str(tmp_path / "none.pkl"), "--dst", str(tmp_path / "x")]) == 2


def test_output_is_safetensors_and_a_pickle_name_is_refused(tmp_path, capsys):
    """The converted detector is a plain safetensors file (no code can ride
    along); asking for a .pdparams gets the reason and the name to use."""
    _pickle(tmp_path / "w.pkl", detectron2_layout(DetectorConfig.tiny()))
    rc = main(["--src", str(tmp_path / "w.pkl"), "--dst", str(tmp_path / "w.pdparams")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].endswith(f"name the file {tmp_path / 'w'}.safetensors"), err
    assert not (tmp_path / "w.pdparams").exists()
    convert(str(tmp_path / "w.pkl"), str(tmp_path / "w.safetensors"), DetectorConfig.tiny(), log=lambda m: None)
    from safetensors.numpy import load_file
    assert set(load_file(str(tmp_path / "w.safetensors"))) == set(detectron2_layout(DetectorConfig.tiny()))
