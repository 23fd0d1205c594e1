"""Official UNIMO checkpoints (static-graph directories written by Paddle's
own save_vars) -> UNIMO: every variable lands in place, nothing is left
over, optimizer state is dropped with a note, fine-tuning heads and configs
that do not describe the official model are refused by name, and the
converted model computes what the official code computes (NumPy
re-implementation: embeddings, 2 post-LN layers, pooled ReLU FCs, MLM head)
on text-only and image+text inputs."""
import os

import numpy as np
import paddle
import pytest

from vlcore.convert import ConversionError
from vlcore.formats import weights_file

from ckpt_helpers import (
    build,
    load_unimo_cfg,
    official_unimo_encode,
    official_unimo_lm_logits,
    official_unimo_pooled,
    official_unimo_variables,
    tiny_unimo_arch_config,
    write_static_checkpoint,
)
from helpers import ROOT, run_tool

pytestmark = pytest.mark.slow  # the official checkpoint is written by a Paddle subprocess

D, HEADS, VOCAB, NPOS, FEAT, LAYERS = 16, 2, 40, 20, 12, 2
# What a save_persistables of a fine-tuning run adds next to the weights.
OPTIMIZER = [("encoder_layer_0_ffn_fc_0.w_0_moment1_0", [D, 4 * D], 0, 0.1),
             ("word_embedding_beta1_pow_acc_0", [1], 0.5, 0.9), ("learning_rate_0", [1], 1e-5, 1e-5)]


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unimo_official")
    variables = official_unimo_variables(D, VOCAB, NPOS, FEAT, LAYERS) + OPTIMIZER
    ckpt = os.path.join(str(tmp), "ckpt", "unimo_base_en")
    # image_emb made by Paddle's own static fc, run on a probe: its layout is Paddle's
    values, probe = write_static_checkpoint(ckpt, variables, seed=3,
                                            fc={"weight": "image_emb.w_0", "bias": "image_emb.b_0",
                                                "in": FEAT, "out": D})
    return {"tmp": str(tmp), "dir": ckpt, "values": values, "probe": probe,
            "cfg": tiny_unimo_arch_config(tmp)}


def _convert(cfg, src, source=None, **kw):
    from unimo.convert import convert
    model = build(cfg)
    state, report = convert("unimo-official", src, model, cfg.Arch, source=source, **kw)
    return model, state, report


def _load(model, state):
    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    return model


def _expected_places():
    """Model key -> official name, written from the official code's names."""
    places = {"model.word_embed.weight": "word_embedding", "mlm_head.word_embedding": "word_embedding",
              "model.pos_embed.weight": "pos_embedding",
              "model.text_norm.weight": "pre_encoder_layer_norm_scale",
              "model.text_norm.bias": "pre_encoder_layer_norm_bias",
              "model.feature_fc.weight": "image_emb.w_0", "model.feature_fc.bias": "image_emb.b_0",
              "model.location_fc.weight": "image_loc.w_0", "model.location_fc.bias": "image_loc.b_0",
              "model.region_norm.weight": "v_pre_encoder_layer_norm_scale",
              "model.region_norm.bias": "v_pre_encoder_layer_norm_bias",
              "mlm_head.transform.weight": "mask_lm_trans_fc.w_0", "mlm_head.transform.bias": "mask_lm_trans_fc.b_0",
              "mlm_head.norm.weight": "mask_lm_trans_layer_norm_scale",
              "mlm_head.norm.bias": "mask_lm_trans_layer_norm_bias", "mlm_head.bias": "mask_lm_out_fc.b_0"}
    for side in ("text", "image"):
        places[f"cmcl_{side}_proj.mlp.0.weight"] = f"pooled_fc_{side}.w_0"
        places[f"cmcl_{side}_proj.mlp.0.bias"] = f"pooled_fc_{side}.b_0"
    for i in range(LAYERS):
        ours, theirs = f"model.encoder.layers.{i}.", f"encoder_layer_{i}_"
        for a, b in (("attn.q_proj", "multi_head_att_query_fc"), ("attn.k_proj", "multi_head_att_key_fc"),
                     ("attn.v_proj", "multi_head_att_value_fc"), ("attn.out_proj", "multi_head_att_output_fc"),
                     ("ffn.fc1", "ffn_fc_0"), ("ffn.fc2", "ffn_fc_1")):
            places[f"{ours}{a}.weight"], places[f"{ours}{a}.bias"] = f"{theirs}{b}.w_0", f"{theirs}{b}.b_0"
        for a, b in (("norm1", "post_att"), ("norm2", "post_ffn")):
            places[f"{ours}{a}.weight"] = f"{theirs}{b}_layer_norm_scale"
            places[f"{ours}{a}.bias"] = f"{theirs}{b}_layer_norm_bias"
    return places


