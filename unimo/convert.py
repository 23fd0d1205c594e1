"""Pretrained weights into UNIMO / Unicoder-VL: the official UNIMO checkpoints
and RoBERTa / BERT initialisations.

Each source is a name map (rules and strict checks:
:mod:`vlcore.convert`) onto any model on the UNIMO backbone
(``ARCHS``): pre-training (:class:`unimo.pretrain.UNIMOForPretraining`),
classification (:class:`unimo.finetune_cls.UNIMOForClassification`) and
generation (:class:`unimo.seq2seq.UNIMOForSeq2Seq`); the mapping follows
the heads the model has:

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
  official code ("don't use sentence embedding"). The classifiers of the
  official GLUE / regression / SNLI-VE scripts (``cls_out_*``, e.g. the MNLI
  releases' ``cls_out_3_*``) go to UNIMOForClassification's head; into a
  model without one they are errors that name them, as is ``match_fc`` (the
  retrieval score). Heads of a pre-trained checkpoint that a fine-tuning
  model does not have (``mask_lm_*`` for a classifier, ``pooled_fc_*`` for a
  generator) are dropped and named in the report; so is optimizer and
  learning-rate state.
- ``roberta-paddlenlp`` / ``bert-paddlenlp``: paddlenlp's RoBERTa / BERT
  ``.pdparams`` onto the embeddings, the encoder and the MLM head (UNIMO
  Section 4.2 initialises from RoBERTa; Unicoder-VL from BERT-base). The
  region embedding, the visual heads and the CMCL / matching heads have no
  counterpart and keep the config's initialisation. A BERT checkpoint brings
  its WordPiece vocabulary (30,522 rows for bert-base-uncased): point
  ``Global.tokenizer_dir`` at its ``vocab.txt`` (vlcore.text.wordpiece).
- ``roberta-hf`` / ``bert-hf``: the same models as Hugging Face directories
  (``config.json`` + ``model.safetensors``), renamed into the PaddleNLP
  layout (:mod:`vlcore.convert.hf`) and mapped as above; ``config.json``'s
  sizes must be the Arch's (refused by name otherwise).

Ids: the official ``word_embedding`` rows are in the order of the release's
``unimo_en.vocab.txt`` ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, then GPT-2 ids
in the frequency order of fairseq's RoBERTa dictionary, [MASK]=50264), which
is what :meth:`vlcore.text.tokenizer.BPETokenizer.from_unimo` produces: no
remapping. (RoBERTa's vocab.json follows the same fairseq order, so the two
vocabularies give the same ids to ordinary tokens.)
Positions: the official readers number text tokens from 2 (``range(2, n +
2)``), RoBERTa from padding_idx + 1 = 2, BERT from 0; the table is rolled so
that the source's first row lands on ``Arch.position_offset``.
"""
import fnmatch
import re

import numpy as np

from vlcore.convert import (
    ConversionError,
    Mapping,
    Rule,
    apply_mapping,
    hf,
    layer_ids,
    layer_norm_rules,
    linear_rules,
    official_encoder_rules,
    optimizer_state_dropped,
    paddlenlp_embedding_rules,
    paddlenlp_layer_rules,
    paddlenlp_lm_head_rules,
    paddlenlp_prefix,
    read_state_file,
    read_static_checkpoint,
    register_source,
    shift_positions,
)

KINDS = ("unimo-official", "roberta-paddlenlp", "bert-paddlenlp", "roberta-hf", "bert-hf")
# First text position id of each source's data (see the module doc).
POSITION_START = {"unimo-official": 2, "roberta-paddlenlp": 2, "bert-paddlenlp": 0, "roberta-hf": 2, "bert-hf": 0}
# Hugging Face directories are read as the PaddleNLP layout of the same model.
HF_KINDS = {"roberta-hf": ("roberta", "roberta-paddlenlp"), "bert-hf": ("bert", "bert-paddlenlp")}
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


