"""RoBERTa / BERT initialisations (paddlenlp .pdparams) -> UNIMO and
Unicoder-VL (``Global.init_from: roberta-paddlenlp:... / bert-paddlenlp:...``):
values land in place, token types are folded (UNIMO) or copied (Unicoder-VL),
BERT's positions (from 0) are rolled onto ours (from 2), and our text
encoding and MLM head compute what the source model computes (NumPy)."""
import os

import numpy as np
import paddle
import pytest

from vlcore.convert import ConversionError

from ckpt_helpers import (
    build,
    gelu,
    layer_norm,
    load_unimo_cfg,
    paddlenlp_roberta_state,
    roberta_layers,
    roberta_reference,
    save_pdparams,
    tiny_unimo_arch_config,
)

D, HEADS, VOCAB, NPOS, LAYERS = 16, 2, 40, 20, 2


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text_init")
    roberta = paddlenlp_roberta_state(np.random.default_rng(0), D, VOCAB, NPOS, LAYERS)
    rng = np.random.default_rng(1)
    bert = paddlenlp_roberta_state(rng, D, VOCAB, NPOS, LAYERS, type_vocab=2, lm_head=False, prefix="bert.")
    u = lambda *shape, s=0.5: rng.uniform(-s, s, size=shape).astype("float32")  # noqa: E731
    # paddlenlp BertForPretraining's heads: cls.predictions (decoder tied to the
    # word embeddings) and cls.seq_relationship (next sentence)
    bert.update({"cls.predictions.transform.weight": u(D, D), "cls.predictions.transform.bias": u(D, s=0.1),
                 "cls.predictions.layer_norm.weight": 1 + u(D, s=0.3),
                 "cls.predictions.layer_norm.bias": u(D, s=0.1),
                 "cls.predictions.decoder_weight": bert["bert.embeddings.word_embeddings.weight"].copy(),
                 "cls.predictions.decoder_bias": u(VOCAB, s=0.1),
                 "cls.seq_relationship.weight": u(D, 2), "cls.seq_relationship.bias": u(2, s=0.1)})
    return {"tmp": tmp, "roberta": roberta, "bert": bert,
            "roberta_path": save_pdparams(roberta, os.path.join(str(tmp), "roberta.pdparams")),
            "bert_path": save_pdparams(bert, os.path.join(str(tmp), "bert.pdparams"))}


def _convert(kind, cfg, src, source=None):
    from unimo.convert import convert
    model = build(cfg)
    state, report = convert(kind, src, model, cfg.Arch, source=source)
    return model, state, report


def _load(model, state):
    from vlcore.convert import complete_state
    from vlcore.framework.checkpoint import set_weights
    set_weights(model, complete_state(state, model.state_dict()), "converted")
    return model


def _ids(n=9):
    rng = np.random.default_rng(5)
    ids = rng.integers(4, VOCAB, size=(2, n))
    mask = np.ones_like(ids, dtype=bool)
    mask[1, 6:] = False
    return ids, mask


def _assert_layers(state, st, prefix):
    for i in range(LAYERS):
        ours, theirs = f"model.encoder.layers.{i}.", f"{prefix}encoder.layers.{i}."
        for a, b in (("attn.q_proj", "self_attn.q_proj"), ("attn.k_proj", "self_attn.k_proj"),
                     ("attn.v_proj", "self_attn.v_proj"), ("attn.out_proj", "self_attn.out_proj"),
                     ("ffn.fc1", "linear1"), ("ffn.fc2", "linear2"), ("norm1", "norm1"), ("norm2", "norm2")):
            for wb in ("weight", "bias"):
                np.testing.assert_array_equal(state[f"{ours}{a}.{wb}"], st[f"{theirs}{b}.{wb}"])