def test_every_variable_lands_in_place_and_nothing_is_left(official):
    cfg = load_unimo_cfg(official["cfg"])
    model, state, report = _convert(cfg, official["dir"])
    w = official["values"]
    places = _expected_places()
    for key, name in places.items():
        np.testing.assert_array_equal(state[key], w[name], err_msg=key)
    # every model tensor the release has is set; only the heads it lacks are not
    assert set(state) == set(places)
    assert sorted(set(model.state_dict()) - set(state)) == sorted(
        k for k in model.state_dict() if k.split(".")[0] in ("mrfr_head", "mrc_head", "vlm_head"))
    # every checkpoint variable is either used or dropped as optimizer state, with a note
    used = {s for srcs in report.mapped.values() for s in srcs}
    assert used | set(report.dropped) == set(w)
    assert sorted(report.dropped) == sorted(n for n, *_ in OPTIMIZER)
    assert any("optimizer / learning-rate state" in line for line in report.lines())
    assert any("unimo_en.vocab.txt" in n for n in report.notes)


def test_image_fc_layout_is_paddles(official):
    """Paddle's static fc (the writer ran it) == our feature_fc on the same input."""
    cfg = load_unimo_cfg(official["cfg"])
    model, state, _ = _convert(cfg, official["dir"])
    _load(model, state)
    x, y = official["probe"]["fc_in"], official["probe"]["fc_out"]
    with paddle.no_grad():
        ours = model.model.feature_fc(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(ours, y, rtol=1e-5, atol=1e-5)


def _inputs(rng):
    b, n, r = 2, 7, 4
    ids = rng.integers(4, VOCAB, size=(b, n))
    text_mask = np.ones((b, n), dtype=bool)
    text_mask[1, 5:] = False                                   # padded caption
    feats = rng.normal(size=(b, r, FEAT)).astype("float32")
    x1y1 = rng.uniform(0, 40, size=(b, r, 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(5, 40, size=(b, r, 2))], axis=-1)
    image_w, image_h = np.array([100.0, 90.0]), np.array([80.0, 120.0])
    region_mask = np.ones((b, r), dtype=bool)
    region_mask[0, 3:] = False                                 # padded regions
    return ids, text_mask, feats, boxes, image_w, image_h, region_mask


def _official_image_input(feats, boxes, image_w, image_h, region_mask):
    """What the official retrieval reader builds: mean feature of the real
    boxes first at [0, 0, 1, 1, 1]; x1/W, y1/H, x2/W, y2/H, area/(W*H)."""
    b, r, _ = feats.shape
    f = np.zeros((b, r + 1, FEAT))
    loc = np.zeros((b, r + 1, 5))
    for i in range(b):
        n = int(region_mask[i].sum())
        f[i, 0], f[i, 1:n + 1] = feats[i, :n].mean(0), feats[i, :n]
        bx = boxes[i, :n]
        loc[i, 0] = [0, 0, 1, 1, 1]
        loc[i, 1:n + 1] = np.stack([bx[:, 0] / image_w[i], bx[:, 1] / image_h[i], bx[:, 2] / image_w[i],
                                    bx[:, 3] / image_h[i],
                                    (bx[:, 3] - bx[:, 1]) * (bx[:, 2] - bx[:, 0]) / (image_w[i] * image_h[i])], -1)
    mask = np.concatenate([np.ones((b, 1), bool), region_mask], axis=1)
    return f, loc, mask


def test_forward_equals_the_official_computation(official):
    from unimo.model import region_locations
    cfg = load_unimo_cfg(official["cfg"])
    model, state, _ = _convert(cfg, official["dir"])
    _load(model, state)
    w = {k: v.astype(np.float64) for k, v in official["values"].items()}
    ids, text_mask, feats, boxes, image_w, image_h, region_mask = _inputs(np.random.default_rng(7))
    pos = 2 + np.arange(ids.shape[1])[None].repeat(ids.shape[0], 0)   # the official readers: range(2, n + 2)
    t = lambda x: paddle.to_tensor(x)  # noqa: E731
    with paddle.no_grad():
        locs = region_locations(t(boxes.astype("float32")), t(image_w.astype("float32")),
                                t(image_h.astype("float32")))
        text_only = model.model(text=(t(ids), t(text_mask)))
        pair = model.model(regions=(t(feats), locs, t(region_mask)), text=(t(ids), t(text_mask)))
        text_pooled = model.cmcl_text_proj.mlp(text_only.text[:, 0]).numpy()
        image_pooled = model.cmcl_image_proj.mlp(pair.image[:, 0]).numpy()
        text_emb = model.embed_text(t(ids), t(text_mask)).numpy()
        logits = model.mlm_head(pair.text).numpy()
    # text only
    _, ref_text = official_unimo_encode(w, LAYERS, HEADS, ids=ids, pos_ids=pos, text_mask=text_mask)
    valid = text_mask
    np.testing.assert_allclose(text_only.text.numpy()[valid], ref_text[valid], rtol=1e-4, atol=1e-4)
    ref_pooled = official_unimo_pooled(w, ref_text, "text")
    np.testing.assert_allclose(text_pooled, ref_pooled, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(text_emb, ref_pooled / np.linalg.norm(ref_pooled, axis=-1, keepdims=True),
                               rtol=1e-4, atol=1e-4)
    # image + text: [IMG] regions then [CLS] text, one sequence
    f, loc, img_mask = _official_image_input(feats, boxes, image_w, image_h, region_mask)
    ref_img, ref_txt = official_unimo_encode(w, LAYERS, HEADS, ids=ids, pos_ids=pos, text_mask=text_mask,
                                             image_feats=f, image_loc=loc, image_mask=img_mask)
    np.testing.assert_allclose(pair.image.numpy()[img_mask], ref_img[img_mask], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pair.text.numpy()[valid], ref_txt[valid], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(image_pooled, official_unimo_pooled(w, ref_img, "image"), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits[valid], official_unimo_lm_logits(w, ref_txt)[valid], rtol=1e-4, atol=1e-4)
    # the image changes the text's encoding (the check above is not vacuous)
    assert np.abs(pair.text.numpy()[valid] - text_only.text.numpy()[valid]).max() > 1e-2


def test_finetuned_checkpoint_heads_are_named_and_ignorable(official):
    """An MNLI-tuned release: no mask_lm_*, no pooled_fc_image, a classifier
    cls_out_3_*. The classifier is refused by name with the reason; ignored,
    the rest converts and the missing heads keep their initialisation."""
    cfg = load_unimo_cfg(official["cfg"])
    w = dict(official["values"])
    for name in [n for n in w if n.startswith(("mask_lm_", "pooled_fc_image"))]:
        del w[name]
    w["cls_out_3_w"], w["cls_out_3_b"] = np.ones((D, 3), "float32"), np.zeros(3, "float32")
    with pytest.raises(ConversionError, match=r"cannot represent: cls_out_3_b, cls_out_3_w .*fine-tuning head"):
        _convert(cfg, "mnli", source=w)
    model, state, report = _convert(cfg, "mnli", source=w, ignore=("cls_out_*",))
    assert "mlm_head.transform.weight" not in state and "cmcl_image_proj.mlp.0.weight" not in state
    np.testing.assert_array_equal(state["cmcl_text_proj.mlp.0.weight"], w["pooled_fc_text.w_0"])
    assert report.ignored == ["cls_out_3_b", "cls_out_3_w"]
    assert any("no mask_lm_*" in n for n in report.notes) and any("no pooled_fc_image" in n for n in report.notes)


def test_unknown_variables_and_missing_ones_are_errors(official):
    cfg = load_unimo_cfg(official["cfg"])
    w = dict(official["values"], **{"image_cls_fc.w_0": np.ones((D, 5), "float32")})
    with pytest.raises(ConversionError, match=r"no place in the model: image_cls_fc\.w_0"):
        _convert(cfg, "extra", source=w)
    w = {k: v for k, v in official["values"].items() if k != "v_pre_encoder_layer_norm_bias"}
    with pytest.raises(ConversionError, match=r"missing: v_pre_encoder_layer_norm_bias"):
        _convert(cfg, "fewer", source=w)


def test_configs_that_are_not_the_official_model_are_refused(official, tmp_path):
    w = official["values"]
    uni = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "uni.yaml", base="unicoder_vl_base.yaml"))
    with pytest.raises(ConversionError, match=r"Arch\.layout=unicoder .*Arch\.type_vocab_size=2 .*"
                                              r"Arch\.location_dim=4"):
        _convert(uni, "x", source=w)
    shared = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "shared.yaml", base="unimo_base.yaml"))
    with pytest.raises(ConversionError, match=r"pooled_fc_text, pooled_fc_image .*Arch\.cmcl_proj=separate_relu"):
        _convert(shared, "x", source=w)
    deeper = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "deep.yaml", num_layers=3))
    with pytest.raises(ConversionError, match=r"2 encoder_layer_\* layers .* Arch\.num_layers=3"):
        _convert(deeper, "x", source=w)


