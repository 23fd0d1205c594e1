"""Pretrained weights into UNIMO-2: the official checkpoints, RoBERTa, ViT.

Three sources, each a name map onto :class:`unimo2.model.UNIMO2ForPretraining`
(rules and strict checks: :mod:`vlcore.convert`):

- ``unimo2-official``: the released UNIMO-2 static-graph checkpoint directory
  (PaddlePaddle/Research NLP/UNIMO-2, ``src/model/unimo_grounded.py``):
  ``text.*`` (post-LN text encoder), ``vit.*`` (pre-LN ViT, NHWC patch conv
  padded by (P-1)//2, LayerNorm epsilon 1e-12), ``grounded.*`` (grounded
  transformer, MLM and ITM heads), ``vq_emb``, ``topk_temperature``,
  ``cmcl_temperature``. The converted model computes what the official one
  does only under a config that says so (``configs/unimo2_official_base.yaml``);
  a config that does not is refused, naming the keys.
- ``roberta-paddlenlp``: RoBERTa in paddlenlp's ``.pdparams`` layout into the
  text encoder *and* the grounded transformer (UNIMO-2 Section 4: both are
  initialised from RoBERTa-base), plus its LM head into the MLM head.
- ``vit-paddleclas``: ViT in PaddleClas's ``.pdparams`` layout (fused qkv)
  into the visual encoder.
- ``roberta-hf`` / ``vit-hf``: the same models as Hugging Face directories
  (``config.json`` + ``model.safetensors``; ``FacebookAI/roberta-base``,
  ``google/vit-base-patch16-224-in21k`` / ``-224``), renamed into the Paddle
  layouts (:mod:`vlcore.convert.hf`) and mapped as above; ``config.json``'s
  sizes must be the Arch's (refused by name otherwise). The ViT's
  ``pooler`` (in21k) and ``classifier`` (``-224``) are dropped and named.

The word-embedding rows of the official checkpoint are in ``vocab.txt`` id
order, the order :meth:`vlcore.text.tokenizer.BPETokenizer.from_unimo` produces,
so they are copied without any remapping. A ``unimo-official`` mapping for
UNIMO (v1) belongs beside the UNIMO model, built on the same helpers.
"""
import fnmatch
import re

import numpy as np

from vlcore.convert import (
    ConversionError,
    Mapping,
    Rule,
    apply_mapping,
    constant,
    hf,
    identity_layer_norm_rules,
    layer_ids,
    layer_norm_rules,
    linear_rules,
    official_encoder_rules,
    paddlenlp_embedding_rules,
    paddlenlp_layer_rules,
    paddlenlp_lm_head_rules,
    paddlenlp_prefix,
    read_state_file,
    read_static_checkpoint,
    register_source,
    shift_positions,
    split,
)

KINDS = ("unimo2-official", "roberta-paddlenlp", "vit-paddleclas", "roberta-hf", "vit-hf")
# Hugging Face directories are read as the Paddle layout of the same model.
HF_KINDS = {"roberta-hf": ("roberta", "roberta-paddlenlp"), "vit-hf": ("vit", "vit-paddleclas")}
TEXT_POSITION_START = 2  # the text encoder's first position id (RoBERTa/fairseq convention)