def _classifier_rules(arch, names, where):
    """Onto ``UNIMOForClassification``'s PooledClassifier: the poolers are
    ``pooled_fc_{text,image}``; the classifier of the official GLUE /
    regression scripts is ``cls_out_{num_labels}_{w,b}`` on the text pooler
    (dropout + FC: ``head.hidden: 0``), that of SNLI-VE ``cls_out_{w,b}_0``
    (FC to 2048 on text + image) then ``cls_out_{w,b}_1`` (``head: {fusion:
    sum, hidden: 2048, act: none}``). A checkpoint without a classifier (a
    pre-trained one, to fine-tune from) leaves it to the config."""
    rules, may_keep, notes = [], [], []
    for side in ("text", "image"):
        if f"pooled_fc_{side}.w_0" in names:
            rules += linear_rules(f"pooled_fc_{side}.w_0", f"pooled_fc_{side}.b_0", f"head.pool_{side}")
        else:
            may_keep.append(f"head.pool_{side}.*")
            notes.append(f"no pooled_fc_{side}: head.pool_{side} keeps its random initialisation")
    glue = sorted({m.group(1) for n in names for m in [re.match(r"cls_out_(\d+)_[wb]$", n)] if m})
    ve = any(re.match(r"cls_out_[wb]_[01]$", n) for n in names)
    head = arch.head
    if not glue and not ve:
        may_keep += ["head.hidden.*", "head.out.*", "head.norm.*"]
        notes.append("no cls_out_*: the classifier starts from the config's initialisation")
    elif glue and not ve and not head.hidden:
        n = glue[0]
        if len(glue) > 1:
            raise ConversionError(f"{where}: several classifiers {', '.join(f'cls_out_{g}_w' for g in glue)}")
        rules += linear_rules(f"cls_out_{n}_w", f"cls_out_{n}_b", "head.out")
    elif ve and not glue and head.hidden and head.act == "none" and head.fusion == "sum":
        rules += linear_rules("cls_out_w_0", "cls_out_b_0", "head.hidden")
        rules += linear_rules("cls_out_w_1", "cls_out_b_1", "head.out")
    else:
        have = "cls_out_{w,b}_{0,1} (SNLI-VE: FC to a hidden layer, then FC)" if ve else \
            f"cls_out_{glue[0]}_{{w,b}} (one FC, GLUE / regression)"
        raise ConversionError(f"{where}: the checkpoint's classifier is {have}; Arch.head is {head} "
                              "(official: hidden=0 for GLUE, fusion=sum hidden=2048 act=none for SNLI-VE)")
    return rules, may_keep, notes


