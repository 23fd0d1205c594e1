"""Checkpoints in foreign layouts for the converter tests, and NumPy
re-implementations of the computations those checkpoints were trained with.

The variable names and shapes below are written from the public sources,
independently of ``unimo2/convert.py``:
- official UNIMO-2: PaddlePaddle/Research NLP/UNIMO-2/src/model/
  unimo_grounded.py, transformer_encoder.py, vision_transformer_encoder.py;
- paddlenlp RoBERTa: paddlenlp/transformers/roberta/modeling.py;
- PaddleClas ViT: ppcls/arch/backbone/model_zoo/vision_transformer.py.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


# ------------------------------------------------------------ official UNIMO-2
def official_unimo2_variables(d, vocab, n_pos, patch, grid, codebook, n_text, n_vit, n_grounded,
                              cmcl_projection=False):
    """[(name, shape, low, high)] of an official UNIMO-2 checkpoint."""
    out = []

    def var(name, shape, low=-0.5, high=0.5):
        out.append((name, list(shape), low, high))

    def norm(prefix):
        var(f"{prefix}_layer_norm_scale", [d], 0.5, 1.5)
        var(f"{prefix}_layer_norm_bias", [d], -0.2, 0.2)

    def layer(prefix, pre_ln):
        for nm in ("query", "key", "value", "output"):
            var(f"{prefix}_multi_head_att_{nm}_fc.w_0", [d, d])
            var(f"{prefix}_multi_head_att_{nm}_fc.b_0", [d], -0.1, 0.1)
        var(f"{prefix}_ffn_fc_0.w_0", [d, 4 * d])
        var(f"{prefix}_ffn_fc_0.b_0", [4 * d], -0.1, 0.1)
        var(f"{prefix}_ffn_fc_1.w_0", [4 * d, d], -0.25, 0.25)
        var(f"{prefix}_ffn_fc_1.b_0", [d], -0.1, 0.1)
        for n in (("pre_att", "pre_ffn") if pre_ln else ("post_att", "post_ffn")):
            norm(f"{prefix}_{n}")

    var("text.word_embedding", [vocab, d])
    var("text.pos_embedding", [n_pos, d])
    norm("text.pre_encoder")
    for i in range(n_text):
        layer(f"text.encoder_layer_{i}", pre_ln=False)
    var("vit.patch_embeddings_projection_weight", [d, 3, patch, patch], -0.1, 0.1)
    var("vit.patch_embeddings_projection_bias", [d], -0.1, 0.1)
    var("vit.cls_token_embeddings", [1, 1, d])
    var("vit.position_embeddings", [1, 1 + grid * grid, d])
    for i in range(n_vit):
        layer(f"vit.encoder_layer_{i}", pre_ln=True)
    norm("vit.post_encoder")
    norm("grounded.pre_encoder")
    for i in range(n_grounded):
        layer(f"grounded.encoder_layer_{i}", pre_ln=False)
    var("vq_emb", [codebook, d], -0.3, 0.3)
    var("topk_temperature", [1], 1.5, 1.5)   # not saturating the sigmoids: no top-K ties
    var("cmcl_temperature", [1], 0.05, 0.05)
    var("grounded.mask_lm_trans_fc.w_0", [d, d])
    var("grounded.mask_lm_trans_fc.b_0", [d], -0.1, 0.1)
    norm("grounded.mask_lm_trans")
    var("grounded.mask_lm_out_fc.b_0", [vocab], -0.1, 0.1)
    for side in ("text", "image"):
        var(f"grounded.pooled_fc_{side}.w_0", [d, d])
        var(f"grounded.pooled_fc_{side}.b_0", [d], -0.1, 0.1)
    var("grounded.img_text_matching_fc.w_0", [d, 2])
    var("grounded.img_text_matching_fc.b_0", [2], -0.1, 0.1)
    if cmcl_projection:
        for side in ("text", "image"):
            var(f"grounded.cmcl_pooled_fc_{side}.w_0", [d, d])
            var(f"grounded.cmcl_pooled_fc_{side}.b_0", [d], -0.1, 0.1)
    return out


def write_official_checkpoint(out_dir, variables, image_size, patch, seed=0):
    """An official UNIMO-2 checkpoint (see :func:`write_static_checkpoint`),
    with the ViT's patch conv and a query fc made by Paddle's own layers."""
    d = next(s[0] for n, s, *_ in variables if n == "vit.patch_embeddings_projection_weight")
    return write_static_checkpoint(
        out_dir, variables, seed,
        conv={"weight": "vit.patch_embeddings_projection_weight", "bias": "vit.patch_embeddings_projection_bias",
              "image_size": image_size, "patch": patch, "padding": (patch - 1) // 2, "channels_out": d},
        fc={"weight": "vit.encoder_layer_0_multi_head_att_query_fc.w_0",
            "bias": "vit.encoder_layer_0_multi_head_att_query_fc.b_0", "in": d, "out": d})


def write_static_checkpoint(out_dir, variables, seed=0, conv=None, fc=None):
    """Write ``variables`` with Paddle's legacy static save_vars in a child
    process (``conv``/``fc``: variables created by Paddle's static layers and
    run on a probe, see ckpt_scripts/write_static_checkpoint.py); returns
    (values, probe) as saved by the writer."""
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    spec_path = os.path.join(os.path.dirname(out_dir), "spec.json")
    spec = {"vars": variables, "seed": seed}
    if conv:
        spec["conv"] = conv
    if fc:
        spec["fc"] = fc
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    r = subprocess.run([sys.executable, os.path.join(TESTS, "ckpt_scripts", "write_static_checkpoint.py"),
                        spec_path, out_dir], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    parent = os.path.dirname(out_dir)
    return dict(np.load(os.path.join(parent, "values.npz"))), dict(np.load(os.path.join(parent, "probe.npz")))


# -------------------------------------------------------------- official UNIMO
def official_unimo_variables(d, vocab, n_pos, feat, n_layers, mlm_head=True, pooled=("text", "image")):
    """[(name, shape, low, high)] of an official UNIMO checkpoint
    (PaddlePaddle/Research NLP/UNIMO/src/model/unimo_finetune.py,
    transformer_encoder.py; the MLM / generation head of finetune/seq2seq.py)."""
    out = []

    def var(name, shape, low=-0.5, high=0.5):
        out.append((name, list(shape), low, high))

    def norm(prefix):
        var(f"{prefix}_layer_norm_scale", [d], 0.5, 1.5)
        var(f"{prefix}_layer_norm_bias", [d], -0.2, 0.2)

    var("word_embedding", [vocab, d])
    var("pos_embedding", [n_pos, d])
    norm("pre_encoder")
    var("image_emb.w_0", [feat, d], -0.3, 0.3)
    var("image_emb.b_0", [d], -0.1, 0.1)
    var("image_loc.w_0", [5, d])
    var("image_loc.b_0", [d], -0.1, 0.1)
    norm("v_pre_encoder")
    for i in range(n_layers):
        p = f"encoder_layer_{i}"
        for nm in ("query", "key", "value", "output"):
            var(f"{p}_multi_head_att_{nm}_fc.w_0", [d, d])
            var(f"{p}_multi_head_att_{nm}_fc.b_0", [d], -0.1, 0.1)
        var(f"{p}_ffn_fc_0.w_0", [d, 4 * d])
        var(f"{p}_ffn_fc_0.b_0", [4 * d], -0.1, 0.1)
        var(f"{p}_ffn_fc_1.w_0", [4 * d, d], -0.25, 0.25)
        var(f"{p}_ffn_fc_1.b_0", [d], -0.1, 0.1)
        norm(f"{p}_post_att")
        norm(f"{p}_post_ffn")
    if mlm_head:
        var("mask_lm_trans_fc.w_0", [d, d])
        var("mask_lm_trans_fc.b_0", [d], -0.1, 0.1)
        norm("mask_lm_trans")
        var("mask_lm_out_fc.b_0", [vocab], -0.1, 0.1)
    for side in pooled:
        var(f"pooled_fc_{side}.w_0", [d, d])
        var(f"pooled_fc_{side}.b_0", [d], -0.1, 0.1)
    return out


def official_unimo_encode(w, n_layers, n_head, ids=None, pos_ids=None, text_mask=None, image_feats=None,
                          image_loc=None, image_mask=None):
    """UNIMOModel.encode of the official code on what its readers feed it:
    text = LN(word + pos) ("nd", pre_encoder); regions = LN(image_emb(f) +
    image_loc(loc)) (v_pre_encoder), the reader having put the mean region
    feature at [0, 0, 1, 1, 1] first; [regions; text] through post-LN layers
    with the additive mask (m m^T - 1) * 1e4. Returns (image_out, text_out)."""
    parts, masks = [], []
    if image_feats is not None:
        v = image_feats @ w["image_emb.w_0"] + w["image_emb.b_0"] + image_loc @ w["image_loc.w_0"] + w["image_loc.b_0"]
        parts.append(layer_norm(v, w["v_pre_encoder_layer_norm_scale"], w["v_pre_encoder_layer_norm_bias"], 1e-5))
        masks.append(image_mask)
    if ids is not None:
        t = w["word_embedding"][ids] + w["pos_embedding"][pos_ids]
        parts.append(layer_norm(t, w["pre_encoder_layer_norm_scale"], w["pre_encoder_layer_norm_bias"], 1e-5))
        masks.append(text_mask)
    x = np.concatenate(parts, axis=1).astype(np.float64)
    m = np.concatenate(masks, axis=1).astype(np.float64)
    bias = mask_bias(m[:, :, None] * m[:, None, :])
    for i in range(n_layers):
        x = official_layer(x, w, f"encoder_layer_{i}", n_head, bias, pre_ln=False, eps=1e-5)
    n_img = parts[0].shape[1] if image_feats is not None else 0
    return (x[:, :n_img] if image_feats is not None else None), (x[:, n_img:] if ids is not None else None)


def official_unimo_pooled(w, h, side):
    """get_pooled_{text,image}_output: ReLU FC on the first position."""
    return np.maximum(h[:, 0] @ w[f"pooled_fc_{side}.w_0"] + w[f"pooled_fc_{side}.b_0"], 0)


def official_unimo_lm_logits(w, h):
    """finetune/seq2seq.py's head: LN(gelu(fc(h))) @ word_embedding^T + bias."""
    t = gelu(h @ w["mask_lm_trans_fc.w_0"] + w["mask_lm_trans_fc.b_0"])
    t = layer_norm(t, w["mask_lm_trans_layer_norm_scale"], w["mask_lm_trans_layer_norm_bias"], 1e-5)
    return t @ w["word_embedding"].T + w["mask_lm_out_fc.b_0"]


