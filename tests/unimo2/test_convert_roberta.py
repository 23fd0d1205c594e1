"""RoBERTa in paddlenlp's .pdparams layout -> the text encoder and the
grounded transformer (UNIMO-2 Section 4) and the MLM head: values land in
place, the token-type embedding is folded exactly, and both encoders compute
what paddlenlp's RobertaModel computes (NumPy re-implementation; paddlenlp
itself when installed)."""
import os

import numpy as np
import paddle
import pytest

from vlcore.formats import weights_file
from vlcore.layers import AttentionPlan

from ckpt_helpers import (
    build,
    gelu,
    layer_norm,
    load_cfg,
    paddlenlp_roberta_state,
    roberta_layers,
    roberta_reference,
    save_pdparams,
    tiny_arch_config,
)
from helpers import run_tool

D, HEADS, VOCAB, NPOS, LAYERS = 16, 2, 40, 20, 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roberta")
    st = paddlenlp_roberta_state(np.random.default_rng(0), D, VOCAB, NPOS, LAYERS)
    src = save_pdparams(st, os.path.join(str(tmp), "roberta.pdparams"))
    cfg_path = tiny_arch_config(tmp)
    return tmp, st, src, cfg_path


def _convert(cfg, src, source=None):
    from unimo2.convert import convert
    model = build(cfg)
    state, report = convert("roberta-paddlenlp", src, model, cfg.Arch, source=source)
    return model, state, report


def _load(model, state):
    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    return model