def official_mapping(arch, names, model_keys, where="", position_start=POSITION_START["unimo-official"]):
    """Rules for an official UNIMO checkpoint onto a model built from ``arch``
    whose state-dict keys are ``model_keys``: the backbone (``model.*``)
    always, then what the model has of the heads -- pre-training (MLM head,
    CMCL projections), generation (MLM head) or classification (poolers and
    classifier). Heads of the checkpoint the model does not have are
    dropped, named in the report (a pre-trained checkpoint initialising a
    fine-tuning model); fine-tuning heads without a place are errors."""
    problems = _official_config_problems(arch)
    if problems:
        raise ConversionError(f"{where}: the config does not describe the official UNIMO: "
                              f"{'; '.join(problems)} (see configs/unimo_official_base.yaml)")
    keys = set(model_keys)
    rules = [Rule("model.word_embed.weight", ("word_embedding",)),
             Rule("model.pos_embed.weight", ("pos_embedding",), shift_positions(position_start, arch.position_offset))]
    notes, may_keep = [], list(VISUAL_HEADS)
    dropped = {"sent_embedding": "never read: the official embedding skips sentence embeddings",
               **optimizer_state_dropped()}
    if position_start != arch.position_offset:
        notes.append(f"pos_embedding rolled by {arch.position_offset - position_start} rows: official position "
                     f"{position_start} + i is our {arch.position_offset} + i")
    rules += layer_norm_rules("pre_encoder_layer_norm_scale", "pre_encoder_layer_norm_bias", "model.text_norm")
    rules += linear_rules("image_emb.w_0", "image_emb.b_0", "model.feature_fc")
    rules += linear_rules("image_loc.w_0", "image_loc.b_0", "model.location_fc")
    rules += layer_norm_rules("v_pre_encoder_layer_norm_scale", "v_pre_encoder_layer_norm_bias", "model.region_norm")
    rules += official_encoder_rules(names, "encoder_layer_", "model.encoder", arch.num_layers, "Arch.num_layers",
                                    where)
    has_lm = any(n.startswith("mask_lm_") for n in names)
    if "mlm_head.bias" in keys:
        rules.append(Rule("mlm_head.word_embedding", ("word_embedding",)))  # the tied decoder (same tensor)
        if has_lm:
            rules += linear_rules("mask_lm_trans_fc.w_0", "mask_lm_trans_fc.b_0", "mlm_head.transform")
            rules += layer_norm_rules("mask_lm_trans_layer_norm_scale", "mask_lm_trans_layer_norm_bias",
                                      "mlm_head.norm")
            rules.append(Rule("mlm_head.bias", ("mask_lm_out_fc.b_0",)))
        else:  # e.g. the MNLI-tuned checkpoints: a classifier instead
            may_keep.append("mlm_head.*")
            notes.append("no mask_lm_*: the MLM / generation head keeps its random initialisation")
    elif has_lm:
        dropped.update({n: "the MLM / generation head, which this model does not have"
                        for n in ("mask_lm_trans_fc.*", "mask_lm_trans_layer_norm_*", "mask_lm_out_fc.b_0")})
    if "head.pool_text.weight" in keys:
        part, keep, part_notes = _classifier_rules(arch, names, where)
    elif any(k.startswith("cmcl_") for k in keys):
        part, keep, part_notes = _cmcl_rules(arch, names, where)
    else:
        part, keep, part_notes = [], [], []
        dropped["pooled_fc_*"] = "the pooled [CLS] / [IMG] FCs, which this model does not have"
    rules, may_keep, notes = rules + part, may_keep + keep, notes + part_notes
    notes.append("word_embedding rows are in the order of the release's unimo_en.vocab.txt: set "
                 "Global.tokenizer_dir to a directory with unimo_en.encoder.json, unimo_en.vocab.bpe and "
                 "unimo_en.vocab.txt (BPETokenizer.from_unimo)")
    head = "a fine-tuning head this model has no place for"
    unsupported = {
        "cls_out_*": f"{head} (GLUE / SNLI-VE classifier on the pooled FCs, e.g. the MNLI checkpoints' "
                     "cls_out_3_*): convert into Arch UNIMOForClassification",
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


def text_init_mapping(kind, arch, source, model_keys, where="", position_start=None):
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
    has_lm = "mlm_head.bias" in set(model_keys)
    words = ("model.word_embed.weight", "mlm_head.word_embedding") if has_lm else ("model.word_embed.weight",)
    rules, notes = paddlenlp_embedding_rules(
        source, emb, words, "model.pos_embed.weight",
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
    may_keep = ["model.feature_fc.*", "model.location_fc.*", "model.region_norm.*", "cmcl_*", "head.*",
                *VISUAL_HEADS]
    if has_lm:
        rules += head
        dropped.update(head_dropped)
        if not head:
            may_keep.append("mlm_head.*")
            notes.append("no LM head in the checkpoint: the MLM head keeps its random initialisation")
    else:  # a classification model: the LM head has no place
        unsupported = {}
        dropped.update({p_: f"{base}'s LM head, which this model does not have"
                        for p_ in ("lm_head.*", "cls.predictions.*", "cls.seq_relationship.*")})
    notes.append("the region embedding (feature_fc, location_fc, region_norm) and the task / visual / CMCL "
                 "heads keep the config's initialisation")
    return Mapping(rules, dropped=dropped, unsupported=unsupported, may_keep_init=may_keep,
                   notes=notes + _init_config_notes(arch, kind))


# ------------------------------------------------------------------ drivers
def read_source(kind, path, ignore=()):
    if kind not in KINDS:
        raise ConversionError(f"unknown source kind {kind!r} (known: {', '.join(KINDS)})")
    if kind in HF_KINDS:
        return hf.read_as_paddle(path, HF_KINDS[kind][0])
    return read_static_checkpoint(path, ignore) if kind == "unimo-official" else read_state_file(path)


def _hf_sizes(arch):
    """The ``config.json`` sizes a Hugging Face BERT / RoBERTa must have."""
    return {**hf.encoder_sizes(arch.hidden_size, arch.num_layers, arch.num_heads),
            "vocab_size": ("Arch.vocab_size", arch.vocab_size),
            "max_position_embeddings": ("Arch.max_positions", arch.max_positions)}


def convert(kind, path, model, arch, ignore=(), position_start=None, source=None):
    """``(state, report)``: the tensors ``path`` provides for ``model`` (built
    from ``arch``). ``position_start``: the position id of the first token in
    the source's data (default: the source kind's own, see POSITION_START)."""
    if kind in HF_KINDS:  # read as the PaddleNLP layout, sizes checked by name
        model_type, paddle_kind = HF_KINDS[kind]
        source = hf.read_as_paddle(path, model_type, _hf_sizes(arch)) if source is None else source
        position_start = POSITION_START[kind] if position_start is None else position_start
        kind = paddle_kind
    source = read_source(kind, path, ignore) if source is None else source
    kept = {k: v for k, v in source.items() if not any(fnmatch.fnmatchcase(k, p) for p in ignore)}
    if kind == "unimo-official":
        start = POSITION_START[kind] if position_start is None else position_start
        mapping = official_mapping(arch, set(kept), model.state_dict().keys(), path, start)
    else:
        mapping = text_init_mapping(kind, arch, kept, model.state_dict().keys(), path, position_start)
    return apply_mapping(source, mapping, model.state_dict(), path, ignore)


# Every model on the UNIMO backbone: pre-training, classification and
# generation fine-tuning (the mappings follow the heads the model has).
ARCHS = ("UNIMO", "UNIMOForClassification", "UNIMOForSeq2Seq", "UNIMOForCaptioning")


def _register(kind, arch_name):
    @register_source(kind, arch_name)
    def _convert(path, model, arch, ignore=(), position_start=None):
        return convert(kind, path, model, arch, ignore, position_start)
    return _convert


for _kind in KINDS:
    for _arch in ARCHS:
        _register(_kind, _arch)
