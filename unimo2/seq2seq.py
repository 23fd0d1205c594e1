"""UNIMO-2 image captioning (COCO Caption, UNIMO-2 Table 1):
``Arch: {name: UNIMO2ForCaptioning}``.

As in the official ``img2txt_oscar`` fine-tuning: the grounded tokens come
from the image alone (the caption is unknown at inference), the text encoder
runs causally over the caption, and the grounded transformer's
``seq2seq`` pattern lets caption tokens see the grounded tokens and the
caption so far (:func:`unimo2.grounded_transformer.grounded_attention_plan`;
without grounded tokens, the image itself). Decoding encodes
``[image; grounded]`` once and then feeds one token per beam through both
the text encoder and the grounded transformer against their key/value
caches. The LM head is pre-training's MLM head (tied word embeddings).

Data: ``DataLoader.Train: {name: Finetune, task: {name: UNIMO2Caption}}``
on a pairs manifest; evaluation ``DataLoader.Eval: {name: UNIMO2Captioning}``.
"""
import os
from dataclasses import dataclass, field
from typing import List

import numpy as np
import paddle
import paddle.nn as nn

from vlcore.data.finetune import FinetuneTask
from vlcore.data.images import ImageError, Preprocess
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
    target_arrays,
)
from vlcore.text.generation import beam_search, expand_beams

from .config import UNIMO2ArchConfig
from .grounded_transformer import seq2seq_step_plan
from .model import UNIMO2Model


class UNIMO2ForCaptioning(nn.Layer):
    def __init__(self, arch, loss=None):
        super().__init__()
        self.arch, self.loss_cfg = arch, loss if loss is not None else Seq2SeqLossConfig()
        self.model = UNIMO2Model(arch)
        self.mlm_head = MLMHead(arch.hidden_size, self.model.text.word_embed.weight, arch.text.layer_norm_eps,
                                arch.init_std)

    def caption_hidden(self, pixels, ids, mask):
        """Fused caption states ``[B, T, D]`` of a teacher-forced caption."""
        image = self.model.encode_image(pixels)
        grounding = self.model.ground(image)
        text = self.model.text(ids, mask, causal=True)
        return self.model.fuse(image, text, mask, grounding, attention="seq2seq").text

    def forward(self, batch):
        hidden = self.caption_hidden(batch["pixels"], batch["tgt_ids"], batch["tgt_mask"])
        return seq2seq_loss(hidden, self.mlm_head, batch, self.loss_cfg.label_smooth)

    def encode_context(self, pixels):
        """Encode ``[image; grounded]`` once; returns the decoding state
        (caches of both transformers, the grounded mask) and ``(m, k)``."""
        image = self.model.encode_image(pixels)
        grounding = self.model.ground(image)
        fusion_caches = [{} for _ in self.model.fusion.encoder.layers]
        tokens = grounding.tokens if grounding is not None else None
        gmask = grounding.token_mask if grounding is not None else None
        self.model.fusion(image, tokens, None, gmask, None, caches=fusion_caches)
        state = {"text": [{} for _ in self.model.text.encoder.layers], "fusion": fusion_caches}
        if gmask is not None:
            state["gmask"] = gmask.astype("bool")
        return state, image.shape[1], 0 if tokens is None else tokens.shape[1]

    def decode_step(self, ids, step, state, m, k):
        """Hidden state of caption token ``step`` (``ids [N, 1]``)."""
        h = self.model.text(ids, None, causal=True, caches=state["text"], start=step)
        plan = seq2seq_step_plan(m, k, step, ids.shape[0], state.get("gmask"))
        return self.model.fusion.encoder(h, plan, state["fusion"])

    def generate(self, context, gen_cfg, bos_id, eos_id, word_start=None):
        state, m, k = self.encode_context(context["pixels"])
        b = context["pixels"].shape[0]

        def step(ids, t, st):
            return self.mlm_head(self.decode_step(ids, t, st, m, k)[:, -1]), st

        return beam_search(step, expand_beams(state, gen_cfg.beam_size), b, bos_id, eos_id, gen_cfg, word_start)


@ARCH.register("UNIMO2ForCaptioning", config=UNIMO2ArchConfig,
               resolve=vocab_size_resolver("text.vocab_size"))