def test_position_offset_rolls_the_table(official, tmp_path):
    """Our first text position at 0: official row 2 + i is our row i."""
    cfg = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "pos0.yaml", position_offset=0))
    _, state, report = _convert(cfg, "x", source=official["values"])
    np.testing.assert_array_equal(state["model.pos_embed.weight"][:-2], official["values"]["pos_embedding"][2:])
    assert any("rolled by -2" in n for n in report.notes)


def test_cli_and_init_from(official, tmp_path):
    """tools/convert_checkpoint.py --from unimo-official writes a file that
    loads strictly; Global.init_from: unimo-official:DIR gives the same
    tensors; a stray variable makes the tool fail naming it."""
    dst = os.path.join(str(tmp_path), "unimo.safetensors")
    args = ["tools/convert_checkpoint.py", "--from", "unimo-official", "--src", official["dir"], "--dst", dst,
            "-c", official["cfg"]]
    r = run_tool(args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ": 51 variables -> 52 model tensors" in r.stdout and "optimizer / learning-rate state" in r.stdout
    saved = weights_file.load(dst)
    np.testing.assert_array_equal(saved["model.encoder.layers.1.ffn.fc2.weight"],
                                  official["values"]["encoder_layer_1_ffn_fc_1.w_0"])
    from vlcore.framework.init_from import load_init_from
    cfg = load_unimo_cfg(official["cfg"], [f"Global.init_from=unimo-official:{official['dir']}"])
    state, reports = load_init_from(cfg.Global.init_from, cfg.Arch.name, build(cfg), cfg.Arch)
    assert set(state) == set(_expected_places()) and reports[0] is not None
    for key in state:
        np.testing.assert_array_equal(state[key], saved[key], err_msg=key)
    # Unicoder-VL / UNIMO-2 configs have their own kinds: unimo-official is for Arch UNIMO only
    r = run_tool(args[:-1] + [os.path.join(ROOT, "configs", "unimo2_demo.yaml")])
    assert r.returncode == 2 and "unimo-official has no converter for Arch 'UNIMO2'" in r.stderr


# ------------------------------------------------ fine-tuning models
def _ft_cfg(tmp_path, filename, **arch):
    import unimo.finetune_cls  # noqa: F401  (registers UNIMOForClassification)
    return load_unimo_cfg(tiny_unimo_arch_config(tmp_path, filename, name="UNIMOForClassification", **arch))


def test_mnli_checkpoint_into_the_classifier(official, tmp_path):
    """The MNLI-tuned release (no mask_lm_*, a 3-way cls_out_3_* on
    pooled_fc_text) into UNIMOForClassification: every variable placed, and
    the logits are the official ones (pooled ReLU FC, then the FC)."""
    rng = np.random.default_rng(11)
    w = {k: v for k, v in official["values"].items() if not k.startswith(("mask_lm_", "pooled_fc_image"))}
    w["cls_out_3_w"] = rng.uniform(-0.5, 0.5, (D, 3)).astype("float32")
    w["cls_out_3_b"] = rng.uniform(-0.1, 0.1, 3).astype("float32")
    cfg = _ft_cfg(tmp_path, "mnli.yaml", num_outputs=3, head={"hidden": 0})
    model, state, report = _convert(cfg, "mnli", source=w)
    np.testing.assert_array_equal(state["head.out.weight"], w["cls_out_3_w"])
    np.testing.assert_array_equal(state["head.pool_text.bias"], w["pooled_fc_text.b_0"])
    used = {s for srcs in report.mapped.values() for s in srcs}
    assert used | set(report.dropped) == set(w)
    assert sorted(set(model.state_dict()) - set(state)) == ["head.pool_image.bias", "head.pool_image.weight"]
    _load(model, state)
    ids, text_mask = _inputs(np.random.default_rng(7))[:2]
    with paddle.no_grad():
        logits = model.logits({"ids": paddle.to_tensor(ids), "mask": paddle.to_tensor(text_mask)}).numpy()
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    pos = 2 + np.arange(ids.shape[1])[None].repeat(ids.shape[0], 0)
    _, h = official_unimo_encode(w64, LAYERS, HEADS, ids=ids, pos_ids=pos, text_mask=text_mask)
    ref = official_unimo_pooled(w64, h, "text") @ w64["cls_out_3_w"] + w64["cls_out_3_b"]
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)


