"""UNIMO classification fine-tuning on region features: VQA, SNLI-VE and
GLUE on the text path (tasks: :mod:`vlcore.tasks.classification`).

``Arch: {name: UNIMOForClassification}`` is the pre-trained UNIMO (its
``model.*`` weights load from a pre-training checkpoint through
``Global.init_from``) plus a :class:`~vlcore.layers.classifier.PooledClassifier`
on the [CLS] output of the text and the [IMG] output of the image, as in the
official fine-tuning (``get_pooled_text_output`` / ``get_pooled_visual_output``,
FC + ReLU each; SNLI-VE sums them: ``head: {fusion: sum, hidden: 2048}``).
Image + text tasks encode ``[IMG] regions [CLS] text [SEP]`` jointly; GLUE
encodes the text alone.

``DataLoader.Train: {name: Finetune, task: {name: UNIMOClassification, task:
snli_ve, features: <region store>, key: image_id}}``; evaluation:
``DataLoader.Eval: {name: Classification, path: ...}``.

``Arch.adversarial: {steps: K, ...}`` (K > 0) trains with the official
SNLI-VE recipe's VILLA-style PGD on the text embeddings and region features
(:mod:`unimo.adversarial`); evaluation is never perturbed.
"""
import contextlib
import os
from dataclasses import dataclass, field

import paddle.nn as nn

from vlcore.formats.records import RecordError
from vlcore.framework.registry import ARCH
from vlcore.framework.schema import vocab_size_resolver
from vlcore.layers.classifier import ClsHeadConfig, PooledClassifier, classification_loss
from vlcore.tasks.classification import ClassificationTask, ClsTaskConfig, register_task

from .adversarial import AdversarialConfig, adversarial_loss, init_delta
from .config import UNIMOArchConfig
from .data import get_regions, region_arrays
from .model import UNIMOModel


@dataclass
class UNIMOClsArchConfig(UNIMOArchConfig):
    name: str = "UNIMOForClassification"
    num_outputs: int = 0           # 0: the task's number of labels (set when the run starts)
    head: ClsHeadConfig = field(default_factory=ClsHeadConfig)
    # VILLA-style PGD on the embeddings while training (unimo.adversarial); steps 0: off
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


class UNIMOForClassification(nn.Layer):
    def __init__(self, arch: UNIMOClsArchConfig):
        super().__init__()
        if arch.num_outputs <= 0:
            raise ValueError("Arch.num_outputs is 0: it is set from the task's labels when training or "
                             "evaluating with a classification task (or set it in the config)")
        self.arch = arch
        self.model = UNIMOModel(arch)
        self.head = PooledClassifier(arch.hidden_size, arch.num_outputs, arch.head, arch.init_std,
                                     arch.layer_norm_eps)

    def logits(self, batch, text_delta=None, image_delta=None):
        """``text_delta [B, T, hidden]`` is added to the summed text embeddings
        before their LayerNorm, ``image_delta [B, R, feature_dim]`` to the
        region features (adversarial training)."""
        regions = None
        if "features" in batch:
            feats = batch["features"] if image_delta is None else batch["features"] + image_delta
            regions = (feats, batch["locations"], batch["region_mask"])
        text = (batch["ids"], batch["mask"]) if "ids" in batch else None
        with self._text_perturbed(text_delta):
            enc = self.model(regions=regions, text=text)
        text_cls = enc.text[:, 0] if text is not None else None
        # [IMG] (UNIMO); Unicoder-VL has no image token: its joint [CLS] carries the pair
        image_cls = enc.image[:, 0] if regions is not None and self.arch.image_token == "mean" else None
        return self.head(text_cls, image_cls)

    @contextlib.contextmanager
    def _text_perturbed(self, delta):
        # The word embedding's output is where the sum starts; adding there
        # equals adding to the sum before the LayerNorm, without touching UNIMOModel.
        if delta is None:
            yield
            return
        hook = self.model.word_embed.register_forward_post_hook(lambda layer, inputs, out: out + delta)
        try:
            yield
        finally:
            hook.remove()

    def forward(self, batch):
        def loss_fn(logits):
            return classification_loss(logits, batch["targets"], batch["loss_kind"])

        adv = self.arch.adversarial
        if self.training and adv.steps > 0:
            deltas, masks = {}, {}
            if adv.text and "ids" in batch:
                masks["text"] = batch["mask"]
                deltas["text"] = init_delta(batch["mask"], self.arch.hidden_size, adv)
            if adv.image and "features" in batch:
                masks["image"] = batch["region_mask"]
                deltas["image"] = init_delta(batch["region_mask"], batch["features"].shape[-1], adv)
            loss, info = adversarial_loss(lambda t, v: self.logits(batch, t, v), loss_fn, deltas, masks, adv)
            out = {"loss": loss, "clean_loss": info["clean_loss"]}
            out.update({k: v for k, v in info.items() if k.startswith("adv_")})
            acc = info["acc"]
        else:
            loss, acc = loss_fn(self.logits(batch))
            out = {"loss": loss}
        if acc is not None:
            out["acc"] = acc
        return out


@ARCH.register("UNIMOForClassification", config=UNIMOClsArchConfig,
               resolve=vocab_size_resolver("vocab_size"))
def build_model(cfg, loss=None):
    return UNIMOForClassification(cfg)


# ---------------------------------------------------------------- data
@dataclass
class UNIMOClsTaskConfig(ClsTaskConfig):
    name: str = "UNIMOClassification"
    features: str = ""             # region feature store (vlcore.formats.region_store)
    key: str = "image_id"          # record field naming the image in the store
    max_regions: int = 100


class UNIMOClsTask(ClassificationTask):
    """Region features looked up in the store by the record's ``key``."""

    def __init__(self, cfg, ctx, labels, with_targets=True):
        super().__init__(cfg, ctx, labels, with_targets)
        if self.spec.image:
            if not cfg.features or not os.path.isdir(cfg.features):
                raise FileNotFoundError(f"task features: {cfg.features!r}: no region feature store")
            if cfg.task == "image_cls":
                raise ValueError("image_cls is UNIMO-2's visual path; UNIMO classifies image-text pairs and text")
        arch = ctx.cfg.Arch
        self.feature_dim, self.location_dim = arch.feature_dim, arch.location_dim

    def load_image(self, record, where):
        if self.cfg.key not in record:
            raise RecordError(f"{where}: no {self.cfg.key!r} (task.key) to look the region features up by")
        return get_regions(self.cfg.features, str(record[self.cfg.key]), where)

    def collate_images(self, regions):
        feats, locs, mask = region_arrays(regions, self.cfg.max_regions, self.feature_dim, self.location_dim)
        return {"features": feats, "locations": locs, "region_mask": mask}


register_task("UNIMOClassification", UNIMOClsTaskConfig, UNIMOClsTask)
