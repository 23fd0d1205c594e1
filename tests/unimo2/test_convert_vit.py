"""ViT in PaddleClas's .pdparams layout -> the visual encoder: the fused qkv
projection is split into q, k, v in that order, the ImageNet head is dropped,
and our ViT computes what PaddleClas's VisionTransformer computes (NumPy
re-implementation; PaddleClas itself when installed)."""
import os

import numpy as np
import paddle
import pytest
from test_vit import ref_resize

from ckpt_helpers import (
    build,
    load_cfg,
    paddleclas_vit_reference,
    paddleclas_vit_state,
    save_pdparams,
    tiny_arch_config,
)

D, HEADS, PATCH, SIZE, LAYERS = 16, 2, 8, 16, 2
GRID = SIZE // PATCH


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vit")
    st = paddleclas_vit_state(np.random.default_rng(0), D, PATCH, GRID, LAYERS)
    return tmp, st, save_pdparams(st, os.path.join(str(tmp), "ViT_tiny_pretrained.pdparams")), tiny_arch_config(tmp)


def _convert(cfg, src, source=None):
    from unimo2.convert import convert
    model = build(cfg)
    state, report = convert("vit-paddleclas", src, model, cfg.Arch, source=source)
    return model, state, report


def test_fused_qkv_is_split_in_order_and_the_head_dropped(setup):
    _, st, src, cfg_path = setup
    _, state, report = _convert(load_cfg(cfg_path), src)
    for i in range(LAYERS):
        w, b = st[f"blocks.{i}.attn.qkv.weight"], st[f"blocks.{i}.attn.qkv.bias"]
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            ours = f"model.vit.encoder.layers.{i}.attn.{proj}"
            np.testing.assert_array_equal(state[f"{ours}.weight"], w[:, j * D:(j + 1) * D])
            np.testing.assert_array_equal(state[f"{ours}.bias"], b[j * D:(j + 1) * D])
        np.testing.assert_array_equal(state[f"model.vit.encoder.layers.{i}.attn.out_proj.weight"],
                                      st[f"blocks.{i}.attn.proj.weight"])
        np.testing.assert_array_equal(state[f"model.vit.encoder.layers.{i}.ffn.fc1.bias"], st[f"blocks.{i}.mlp.fc1.bias"])
    np.testing.assert_array_equal(state["model.vit.encoder.final_norm.weight"], st["norm.weight"])
    np.testing.assert_array_equal(state["model.vit.cls_token"], st["cls_token"])
    assert set(report.dropped) == {"head.weight", "head.bias"}
    assert all(not k.startswith("model.vit.") for k in report.kept_init)


def test_vit_computes_what_paddleclas_computes(setup):
    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    _, st, src, cfg_path = setup
    model, state, _ = _convert(load_cfg(cfg_path), src)
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    pixels = np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE))
    ref = paddleclas_vit_reference({k: v.astype(np.float64) for k, v in st.items()}, pixels, LAYERS, HEADS, PATCH)
    with paddle.no_grad():
        ours = model.model.encode_image(paddle.to_tensor(pixels.astype("float32"))).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_positions_follow_the_configured_image_size(setup):
    """224 -> 384 px style: a 2x2 grid checkpoint into a 3x3-grid model is
    interpolated bicubically, [CLS] position kept."""
    tmp, st, src, _ = setup
    cfg = load_cfg(tiny_arch_config(tmp, "big.yaml", vit={"image_size": 24}))
    _, state, _ = _convert(cfg, src)
    np.testing.assert_allclose(state["model.vit.pos_embed"], ref_resize(st["pos_embed"].astype(np.float64), 3),
                               rtol=1e-5, atol=1e-5)


def test_config_differences_are_reported_and_missing_qkv_bias_is_zero(setup):
    tmp, _, src, _ = setup
    cfg = load_cfg(tiny_arch_config(tmp, "padded.yaml", vit={"patch_padding": 3, "layer_norm_eps": 1e-12}))
    st = paddleclas_vit_state(np.random.default_rng(1), D, PATCH, GRID, LAYERS, qkv_bias=False)
    _, state, report = _convert(cfg, src, st)
    np.testing.assert_array_equal(state["model.vit.encoder.layers.0.attn.k_proj.bias"], np.zeros(D, "float32"))
    text = " ".join(report.notes)
    assert "Arch.vit.patch_padding=3" in text and "Arch.vit.layer_norm_eps=1e-12" in text and "qkv" in text


def test_against_paddleclas_when_installed(setup):
    pytest.importorskip("paddleclas", reason="optional cross-check against PaddleClas's own ViT: paddleclas is "
                                             "not installed (2.6.0 declares numpy==1.24.4 and the GUI "
                                             "opencv-python<=4.6, which clash with requirements.txt; it coexists "
                                             "only as `pip install --no-deps paddleclas==2.6.0`); the NumPy "
                                             "reference tests in this file check the conversion without it")
    from ppcls.arch.backbone.model_zoo.vision_transformer import VisionTransformer

    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    _, st, src, cfg_path = setup
    theirs = VisionTransformer(img_size=SIZE, patch_size=PATCH, class_num=10, embed_dim=D, depth=LAYERS,
                               num_heads=HEADS, mlp_ratio=4, qkv_bias=True, epsilon=1e-6)
    theirs.set_state_dict({k: paddle.to_tensor(v) for k, v in st.items()})
    theirs.eval()
    model, state, _ = _convert(load_cfg(cfg_path), src)
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    pixels = paddle.to_tensor(np.random.default_rng(3).standard_normal((2, 3, SIZE, SIZE)).astype("float32"))
    with paddle.no_grad():
        np.testing.assert_allclose(model.model.encode_image(pixels).numpy()[:, 0],
                                   theirs.forward_features(pixels).numpy(), rtol=1e-4, atol=1e-4)