def test_snli_ve_classifier_and_mismatched_heads(official, tmp_path):
    """SNLI-VE's head: cls_out_{w,b}_0 (FC of text + image poolers to a
    hidden layer) then cls_out_{w,b}_1; official logits on image + text. A
    head of the other form is refused by name."""
    from unimo.model import region_locations
    rng = np.random.default_rng(12)
    hid = 8
    w = {k: v for k, v in official["values"].items() if not k.startswith("mask_lm_")}
    w.update({"cls_out_w_0": rng.uniform(-0.5, 0.5, (D, hid)).astype("float32"),
              "cls_out_b_0": rng.uniform(-0.1, 0.1, hid).astype("float32"),
              "cls_out_w_1": rng.uniform(-0.5, 0.5, (hid, 3)).astype("float32"),
              "cls_out_b_1": rng.uniform(-0.1, 0.1, 3).astype("float32")})
    cfg = _ft_cfg(tmp_path, "ve.yaml", num_outputs=3, head={"fusion": "sum", "hidden": hid})
    model, state, _ = _convert(cfg, "snli_ve", source=w)
    assert set(state) == set(model.state_dict())
    _load(model, state)
    ids, text_mask, feats, boxes, image_w, image_h, region_mask = _inputs(np.random.default_rng(7))
    t = lambda x: paddle.to_tensor(x)  # noqa: E731
    with paddle.no_grad():
        locs = region_locations(t(boxes.astype("float32")), t(image_w.astype("float32")),
                                t(image_h.astype("float32")))
        logits = model.logits({"ids": t(ids), "mask": t(text_mask), "features": t(feats), "locations": locs,
                               "region_mask": t(region_mask)}).numpy()
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    f, loc, img_mask = _official_image_input(feats, boxes, image_w, image_h, region_mask)
    pos = 2 + np.arange(ids.shape[1])[None].repeat(ids.shape[0], 0)
    h_img, h_txt = official_unimo_encode(w64, LAYERS, HEADS, ids=ids, pos_ids=pos, text_mask=text_mask,
                                         image_feats=f, image_loc=loc, image_mask=img_mask)
    fused = official_unimo_pooled(w64, h_txt, "text") + official_unimo_pooled(w64, h_img, "image")
    ref = (fused @ w64["cls_out_w_0"] + w64["cls_out_b_0"]) @ w64["cls_out_w_1"] + w64["cls_out_b_1"]
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
    glue_model = _ft_cfg(tmp_path, "glue.yaml", num_outputs=3, head={"hidden": 0})
    with pytest.raises(ConversionError, match=r"classifier is cls_out_\{w,b\}_\{0,1\} .*Arch\.head"):
        _convert(glue_model, "snli_ve", source=w)


