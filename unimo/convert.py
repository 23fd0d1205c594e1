"""Pretrained weights into UNIMO / Unicoder-VL: the official UNIMO checkpoints
and RoBERTa / BERT initialisations.

Each source is a name map onto :class:`unimo.pretrain.UNIMOForPretraining`
(rules and strict checks: :mod:`vlcore.convert_utils`):

- ``unimo-official``: the released UNIMO static-graph checkpoint directories
  (PaddlePaddle/Research NLP/UNIMO, model_files/download_*.sh: unimo_base_en,
  unimo_large_en and the MNLI-tuned unimo_mnli_base_en / unimo_mnli_large_en),
  names from ``src/model/unimo_finetune.py`` and
  ``transformer_encoder.py``: ``word_embedding``, ``pos_embedding``,
  ``pre_encoder_layer_norm_*`` (text), ``image_emb``/``image_loc`` FCs and
  ``v_pre_encoder_layer_norm_*`` (regions), ``encoder_layer_{i}_*`` (post-LN,
  LayerNorm epsilon 1e-5, erf GELU), ``mask_lm_*`` (the generation / MLM
  head, decoder tied to ``word_embedding``), ``pooled_fc_{text,image}`` (ReLU
  FCs on the [CLS] / [IMG] outputs). ``sent_embedding`` is never read by the
  official code ("don't use sentence embedding"). Fine-tuning heads
  (``cls_out_*`` of the GLUE / SNLI-VE classifiers, ``match_fc`` of
  retrieval) have no place in this model and are listed as such; optimizer
  and learning-rate state is dropped with a line in the report.
- ``roberta-paddlenlp`` / ``bert-paddlenlp``: paddlenlp's RoBERTa / BERT
  ``.pdparams`` onto the embeddings, the encoder and the MLM head (UNIMO
  Section 4.2 initialises from RoBERTa; Unicoder-VL from BERT-base). The
  region embedding, the visual heads and the CMCL / matching heads have no
  counterpart and keep the config's initialisation. Caveat: a BERT checkpoint
  brings its WordPiece vocabulary (30,522 rows for bert-base-uncased), and
  vlcore.tokenizer reads byte-level BPE vocabularies only; the conversion is
  exact, but training on it needs a WordPiece tokenizer the toolkit lacks.

Ids: the official ``word_embedding`` rows are in the order of the release's
``unimo_en.vocab.txt`` ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, then GPT-2 ids
in the frequency order of fairseq's RoBERTa dictionary, [MASK]=50264), which
is what :meth:`vlcore.tokenizer.BPETokenizer.from_unimo` produces: no
remapping. (RoBERTa's vocab.json follows the same fairseq order, so the two
vocabularies give the same ids to ordinary tokens.)
Positions: the official readers number text tokens from 2 (``range(2, n +
2)``), RoBERTa from padding_idx + 1 = 2, BERT from 0; the table is rolled so
that the source's first row lands on ``Arch.position_offset``.
"""
import fnmatch
import re

import numpy as np

from vlcore.convert_utils import (ConversionError, Mapping, Rule, apply_mapping, layer_ids, layer_norm_rules,
                                  linear_rules, official_encoder_rules, optimizer_state_dropped,
                                  paddlenlp_embedding_rules, paddlenlp_layer_rules, paddlenlp_lm_head_rules,
                                  paddlenlp_prefix, read_pdparams, read_static_checkpoint, register_source,
                                  shift_positions)

KINDS = ("unimo-official", "roberta-paddlenlp", "bert-paddlenlp")
# First text position id of each source's data (see the module doc).
POSITION_START = {"unimo-official": 2, "roberta-paddlenlp": 2, "bert-paddlenlp": 0}
# The heads of UNIMOForPretraining no released weights provide.
VISUAL_HEADS = ["mrfr_head.*", "mrc_head.*", "vlm_head.*"]


# ------------------------------------------------------------ unimo-official
def _official_config_problems(arch):
    """What in ``arch`` would make the converted model compute something
    other than the official UNIMO (the weights cannot tell)."""
    want = [("Arch.layout", arch.layout, "unimo"), ("Arch.image_token", arch.image_token, "mean"),
            ("Arch.type_vocab_size", arch.type_vocab_size, 0), ("Arch.location_dim", arch.location_dim, 5),
            ("Arch.act", arch.act, "gelu"), ("Arch.layer_norm_eps", arch.layer_norm_eps, 1e-5)]
    return [f"{key}={have} (official: {official})" for key, have, official in want if have != official]


