"""The official UNIMO-2 checkpoint converter (tools/convert_checkpoint.py
--from unimo2-official) on a tiny checkpoint written by Paddle's own legacy
static save_vars with the official names and shapes: every variable lands
where it belongs (values compared), nothing is left over, and the converted
model computes what the official code computes (NumPy re-implementation of
its padded NHWC patch conv, pre-LN ViT with epsilon 1e-12, post-LN text
encoder, top-K grounding, grounded encoder and ITM head)."""
import os
import re
import shutil

import numpy as np
import paddle
import pytest

from ckpt_helpers import (
    build,
    load_cfg,
    official_grounded,
    official_grounded_itm,
    official_patch_conv,
    official_pos_ids,
    official_text,
    official_unimo2_variables,
    official_vit,
    tiny_arch_config,
    write_official_checkpoint,
)
from helpers import run_tool

pytestmark = pytest.mark.slow  # the official checkpoint is written by a Paddle subprocess

D, HEADS, VOCAB, NPOS, PATCH, SIZE, CODEBOOK, TOPK = 16, 2, 40, 20, 8, 16, 12, 3
GRID = SIZE // PATCH
LAYERS = {"text": 2, "vit": 2, "fusion": 2}


def _config(tmp, name="tiny.yaml", **arch):
    vit = {"patch_padding": (PATCH - 1) // 2, **arch.pop("vit", {})}
    return tiny_arch_config(tmp, name, base="unimo2_official_base.yaml", vit=vit, **arch)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """Checkpoint dir, its values, Paddle's own probe outputs, the converted
    .safetensors and the config used (one CLI conversion per module)."""
    tmp = tmp_path_factory.mktemp("official")
    variables = official_unimo2_variables(D, VOCAB, NPOS, PATCH, GRID, CODEBOOK, LAYERS["text"],
                                          LAYERS["vit"], LAYERS["fusion"])
    ckpt_dir = os.path.join(str(tmp), "ckpt", "UNIMO-2")
    values, probe = write_official_checkpoint(ckpt_dir, variables, SIZE, PATCH)
    cfg_path = _config(tmp)
    dst = os.path.join(str(tmp), "converted.safetensors")
    r = run_tool(["tools/convert_checkpoint.py", "--from", "unimo2-official", "--src", ckpt_dir,
                  "--dst", dst, "-c", cfg_path])
    assert r.returncode == 0, r.stderr[-3000:]
    return {"dir": ckpt_dir, "values": values, "probe": probe, "cfg": cfg_path, "dst": dst, "stdout": r.stdout,
            "tmp": tmp}


@pytest.fixture(scope="module")
def loaded(official):
    from vlcore.framework.checkpoint import load_weights, set_weights
    cfg = load_cfg(official["cfg"])
    model = build(cfg)
    set_weights(model, load_weights(official["dst"]), official["dst"])  # strict
    return cfg, model


def _expected_place(name):
    """Official variable -> (our key, transform of the official array)."""
    same = lambda x: x  # noqa: E731
    fixed = {"text.word_embedding": "model.text.word_embed.weight",
             "text.pos_embedding": "model.text.pos_embed.weight",
             "vit.patch_embeddings_projection_weight": "model.vit.patch_embed.weight",
             "vit.patch_embeddings_projection_bias": "model.vit.patch_embed.bias",
             "vit.cls_token_embeddings": "model.vit.cls_token", "vit.position_embeddings": "model.vit.pos_embed",
             "vq_emb": "model.grounding.embedding", "topk_temperature": "model.grounding.temperature",
             "cmcl_temperature": "itc_temperature", "grounded.mask_lm_out_fc.b_0": "mlm_head.bias"}
    if name in fixed:
        return fixed[name], same
    lns = {"text.pre_encoder": "model.text.norm", "vit.post_encoder": "model.vit.encoder.final_norm",
           "grounded.pre_encoder": "model.fusion.grounded_norm", "grounded.mask_lm_trans": "mlm_head.norm"}
    m = re.match(r"(.+)_layer_norm_(scale|bias)$", name)
    if m and m.group(1) in lns:
        return f"{lns[m.group(1)]}.{'weight' if m.group(2) == 'scale' else 'bias'}", same
    fcs = {"grounded.mask_lm_trans_fc": "mlm_head.transform", "grounded.pooled_fc_text": "itm_head.pool_text",
           "grounded.pooled_fc_image": "itm_head.pool_image",
           "grounded.img_text_matching_fc": "itm_head.classifier",
           "grounded.cmcl_pooled_fc_text": "itc_text_proj.mlp.0",
           "grounded.cmcl_pooled_fc_image": "itc_image_proj.mlp.0"}
    m = re.match(r"(.+)\.(w|b)_0$", name)
    if m and m.group(1) in fcs:
        return f"{fcs[m.group(1)]}.{'weight' if m.group(2) == 'w' else 'bias'}", same
    m = re.match(r"(text|vit|grounded)\.encoder_layer_(\d+)_(.+)$", name)
    part = {"text": "model.text", "vit": "model.vit", "grounded": "model.fusion"}[m.group(1)]
    base, rest = f"{part}.encoder.layers.{m.group(2)}", m.group(3)
    wb = lambda s: "weight" if s in ("w_0", "scale") else "bias"  # noqa: E731
    m2 = re.match(r"multi_head_att_(query|key|value|output)_fc\.(w_0|b_0)$", rest)
    if m2:
        proj = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "output": "out_proj"}[m2.group(1)]
        return f"{base}.attn.{proj}.{wb(m2.group(2))}", same
    m2 = re.match(r"ffn_fc_(0|1)\.(w_0|b_0)$", rest)
    if m2:
        return f"{base}.ffn.fc{int(m2.group(1)) + 1}.{wb(m2.group(2))}", same
    m2 = re.match(r"(pre_att|post_att|pre_ffn|post_ffn)_layer_norm_(scale|bias)$", rest)
    norm = "norm1" if m2.group(1).endswith("att") else "norm2"
    return f"{base}.{norm}.{wb(m2.group(2))}", same