def test_pretrained_checkpoint_initialises_fine_tuning_models(official, tmp_path):
    """unimo_base_en into the generation model (its LM head; the pooled FCs
    dropped, named) and into a classifier (poolers; the LM head dropped; the
    classifier left to the config)."""
    import unimo.seq2seq  # noqa: F401  (registers UNIMOForSeq2Seq)
    w = official["values"]
    gen = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "gen.yaml", base="unimo/generation_base.yaml"))
    model, state, report = _convert(gen, official["dir"])
    assert set(state) == set(model.state_dict())
    np.testing.assert_array_equal(state["mlm_head.transform.weight"], w["mask_lm_trans_fc.w_0"])
    assert report.dropped["pooled_fc_text.w_0"].startswith("the pooled [CLS] / [IMG] FCs")
    cls = _ft_cfg(tmp_path, "cls.yaml", num_outputs=2)
    model, state, report = _convert(cls, official["dir"])
    np.testing.assert_array_equal(state["head.pool_image.weight"], w["pooled_fc_image.w_0"])
    assert sorted(set(model.state_dict()) - set(state)) == ["head.out.bias", "head.out.weight"]
    assert report.dropped["mask_lm_trans_fc.w_0"].startswith("the MLM / generation head")
    assert any("no cls_out_*" in n for n in report.notes)


@pytest.mark.parametrize("config", ["unimo_official_base.yaml", "unimo_official_large.yaml",
                                    "unimo/generation_base.yaml", "unimo/cls_base.yaml", "unimo/mnli.yaml",
                                    "unimo/snli_ve.yaml"])
def test_shipped_configs_describe_the_official_network(config):
    """The configs that name unimo-official as their initialisation pass the
    converter's architecture checks (sizes are checked by the shapes)."""
    import unimo.finetune_cls  # noqa: F401
    import unimo.seq2seq  # noqa: F401
    from unimo.convert import _official_config_problems
    path = os.path.join(ROOT, "configs", config)
    if not os.path.isfile(path):
        pytest.skip(f"{config} is not in this checkout")
    arch = load_unimo_cfg(path).Arch
    assert _official_config_problems(arch) == []
    if arch.name == "UNIMO":
        assert (arch.cmcl_proj, arch.cmcl_dim) == ("separate_relu", arch.hidden_size)
