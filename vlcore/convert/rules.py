"""Rule builders shared by the model packages' converters: linear and
LayerNorm pairs, the official and PaddleNLP encoder layouts, embeddings,
position-table shifts."""
import re

import numpy as np

from vlcore.convert.mapping import OPTIMIZER_STATE, ConversionError, Rule, constant


# ------------------------------------------------------------ rule builders
# Shared by the model packages' converters: the naming of Paddle's static
# transformer_encoder (official UNIMO and UNIMO-2 alike) and of paddlenlp's
# BERT-family models, onto vlcore.layers.TransformerLayer.
def linear_rules(src_w, src_b, dst):
    """A Paddle fc / nn.Linear (weight [in, out], like ours) onto ``dst``."""
    return [Rule(f"{dst}.weight", (src_w,)), Rule(f"{dst}.bias", (src_b,))]


def layer_norm_rules(src_scale, src_bias, dst):
    return [Rule(f"{dst}.weight", (src_scale,)), Rule(f"{dst}.bias", (src_bias,))]


def identity_layer_norm_rules(dst, dim):
    """A LayerNorm the source has no counterpart for, set to the identity."""
    return [Rule(f"{dst}.weight", (), constant(np.ones(dim))), Rule(f"{dst}.bias", (), constant(np.zeros(dim)))]


def layer_ids(names, pattern):
    """Sorted layer numbers: group 1 of ``pattern`` over ``names``."""
    return sorted({int(m.group(1)) for n in names for m in [re.match(pattern, n)] if m})


def official_layer_rules(src, dst, pre_norm):
    """One layer of the official static ``transformer_encoder``
    (``{src}_multi_head_att_query_fc.w_0`` ...) onto our ``TransformerLayer``.
    Pre-LN ("n"/"da") names its norms pre_att/pre_ffn, post-LN ("dan")
    post_att/post_ffn; both sit where our norm1/norm2 sit."""
    n1, n2 = ("pre_att", "pre_ffn") if pre_norm else ("post_att", "post_ffn")
    rules = []
    for ours, theirs in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"), ("out_proj", "output")):
        rules += linear_rules(f"{src}_multi_head_att_{theirs}_fc.w_0", f"{src}_multi_head_att_{theirs}_fc.b_0",
                              f"{dst}.attn.{ours}")
    rules += linear_rules(f"{src}_ffn_fc_0.w_0", f"{src}_ffn_fc_0.b_0", f"{dst}.ffn.fc1")
    rules += linear_rules(f"{src}_ffn_fc_1.w_0", f"{src}_ffn_fc_1.b_0", f"{dst}.ffn.fc2")
    rules += layer_norm_rules(f"{src}_{n1}_layer_norm_scale", f"{src}_{n1}_layer_norm_bias", f"{dst}.norm1")
    rules += layer_norm_rules(f"{src}_{n2}_layer_norm_scale", f"{src}_{n2}_layer_norm_bias", f"{dst}.norm2")
    return rules


def official_encoder_rules(names, src_prefix, dst, n_cfg, cfg_key, where, pre_norm=False):
    """Every ``{src_prefix}{i}_*`` layer of an official checkpoint, in order,
    onto ``{dst}.layers.{j}``; the count must equal the configured one."""
    ids = layer_ids(names, re.escape(src_prefix) + r"(\d+)_")
    if len(ids) != n_cfg:
        raise ConversionError(f"{where}: {len(ids)} {src_prefix}* layers in the checkpoint {ids} but "
                              f"{cfg_key}={n_cfg}")
    rules = []
    for ours, theirs in enumerate(ids):
        rules += official_layer_rules(f"{src_prefix}{theirs}", f"{dst}.layers.{ours}", pre_norm)
    return rules


def paddlenlp_layer_rules(src, dst):
    """One ``nn.TransformerEncoderLayer`` (paddlenlp BERT/RoBERTa,
    ``{src}self_attn.q_proj.weight`` ...) onto our post-LN ``TransformerLayer``."""
    rules = []
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        rules += linear_rules(f"{src}self_attn.{proj}.weight", f"{src}self_attn.{proj}.bias", f"{dst}.attn.{proj}")
    rules += linear_rules(f"{src}linear1.weight", f"{src}linear1.bias", f"{dst}.ffn.fc1")
    rules += linear_rules(f"{src}linear2.weight", f"{src}linear2.bias", f"{dst}.ffn.fc2")
    rules += layer_norm_rules(f"{src}norm1.weight", f"{src}norm1.bias", f"{dst}.norm1")
    rules += layer_norm_rules(f"{src}norm2.weight", f"{src}norm2.bias", f"{dst}.norm2")
    return rules


def paddlenlp_prefix(names, base):
    """``roberta.`` (``base``) when saved from a task model (RobertaForMaskedLM,
    ...), nothing when saved from the bare model itself."""
    return f"{base}." if any(n.startswith(f"{base}.embeddings.") for n in names) else ""


