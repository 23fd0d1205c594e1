"""UNIMO-2 image-text retrieval fine-tuning (Flickr30k, COCO), after the
official ``retrieval_grounded_fleet.py`` (PaddlePaddle/Research NLP/UNIMO-2):

- score of a pair = the ITM head's "match" logit on the grounded
  transformer's [CLS] outputs + ``contrastive_weight`` (official 0.3) x the
  contrastive score of the unimodal [CLS] features (our ITC projections):
  their cosine, or with ``Arch.itc_normalize_text: false`` the released
  code's normalize(image) . text (``get_cmcl_scores``);
- each positive caption comes with 10 random other images and 10 random
  captions of other images (``vlcore.data.retrieval``), circle loss
  (``vlcore.tasks.retrieval_losses``); ``hard_keep`` optionally narrows the
  sampled negatives to the hardest under the ITC similarity.

``Arch: {name: UNIMO2ForRetrieval}`` has exactly the pre-training model's
parameters, so ``Global.init_from`` a pre-training checkpoint loads them all.
"""
from dataclasses import dataclass, field
from typing import List

import paddle

from vlcore.data.retrieval import PairsIndex, RetrievalTask
from vlcore.framework.registry import TASK
from vlcore.tasks.retrieval_losses import keep_hardest, retrieval_loss

from .config import UNIMO2LossConfig
from .model import UNIMO2ForPretraining
from .retrieval import UNIMO2Encoder


class UNIMO2ForRetrieval(UNIMO2ForPretraining):
    def __init__(self, arch, loss):
        super().__init__(arch, UNIMO2LossConfig())
        self.retrieval_cfg = loss

    def contrastive_scores(self, image_feats, text_feats):
        """ITC score of aligned rows (cosine, or the official CMCL score)."""
        return (self.embed_image(image_feats) * self.embed_text(text_feats)).sum(-1)

    def match_scores(self, image_feats, text_feats, text_mask, use_grounding=True):
        """``[B]`` retrieval scores of aligned rows (unimodal features in)."""
        logits, _ = self.itm_logits(image_feats, text_feats, text_mask, use_grounding)
        score = logits[:, 1]
        w = self.retrieval_cfg.contrastive_weight
        if w:
            score = score + w * self.contrastive_scores(image_feats, text_feats)
        return score

    def forward(self, batch):
        cfg = self.retrieval_cfg
        image = self.model.encode_image(batch["pixels"])
        text = self.model.encode_text(batch["ids"], batch["mask"])
        row_image, row_text = batch["row_image"].numpy(), batch["row_text"].numpy()
        n_img = cfg.image_negatives
        if cfg.hard_keep:
            with paddle.no_grad():
                sim = paddle.matmul(self.embed_image(image), self.embed_text(text), transpose_y=True).numpy()
            row_image, row_text = keep_hardest(row_image, row_text, sim, n_img, cfg.hard_keep)
            n_img = cfg.hard_keep
        b, s = row_image.shape
        ri, rt = paddle.to_tensor(row_image.reshape(-1)), paddle.to_tensor(row_text.reshape(-1))
        scores = self.match_scores(paddle.gather(image, ri), paddle.gather(text, rt),
                                   paddle.gather(batch["mask"], rt)).reshape([b, s])
        loss, acc = retrieval_loss(scores, n_img, cfg)
        return {"loss": loss, "retrieval": loss, "retrieval_acc": acc}


@dataclass
class UNIMO2RetrievalTaskConfig:
    """``DataLoader.Train.task`` of retrieval fine-tuning on a pairs
    manifest (one record per image; each read picks one of its captions)."""
    name: str = "UNIMO2Retrieval"
    image_root: str = ""               # "" = the manifest's directory
    max_text_len: int = 64
    image_mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])


class UNIMO2RetrievalTask(RetrievalTask):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx, PairsIndex(ctx.cfg.DataLoader.Train.path, cfg.image_root))
        self.enc = UNIMO2Encoder(ctx, 0, cfg.max_text_len, cfg.image_mean, cfg.image_std)

    def inputs(self, images, texts):
        ids, mask = self.enc.token_ids(texts)
        return {"pixels": self.enc.pixels([self.index.images[i] for i in images]), "ids": ids, "mask": mask}


@TASK.register("UNIMO2Retrieval", config=UNIMO2RetrievalTaskConfig)
def build_task(cfg, ctx):
    return UNIMO2RetrievalTask(cfg, ctx)
