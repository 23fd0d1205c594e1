"""UNIMO generation fine-tuning: image captioning on region features
(``Arch: {name: UNIMOForCaptioning}``) and text seq2seq, CNN/DailyMail,
Gigaword, SQuAD question generation (``UNIMOForSeq2Seq``).

The input is the UniLM sequence of pre-training's seq2seq task: context
(``[IMG] regions`` for a caption; ``[CLS] source [SEP]`` for text) attended
bidirectionally, then the target attended causally (``UNIMOModel._plan``).
The LM head is pre-training's (``mask_lm_*`` in the official code), so a
pre-trained checkpoint (``Global.init_from``) supplies every weight.
Official captioning also feeds detected object tags as text (Oscar-style
``coco_object_0.35_tot.ids``): optional here (``tag_labels`` / ``tag_file``,
:mod:`unimo.object_tags`), giving the context ``[IMG] regions [CLS] tags [SEP]``.

Data: ``DataLoader.Train: {name: Finetune, task: {name: UNIMOCaption |
UNIMOSeq2Seq}}``; evaluation ``DataLoader.Eval: {name: UNIMOGeneration}``.
"""
import os
from dataclasses import dataclass

import paddle
import paddle.nn as nn

from vlcore.data.finetune import FinetuneTask
from vlcore.data.text import pad_ids
from vlcore.formats.records import RecordError
from vlcore.framework.registry import ARCH, EVALUATOR, TASK
from vlcore.framework.schema import vocab_size_resolver
from vlcore.layers.heads import MLMHead
from vlcore.tasks import infer
from vlcore.tasks.seq2seq import (
    GenerationEvalConfig,
    GenerationEvaluator,
    Seq2SeqLossConfig,
    generation_arguments,
    infer_generate,
    seq2seq_loss,
    special_id,
    target_arrays,
)

from .config import UNIMOArchConfig
from .data import get_regions, infer_features, region_arrays
from .generation import generate
from .model import UNIMOModel
from .object_tags import ObjectTags


class UNIMOForSeq2Seq(nn.Layer):
    """The backbone and its LM head (attribute names as in pre-training)."""

    def __init__(self, arch, loss=None):
        super().__init__()
        self.arch, self.loss_cfg = arch, loss if loss is not None else Seq2SeqLossConfig()
        self.model = UNIMOModel(arch)
        self.mlm_head = MLMHead(arch.hidden_size, self.model.word_embed.weight, arch.layer_norm_eps, arch.init_std)

    @staticmethod
    def _context(batch):
        regions = (batch["features"], batch["locations"], batch["region_mask"]) if "features" in batch else None
        text = None
        if "src_ids" in batch:  # source text, or a caption's object tags (positions from a tag file)
            text = (batch["src_ids"], batch["src_mask"]) + ((batch["src_pos"],) if "src_pos" in batch else ())
        return regions, text

    def forward(self, batch):
        regions, text = self._context(batch)
        enc = self.model(regions=regions, text=text, target=(batch["tgt_ids"], batch["tgt_mask"], batch["tgt_pos"]))
        return seq2seq_loss(enc.target, self.mlm_head, batch, self.loss_cfg.label_smooth)

    def generate(self, context, gen_cfg, bos_id, eos_id, word_start=None):
        regions, text = self._context(context)
        return generate(self.model, self.mlm_head, regions, text, gen_cfg, bos_id, eos_id, word_start=word_start)


def _build(cfg, loss=None):
    if loss is not None and not isinstance(loss, Seq2SeqLossConfig):
        raise ValueError(f"Arch {cfg.name} needs Loss: {{name: Seq2SeqFinetune}} (got {loss.name})")
    return UNIMOForSeq2Seq(cfg, loss)


for _name in ("UNIMOForCaptioning", "UNIMOForSeq2Seq"):
    ARCH.register(_name, config=UNIMOArchConfig, resolve=vocab_size_resolver("vocab_size"))(_build)