def _cmcl_rules(arch, names, where):
    """``pooled_fc_{text,image}`` (ReLU FC on [CLS] / [IMG]) onto the CMCL
    projections, which must then be the per-modality ReLU kind."""
    d, rules, may_keep, notes = arch.hidden_size, [], [], []
    present = [s for s in ("text", "image") if f"pooled_fc_{s}.w_0" in names]
    if present and (arch.cmcl_proj != "separate_relu" or arch.cmcl_dim != d):
        raise ConversionError(f"{where}: the checkpoint has {', '.join(f'pooled_fc_{s}' for s in present)} "
                              f"(a ReLU FC {d}->{d} per modality): set Arch.cmcl_proj=separate_relu and "
                              f"Arch.cmcl_dim={d} (see configs/unimo_official_base.yaml)")
    for side in ("text", "image"):
        if side in present:
            rules += linear_rules(f"pooled_fc_{side}.w_0", f"pooled_fc_{side}.b_0", f"cmcl_{side}_proj.mlp.0")
        else:
            may_keep.append(f"cmcl_{side}_proj.*" if arch.cmcl_proj == "separate_relu" else "cmcl_proj.*")
            notes.append(f"no pooled_fc_{side}: the CMCL {side} projection keeps its random initialisation")
    return rules, may_keep, notes


def official_mapping(arch, names, where="", position_start=POSITION_START["unimo-official"]):
    """Rules for an official UNIMO checkpoint onto a model built from ``arch``."""
    problems = _official_config_problems(arch)
    if problems:
        raise ConversionError(f"{where}: the config does not describe the official UNIMO: "
                              f"{'; '.join(problems)} (see configs/unimo_official_base.yaml)")
    rules = [Rule("model.word_embed.weight", ("word_embedding",)),
             Rule("mlm_head.word_embedding", ("word_embedding",)),  # the tied decoder (same tensor)
             Rule("model.pos_embed.weight", ("pos_embedding",), shift_positions(position_start, arch.position_offset))]
    notes = []
    if position_start != arch.position_offset:
        notes.append(f"pos_embedding rolled by {arch.position_offset - position_start} rows: official position "
                     f"{position_start} + i is our {arch.position_offset} + i")
    rules += layer_norm_rules("pre_encoder_layer_norm_scale", "pre_encoder_layer_norm_bias", "model.text_norm")
    rules += linear_rules("image_emb.w_0", "image_emb.b_0", "model.feature_fc")
    rules += linear_rules("image_loc.w_0", "image_loc.b_0", "model.location_fc")
    rules += layer_norm_rules("v_pre_encoder_layer_norm_scale", "v_pre_encoder_layer_norm_bias", "model.region_norm")
    rules += official_encoder_rules(names, "encoder_layer_", "model.encoder", arch.num_layers, "Arch.num_layers",
                                    where)
    may_keep = list(VISUAL_HEADS)
    if any(n.startswith("mask_lm_") for n in names):
        rules += linear_rules("mask_lm_trans_fc.w_0", "mask_lm_trans_fc.b_0", "mlm_head.transform")
        rules += layer_norm_rules("mask_lm_trans_layer_norm_scale", "mask_lm_trans_layer_norm_bias", "mlm_head.norm")
        rules.append(Rule("mlm_head.bias", ("mask_lm_out_fc.b_0",)))
    else:  # e.g. the MNLI-tuned checkpoints: a classifier instead
        may_keep.append("mlm_head.*")
        notes.append("no mask_lm_*: the MLM / generation head keeps its random initialisation")
    cmcl, keep, cmcl_notes = _cmcl_rules(arch, names, where)
    rules, may_keep, notes = rules + cmcl, may_keep + keep, notes + cmcl_notes
    notes.append("word_embedding rows are in the order of the release's unimo_en.vocab.txt: set "
                 "Global.tokenizer_dir to a directory with unimo_en.encoder.json, unimo_en.vocab.bpe and "
                 "unimo_en.vocab.txt (BPETokenizer.from_unimo)")
    dropped = {"sent_embedding": "never read: the official embedding skips sentence embeddings",
               **optimizer_state_dropped()}
    head = "a fine-tuning head this model has no place for"
    unsupported = {
        "cls_out_*": f"{head} (GLUE / SNLI-VE classifier on pooled_fc_text; the MNLI checkpoints' cls_out_3_*)",
        "match_fc.*": f"{head} (retrieval score on pooled_fc_text * pooled_fc_image)",
        "mask_lm_out_fc.w_0": "an untied MLM decoder (weight_sharing=False); ours is tied to word_embedding",
    }
    return Mapping(rules, dropped=dropped, unsupported=unsupported, may_keep_init=may_keep, notes=notes)


# -------------------------------------------------- roberta/bert-paddlenlp
def _init_config_notes(arch, kind):
    """Initialisation sources do not dictate the config, but differences are
    worth a line in the log."""
    eps = {"roberta-paddlenlp": 1e-5, "bert-paddlenlp": 1e-12}[kind]
    want = [("Arch.layer_norm_eps", arch.layer_norm_eps, eps), ("Arch.act", arch.act, "gelu")]
    return [f"note: {key}={have}, the {kind.split('-')[0]} checkpoint was trained with {theirs}"
            for key, have, theirs in want if have != theirs]