def test_roberta_into_unimo(sources, tmp_path):
    """UNIMO (Section 4.2: initialised from RoBERTa): embeddings, encoder, LM
    head; token type 0 folded into the positions; same text encoding."""
    st = sources["roberta"]
    cfg = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "unimo.yaml", base="unimo_base.yaml"))
    model, state, report = _convert("roberta-paddlenlp", cfg, sources["roberta_path"])
    e = "roberta.embeddings."
    np.testing.assert_array_equal(state["model.word_embed.weight"], st[f"{e}word_embeddings.weight"])
    np.testing.assert_allclose(state["model.pos_embed.weight"], st[f"{e}position_embeddings.weight"]
                               + st[f"{e}token_type_embeddings.weight"][0], rtol=0, atol=1e-7)
    _assert_layers(state, st, "roberta.")
    np.testing.assert_array_equal(state["mlm_head.transform.weight"], st["lm_head.dense.weight"])
    np.testing.assert_array_equal(state["mlm_head.bias"], st["lm_head.bias"])
    # the visual side and the cross-modal heads are RoBERTa-less
    left = set(model.state_dict()) - set(state)
    assert left == {k for k in model.state_dict() if k.startswith(
        ("model.feature_fc", "model.location_fc", "model.region_norm", "mrfr_head", "mrc_head", "cmcl_proj",
         "vlm_head"))}
    assert "roberta.pooler.dense.weight" in report.dropped
    _load(model, state)
    ids, mask = _ids()
    with paddle.no_grad():
        enc = model.model(text=(paddle.to_tensor(ids), paddle.to_tensor(mask))).text.numpy()
    ref = roberta_reference(st, ids, mask, LAYERS, HEADS)
    np.testing.assert_allclose(enc[mask], ref[mask], rtol=1e-4, atol=1e-4)


def test_roberta_into_unicoder_vl_copies_the_text_segment(sources, tmp_path):
    st = sources["roberta"]
    # a RoBERTa-shaped Unicoder-VL (unicoder_vl_base.yaml is BERT-shaped: positions from 0, eps 1e-12)
    cfg = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "uni.yaml", base="unicoder_vl_base.yaml",
                                                position_offset=2, layer_norm_eps=1e-5))
    model, state, report = _convert("roberta-paddlenlp", cfg, sources["roberta_path"])
    tt = st["roberta.embeddings.token_type_embeddings.weight"]
    np.testing.assert_array_equal(state["model.type_embed.weight"], np.stack([tt[0], np.zeros(D)]))
    np.testing.assert_array_equal(state["model.pos_embed.weight"], st["roberta.embeddings.position_embeddings.weight"])
    assert any("rows 1..1" in n and "start at zero" in n for n in report.notes)
    _load(model, state)
    ids, mask = _ids()
    with paddle.no_grad():
        enc = model.model(text=(paddle.to_tensor(ids), paddle.to_tensor(mask))).text.numpy()
    ref = roberta_reference(st, ids, mask, LAYERS, HEADS)
    np.testing.assert_allclose(enc[mask], ref[mask], rtol=1e-4, atol=1e-4)


def _bert_reference(st, ids, mask, eps=1e-12):
    """paddlenlp BertModel: positions from 0, token type 0, LayerNorm, post-LN layers."""
    e = "bert.embeddings."
    x = (st[f"{e}word_embeddings.weight"][ids] + st[f"{e}position_embeddings.weight"][np.arange(ids.shape[1])]
         + st[f"{e}token_type_embeddings.weight"][0])
    x = layer_norm(x, st[f"{e}layer_norm.weight"], st[f"{e}layer_norm.bias"], eps)
    return roberta_layers(st, x, mask, LAYERS, HEADS, eps, prefix="bert.")


