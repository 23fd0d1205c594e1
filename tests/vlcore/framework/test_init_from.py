"""``Global.init_from`` with converted sources: the paper's initialisation
(ViT-B/16 into the visual encoder, RoBERTa into the text and grounded
encoders) in one config value, validated before any work starts."""
import logging
import os

import numpy as np
import pytest

from ckpt_helpers import load_cfg, paddleclas_vit_state, paddlenlp_roberta_state, save_pdparams, tiny_arch_config

D = 16


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("init_from")
    rob = paddlenlp_roberta_state(np.random.default_rng(0), D, 40, 20, 2)
    vit = paddleclas_vit_state(np.random.default_rng(1), D, 8, 2, 2)
    return (tmp, rob, save_pdparams(rob, os.path.join(str(tmp), "roberta.pdparams")),
            vit, save_pdparams(vit, os.path.join(str(tmp), "vit.pdparams")))


def test_paper_initialisation_from_two_sources(sources):
    from vlcore.framework.run import _build_model
    tmp, rob, rob_path, vit, vit_path = sources
    cfg = load_cfg(tiny_arch_config(tmp, global_={
        "init_from": f"vit-paddleclas:{vit_path}, roberta-paddlenlp:{rob_path}"}))
    model = _build_model(cfg, logging.getLogger("test"))
    state = model.state_dict()
    np.testing.assert_array_equal(state["model.vit.encoder.layers.1.attn.v_proj.weight"].numpy(),
                                  vit["blocks.1.attn.qkv.weight"][:, 2 * D:])
    np.testing.assert_array_equal(state["model.fusion.encoder.layers.1.norm2.bias"].numpy(),
                                  rob["roberta.encoder.layers.1.norm2.bias"])
    np.testing.assert_array_equal(state["model.text.encoder.layers.0.ffn.fc1.weight"].numpy(),
                                  rob["roberta.encoder.layers.0.linear1.weight"])
    # untouched by either source: the seeded initialisation
    fresh = load_cfg(tiny_arch_config(tmp, "fresh.yaml"))
    from vlcore.framework.run import build_model
    np.testing.assert_array_equal(state["model.grounding.embedding"].numpy(),
                                  build_model(fresh).state_dict()["model.grounding.embedding"].numpy())


def test_init_from_is_validated_with_the_config(sources, tmp_path):
    from vlcore.framework.config import ConfigError
    tmp, _, rob_path, _, _ = sources
    path = tiny_arch_config(tmp_path, global_={"init_from": f"vit-paddlecls:{rob_path}"})
    with pytest.raises(ConfigError, match=r"tiny_init\.yaml: .*unknown source kind 'vit-paddlecls' "
                                          r"\(known: .*roberta-paddlenlp.*vit-paddleclas"):
        load_cfg(path)
    # a plain path is still a toolkit checkpoint, as before
    assert load_cfg(tiny_arch_config(tmp_path, "plain.yaml", global_={"init_from": "out/run/step_10"}))


def test_two_sources_setting_the_same_tensor_is_an_error(sources):
    from vlcore.framework.run import _build_model
    tmp, _, rob_path, _, _ = sources
    cfg = load_cfg(tiny_arch_config(tmp, "twice.yaml", global_={
        "init_from": f"roberta-paddlenlp:{rob_path},roberta-paddlenlp:{rob_path}"}))
    with pytest.raises(ValueError, match="both set"):
        _build_model(cfg, logging.getLogger("test"))