def test_values_land_in_the_text_encoder_and_the_grounded_transformer(setup):
    _, st, src, cfg_path = setup
    model, state, report = _convert(load_cfg(cfg_path), src)
    r = "roberta."
    np.testing.assert_array_equal(state["model.text.word_embed.weight"], st[f"{r}embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(state["mlm_head.word_embedding"], st[f"{r}embeddings.word_embeddings.weight"])
    # token type 0 folded into every position row
    np.testing.assert_allclose(state["model.text.pos_embed.weight"],
                               st[f"{r}embeddings.position_embeddings.weight"]
                               + st[f"{r}embeddings.token_type_embeddings.weight"][0], rtol=0, atol=1e-7)
    for i in range(LAYERS):
        for part in ("text", "fusion"):
            ours = f"model.{part}.encoder.layers.{i}."
            for a, b in (("attn.q_proj", "self_attn.q_proj"), ("attn.k_proj", "self_attn.k_proj"),
                         ("attn.v_proj", "self_attn.v_proj"), ("attn.out_proj", "self_attn.out_proj"),
                         ("ffn.fc1", "linear1"), ("ffn.fc2", "linear2"), ("norm1", "norm1"), ("norm2", "norm2")):
                for wb in ("weight", "bias"):
                    np.testing.assert_array_equal(state[f"{ours}{a}.{wb}"], st[f"{r}encoder.layers.{i}.{b}.{wb}"])
    np.testing.assert_array_equal(state["model.fusion.grounded_norm.weight"], np.ones(D, "float32"))
    np.testing.assert_array_equal(state["model.fusion.grounded_norm.bias"], np.zeros(D, "float32"))
    np.testing.assert_array_equal(state["mlm_head.transform.weight"], st["lm_head.dense.weight"])
    np.testing.assert_array_equal(state["mlm_head.norm.bias"], st["lm_head.layer_norm.bias"])
    np.testing.assert_array_equal(state["mlm_head.bias"], st["lm_head.bias"])
    # Only the other parts of UNIMO-2 are left to their initialisation.
    assert all(k.startswith(("model.vit.", "model.grounding.", "itm_head.", "itc_", "vcl_proj."))
               for k in report.kept_init)
    assert set(report.dropped) == {f"{r}pooler.dense.weight", f"{r}pooler.dense.bias"}


def test_encoders_compute_what_roberta_computes(setup):
    _, st, src, cfg_path = setup
    model, state, _ = _convert(load_cfg(cfg_path), src)
    _load(model, state)
    rng = np.random.default_rng(3)
    ids = rng.integers(5, VOCAB, size=(2, 9))
    mask = np.ones((2, 9), dtype=bool)
    mask[1, 6:] = False
    w = {k: v.astype(np.float64) for k, v in st.items()}
    ref = roberta_reference(w, ids, mask, LAYERS, HEADS)
    with paddle.no_grad():
        text = model.model.encode_text(paddle.to_tensor(ids), paddle.to_tensor(mask)).numpy()
        # the grounded transformer holds the same layers: on a text-only input
        # (no grounded tokens, full attention) it is RoBERTa's encoder stack
        x = rng.standard_normal((2, 9, D))
        plan = AttentionPlan.full(9, paddle.to_tensor(mask))
        fused = model.model.fusion.encoder(paddle.to_tensor(x.astype("float32")), plan).numpy()
        h = rng.standard_normal((3, D)).astype("float32")
        logits = model.mlm_head(paddle.to_tensor(h)).numpy()
    real = mask[:, :, None].repeat(D, -1)
    np.testing.assert_allclose(text[real], ref[real], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused[real], roberta_layers(w, x, mask, LAYERS, HEADS)[real], rtol=1e-4, atol=1e-4)
    hh = layer_norm(gelu(h @ w["lm_head.dense.weight"] + w["lm_head.dense.bias"]), w["lm_head.layer_norm.weight"],
                    w["lm_head.layer_norm.bias"], 1e-5)
    ref_logits = hh @ w["roberta.embeddings.word_embeddings.weight"].T + w["lm_head.bias"]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_layouts_that_cannot_be_represented_are_refused(setup):
    from vlcore.convert import ConversionError
    _, st, src, cfg_path = setup
    cfg = load_cfg(cfg_path)
    untied = dict(st, **{"lm_head.decoder.weight": np.ones((D, VOCAB), "float32")})
    with pytest.raises(ConversionError, match=r"lm_head\.decoder\.weight.*not tied"):
        _convert(cfg, src, untied)
    tied = dict(st, **{"lm_head.decoder.weight": st["roberta.embeddings.word_embeddings.weight"].T.copy()})
    _, _, report = _convert(cfg, src, tied)
    assert "lm_head.decoder.weight" in report.dropped
    extra = dict(st, **{"classifier.weight": np.ones((D, 2), "float32")})
    with pytest.raises(ConversionError, match=r"no place in the model: classifier\.weight"):
        _convert(cfg, src, extra)
    with pytest.raises(ConversionError, match=r"RoBERTa has 2 layers but Arch\.fusion\.num_layers=1"):
        _convert(load_cfg(tiny_arch_config(setup[0], "one.yaml", fusion={"num_layers": 1})), src)


def test_base_model_file_without_prefix_or_lm_head(setup):
    """``RobertaModel.save_pretrained`` writes keys without ``roberta.`` and
    has no LM head: the MLM head keeps its initialisation."""
    tmp, _, _, cfg_path = setup
    st = paddlenlp_roberta_state(np.random.default_rng(1), D, VOCAB, NPOS, LAYERS, type_vocab=2,
                                 lm_head=False, prefix="")
    _, state, report = _convert(load_cfg(cfg_path), "model_state.pdparams", st)
    np.testing.assert_array_equal(state["model.text.encoder.layers.1.ffn.fc2.bias"], st["encoder.layers.1.linear2.bias"])
    assert "mlm_head.transform.weight" in report.kept_init
    assert any("rows 1.." in n for n in report.notes)


@pytest.mark.slow
def test_cli_writes_a_strictly_loading_file(setup):
    tmp, st, src, cfg_path = setup
    dst = os.path.join(str(tmp), "init.safetensors")
    r = run_tool(["tools/convert_checkpoint.py", "--from", "roberta-paddlenlp", "--src", src, "--dst", dst,
                  "-c", cfg_path])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "left to the model's initialisation" in r.stdout and "model.vit.*" in r.stdout
    from vlcore.framework.checkpoint import set_weights
    model = build(load_cfg(cfg_path))
    set_weights(model, weights_file.load(dst), dst)  # strict
    np.testing.assert_array_equal(model.model.fusion.encoder.layers[0].attn.k_proj.weight.numpy(),
                                  st["roberta.encoder.layers.0.self_attn.k_proj.weight"])


def test_against_paddlenlp_when_installed(setup):
    pytest.importorskip("paddlenlp", reason="optional cross-check against paddlenlp's own RobertaModel: "
                                            "paddlenlp is not installed (2.8.1 imports only with "
                                            "huggingface_hub==0.23.4 aistudio-sdk==0.2.6 datasets==2.19.2 "
                                            "pyarrow==17.0.0 fsspec==2024.3.1, which pull numpy down to 1.26.4: "
                                            "install those pins and paddlenlp==2.8.1 in a separate venv); the "
                                            "NumPy reference tests in this file check the conversion without it")
    from paddlenlp.transformers import RobertaConfig, RobertaModel
    _, st, src, cfg_path = setup
    rob = RobertaModel(RobertaConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS,
                                     num_attention_heads=HEADS, intermediate_size=4 * D, max_position_embeddings=NPOS,
                                     type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    rob.set_state_dict({k[len("roberta."):]: v for k, v in st.items() if k.startswith("roberta.")})
    rob.eval()
    model, state, _ = _convert(load_cfg(cfg_path), src)
    _load(model, state)
    ids = np.random.default_rng(4).integers(5, VOCAB, size=(2, 9))
    mask = np.ones_like(ids, dtype=bool)
    with paddle.no_grad():
        theirs = rob(paddle.to_tensor(ids))[0].numpy()
        ours = model.model.encode_text(paddle.to_tensor(ids), paddle.to_tensor(mask)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_bert_style_positions_can_be_rolled(setup):
    """A checkpoint counting positions from 0: its row i becomes our row 2 + i."""
    _, st, src, cfg_path = setup
    from unimo2.convert import convert
    cfg = load_cfg(cfg_path)
    state, report = convert("roberta-paddlenlp", src, build(cfg), cfg.Arch, source=st, text_position_start=0)
    r = "roberta.embeddings."
    np.testing.assert_allclose(state["model.text.pos_embed.weight"][2:],
                               st[f"{r}position_embeddings.weight"][:-2] + st[f"{r}token_type_embeddings.weight"][0],
                               rtol=0, atol=1e-7)
    assert any("rolled" in n for n in report.notes)