def tiny_unimo_arch_config(tmp, filename="tiny_unimo_init.yaml", base="unimo_official_base.yaml", global_=None,
                           **arch):
    """A tiny UNIMO config (no data needed to build the model)."""
    cfg = {"_base_": os.path.join(ROOT, "configs", base),
           "Global": {"seed": 1, "tokenizer_dir": "", **(global_ or {})},
           "Arch": {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "vocab_size": 40, "max_positions": 20,
                    "feature_dim": 12, "num_classes": 7, "cmcl_dim": 16, **arch}}
    return _write_yaml(tmp, filename, cfg)


def _write_yaml(tmp, name, cfg):
    import yaml
    path = os.path.join(str(tmp), name)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def _load_train_config(path, overrides):
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    return load_config(TrainConfig, path, list(overrides))


def load_unimo_cfg(path, overrides=()):
    import unimo.builders  # noqa: F401
    return _load_train_config(path, overrides)


# ------------------------------------------------------------------ NumPy math
_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, n_head, bias=None):
    """``q,k,v``: [B, L, D] projected; ``bias``: additive [B, Lq, Lk] or None."""
    b, lq, dm = q.shape
    hd = dm // n_head
    split = lambda x: x.reshape(b, -1, n_head, hd).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) * hd ** -0.5 @ split(k).transpose(0, 1, 3, 2)
    if bias is not None:
        scores = scores + bias[:, None]
    out = softmax(scores) @ split(v)
    return out.transpose(0, 2, 1, 3).reshape(b, lq, dm)


