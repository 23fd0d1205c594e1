"""Zero-shot image classification by prompts (UNIMO-2 Table 2, "ZS-ImageNet";
Section 4.2: labels become pseudo descriptions "a photo of [label]" and the
zero-shot image-to-text retrieval picks the label, as in CLIP).

``DataLoader.Eval: {name: ZeroShotClassification, path: val.jsonl}`` reads a
``labelled`` manifest (``{"id", "image", "label"}``); the classes are the
lines of ``labels_file`` (one label per line, in class-index order) or, by
default, the sorted distinct labels of the manifest. Scores are those of
zero-shot retrieval (``itm`` cross-encoder, ``itc`` dual encoder, or
``itm`` re-ranking the ITC top ``two_stage_k``). Metrics: top-1 / top-5
accuracy (percent); predictions (top-5 labels per image) are written beside
the metrics when ``predictions`` is set.
"""
import json
import os
from dataclasses import dataclass, field
from typing import List, Literal

import numpy as np
import paddle

from vlcore.formats.manifests import ManifestError, labelled_images
from vlcore.formats.records import RecordError
from vlcore.framework import dist
from vlcore.framework.registry import EVALUATOR
from vlcore.tasks import retrieval_eval
from vlcore.tasks.metrics import topk_accuracy

from .retrieval import UNIMO2Encoder, pair_scorer


@dataclass
class ZeroShotClassificationConfig:
    name: str = "ZeroShotClassification"
    path: str = ""                      # labelled manifest
    image_root: str = ""                # "" = the manifest's directory
    labels_file: str = ""               # one class label per line; "" = the manifest's labels, sorted
    labels: List[str] = field(default_factory=list)  # the classes inline (instead of labels_file)
    label_field: str = "label"          # where a record's class is: a dotted path, e.g. scene.0.shape
    other_labels: Literal["error", "skip"] = "error"  # an image of a class not listed: refuse, or leave it out
    prompt: str = "a photo of {label}"  # "{label}" is replaced by the class label
    score: Literal["itm", "itc"] = "itm"
    two_stage_k: int = 0                # itm re-ranks the ITC top-k labels of each image; 0 = all labels
    use_grounding: bool = True
    batch_size: int = 64
    max_images: int = 0                 # 0 = all
    topk: List[int] = field(default_factory=lambda: [1, 5])
    predictions: str = ""               # JSONL of top-5 predictions; "" = none
    max_text_len: int = 0
    image_mean: List[float] = field(default_factory=list)
    image_std: List[float] = field(default_factory=list)

    def __post_init__(self):
        if "{label}" not in self.prompt:
            raise ValueError(f"prompt {self.prompt!r} must contain {{label}}")
        if self.labels and self.labels_file:
            raise ValueError("give the classes as labels or as labels_file, not both")
        if self.two_stage_k and self.score != "itm":
            raise ValueError("two_stage_k re-ranks the ITC shortlist with score: itm")


def read_labels(path):
    with open(path, encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"{path}: repeated labels {dup[:5]}")
    if not labels:
        raise ValueError(f"{path}: no labels")
    return labels


class ZeroShotClassification:
    def __init__(self, cfg, ctx):
        self.cfg = cfg
        self.enc = UNIMO2Encoder(ctx, cfg.batch_size, cfg.max_text_len, cfg.image_mean, cfg.image_std)
        try:
            records = labelled_images(cfg.path, cfg.label_field, cfg.image_root, cfg.max_images,
                                      "DataLoader.Eval.label_field")
        except ManifestError as e:
            raise RecordError(str(e)) from None
        self.labels = (read_labels(cfg.labels_file) if cfg.labels_file else list(cfg.labels) if cfg.labels
                       else sorted({label for _, _, label, _ in records}))
        index = {label: k for k, label in enumerate(self.labels)}
        self.ids, self.images, self.targets, self.skipped = [], [], [], 0
        for rid, image, label, line in records:
            if label not in index:
                if cfg.other_labels == "skip":
                    self.skipped += 1
                    continue
                raise RecordError(f"{cfg.path}:{line}: label {label!r} is not one of the classes "
                                  f"({cfg.labels_file or 'DataLoader.Eval.labels'}); other_labels: skip leaves "
                                  f"such images out")
            self.ids.append(rid)
            self.images.append(image)
            self.targets.append(index[label])
        if not self.images:
            raise RecordError(f"{cfg.path}: no image of the classes {self.labels[:8]}")
        self.prompts = [cfg.prompt.replace("{label}", label) for label in self.labels]

    def __call__(self, model):
        cfg = self.cfg
        img = self.enc.images(model, self.images)
        txt, mask = self.enc.texts(model, self.prompts)
        n_img, n_cls = img.shape[0], len(self.labels)
        dual = None
        if cfg.score == "itc" or cfg.two_stage_k:
            dual = paddle.matmul(model.embed_image(img), model.embed_text(txt), transpose_y=True).numpy()
        if cfg.score == "itc":
            scores = dual
        else:
            scorer = pair_scorer(model, "itm", img, txt, mask, cfg.batch_size, cfg.use_grounding)
            if cfg.two_stage_k:
                shortlist, _ = retrieval_eval.shortlists(dual, cfg.two_stage_k)
                scores = retrieval_eval.rerank(retrieval_eval.score_pairs(shortlist, scorer), dual, shortlist)
            else:
                scores = retrieval_eval.score_pairs(np.ones([n_img, n_cls], bool), scorer)
        result = topk_accuracy(scores, self.targets, [k for k in cfg.topk if k <= n_cls])
        result.update(images=n_img, classes=n_cls, score=cfg.score, two_stage_k=cfg.two_stage_k,
                      prompt=cfg.prompt, skipped=self.skipped)
        if cfg.predictions and dist.is_main():
            self._write_predictions(scores)
        return result

    def _write_predictions(self, scores):
        os.makedirs(os.path.dirname(os.path.abspath(self.cfg.predictions)), exist_ok=True)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        with open(self.cfg.predictions, "w", encoding="utf-8") as f:
            for i, rid in enumerate(self.ids):
                f.write(json.dumps({"id": rid, "label": self.labels[self.targets[i]],
                                    "top5": [self.labels[j] for j in top[i]]}) + "\n")


@EVALUATOR.register("ZeroShotClassification", config=ZeroShotClassificationConfig)
def build_zeroshot_cls(cfg, ctx):
    if not os.path.isfile(cfg.path):
        raise FileNotFoundError(f"DataLoader.Eval.path: {cfg.path}: no such file")
    if cfg.labels_file and not os.path.isfile(cfg.labels_file):
        raise FileNotFoundError(f"DataLoader.Eval.labels_file: {cfg.labels_file}: no such file")
    return ZeroShotClassification(cfg, ctx)