# ---------------------------------------------------------------- inputs
class _Inputs:
    """Record -> model inputs, shared by the training task and the evaluator
    (``cfg``: either's config; it has features, key, max_regions, max_src_len)."""

    def __init__(self, cfg, task, arch, tok, where=""):
        self.cfg, self.task, self.arch, self.tok = cfg, task, arch, tok
        self.tags = ObjectTags(cfg, tok, where) if task == "caption" and ObjectTags.enabled(cfg) else None

    def regions(self, records):
        # the store is opened per process (loader workers fork)
        keys = [str(rec[self.cfg.key]) for rec in records]
        regs = [get_regions(self.cfg.features, k, f"record {rec['id']!r}") for k, rec in zip(keys, records)]
        return self.image(keys, regs)

    def image(self, keys, regs):
        """Regions (and object tags, when configured) of images ``keys``."""
        feats, locs, mask = region_arrays(regs, self.cfg.max_regions, self.arch.feature_dim, self.arch.location_dim)
        out = {"features": feats, "locations": locs, "region_mask": mask}
        if self.tags is not None:
            out.update(self.tags.arrays(keys, regs))
        return out

    def source(self, texts):
        tok = self.tok
        ids = pad_ids([tok.build_input(t, self.cfg.max_src_len) for t in tok.encode_batch(texts)], tok.pad_id)
        return {"src_ids": ids, "src_mask": ids != tok.pad_id}

    def context(self, records):
        if self.task == "caption":
            return self.regions(records)
        return self.source([r["source"] for r in records])


def _tensors(d):
    return {k: paddle.to_tensor(v) for k, v in d.items()}


# ---------------------------------------------------------------- training
@dataclass
class UNIMOGenTaskConfig:
    """``DataLoader.Train.task`` of UNIMO captioning / text seq2seq."""
    name: str = "UNIMOCaption"
    features: str = ""             # captions: region feature store
    key: str = "id"                # captions: manifest field naming the image in the store
    max_regions: int = 100
    max_src_len: int = 512         # text: source tokens incl. [CLS]/[SEP]
    max_tgt_len: int = 50          # target tokens incl. [CLS] and the end token
    eos: str = ""                  # "" = the task's default ([SEP] captions, [MASK] text)
    # captions: object tags as text after the regions (unimo/object_tags.py); off when both are ""
    tag_labels: str = ""           # class-name file (VG objects_vocab.txt): tags from the store's obj_ids
    tag_file: str = ""             # or the official coco_object_0.35_tot.ids (image_id;ids;sent;pos)
    tag_threshold: float = 0.35    # a box's max-class score needed to give a tag
    max_tag_len: int = 100         # tag tokens incl. [CLS]/[SEP] (official max_obj_len)

    def __post_init__(self):
        if self.eos not in ("", "sep", "mask"):
            raise ValueError(f"eos must be 'sep' or 'mask', got {self.eos!r}")
        if self.max_tgt_len < 2:
            raise ValueError("max_tgt_len must be >= 2")
        _check_tags(self)


def _check_tags(cfg):
    if cfg.max_tag_len < 2:
        raise ValueError("max_tag_len must be >= 2")
    if not 0.0 <= cfg.tag_threshold <= 1.0:
        raise ValueError(f"tag_threshold must be in [0, 1], got {cfg.tag_threshold}")


class UNIMOGenTask(FinetuneTask):
    def __init__(self, cfg, ctx, task):
        self.cfg, self.task = cfg, task
        self.kind, self.required = ("pairs", ()) if task == "caption" else ("seq2seq", ("target",))
        self.tok = ctx.tokenizer
        self.inputs = _Inputs(cfg, task, ctx.cfg.Arch, ctx.tokenizer, "DataLoader.Train.task")
        self.eos_id = special_id(self.tok, cfg.eos or ("sep" if task == "caption" else "mask"))

    def load(self, record, where, rng):
        if self.task == "caption":  # one of the image's captions per visit
            caps = record["captions"]
            return {"record": record, "target": caps[int(rng.integers(len(caps)))]}
        if not record["target"].strip():
            raise RecordError(f"{where}: empty 'target'")
        return {"record": record, "target": record["target"]}

    def collate(self, samples, rngs, batch_seed):
        tok = self.tok
        batch = self.inputs.context([s["record"] for s in samples])
        batch.update(target_arrays(tok.encode_batch([s["target"] for s in samples]), self.cfg.max_tgt_len,
                                   tok.cls_id, self.eos_id, tok.pad_id, self.inputs.arch.position_offset))
        return batch


