"""``roberta-hf`` and ``vit-hf``: the UNIMO-2 paper's initialisation
(RoBERTa-base + ViT-B/16) from Hugging Face directories. The tests write
checkpoints in the Hugging Face layout -- the tensor names and shapes of
transformers' modeling_roberta.py / modeling_vit.py, [out, in] Linear weights,
and config.json keys as in the public FacebookAI/roberta-base and
google/vit-base-patch16-224(-in21k) configs, at tiny sizes -- from the same
weights as the PaddleNLP / PaddleClas fixtures, and check that both routes
give the same model tensors."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from vlcore.convert import ConversionError

from ckpt_helpers import build, load_cfg, paddleclas_vit_state, paddlenlp_roberta_state, tiny_arch_config

D, HEADS, VOCAB, NPOS, LAYERS, PATCH, SIZE = 16, 2, 40, 20, 2, 8, 16


def _hf_dir(tmp, name, tensors, config):
    d = tmp / name
    d.mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(config))
    return str(d)


def _roberta_as_hf(st):
    """paddlenlp names ([in, out]) -> transformers' RobertaForMaskedLM names ([out, in])."""
    hf = {}
    for k, v in st.items():
        k2 = k.replace("embeddings.layer_norm.", "embeddings.LayerNorm.")
        for a, b in (("self_attn.q_proj.", "attention.self.query."), ("self_attn.k_proj.", "attention.self.key."),
                     ("self_attn.v_proj.", "attention.self.value."), ("self_attn.out_proj.", "attention.output.dense."),
                     ("norm1.", "attention.output.LayerNorm."), ("linear1.", "intermediate.dense."),
                     ("linear2.", "output.dense."), ("norm2.", "output.LayerNorm.")):
            k2 = k2.replace(a, b)
        k2 = k2.replace("encoder.layers.", "encoder.layer.")
        linear = k2.endswith(".weight") and v.ndim == 2 and "embeddings" not in k2
        hf[k2] = v.T if linear else v
    hf["lm_head.decoder.weight"] = st["roberta.embeddings.word_embeddings.weight"]   # tied, [vocab, d]
    hf["lm_head.decoder.bias"] = st["lm_head.bias"]
    return hf


def _vit_as_hf(st):
    """PaddleClas names (fused qkv [in, 3 out]) -> transformers' ViTForImageClassification names."""
    hf = {"vit.embeddings.cls_token": st["cls_token"], "vit.embeddings.position_embeddings": st["pos_embed"],
          "vit.embeddings.patch_embeddings.projection.weight": st["patch_embed.proj.weight"],
          "vit.embeddings.patch_embeddings.projection.bias": st["patch_embed.proj.bias"],
          "vit.layernorm.weight": st["norm.weight"], "vit.layernorm.bias": st["norm.bias"],
          "classifier.weight": st["head.weight"].T, "classifier.bias": st["head.bias"]}
    for i in range(LAYERS):
        p, q = f"blocks.{i}.", f"vit.encoder.layer.{i}."
        for j, name in enumerate(("query", "key", "value")):
            hf[f"{q}attention.attention.{name}.weight"] = st[f"{p}attn.qkv.weight"][:, j * D:(j + 1) * D].T
            hf[f"{q}attention.attention.{name}.bias"] = st[f"{p}attn.qkv.bias"][j * D:(j + 1) * D]
        pairs = (("attn.proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense"))
        for a, b in pairs:
            hf[f"{q}{b}.weight"], hf[f"{q}{b}.bias"] = st[f"{p}{a}.weight"].T, st[f"{p}{a}.bias"]
        for a, b in (("norm1", "layernorm_before"), ("norm2", "layernorm_after")):
            hf[f"{q}{b}.weight"], hf[f"{q}{b}.bias"] = st[f"{p}{a}.weight"], st[f"{p}{a}.bias"]
    return hf


def _roberta_config(**kw):   # the keys of FacebookAI/roberta-base's config.json, tiny sizes
    return {"architectures": ["RobertaForMaskedLM"], "model_type": "roberta", "hidden_size": D,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": 4 * D,
            "vocab_size": VOCAB, "max_position_embeddings": NPOS, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
            "hidden_act": "gelu", "pad_token_id": 1, **kw}