def build_captioning(cfg, loss=None):
    if loss is not None and not isinstance(loss, Seq2SeqLossConfig):
        raise ValueError(f"Arch UNIMO2ForCaptioning needs Loss: {{name: Seq2SeqFinetune}} (got {loss.name})")
    return UNIMO2ForCaptioning(cfg, loss)


# ---------------------------------------------------------------- inputs
class _Pixels:
    """Image paths of a pairs manifest -> normalised pixels at the ViT size."""

    def __init__(self, image_root, manifest_path, vit, mean, std):
        self.root = image_root or os.path.dirname(os.path.abspath(manifest_path))
        self.preprocess = Preprocess(vit.image_size, mean, std, vit.preprocess)

    def __call__(self, records):
        out = []
        for rec in records:
            rel = rec["image"]
            path = rel if os.path.isabs(rel) else os.path.join(self.root, rel)
            try:
                out.append(self.preprocess(path))
            except (ImageError, OSError) as e:
                raise RecordError(f"record {rec['id']!r}: {e}") from None
        return np.stack(out)


@dataclass
class UNIMO2CaptionTaskConfig:
    name: str = "UNIMO2Caption"
    image_root: str = ""           # "" = the manifest's directory
    max_tgt_len: int = 50          # caption tokens incl. [CLS] and [SEP] (official max_tgt_len)
    image_mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])

    def __post_init__(self):
        if self.max_tgt_len < 2:
            raise ValueError("max_tgt_len must be >= 2")


class UNIMO2CaptionTask(FinetuneTask):
    kind = "pairs"

    def __init__(self, cfg, ctx):
        self.cfg, self.tok = cfg, ctx.tokenizer
        self.pixels = _Pixels(cfg.image_root, ctx.cfg.DataLoader.Train.path, ctx.cfg.Arch.vit,
                              cfg.image_mean, cfg.image_std)

    def load(self, record, where, rng):  # one of the image's captions per visit
        caps = record["captions"]
        return {"record": record, "target": caps[int(rng.integers(len(caps)))]}

    def collate(self, samples, rngs, batch_seed):
        tok = self.tok
        batch = {"pixels": self.pixels([s["record"] for s in samples])}
        # the text encoder numbers positions itself (from 2, RoBERTa's offset)
        batch.update(target_arrays(tok.encode_batch([s["target"] for s in samples]), self.cfg.max_tgt_len,
                                   tok.cls_id, tok.sep_id, tok.pad_id, 2))
        return batch


@TASK.register("UNIMO2Caption", config=UNIMO2CaptionTaskConfig)
def build_caption_task(cfg, ctx):
    return UNIMO2CaptionTask(cfg, ctx)


@dataclass
class UNIMO2CaptioningEvalConfig(GenerationEvalConfig):
    name: str = "UNIMO2Captioning"
    image_root: str = ""           # "" = the manifest's directory
    image_mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])

    def __post_init__(self):
        super().__post_init__()
        if self.task != "caption":
            raise ValueError("UNIMO2Captioning evaluates captions (task: caption)")


class UNIMO2CaptioningEval(GenerationEvaluator):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.pixels = _Pixels(cfg.image_root, cfg.path, ctx.cfg.Arch.vit, cfg.image_mean, cfg.image_std)

    def context(self, records):
        return {"pixels": paddle.to_tensor(self.pixels(records))}


@EVALUATOR.register("UNIMO2Captioning", config=UNIMO2CaptioningEvalConfig)
def build_captioning_eval(cfg, ctx):
    return UNIMO2CaptioningEval(cfg, ctx)


@infer.register("caption", archs=("UNIMO2ForCaptioning",), help="caption an image (beam search)",
                arguments=generation_arguments)
def _infer_caption(model, ctx, args):
    if not args.image:
        raise ValueError("caption: needs --image FILE")
    ev = ctx.cfg.DataLoader.Eval
    mean, std = (ev.image_mean, ev.image_std) if isinstance(ev, UNIMO2CaptioningEvalConfig) else ([0.5] * 3, [0.5] * 3)
    pixels = _Pixels("", os.path.abspath(args.image), ctx.cfg.Arch.vit, mean, std)
    context = {"pixels": paddle.to_tensor(pixels([{"id": args.image, "image": os.path.abspath(args.image)}]))}
    return {"image": args.image, "captions": infer_generate(model, ctx, args, context)}