def test_bert_into_unicoder_vl(sources, tmp_path):
    """Unicoder-VL's initialisation (BERT-base): positions counted from 0 are
    rolled onto ours (from 2), both segments copied, the tied LM head taken,
    the next-sentence head dropped; same encoding and MLM logits."""
    st = sources["bert"]
    # positions from 2 here, to check the roll (configs/unicoder_vl/init/bert_base.yaml counts from 0)
    cfg = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "bert.yaml", base="unicoder_vl_base.yaml",
                                                layer_norm_eps=1e-12, position_offset=2))
    model, state, report = _convert("bert-paddlenlp", cfg, sources["bert_path"])
    e = "bert.embeddings."
    np.testing.assert_array_equal(state["model.pos_embed.weight"][2:], st[f"{e}position_embeddings.weight"][:-2])
    np.testing.assert_array_equal(state["model.type_embed.weight"], st[f"{e}token_type_embeddings.weight"])
    _assert_layers(state, st, "bert.")
    assert report.dropped["cls.predictions.decoder_weight"].startswith("tied")
    assert "cls.seq_relationship.weight" in report.dropped and any("rolled by 2" in n for n in report.notes)
    _load(model, state)
    ids, mask = _ids()
    with paddle.no_grad():
        enc = model.model(text=(paddle.to_tensor(ids), paddle.to_tensor(mask))).text
        logits = model.mlm_head(enc).numpy()
    ref = _bert_reference(st, ids, mask)
    np.testing.assert_allclose(enc.numpy()[mask], ref[mask], rtol=1e-4, atol=1e-4)
    h = layer_norm(gelu(ref @ st["cls.predictions.transform.weight"] + st["cls.predictions.transform.bias"]),
                   st["cls.predictions.layer_norm.weight"], st["cls.predictions.layer_norm.bias"], 1e-12)
    ref_logits = h @ st["bert.embeddings.word_embeddings.weight"].T + st["cls.predictions.decoder_bias"]
    np.testing.assert_allclose(logits[mask], ref_logits[mask], rtol=1e-4, atol=1e-4)


def test_bad_sources_are_refused(sources, tmp_path):
    # a RoBERTa-shaped Unicoder-VL (unicoder_vl_base.yaml is BERT-shaped: positions from 0, eps 1e-12)
    cfg = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "uni.yaml", base="unicoder_vl_base.yaml",
                                                position_offset=2, layer_norm_eps=1e-5))
    untied = dict(sources["bert"], **{"cls.predictions.decoder_weight": np.ones((VOCAB, D), "float32")})
    with pytest.raises(ConversionError, match=r"cannot represent: cls\.predictions\.decoder_weight"):
        _convert("bert-paddlenlp", cfg, "untied", source=untied)
    deeper = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "deep.yaml", base="unimo_base.yaml", num_layers=3))
    with pytest.raises(ConversionError, match=r"roberta checkpoint has 2 layers but Arch\.num_layers=3"):
        _convert("roberta-paddlenlp", deeper, "x", source=sources["roberta"])
    wide = load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "wide.yaml", base="unimo_base.yaml", vocab_size=50))
    with pytest.raises(ConversionError, match=r"model\.word_embed\.weight \[40, 16\] .* vs model \[50, 16\]"):
        _convert("roberta-paddlenlp", wide, "x", source=sources["roberta"])


def test_init_from_in_the_config(sources, tmp_path):
    """``Global.init_from: roberta-paddlenlp:PATH`` on Arch UNIMO (checked
    when the config loads): the model a run builds holds the converter's
    tensors, and the seeded initialisation everywhere else."""
    import logging

    from vlcore.framework.run import _build_model, build_model
    path = tiny_unimo_arch_config(tmp_path, "init.yaml", base="unimo_base.yaml",
                                  global_={"init_from": f"roberta-paddlenlp:{sources['roberta_path']}"})
    cfg = load_unimo_cfg(path)
    state = {k: v.numpy() for k, v in _build_model(cfg, logging.getLogger("test")).state_dict().items()}
    _, direct, _ = _convert("roberta-paddlenlp", cfg, sources["roberta_path"])
    for key in direct:
        np.testing.assert_array_equal(state[key], direct[key], err_msg=key)
    fresh = build_model(load_unimo_cfg(tiny_unimo_arch_config(tmp_path, "fresh.yaml", base="unimo_base.yaml")))
    np.testing.assert_array_equal(state["model.feature_fc.weight"],
                                  fresh.state_dict()["model.feature_fc.weight"].numpy())
    assert not np.array_equal(state["model.encoder.layers.0.ffn.fc1.weight"],
                              fresh.state_dict()["model.encoder.layers.0.ffn.fc1.weight"].numpy())