def _vit_config(**kw):   # the keys of google/vit-base-patch16-224's config.json, tiny sizes
    return {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": D,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": 4 * D,
            "image_size": SIZE, "patch_size": PATCH, "num_channels": 3, "qkv_bias": True,
            "layer_norm_eps": 1e-12, "hidden_act": "gelu", **kw}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    rng = np.random.default_rng(0)
    roberta = paddlenlp_roberta_state(rng, D, VOCAB, NPOS, LAYERS)
    vit = paddleclas_vit_state(rng, D, PATCH, SIZE // PATCH, LAYERS)
    return (tmp, roberta, vit, load_cfg(tiny_arch_config(tmp)),
            _hf_dir(tmp, "roberta", _roberta_as_hf(roberta), _roberta_config()),
            _hf_dir(tmp, "vit", _vit_as_hf(vit), _vit_config()))


def _states(cfg, kind, path, source=None):
    from unimo2.convert import convert
    state, report = convert(kind, path, build(cfg), cfg.Arch, source=source)
    return {k: np.asarray(v) for k, v in state.items()}, report


@pytest.mark.parametrize("which", ["roberta", "vit"])
def test_hf_directory_gives_the_same_tensors_as_the_paddle_layout(setup, which):
    tmp, roberta, vit, cfg, roberta_dir, vit_dir = setup
    paddle_kind, hf_kind = {"roberta": ("roberta-paddlenlp", "roberta-hf"), "vit": ("vit-paddleclas", "vit-hf")}[which]
    paddle_state = {"roberta": roberta, "vit": vit}[which]
    want, _ = _states(cfg, paddle_kind, "fixture", source=paddle_state)
    got, report = _states(cfg, hf_kind, {"roberta": roberta_dir, "vit": vit_dir}[which])
    assert set(got) == set(want) and len(got) > 10
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    if which == "vit":
        assert set(report.dropped) == {"head.weight", "head.bias"}


def test_vit_in21k_pooler_is_dropped_and_named(setup):
    tmp, _, vit, cfg, _, _ = setup
    hf = _vit_as_hf(vit)
    hf.pop("classifier.weight"), hf.pop("classifier.bias")
    hf["vit.pooler.dense.weight"], hf["vit.pooler.dense.bias"] = np.ones((D, D), np.float32), np.zeros(D, np.float32)
    d = _hf_dir(tmp, "vit_in21k", hf, _vit_config(architectures=["ViTModel"]))
    _, report = _states(cfg, "vit-hf", d)
    assert set(report.dropped) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert any("in21k checkpoints' tanh pooler" in line for line in report.lines())


def test_sizes_and_unknown_tensors_are_refused_by_name(setup):
    tmp, roberta, vit, cfg, _, _ = setup
    d = _hf_dir(tmp, "vit_big", _vit_as_hf(vit), _vit_config(num_hidden_layers=12))
    with pytest.raises(ConversionError, match=r"config.json: num_hidden_layers=12 but Arch.vit.num_layers=2"):
        _states(cfg, "vit-hf", d)
    d = _hf_dir(tmp, "roberta_vocab", _roberta_as_hf(roberta), _roberta_config(vocab_size=50265))
    with pytest.raises(ConversionError, match=r"config.json: vocab_size=50265 but Arch.text.vocab_size=40"):
        _states(cfg, "roberta-hf", d)
    extra = dict(_roberta_as_hf(roberta), **{"roberta.encoder.layer.0.mystery.weight": np.ones(3, np.float32)})
    d = _hf_dir(tmp, "roberta_extra", extra, _roberta_config())
    with pytest.raises(ConversionError, match="roberta.encoder.layer.0.mystery.weight"):
        _states(cfg, "roberta-hf", d)
    d = _hf_dir(tmp, "not_vit", _vit_as_hf(vit), _vit_config(model_type="deit"))
    with pytest.raises(ConversionError, match="model_type 'deit', expected vit"):
        _states(cfg, "vit-hf", d)