# ------------------------------------------------------------ unimo2-official
def _official_config_problems(arch):
    """What in ``arch`` would make the converted model compute something
    other than the official one (the weights cannot tell)."""
    v, t, f = arch.vit, arch.text, arch.fusion
    want = [("Arch.vit.patch_padding", v.patch_padding, (v.patch_size - 1) // 2),
            ("Arch.vit.layer_norm_eps", v.layer_norm_eps, 1e-12),
            ("Arch.text.layer_norm_eps", t.layer_norm_eps, 1e-5),
            ("Arch.fusion.layer_norm_eps", f.layer_norm_eps, 1e-5),
            ("Arch.vit.act", v.act, "gelu"), ("Arch.text.act", t.act, "gelu"), ("Arch.fusion.act", f.act, "gelu")]
    problems = [f"{key}={have} (official: {official})" for key, have, official in want if have != official]
    if arch.itm_fusion == "concat":
        problems.append("Arch.itm_fusion=concat (official: mul, the released config's fusion_method)")
    return problems


def official_mapping(arch, names, where="", text_position_start=TEXT_POSITION_START):
    """Rules for the official UNIMO-2 checkpoint onto a model built from ``arch``."""
    problems = _official_config_problems(arch)
    if problems:
        raise ConversionError(f"{where}: the config does not describe the official UNIMO-2: "
                              f"{'; '.join(problems)} (see configs/unimo2_official_base.yaml)")
    d = arch.hidden_size
    rules, notes = [], []
    # Text encoder (post-LN). The official position ids come from the data
    # files; ours start at TEXT_POSITION_START, so the table is rolled if
    # the official data started elsewhere.
    shift = TEXT_POSITION_START - text_position_start
    rules += [Rule("model.text.word_embed.weight", ("text.word_embedding",)),
              Rule("mlm_head.word_embedding", ("text.word_embedding",)),  # the tied decoder (same tensor)
              Rule("model.text.pos_embed.weight", ("text.pos_embedding",),
                   shift_positions(text_position_start, TEXT_POSITION_START))]
    if shift:
        notes.append(f"text.pos_embedding rolled by {shift} rows: official position id "
                     f"{text_position_start} + i is our {TEXT_POSITION_START} + i")
    rules += layer_norm_rules("text.pre_encoder_layer_norm_scale", "text.pre_encoder_layer_norm_bias",
                              "model.text.norm")
    # The official encoders run the layers listed by text_enc_layers /
    # grounding_enc_layers (all of them in the released configs), in order.
    for part, src, dst, n_cfg in (("text", "text.encoder_layer_", "model.text.encoder", arch.text.num_layers),
                                  ("fusion", "grounded.encoder_layer_", "model.fusion.encoder",
                                   arch.fusion.num_layers),
                                  ("vit", "vit.encoder_layer_", "model.vit.encoder", arch.vit.num_layers)):
        rules += official_encoder_rules(names, src, dst, n_cfg, f"Arch.{part}.num_layers", where,
                                        pre_norm=part == "vit")
    # ViT: the conv filter of an NHWC static conv2d is still [out, in, kh, kw],
    # the layout of our NCHW Conv2D; only the input layout differs.
    rules += [Rule("model.vit.patch_embed.weight", ("vit.patch_embeddings_projection_weight",)),
              Rule("model.vit.patch_embed.bias", ("vit.patch_embeddings_projection_bias",)),
              Rule("model.vit.cls_token", ("vit.cls_token_embeddings",)),
              Rule("model.vit.pos_embed", ("vit.position_embeddings",))]
    rules += layer_norm_rules("vit.post_encoder_layer_norm_scale", "vit.post_encoder_layer_norm_bias",
                         "model.vit.encoder.final_norm")
    # Grounded dictionary and the grounded transformer's input LayerNorm.
    rules += [Rule("model.grounding.embedding", ("vq_emb",)),
              Rule("model.grounding.temperature", ("topk_temperature",))]
    rules += layer_norm_rules("grounded.pre_encoder_layer_norm_scale", "grounded.pre_encoder_layer_norm_bias",
                         "model.fusion.grounded_norm")
    # Heads: MLM (decoder tied to text.word_embedding), ITM, ITC.
    rules += linear_rules("grounded.mask_lm_trans_fc.w_0", "grounded.mask_lm_trans_fc.b_0", "mlm_head.transform")
    rules += layer_norm_rules("grounded.mask_lm_trans_layer_norm_scale", "grounded.mask_lm_trans_layer_norm_bias",
                         "mlm_head.norm")
    rules.append(Rule("mlm_head.bias", ("grounded.mask_lm_out_fc.b_0",)))
    rules += linear_rules("grounded.pooled_fc_text.w_0", "grounded.pooled_fc_text.b_0", "itm_head.pool_text")
    rules += linear_rules("grounded.pooled_fc_image.w_0", "grounded.pooled_fc_image.b_0", "itm_head.pool_image")
    rules += linear_rules("grounded.img_text_matching_fc.w_0", "grounded.img_text_matching_fc.b_0",
                     "itm_head.classifier")
    rules.append(Rule("itc_temperature", ("cmcl_temperature",)))
    may_keep = ["vcl_proj.*"]  # the released code has no VCL projection head
    if any(n.startswith("grounded.cmcl_pooled_fc_") for n in names):
        if arch.proj_dim != d or arch.itc_proj_act != "relu" or not arch.itc_normalize_text:
            # With projections the released get_cmcl_scores normalises both sides.
            raise ConversionError(f"{where}: the checkpoint has the ITC projections grounded.cmcl_pooled_fc_* "
                                  f"(ReLU FC {d}->{d}, both sides normalised): set Arch.proj_dim={d}, "
                                  "Arch.itc_proj_act=relu and Arch.itc_normalize_text=true")
        rules += linear_rules("grounded.cmcl_pooled_fc_text.w_0", "grounded.cmcl_pooled_fc_text.b_0",
                         "itc_text_proj.mlp.0")
        rules += linear_rules("grounded.cmcl_pooled_fc_image.w_0", "grounded.cmcl_pooled_fc_image.b_0",
                         "itc_image_proj.mlp.0")
    elif arch.proj_dim == d and arch.itc_proj_act == "none":
        # Without projections the official score is normalize(image [CLS]) .
        # text [CLS]: identity projections, and the text side unnormalised
        # when Arch.itc_normalize_text is false (configs/unimo2_official_base.yaml).
        for side in ("itc_text_proj", "itc_image_proj"):
            rules += [Rule(f"{side}.mlp.0.weight", (), constant(np.eye(d))),
                      Rule(f"{side}.mlp.0.bias", (), constant(np.zeros(d)))]
        notes.append("no grounded.cmcl_pooled_fc_*: ITC projections set to the identity "
                     "(official score: normalised image [CLS] . unnormalised text [CLS]" +
                     ("" if not arch.itc_normalize_text else
                      "; Arch.itc_normalize_text=true computes the cosine instead") + ")")
    else:
        may_keep.append("itc_*_proj.*")
        notes.append(f"no grounded.cmcl_pooled_fc_* and Arch.proj_dim={arch.proj_dim}: the ITC projections "
                     "keep their random initialisation")
    notes.append("not in the weights, set by the config: top_k (official topk_value=100), "
                 "exclude_padding (official: padding votes, i.e. false), itm_fusion (official: mul)")
    unsupported = {
        "grounded.grounding_*_projection.*": "ReLU projection + L2-normalisation of patches/tokens before "
                                             "grounding or a shared ITC projection (with_grounding_projection / "
                                             "cmcl_share_parameters), which this model does not have",
        "grounded.mask_g_*": "masked grounded-token prediction head (with_grounding_mask)",
        "grounded.mask_lm_out_fc.w_0": "an untied MLM decoder (weight_sharing=False); ours is tied to "
                                       "text.word_embedding",
    }
    return Mapping(rules, unsupported=unsupported, may_keep_init=may_keep, notes=notes)


# --------------------------------------------------------- roberta-paddlenlp
def roberta_mapping(arch, source, where="", text_position_start=TEXT_POSITION_START):
    """paddlenlp RoBERTa onto the text encoder and the grounded transformer.
    RoBERTa-base counts positions from padding_idx + 1 = 2 like our text
    encoder; ``text_position_start=0`` is for BERT-style checkpoints."""
    names = set(source)
    p = paddlenlp_prefix(names, "roberta")
    emb = f"{p}embeddings."
    ids = layer_ids(names, re.escape(f"{p}encoder.layers.") + r"(\d+)\.")
    for part, n_cfg in (("text", arch.text.num_layers), ("fusion", arch.fusion.num_layers)):
        if ids and len(ids) != n_cfg:
            raise ConversionError(f"{where}: RoBERTa has {len(ids)} layers but Arch.{part}.num_layers={n_cfg}")
    d = arch.hidden_size
    rules, notes = paddlenlp_embedding_rules(
        source, emb, ("model.text.word_embed.weight", "mlm_head.word_embedding"), "model.text.pos_embed.weight",
        "model.text.norm", text_position_start, TEXT_POSITION_START)
    for i in ids:
        for dst in (f"model.text.encoder.layers.{i}", f"model.fusion.encoder.layers.{i}"):
            rules += paddlenlp_layer_rules(f"{p}encoder.layers.{i}.", dst)
    # RoBERTa has nothing in the place of the LayerNorm on the grounded
    # tokens; it starts as the identity (LayerNorm's own initialisation).
    rules += identity_layer_norm_rules("model.fusion.grounded_norm", d)
    dropped = {f"{p}pooler.*": "RoBERTa's tanh pooler; UNIMO-2's ITM head pools with its own FCs",
               f"{emb}position_ids": "a constant index buffer"}
    may_keep = ["model.vit.*", "model.grounding.*", "itm_head.*", "itc_*", "vcl_proj.*"]
    head, head_dropped, unsupported = paddlenlp_lm_head_rules(source, f"{emb}word_embeddings.weight", "mlm_head",
                                                              where)
    rules += head
    dropped.update(head_dropped)
    if not head:
        may_keep.append("mlm_head.*")
        notes.append("no lm_head.*: the MLM head keeps its random initialisation")
    notes.append("model.fusion.grounded_norm set to the identity (RoBERTa has no counterpart)")
    return Mapping(rules, dropped=dropped, unsupported=unsupported, may_keep_init=may_keep,
                   notes=notes + _init_config_notes(arch, "roberta"))


# ------------------------------------------------------------ vit-paddleclas
def vit_mapping(arch, source, where=""):
    """PaddleClas ``VisionTransformer`` onto the visual encoder. Its attention
    has one fused ``qkv`` Linear [D, 3D] whose output columns are q | k | v
    (it reshapes the output to [B, N, 3, heads, head_dim])."""
    names = set(source)
    ids = layer_ids(names, r"blocks\.(\d+)\.")
    if len(ids) != arch.vit.num_layers:
        raise ConversionError(f"{where}: the ViT has {len(ids)} blocks but Arch.vit.num_layers={arch.vit.num_layers}")
    d = arch.hidden_size
    rules = [Rule("model.vit.patch_embed.weight", ("patch_embed.proj.weight",)),
             Rule("model.vit.patch_embed.bias", ("patch_embed.proj.bias",)),
             Rule("model.vit.cls_token", ("cls_token",)),
             Rule("model.vit.pos_embed", ("pos_embed",))]
    notes = []
    for i in ids:
        src, dst = f"blocks.{i}.", f"model.vit.encoder.layers.{i}"
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            rules.append(Rule(f"{dst}.attn.{proj}.weight", (f"{src}attn.qkv.weight",), split(j, 3, axis=1)))
            if f"{src}attn.qkv.bias" in names:
                rules.append(Rule(f"{dst}.attn.{proj}.bias", (f"{src}attn.qkv.bias",), split(j, 3, axis=0)))
            else:  # qkv_bias=False models
                rules.append(Rule(f"{dst}.attn.{proj}.bias", (), constant(np.zeros(d))))
        rules += linear_rules(f"{src}attn.proj.weight", f"{src}attn.proj.bias", f"{dst}.attn.out_proj")
        rules += linear_rules(f"{src}mlp.fc1.weight", f"{src}mlp.fc1.bias", f"{dst}.ffn.fc1")
        rules += linear_rules(f"{src}mlp.fc2.weight", f"{src}mlp.fc2.bias", f"{dst}.ffn.fc2")
        rules += layer_norm_rules(f"{src}norm1.weight", f"{src}norm1.bias", f"{dst}.norm1")
        rules += layer_norm_rules(f"{src}norm2.weight", f"{src}norm2.bias", f"{dst}.norm2")
    rules += layer_norm_rules("norm.weight", "norm.bias", "model.vit.encoder.final_norm")
    if "blocks.0.attn.qkv.bias" not in names:
        notes.append("no qkv biases in the checkpoint (qkv_bias=False): q/k/v biases set to zero")
    may_keep = [k for k in ("model.text.*", "model.grounding.*", "model.fusion.*", "mlm_head.*", "itm_head.*",
                            "itc_*", "vcl_proj.*")]
    dropped = {"head.*": "the ImageNet classifier",
               "pooler.*": "the in21k checkpoints' tanh pooler; UNIMO-2 pools [CLS] with its own heads"}
    return Mapping(rules, dropped=dropped, may_keep_init=may_keep,
                   notes=notes + _init_config_notes(arch, "vit"))


def _init_config_notes(arch, which):
    """Initialisation sources do not dictate the config (the official UNIMO-2
    pads the patch conv of an initialisation trained without padding), but
    differences are worth a line in the log."""
    if which == "vit":
        want = [("Arch.vit.patch_padding", arch.vit.patch_padding, 0),
                ("Arch.vit.layer_norm_eps", arch.vit.layer_norm_eps, 1e-6), ("Arch.vit.act", arch.vit.act, "gelu")]
        src = "PaddleClas ViT-B/16"
    else:
        want = [("Arch.text.layer_norm_eps", arch.text.layer_norm_eps, 1e-5),
                ("Arch.fusion.layer_norm_eps", arch.fusion.layer_norm_eps, 1e-5),
                ("Arch.text.act", arch.text.act, "gelu"), ("Arch.fusion.act", arch.fusion.act, "gelu")]
        src = "RoBERTa-base"
    return [f"note: {key}={have}, {src} was trained with {theirs}" for key, have, theirs in want if have != theirs]


# ------------------------------------------------------------------ drivers
def read_source(kind, path, ignore=()):
    if kind not in KINDS:
        raise ConversionError(f"unknown source kind {kind!r} (known: {', '.join(KINDS)})")
    if kind in HF_KINDS:
        return hf.read_as_paddle(path, HF_KINDS[kind][0])
    return read_static_checkpoint(path, ignore) if kind == "unimo2-official" else read_state_file(path)


def _hf_sizes(kind, arch):
    """The ``config.json`` sizes a Hugging Face RoBERTa or ViT must have."""
    d, t, v = arch.hidden_size, arch.text, arch.vit
    if kind == "roberta-hf":
        return {**hf.encoder_sizes(d, t.num_layers, t.num_heads, "Arch.text."),
                "vocab_size": ("Arch.text.vocab_size", t.vocab_size),
                "max_position_embeddings": ("Arch.text.max_positions", t.max_positions)}
    return {**hf.encoder_sizes(d, v.num_layers, v.num_heads, "Arch.vit."),
            "patch_size": ("Arch.vit.patch_size", v.patch_size), "num_channels": ("3 (RGB)", 3)}


def convert(kind, path, model, arch, ignore=(), text_position_start=TEXT_POSITION_START, source=None):
    """``(state, report)``: the tensors ``path`` provides for ``model`` (built
    from ``arch``), already resized to the model's image grid."""
    if kind in HF_KINDS:  # read as the Paddle layout, sizes checked by name
        model_type, paddle_kind = HF_KINDS[kind]
        source = hf.read_as_paddle(path, model_type, _hf_sizes(kind, arch)) if source is None else source
        kind = paddle_kind
    source = read_source(kind, path, ignore) if source is None else source
    kept = {k: v for k, v in source.items() if not any(fnmatch.fnmatchcase(k, p) for p in ignore)}
    if kind == "unimo2-official":
        mapping = official_mapping(arch, set(kept), path, text_position_start)
    elif kind == "roberta-paddlenlp":
        mapping = roberta_mapping(arch, kept, path, text_position_start)
    else:
        mapping = vit_mapping(arch, kept, path)
    return apply_mapping(source, mapping, model.state_dict(), path, ignore, adapt=model.adapt_state_dict)


def _register(kind):
    @register_source(kind, "UNIMO2")
    def _convert(path, model, arch, ignore=(), position_start=None):
        return convert(kind, path, model, arch, ignore,
                       TEXT_POSITION_START if position_start is None else position_start)
    return _convert


for _kind in KINDS:
    _register(_kind)