def paddlenlp_lm_head_rules(source, word_key, dst, where):
    """paddlenlp RoBERTa's ``lm_head.*`` onto an :class:`MLMHead` at ``dst``
    (decoder tied to the word embeddings). Returns ``(rules, dropped,
    unsupported)``; no ``lm_head`` gives no rules."""
    names = set(source)
    rules, dropped, unsupported = [], {}, {}
    if not any(n.startswith("lm_head.") for n in names):
        return rules, dropped, unsupported
    rules += linear_rules("lm_head.dense.weight", "lm_head.dense.bias", f"{dst}.transform")
    rules += layer_norm_rules("lm_head.layer_norm.weight", "lm_head.layer_norm.bias", f"{dst}.norm")
    biases = [b for b in ("lm_head.bias", "lm_head.decoder.bias", "lm_head.decoder_bias") if b in names]
    if len(biases) > 1 and not all(np.array_equal(source[b], source[biases[0]]) for b in biases):
        raise ConversionError(f"{where}: {' and '.join(biases)} differ; which is the LM bias is ambiguous")
    if biases:
        rules.append(Rule(f"{dst}.bias", (biases[0],)))
        dropped.update({b: f"the same values as {biases[0]}" for b in biases[1:]})
    word = source.get(word_key)
    for w in ("lm_head.decoder.weight", "lm_head.decoder_weight"):
        if w in names:
            if word is not None and same_matrix(source[w], word):
                dropped[w] = "tied to the word embeddings (checked equal)"
            else:
                unsupported[w] = "an LM decoder not tied to the word embeddings; ours is tied"
    return rules, dropped, unsupported


def paddlenlp_embedding_rules(source, emb, word_dsts, pos_dst, norm_dst, src_start, dst_start,
                              type_dst=None, n_types=0):
    """paddlenlp BERT/RoBERTa embeddings (``{emb}word_embeddings.weight`` ...).
    Word rows go to every key of ``word_dsts`` (an embedding and its tied
    decoder); position rows move so that source position ``src_start + i``
    is our ``dst_start + i``. Token types: without ``type_dst`` row 0 is
    added to every position row -- exact, since every token gets one position
    row and type 0; with ``type_dst`` (``n_types`` rows) the source rows are
    copied and rows the source lacks start at zero. Returns ``(rules, notes)``."""
    names = set(source)
    word, pos = f"{emb}word_embeddings.weight", f"{emb}position_embeddings.weight"
    tt = f"{emb}token_type_embeddings.weight"
    roll = shift_positions(src_start, dst_start)
    rules, notes = [Rule(k, (word,)) for k in word_dsts], []
    if src_start != dst_start:
        notes.append(f"{pos} rolled by {dst_start - src_start} rows: source position {src_start} + i "
                     f"is our {dst_start} + i")
    n_src = source[tt].shape[0] if tt in names else 0
    if type_dst is None:
        rules.append(Rule(pos_dst, (pos, tt), lambda p_, t_: roll(p_) + t_[0][None, :]) if tt in names
                     else Rule(pos_dst, (pos,), roll))
        if n_src > 1:
            notes.append(f"{tt}: rows 1.. ({n_src - 1}) unused, the model has one segment type")
    else:
        def types(t):
            out = np.zeros((n_types, t.shape[1]), dtype=t.dtype)
            out[:min(n_types, len(t))] = t[:n_types]
            return out
        rules += [Rule(pos_dst, (pos,), roll), Rule(type_dst, (tt,), types)]
        if n_src < n_types:
            notes.append(f"{type_dst}: rows {n_src}..{n_types - 1} (segments the source lacks) start at zero")
        elif n_src > n_types:
            notes.append(f"{tt}: rows {n_types}.. ({n_src - n_types}) unused")
    rules += layer_norm_rules(f"{emb}layer_norm.weight", f"{emb}layer_norm.bias", norm_dst)
    return rules, notes


def same_matrix(w, word):
    """``w`` equals ``word`` (or its transpose)."""
    if w.shape == word.shape:
        return np.allclose(w, word)
    return w.shape == word.shape[::-1] and np.allclose(w.T, word)


def shift_positions(src_start, dst_start):
    """Transform of a position table: our row ``dst_start + i`` holds the
    source's row ``src_start + i`` (rows wrap around; the ones that do are
    never looked up)."""
    shift = dst_start - src_start
    fn = (lambda x: np.roll(x, shift, axis=0)) if shift else (lambda x: x)
    fn.__name__ = f"roll({shift})"
    return fn


def optimizer_state_dropped():
    """``Mapping.dropped`` entries for optimizer and learning-rate state
    (saved by ``save_persistables`` next to the weights): not weights."""
    return {p: "optimizer / learning-rate state, not weights" for p in OPTIMIZER_STATE}