def _check_store(cfg, where):
    if not os.path.isdir(cfg.features):
        raise FileNotFoundError(f"{where}.features: {cfg.features!r}: no region feature store")
    for name in ("tag_labels", "tag_file"):  # before the model is built
        path = getattr(cfg, name)
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{where}.{name}: {path!r}: no such file")


# The store is checked before the tokenizer and the model are built (a base
# model takes a while), and again when the task is built.
@TASK.register("UNIMOCaption", config=UNIMOGenTaskConfig,
               prepare=lambda cfg, data_cfg, ctx: _check_store(cfg, "DataLoader.Train.task"))
def build_caption_task(cfg, ctx):
    _check_store(cfg, "DataLoader.Train.task")
    return UNIMOGenTask(cfg, ctx, "caption")


@TASK.register("UNIMOSeq2Seq", config=UNIMOGenTaskConfig)
def build_text_task(cfg, ctx):
    return UNIMOGenTask(cfg, ctx, "text")


# ---------------------------------------------------------------- evaluation
@dataclass
class UNIMOGenerationEvalConfig(GenerationEvalConfig):
    name: str = "UNIMOGeneration"
    features: str = ""             # captions: region feature store
    key: str = "id"
    max_regions: int = 100
    tag_labels: str = ""           # object tags: as UNIMOGenTaskConfig
    tag_file: str = ""
    tag_threshold: float = 0.35
    max_tag_len: int = 100

    def __post_init__(self):
        super().__post_init__()
        _check_tags(self)


class UNIMOGenerationEval(GenerationEvaluator):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.inputs = _Inputs(cfg, cfg.task, ctx.cfg.Arch, ctx.tokenizer, "DataLoader.Eval")

    def context(self, records):
        return _tensors(self.inputs.context(records))


@EVALUATOR.register("UNIMOGeneration", config=UNIMOGenerationEvalConfig)
def build_generation_eval(cfg, ctx):
    if cfg.task == "caption":
        _check_store(cfg, "DataLoader.Eval")
    return UNIMOGenerationEval(cfg, ctx)


# ---------------------------------------------------------------- tools/infer.py
@infer.register("caption", archs=("UNIMOForCaptioning",), help="caption an image (beam search)",
                arguments=generation_arguments)
def _infer_caption(model, ctx, args):
    cfg = ctx.cfg
    if not args.image:
        raise ValueError("caption: needs --image KEY")
    regions = get_regions(infer_features(args, cfg, "caption"), args.image, error=ValueError)
    ev = cfg.DataLoader.Eval
    if getattr(ev, "name", "") == "UNIMOGeneration":  # its max_regions and object tags
        context = _tensors(_Inputs(ev, "caption", cfg.Arch, ctx.tokenizer, "DataLoader.Eval").image(
            [args.image], [regions]))
    else:
        arch = cfg.Arch
        feats, locs, mask = region_arrays([regions], getattr(ev, "max_regions", 100), arch.feature_dim,
                                          arch.location_dim)
        context = _tensors({"features": feats, "locations": locs, "region_mask": mask})
    return {"image": args.image, "captions": infer_generate(model, ctx, args, context)}


@infer.register("generate", archs=("UNIMOForSeq2Seq",), help="generate a target for a source text (beam search)",
                arguments=generation_arguments)
def _infer_text(model, ctx, args):
    if not args.source:
        raise ValueError("generate: needs --source TEXT")
    max_src = getattr(ctx.cfg.DataLoader.Eval, "max_src_len", 512)
    tok = ctx.tokenizer
    ids = pad_ids([tok.build_input(tok.encode(args.source), max_src)], tok.pad_id)
    context = _tensors({"src_ids": ids, "src_mask": ids != tok.pad_id})
    return {"source": args.source, "outputs": infer_generate(model, ctx, args, context)}
