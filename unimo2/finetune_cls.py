"""UNIMO-2 classification fine-tuning: VQA, SNLI-VE, GLUE on the text path
and image classification on the visual path (tasks: :mod:`vlcore.tasks.classification`).

``Arch: {name: UNIMO2ForClassification}`` is the pre-trained UNIMO-2 (its
``model.*`` weights load from a pre-training checkpoint through
``Global.init_from``; the pretraining ITM head's poolers seed the head's
poolers, as the official fine-tuning reuses ``grounded.pooled_fc_*``) plus a
:class:`~vlcore.layers.classifier.PooledClassifier` on the grounded
transformer's first text token and first image token:

- image + text (VQA, SNLI-VE): both streams through the grounded transformer;
- text only (GLUE): the text path, grounded tokens from the text;
- image only (image classification): the visual path, grounded tokens from
  the image.

``DataLoader.Train: {name: Finetune, task: {name: UNIMO2Classification,
task: vqa, image_root: ...}}`` reads pixels from ``image_root``;
``DataLoader.Eval: {name: Classification, path: ...}`` scores a split and
writes its predictions.
"""
import os
from dataclasses import dataclass, field
from typing import List, Literal

import numpy as np
import paddle.nn as nn

from vlcore.data.images import ImageError, Preprocess
from vlcore.formats.records import RecordError
from vlcore.framework.registry import ARCH
from vlcore.framework.schema import vocab_size_resolver
from vlcore.layers.classifier import ClsHeadConfig, PooledClassifier, classification_loss
from vlcore.tasks.classification import ClassificationTask, ClsTaskConfig, register_task

from .config import UNIMO2ArchConfig
from .model import UNIMO2Model


@dataclass
class UNIMO2ClsArchConfig(UNIMO2ArchConfig):
    name: str = "UNIMO2ForClassification"
    num_outputs: int = 0           # 0: the task's number of labels (set when the run starts)
    head: ClsHeadConfig = field(default_factory=ClsHeadConfig)
    # Image-only tasks: "fusion" = the visual path through the grounded
    # transformer (grounded tokens from the image); "vit" = the ViT's [CLS]
    # alone (plain ViT fine-tuning, cheaper; the fusion weights stay unused).
    visual_path: Literal["fusion", "vit"] = "fusion"


class UNIMO2ForClassification(nn.Layer):
    def __init__(self, arch: UNIMO2ClsArchConfig):
        super().__init__()
        if arch.num_outputs <= 0:
            raise ValueError("Arch.num_outputs is 0: it is set from the task's labels when training or "
                             "evaluating with a classification task (or set it in the config)")
        self.arch = arch
        self.model = UNIMO2Model(arch)
        self.head = PooledClassifier(arch.hidden_size, arch.num_outputs, arch.head, arch.init_std,
                                     arch.text.layer_norm_eps)

    def adapt_state_dict(self, state):
        """Pre-training checkpoints: ViT positions resized to this image
        size; the ITM head's poolers (the official pooled_fc_*) seed ours."""
        state = self.model.adapt_state_dict(state)
        for part in ("pool_text", "pool_image"):
            for p in ("weight", "bias"):
                src, dst = f"itm_head.{part}.{p}", f"head.{part}.{p}"
                if src in state and dst not in state:
                    state[dst] = state.pop(src)
        return state

    def logits(self, batch):
        pixels, ids = batch.get("pixels"), batch.get("ids")
        if ids is None and self.arch.visual_path == "vit":
            return self.head(None, self.model.encode_image(pixels)[:, 0])
        out, _ = self.model(pixels=pixels, ids=ids, mask=batch.get("mask"))
        text_cls = out.text[:, 0] if ids is not None else None
        image_cls = out.image[:, 0] if pixels is not None else None
        return self.head(text_cls, image_cls)

    def forward(self, batch):
        logits = self.logits(batch)
        loss, acc = classification_loss(logits, batch["targets"], batch["loss_kind"])
        return {"loss": loss, "acc": acc} if acc is not None else {"loss": loss}


@ARCH.register("UNIMO2ForClassification", config=UNIMO2ClsArchConfig,
               resolve=vocab_size_resolver("text.vocab_size"))
def build_model(cfg, loss=None):
    return UNIMO2ForClassification(cfg)


# ---------------------------------------------------------------- data
@dataclass
class UNIMO2ClsTaskConfig(ClsTaskConfig):
    name: str = "UNIMO2Classification"
    image_root: str = ""           # manifest image paths are relative to it ("" = as written)
    image_mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])


class UNIMO2ClsTask(ClassificationTask):
    """Pixels at the model's image size (``Arch.vit.image_size``)."""

    def __init__(self, cfg, ctx, labels, with_targets=True):
        super().__init__(cfg, ctx, labels, with_targets)
        vit = ctx.cfg.Arch.vit
        self.preprocess = Preprocess(vit.image_size, cfg.image_mean, cfg.image_std, vit.preprocess)

    def load_image(self, record, where):
        rel = record["image"]
        path = rel if os.path.isabs(rel) or not self.cfg.image_root else os.path.join(self.cfg.image_root, rel)
        try:
            return self.preprocess(path)
        except ImageError as e:
            raise RecordError(f"{where}: {e}") from None

    def collate_images(self, images):
        return {"pixels": np.stack(images)}


register_task("UNIMO2Classification", UNIMO2ClsTaskConfig, UNIMO2ClsTask)