def _bert_head_rules(source, word_key, where):
    """paddlenlp ``BertForPretraining``'s ``cls.predictions.*`` (transform,
    layer_norm, decoder tied to the word embeddings, decoder_bias)."""
    names = set(source)
    rules, dropped, unsupported = [], {}, {}
    if "cls.predictions.transform.weight" not in names:
        return rules, dropped, unsupported
    rules += linear_rules("cls.predictions.transform.weight", "cls.predictions.transform.bias", "mlm_head.transform")
    rules += layer_norm_rules("cls.predictions.layer_norm.weight", "cls.predictions.layer_norm.bias", "mlm_head.norm")
    rules.append(Rule("mlm_head.bias", ("cls.predictions.decoder_bias",)))
    w = "cls.predictions.decoder_weight"
    if w in names:
        if word_key in names and np.allclose(source[w], source[word_key]):
            dropped[w] = "tied to the word embeddings (checked equal)"
        else:
            unsupported[w] = "an LM decoder not tied to the word embeddings; ours is tied"
    dropped["cls.seq_relationship.*"] = "BERT's next-sentence head (not a UNIMO objective)"
    return rules, dropped, unsupported


def text_init_mapping(kind, arch, source, where="", position_start=None):
    """paddlenlp RoBERTa (``roberta-paddlenlp``) or BERT (``bert-paddlenlp``)
    onto the text embedding, the encoder and the MLM head. With segment
    embeddings (Unicoder-VL, ``Arch.type_vocab_size=2``) the source's token
    types are copied (BERT: text 0 / image 1; RoBERTa has one type, so the
    image segment starts at zero); without, type 0 is folded into the
    position rows (exact)."""
    position_start = POSITION_START[kind] if position_start is None else position_start
    base = kind.split("-")[0]
    names = set(source)
    p = paddlenlp_prefix(names, base)
    emb = f"{p}embeddings."
    ids = layer_ids(names, re.escape(f"{p}encoder.layers.") + r"(\d+)\.")
    if len(ids) != arch.num_layers:
        raise ConversionError(f"{where}: the {base} checkpoint has {len(ids)} layers but "
                              f"Arch.num_layers={arch.num_layers}")
    typed = arch.type_vocab_size > 0
    rules, notes = paddlenlp_embedding_rules(
        source, emb, ("model.word_embed.weight", "mlm_head.word_embedding"), "model.pos_embed.weight",
        "model.text_norm", position_start, arch.position_offset,
        type_dst="model.type_embed.weight" if typed else None, n_types=arch.type_vocab_size)
    for i in ids:
        rules += paddlenlp_layer_rules(f"{p}encoder.layers.{i}.", f"model.encoder.layers.{i}")
    dropped = {f"{p}pooler.*": f"{base}'s tanh pooler; the CMCL / matching heads pool with their own FCs",
               f"{emb}position_ids": "a constant index buffer"}
    word_key = f"{emb}word_embeddings.weight"
    if kind == "roberta-paddlenlp":
        head, head_dropped, unsupported = paddlenlp_lm_head_rules(source, word_key, "mlm_head", where)
    else:
        head, head_dropped, unsupported = _bert_head_rules(source, word_key, where)
    rules += head
    dropped.update(head_dropped)
    may_keep = ["model.feature_fc.*", "model.location_fc.*", "model.region_norm.*", "cmcl_*", *VISUAL_HEADS]
    if not head:
        may_keep.append("mlm_head.*")
        notes.append("no LM head in the checkpoint: the MLM head keeps its random initialisation")
    notes.append("the region embedding (feature_fc, location_fc, region_norm) and the visual, CMCL and "
                 "matching heads keep the config's initialisation")
    return Mapping(rules, dropped=dropped, unsupported=unsupported, may_keep_init=may_keep,
                   notes=notes + _init_config_notes(arch, kind))


# ------------------------------------------------------------------ drivers
def read_source(kind, path, ignore=()):
    if kind not in KINDS:
        raise ConversionError(f"unknown source kind {kind!r} (known: {', '.join(KINDS)})")
    return read_static_checkpoint(path, ignore) if kind == "unimo-official" else read_pdparams(path)


def convert(kind, path, model, arch, ignore=(), position_start=None, source=None):
    """``(state, report)``: the tensors ``path`` provides for ``model`` (built
    from ``arch``). ``position_start``: the position id of the first token in
    the source's data (default: the source kind's own, see POSITION_START)."""
    source = read_source(kind, path, ignore) if source is None else source
    kept = {k: v for k, v in source.items() if not any(fnmatch.fnmatchcase(k, p) for p in ignore)}
    if kind == "unimo-official":
        start = POSITION_START[kind] if position_start is None else position_start
        mapping = official_mapping(arch, set(kept), path, start)
    else:
        mapping = text_init_mapping(kind, arch, kept, path, position_start)
    return apply_mapping(source, mapping, model.state_dict(), path, ignore)


def _register(kind):
    @register_source(kind, "UNIMO")
    def _convert(path, model, arch, ignore=(), position_start=None):
        return convert(kind, path, model, arch, ignore, position_start)
    return _convert


for _kind in KINDS:
    _register(_kind)