def test_written_files_are_what_paddle_static_save_writes(official):
    """One file per variable, named by it, read back by Paddle's own static
    loader (in a child process: this one runs Paddle with PIR)."""
    from vlcore.convert import read_static_checkpoint
    values = official["values"]
    assert sorted(os.listdir(official["dir"])) == sorted(values)
    state = read_static_checkpoint(official["dir"])
    assert sorted(state) == sorted(values)
    for k, v in values.items():
        np.testing.assert_array_equal(state[k], v)


def test_paddle_static_layouts_match_the_numpy_reference(official, loaded):
    """Paddle's own static NHWC conv2d (filter [out, in, kh, kw], padding
    (P-1)//2) and static fc (x @ w_0 + b_0) on a probe agree with the NumPy
    reference, and with our patch embedding on the same pixels as NCHW."""
    probe, w = official["probe"], official["values"]
    ref = official_patch_conv(probe["conv_in"].astype(np.float64), w["vit.patch_embeddings_projection_weight"],
                              w["vit.patch_embeddings_projection_bias"], PATCH, (PATCH - 1) // 2)
    paddle_nhwc = probe["conv_out"].reshape(ref.shape)  # [B, g, g, D] -> [B, g*g, D], row-major
    np.testing.assert_allclose(paddle_nhwc, ref, rtol=1e-4, atol=1e-4)
    _, model = loaded
    ours = model.model.vit.patch_embed(paddle.to_tensor(probe["conv_in"].transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(ours.reshape(ours.shape[0], D, -1).transpose(0, 2, 1), paddle_nhwc,
                               rtol=1e-4, atol=1e-4)
    q = "vit.encoder_layer_0_multi_head_att_query_fc"
    np.testing.assert_allclose(probe["fc_out"], probe["fc_in"] @ w[f"{q}.w_0"] + w[f"{q}.b_0"], rtol=1e-4, atol=1e-5)


def test_every_variable_lands_in_its_place(official, loaded):
    _, model = loaded
    state = model.state_dict()
    values = official["values"]
    filled = set()
    for name, value in values.items():
        key, fn = _expected_place(name)
        np.testing.assert_array_equal(state[key].numpy(), fn(value), err_msg=f"{name} -> {key}")
        filled.add(key)
    # The MLM decoder is the word embedding itself (tied), not a copy of it.
    np.testing.assert_array_equal(state["mlm_head.word_embedding"].numpy(), values["text.word_embedding"])
    # Without cmcl projections the ITC projections are the identity, and the
    # only keys no variable filled are those and the VCL head (not released).
    np.testing.assert_array_equal(state["itc_text_proj.mlp.0.weight"].numpy(), np.eye(D, dtype="float32"))
    rest = set(state) - filled - {"mlm_head.word_embedding"}
    assert rest == {k for k in state if k.startswith(("itc_text_proj.", "itc_image_proj.", "vcl_proj."))}
    assert "left to the model's initialisation" in official["stdout"] and "vcl_proj" in official["stdout"]


def test_forward_equals_the_official_computation(official, loaded):
    cfg, model = loaded
    w = {k: v.astype(np.float64) for k, v in official["values"].items()}
    rng = np.random.default_rng(5)
    pixels = rng.standard_normal((2, SIZE, SIZE, 3))                      # official input: NHWC
    ids = rng.integers(5, VOCAB, size=(2, 7))
    mask = np.ones((2, 7), dtype=bool)
    mask[1, 5:] = False
    pos_ids = official_pos_ids(mask)                                         # official data: from 2, pads 1
    ref_v = official_vit(pixels, w, LAYERS["vit"], HEADS, PATCH)
    ref_t = official_text(ids, pos_ids, mask, w, LAYERS["text"], HEADS)
    ref_logits, ref_idx = official_grounded_itm(ref_v, ref_t, mask, w, LAYERS["fusion"], HEADS, TOPK)
    with paddle.no_grad():
        v = model.model.encode_image(paddle.to_tensor(pixels.transpose(0, 3, 1, 2).astype("float32")))
        t = model.model.encode_text(paddle.to_tensor(ids), paddle.to_tensor(mask))
        logits, grounding = model.itm_logits(v, t, paddle.to_tensor(mask))
        img_emb = model.embed_image(v).numpy()
    np.testing.assert_allclose(v.numpy(), ref_v, rtol=1e-4, atol=1e-4)
    real = mask[:, :, None].repeat(D, -1)
    np.testing.assert_allclose(t.numpy()[real], ref_t[real], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(grounding.indices.numpy(), ref_idx)
    np.testing.assert_allclose(logits.numpy(), ref_logits, rtol=1e-4, atol=1e-4)
    # ITC: the official image feature is the normalised [CLS].
    cls = ref_v[:, 0]
    np.testing.assert_allclose(img_emb, cls / np.linalg.norm(cls, axis=-1, keepdims=True), rtol=1e-4, atol=1e-5)
    assert cfg.Arch.grounding.exclude_padding is False  # the official config lets padding vote


def _padded_batch(rng, lengths, width):
    ids = rng.integers(5, VOCAB, size=(len(lengths), width))
    mask = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
    return np.where(mask, ids, 1), mask                                      # official pad id 1


def test_padded_batches_equal_the_official_computation(official, loaded):
    """Captions padded by different amounts, the official mode
    (exclude_padding: false): the padded states -- position id 1, attention
    over every key -- vote in Eq. 2 as in the official code, so the Eq. 2
    scores, the top-K sets, every fused state (padded ones included) and
    the ITM logits equal the NumPy reference of the official computation."""
    cfg, model = loaded
    w = {k: v.astype(np.float64) for k, v in official["values"].items()}
    rng = np.random.default_rng(11)
    pixels = rng.standard_normal((4, SIZE, SIZE, 3))
    ids, mask = _padded_batch(rng, [9, 3, 6, 2], 9)
    ref_v = official_vit(pixels, w, LAYERS["vit"], HEADS, PATCH)
    ref_t = official_text(ids, official_pos_ids(mask), mask, w, LAYERS["text"], HEADS)
    ref = official_grounded(ref_v, ref_t, mask, w, LAYERS["fusion"], HEADS, TOPK)
    with paddle.no_grad():
        v = model.model.encode_image(paddle.to_tensor(pixels.transpose(0, 3, 1, 2).astype("float32")))
        t = model.model.encode_text(paddle.to_tensor(ids), paddle.to_tensor(mask))
        m = paddle.to_tensor(mask)
        grounding = model.model.ground(v, t, m)
        fused = model.model.fuse(v, t, m, grounding)
        logits, _ = model.itm_logits(v, t, m)
    np.testing.assert_allclose(t.numpy(), ref_t, rtol=1e-4, atol=1e-4)       # padded positions too
    np.testing.assert_allclose(grounding.scores.numpy(), ref["scores"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.sort(grounding.indices.numpy(), 1), np.sort(ref["idx"], 1))
    n_img = ref_v.shape[1]
    np.testing.assert_allclose(fused.text.numpy(), ref["fused"][:, n_img + TOPK:], rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(fused.image.numpy(), ref["fused"][:, :n_img], rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(logits.numpy(), ref["logits"], rtol=1e-4, atol=1e-4)


def test_official_retrieval_score(official, tmp_path):
    """The official zero-shot / fine-tuned retrieval score, ITM match logit +
    0.3 x normalize(image [CLS]) . text [CLS] (retrieval_grounded_fleet.py with
    with_cmcl_projection=False; get_cmcl_scores leaves the text side as it
    is), from UNIMO2ForRetrieval on the converted weights; and the cosine form
    differs from it (the option matters)."""
    from vlcore.framework.checkpoint import load_weights, set_weights
    w = {k: v.astype(np.float64) for k, v in official["values"].items()}
    rng = np.random.default_rng(8)
    pixels = rng.standard_normal((3, SIZE, SIZE, 3))
    ids, mask = _padded_batch(rng, [8, 4, 6], 8)
    ref_v = official_vit(pixels, w, LAYERS["vit"], HEADS, PATCH)
    ref_t = official_text(ids, official_pos_ids(mask), mask, w, LAYERS["text"], HEADS)
    logits = official_grounded(ref_v, ref_t, mask, w, LAYERS["fusion"], HEADS, TOPK)["logits"]
    img = ref_v[:, 0] / np.linalg.norm(ref_v[:, 0], axis=-1, keepdims=True)
    ref = logits[:, 1] + 0.3 * (img * ref_t[:, 0]).sum(-1)
    got = {}
    # the shipped config of the official zero-shot retrieval, at the tiny sizes
    path = tiny_arch_config(tmp_path, "zs.yaml", base="unimo2/flickr30k_zeroshot_retrieval_official.yaml",
                            vit={"patch_padding": (PATCH - 1) // 2}, text={"max_positions": NPOS})
    for normalize in ("false", "true"):
        cfg = load_cfg(path, [f"Arch.itc_normalize_text={normalize}"])
        assert cfg.Arch.name == "UNIMO2ForRetrieval" and cfg.Loss.contrastive_weight == 0.3
        model = build(cfg)
        set_weights(model, load_weights(official["dst"]), official["dst"])
        model.eval()
        with paddle.no_grad():
            v = model.model.encode_image(paddle.to_tensor(pixels.transpose(0, 3, 1, 2).astype("float32")))
            t = model.model.encode_text(paddle.to_tensor(ids), paddle.to_tensor(mask))
            got[normalize] = model.match_scores(v, t, paddle.to_tensor(mask)).numpy()
    np.testing.assert_allclose(got["false"], ref, rtol=1e-4, atol=1e-4)
    assert np.abs(got["true"] - ref).max() > 1e-2


def test_default_mode_is_blind_to_padding(official):
    """exclude_padding: true (the toolkit's default): one caption padded to
    different widths keeps its Eq. 2 scores, grounded tokens and ITM logit,
    and its real text states equal the official ones."""
    cfg = load_cfg(official["cfg"], ["Arch.grounding.exclude_padding=true"])
    model = build(cfg)
    from vlcore.framework.checkpoint import load_weights, set_weights
    set_weights(model, load_weights(official["dst"]), official["dst"])
    model.eval()
    rng = np.random.default_rng(3)
    pixels = paddle.to_tensor(rng.standard_normal((1, 3, SIZE, SIZE)).astype("float32"))
    ids, mask = _padded_batch(rng, [4], 4)
    outs = []
    with paddle.no_grad():
        v = model.model.encode_image(pixels)
        for width in (4, 7, 12):
            i = np.pad(ids, ((0, 0), (0, width - 4)), constant_values=1)
            mk = np.pad(mask, ((0, 0), (0, width - 4)))
            t = model.model.encode_text(paddle.to_tensor(i), paddle.to_tensor(mk))
            logits, g = model.itm_logits(v, t, paddle.to_tensor(mk))
            outs.append((t.numpy()[:, :4], g.scores.numpy(), g.indices.numpy(), logits.numpy()))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _convert(cfg, values, **kw):
    from unimo2.convert import convert
    return convert("unimo2-official", "UNIMO-2/", build(cfg), cfg.Arch, source=values, **kw)


def test_unplaced_variables_are_listed_and_can_be_ignored(official):
    """Extra files (optimizer state, heads this model lacks, a stray file):
    one error line listing them; --ignore drops them on purpose."""
    src = os.path.join(str(official["tmp"]), "with_extras")
    shutil.copytree(official["dir"], src)
    for new, old in (("text.word_embedding_moment1_0", "text.word_embedding"),
                     ("grounded.grounding_patch_projection.w_0", "grounded.pooled_fc_text.w_0"),
                     ("grounded.mystery.w_0", "grounded.pooled_fc_text.w_0")):
        shutil.copy(os.path.join(src, old), os.path.join(src, new))
    dst = os.path.join(str(official["tmp"]), "extras.safetensors")
    args = ["tools/convert_checkpoint.py", "--from", "unimo2-official", "--src", src, "--dst", dst,
            "-c", official["cfg"]]
    r = run_tool(args)
    assert r.returncode == 2, r.stderr[-2000:]
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for name in ("text.word_embedding_moment1_0", "grounded.grounding_patch_projection.w_0", "grounded.mystery.w_0"):
        assert name in line[0], line[0]
    assert "--ignore" in line[0] and "optimizer state" in line[0] and not os.path.exists(dst)
    r = run_tool(args + ["--ignore", "*_moment1_0", "--ignore", "grounded.grounding_*", "--ignore", "grounded.mystery*"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ignored on request" in r.stdout and os.path.isfile(dst)


def test_missing_variable_and_wrong_config_are_refused(official, tmp_path):
    from vlcore.convert import ConversionError
    cfg = load_cfg(official["cfg"])
    values = dict(official["values"])
    del values["grounded.pooled_fc_text.b_0"]
    with pytest.raises(ConversionError, match=r"missing: grounded\.pooled_fc_text\.b_0"):
        _convert(cfg, values)
    bad = load_cfg(_config(tmp_path, vit={"patch_padding": 0, "layer_norm_eps": 1e-6}))
    with pytest.raises(ConversionError, match=r"Arch\.vit\.patch_padding=0 \(official: 3\).*"
                                              r"Arch\.vit\.layer_norm_eps=1e-06 \(official: 1e-12\)"):
        _convert(bad, official["values"])
    fewer = load_cfg(_config(tmp_path, name="fewer.yaml", text={"num_layers": 1}))
    with pytest.raises(ConversionError, match=r"2 text\.encoder_layer_\* layers .* Arch\.text\.num_layers=1"):
        _convert(fewer, official["values"])


def test_text_position_start_rolls_the_table(official):
    """Data files whose first position id is 0: the official row i must be
    our row 2 + i (our text encoder counts positions from 2)."""
    cfg = load_cfg(official["cfg"])
    state, report = _convert(cfg, official["values"], text_position_start=0)
    ours, theirs = state["model.text.pos_embed.weight"], official["values"]["text.pos_embedding"]
    np.testing.assert_array_equal(ours[2:], theirs[:-2])
    assert any("rolled by 2" in n for n in report.notes)


def test_cmcl_projection_needs_and_gets_the_relu_head(official, tmp_path):
    from vlcore.convert import ConversionError
    rng = np.random.default_rng(2)
    values = dict(official["values"])
    for side in ("text", "image"):
        values[f"grounded.cmcl_pooled_fc_{side}.w_0"] = rng.uniform(-.5, .5, (D, D)).astype("float32")
        values[f"grounded.cmcl_pooled_fc_{side}.b_0"] = rng.uniform(-.1, .1, (D,)).astype("float32")
    with pytest.raises(ConversionError, match="Arch.itc_proj_act=relu"):
        _convert(load_cfg(official["cfg"]), values)
    with pytest.raises(ConversionError, match="Arch.itc_normalize_text=true"):  # relu, but the text side unnormalised
        _convert(load_cfg(_config(tmp_path, name="relu_only.yaml", itc_proj_act="relu")), values)
    cfg = load_cfg(_config(tmp_path, itc_proj_act="relu", itc_normalize_text=True))
    state, _ = _convert(cfg, values)
    model = build(cfg)
    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    x = rng.standard_normal((3, D)).astype("float32")
    ref = np.maximum(x @ values["grounded.cmcl_pooled_fc_text.w_0"] + values["grounded.cmcl_pooled_fc_text.b_0"], 0)
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    got = model.itc_text_proj(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