def mask_bias(mask2d):
    """The official additive mask: (m - 1) * 1e4 with m in {0, 1}."""
    return (mask2d.astype(np.float64) - 1.0) * 1e4


# ---------------------------------------------- official UNIMO-2 computation
def official_layer(x, w, prefix, n_head, bias, pre_ln, eps):
    """vision_transformer_encoder / transformer_encoder encoder_layer:
    pre-LN ("n", "da") or post-LN ("", "dan"); fc is x @ w_0 + b_0."""
    fc = lambda h, n: h @ w[f"{prefix}_{n}.w_0"] + w[f"{prefix}_{n}.b_0"]  # noqa: E731
    ln = lambda h, n: layer_norm(h, w[f"{prefix}_{n}_layer_norm_scale"], w[f"{prefix}_{n}_layer_norm_bias"], eps)  # noqa: E731,E501
    h = ln(x, "pre_att") if pre_ln else x
    a = fc(attention(fc(h, "multi_head_att_query_fc"), fc(h, "multi_head_att_key_fc"),
                     fc(h, "multi_head_att_value_fc"), n_head, bias), "multi_head_att_output_fc")
    x = x + a if pre_ln else ln(x + a, "post_att")
    h = ln(x, "pre_ffn") if pre_ln else x
    f = fc(gelu(fc(h, "ffn_fc_0")), "ffn_fc_1")
    return x + f if pre_ln else ln(x + f, "post_ffn")


def official_patch_conv(pixels_nhwc, weight, bias, patch, padding):
    """NHWC conv2d, filter [out, in, kh, kw], stride = kernel = patch, zero
    padding on every side; patches in row-major order -> [B, g*g, D]."""
    x = np.pad(pixels_nhwc, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    g = (x.shape[1] - patch) // patch + 1
    out = np.empty((x.shape[0], g * g, weight.shape[0]))
    for i in range(g):
        for j in range(g):
            win = x[:, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch, :]  # [B, kh, kw, C]
            out[:, i * g + j] = np.einsum("bhwc,dchw->bd", win, weight) + bias
    return out


def official_vit(pixels_nhwc, w, n_layers, n_head, patch):
    x = official_patch_conv(pixels_nhwc, w["vit.patch_embeddings_projection_weight"],
                            w["vit.patch_embeddings_projection_bias"], patch, (patch - 1) // 2)
    cls = np.broadcast_to(w["vit.cls_token_embeddings"], (x.shape[0], 1, x.shape[2]))
    x = np.concatenate([cls, x], axis=1) + w["vit.position_embeddings"]
    for i in range(n_layers):
        x = official_layer(x, w, f"vit.encoder_layer_{i}", n_head, None, pre_ln=True, eps=1e-12)
    return layer_norm(x, w["vit.post_encoder_layer_norm_scale"], w["vit.post_encoder_layer_norm_bias"], 1e-12)


def official_text(ids, pos_ids, mask, w, n_layers, n_head):
    x = w["text.word_embedding"][ids] + w["text.pos_embedding"][pos_ids]
    x = layer_norm(x, w["text.pre_encoder_layer_norm_scale"], w["text.pre_encoder_layer_norm_bias"], 1e-5)
    m = mask.astype(np.float64)
    bias = mask_bias(m[:, :, None] * m[:, None, :])
    for i in range(n_layers):
        x = official_layer(x, w, f"text.encoder_layer_{i}", n_head, bias, pre_ln=False, eps=1e-5)
    return x


def official_grounded(vit_out, text_out, text_mask, w, n_layers, n_head, top_k):
    """topk_vector_quantizer (every token votes, padding included), the
    grounded pre-encoder LayerNorm, the grounded encoder with the official
    [image; grounded; text] mask (``_gen_input`` of
    NLP/UNIMO-2/src/model/unimo_grounded.py: every block is an outer
    product of row and column masks, so a padded text row is -1e4 on every
    key), then the ITM head with "mul" fusion. Returns a dict of the Eq. 2
    scores, the top-K ids, the fused sequence and the ITM logits."""
    feats = np.concatenate([vit_out[:, 1:], text_out[:, 1:]], axis=1)
    eta = np.clip(w["topk_temperature"], 1.0, 10000.0)
    scores = (1 / (1 + np.exp(-eta * feats @ w["vq_emb"].T))).sum(1)             # [B, C]
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    g = layer_norm(w["vq_emb"][idx], w["grounded.pre_encoder_layer_norm_scale"],
                   w["grounded.pre_encoder_layer_norm_bias"], 1e-5)
    b, m, n = vit_out.shape[0], vit_out.shape[1], text_out.shape[1]
    t = text_mask.astype(np.float64)
    full = np.zeros((b, m + top_k + n, m + top_k + n))
    full[:, :m + top_k, :m + top_k] = 1                     # image <-> image, grounded
    full[:, m:m + top_k, m + top_k:] = t[:, None, :]         # grounded -> text
    full[:, m + top_k:, m:m + top_k] = t[:, :, None]         # text -> grounded (text_mask^T x ones)
    full[:, m + top_k:, m + top_k:] = t[:, :, None] * t[:, None, :]
    x = np.concatenate([vit_out, g, text_out], axis=1)
    for i in range(n_layers):
        x = official_layer(x, w, f"grounded.encoder_layer_{i}", n_head, mask_bias(full), pre_ln=False, eps=1e-5)
    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    tf = relu(x[:, m + top_k] @ w["grounded.pooled_fc_text.w_0"] + w["grounded.pooled_fc_text.b_0"])
    vf = relu(x[:, 0] @ w["grounded.pooled_fc_image.w_0"] + w["grounded.pooled_fc_image.b_0"])
    logits = (tf * vf) @ w["grounded.img_text_matching_fc.w_0"] + w["grounded.img_text_matching_fc.b_0"]
    return {"scores": scores, "idx": idx, "fused": x, "logits": logits}


def official_grounded_itm(vit_out, text_out, text_mask, w, n_layers, n_head, top_k):
    out = official_grounded(vit_out, text_out, text_mask, w, n_layers, n_head, top_k)
    return out["logits"], out["idx"]


def official_pos_ids(mask, pad_id=1, start=2):
    """Position ids as the official reader pads them: ``start + i`` on real
    tokens, the pad id on padding (``pad_batch_data(batch_pos_ids,
    pad_idx=pad_id)`` in NLP/UNIMO-2/src/reader/retrieval_grounded_reader.py)."""
    pos = np.broadcast_to(np.arange(start, start + mask.shape[1]), mask.shape)
    return np.where(mask, pos, pad_id)


# ------------------------------------------------------ paddlenlp RoBERTa
def paddlenlp_roberta_state(rng, d, vocab, n_pos, n_layers, type_vocab=1, lm_head=True, prefix="roberta."):
    """A ``RobertaForMaskedLM.state_dict()`` with paddlenlp's key names
    (weights of ``nn.Linear`` are [in, out])."""
    u = lambda *shape, s=0.5: rng.uniform(-s, s, size=shape).astype("float32")  # noqa: E731
    st = {f"{prefix}embeddings.word_embeddings.weight": u(vocab, d),
          f"{prefix}embeddings.position_embeddings.weight": u(n_pos, d),
          f"{prefix}embeddings.token_type_embeddings.weight": u(type_vocab, d),
          f"{prefix}embeddings.layer_norm.weight": 1 + u(d, s=0.3), f"{prefix}embeddings.layer_norm.bias": u(d, s=0.1)}
    for i in range(n_layers):
        p = f"{prefix}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            st[f"{p}self_attn.{proj}.weight"], st[f"{p}self_attn.{proj}.bias"] = u(d, d), u(d, s=0.1)
        st[f"{p}linear1.weight"], st[f"{p}linear1.bias"] = u(d, 4 * d), u(4 * d, s=0.1)
        st[f"{p}linear2.weight"], st[f"{p}linear2.bias"] = u(4 * d, d, s=0.25), u(d, s=0.1)
        for n in ("norm1", "norm2"):
            st[f"{p}{n}.weight"], st[f"{p}{n}.bias"] = 1 + u(d, s=0.3), u(d, s=0.1)
    st[f"{prefix}pooler.dense.weight"], st[f"{prefix}pooler.dense.bias"] = u(d, d), u(d, s=0.1)
    if lm_head:
        st["lm_head.dense.weight"], st["lm_head.dense.bias"] = u(d, d), u(d, s=0.1)
        st["lm_head.layer_norm.weight"], st["lm_head.layer_norm.bias"] = 1 + u(d, s=0.3), u(d, s=0.1)
        st["lm_head.bias"] = u(vocab, s=0.1)
    return st


def roberta_reference(st, ids, mask, n_layers, n_head, eps=1e-5, prefix="roberta."):
    """paddlenlp RobertaModel: word + position (from padding_idx + 1 = 2) +
    token type 0, LayerNorm, then nn.TransformerEncoderLayer (post-LN:
    norm1(x + attn(x)), norm2(x + linear2(gelu(linear1(x)))))."""
    e = f"{prefix}embeddings."
    pos = 2 + np.arange(ids.shape[1])
    x = (st[f"{e}word_embeddings.weight"][ids] + st[f"{e}position_embeddings.weight"][pos]
         + st[f"{e}token_type_embeddings.weight"][0])
    x = layer_norm(x, st[f"{e}layer_norm.weight"], st[f"{e}layer_norm.bias"], eps)
    return roberta_layers(st, x, mask, n_layers, n_head, eps, prefix)


def roberta_layers(st, x, mask, n_layers, n_head, eps=1e-5, prefix="roberta."):
    bias = np.broadcast_to(np.where(mask[:, None, :], 0.0, -1e4), (x.shape[0], x.shape[1], x.shape[1]))
    for i in range(n_layers):
        p = f"{prefix}encoder.layers.{i}."
        lin = lambda h, n: h @ st[f"{p}{n}.weight"] + st[f"{p}{n}.bias"]  # noqa: E731
        a = lin(attention(lin(x, "self_attn.q_proj"), lin(x, "self_attn.k_proj"), lin(x, "self_attn.v_proj"),
                          n_head, bias), "self_attn.out_proj")
        x = layer_norm(x + a, st[f"{p}norm1.weight"], st[f"{p}norm1.bias"], eps)
        x = layer_norm(x + lin(gelu(lin(x, "linear1")), "linear2"), st[f"{p}norm2.weight"], st[f"{p}norm2.bias"], eps)
    return x


# ------------------------------------------------------------ PaddleClas ViT
def paddleclas_vit_state(rng, d, patch, grid, n_layers, classes=10, qkv_bias=True):
    u = lambda *shape, s=0.5: rng.uniform(-s, s, size=shape).astype("float32")  # noqa: E731
    st = {"patch_embed.proj.weight": u(d, 3, patch, patch, s=0.1), "patch_embed.proj.bias": u(d, s=0.1),
          "cls_token": u(1, 1, d), "pos_embed": u(1, 1 + grid * grid, d)}
    for i in range(n_layers):
        p = f"blocks.{i}."
        st[f"{p}norm1.weight"], st[f"{p}norm1.bias"] = 1 + u(d, s=0.3), u(d, s=0.1)
        st[f"{p}attn.qkv.weight"] = u(d, 3 * d)
        if qkv_bias:
            st[f"{p}attn.qkv.bias"] = u(3 * d, s=0.1)
        st[f"{p}attn.proj.weight"], st[f"{p}attn.proj.bias"] = u(d, d), u(d, s=0.1)
        st[f"{p}norm2.weight"], st[f"{p}norm2.bias"] = 1 + u(d, s=0.3), u(d, s=0.1)
        st[f"{p}mlp.fc1.weight"], st[f"{p}mlp.fc1.bias"] = u(d, 4 * d), u(4 * d, s=0.1)
        st[f"{p}mlp.fc2.weight"], st[f"{p}mlp.fc2.bias"] = u(4 * d, d, s=0.25), u(d, s=0.1)
    st["norm.weight"], st["norm.bias"] = 1 + u(d, s=0.3), u(d, s=0.1)
    st["head.weight"], st["head.bias"] = u(d, classes), u(classes, s=0.1)
    return st


def paddleclas_vit_reference(st, pixels_nchw, n_layers, n_head, patch, eps=1e-6):
    """PaddleClas VisionTransformer.forward_features without the final
    [:, 0]: unpadded patch conv, [CLS] + positions, pre-LN blocks whose
    attention reshapes the fused qkv output to [B, N, 3, heads, head_dim]."""
    nhwc = pixels_nchw.transpose(0, 2, 3, 1)
    x = official_patch_conv(nhwc, st["patch_embed.proj.weight"], st["patch_embed.proj.bias"], patch, 0)
    b, n_patch, d = x.shape
    x = np.concatenate([np.broadcast_to(st["cls_token"], (b, 1, d)), x], axis=1) + st["pos_embed"]
    n, hd = x.shape[1], d // n_head
    for i in range(n_layers):
        p = f"blocks.{i}."
        h = layer_norm(x, st[f"{p}norm1.weight"], st[f"{p}norm1.bias"], eps)
        qkv = h @ st[f"{p}attn.qkv.weight"] + st.get(f"{p}attn.qkv.bias", 0)
        qkv = qkv.reshape(b, n, 3, n_head, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = softmax(q @ k.transpose(0, 1, 3, 2) * hd ** -0.5)
        a = (attn @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = x + a @ st[f"{p}attn.proj.weight"] + st[f"{p}attn.proj.bias"]
        h = layer_norm(x, st[f"{p}norm2.weight"], st[f"{p}norm2.bias"], eps)
        x = x + gelu(h @ st[f"{p}mlp.fc1.weight"] + st[f"{p}mlp.fc1.bias"]) @ st[f"{p}mlp.fc2.weight"] \
            + st[f"{p}mlp.fc2.bias"]
    return layer_norm(x, st["norm.weight"], st["norm.bias"], eps)


def save_pdparams(state, path):
    import paddle
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, path)
    return path


def tiny_arch_config(tmp, name="tiny_init.yaml", base="unimo2_base.yaml", global_=None, **arch):
    """A tiny UNIMO-2 config (no data needed to build the model)."""
    cfg = {"_base_": os.path.join(ROOT, "configs", base),
           "Global": {"seed": 1, "tokenizer_dir": "", **(global_ or {})},
           "Arch": {"hidden_size": 16,
                    "vit": {"image_size": 16, "patch_size": 8, "num_layers": 2, "num_heads": 2},
                    "text": {"vocab_size": 40, "max_positions": 20, "num_layers": 2, "num_heads": 2},
                    "grounding": {"dict_size": 12, "top_k": 3},
                    "fusion": {"num_layers": 2, "num_heads": 2}, "proj_dim": 16}}
    for k, v in arch.items():
        cfg["Arch"][k] = {**cfg["Arch"][k], **v} if isinstance(v, dict) else v
    return _write_yaml(tmp, name, cfg)


def load_cfg(path, overrides=()):
    import unimo2.builders  # noqa: F401
    return _load_train_config(path, overrides)


def build(cfg):
    from vlcore.framework.run import build_model
    model = build_model(cfg)
    model.eval()
    return model
