"""UNIMO and Unicoder-VL image-text retrieval fine-tuning on region features.

Every (image, caption) row is one joint encoding; its score comes from
``Loss.match_head``:

- ``pooled`` (UNIMO, official ``NLP/UNIMO/src/finetune/retrieval.py``): the
  [IMG] and [CLS] outputs, each through a ReLU FC, multiplied, one linear
  score (``match_fc``), plus ``contrastive_weight`` x the CMCL cosine of the
  separately encoded image and caption (official UNIMO: 0);
- ``vlm`` (Unicoder-VL Eq. 2, ``s(x, y) = W_o O_[CLS] + b_o``): the
  pre-trained visual-linguistic matching head's logit margin on [CLS] -- a
  linear function of O_[CLS], so no new parameters.

Loss and negatives: :mod:`vlcore.tasks.retrieval_losses` (circle loss for UNIMO,
hardest-negative triplet for Unicoder-VL) and :mod:`vlcore.data.retrieval`.
"""
import os
from dataclasses import dataclass

import paddle

from vlcore.data.retrieval import PairsIndex, RetrievalTask
from vlcore.data.text import pad_ids
from vlcore.framework.registry import TASK
from vlcore.layers.heads import MatchHead
from vlcore.tasks.retrieval_losses import keep_hardest, retrieval_loss

from .config import UNIMOLossConfig
from .data import get_regions, region_arrays
from .pretrain import UNIMOForPretraining


class UNIMOForRetrieval(UNIMOForPretraining):
    def __init__(self, arch, loss):
        super().__init__(arch, UNIMOLossConfig())
        self.retrieval_cfg = loss
        if loss.match_head == "pooled":
            self.match_head = MatchHead(arch.hidden_size, "mul", arch.attn_dropout, arch.init_std, num_outputs=1)

    def adapt_state_dict(self, state):
        """Starting from pre-trained weights without a matching head: the
        official fine-tuning builds its pooled FCs on the pre-trained
        ``pooled_fc_text`` / ``pooled_fc_image`` (our per-modality CMCL
        projections, ``Arch.cmcl_proj: separate_relu``), so the head's
        pooling starts from them when the shapes agree (``match_fc`` itself
        is new)."""
        if self.retrieval_cfg.match_head != "pooled" or any(k.startswith("match_head.") for k in state):
            return state
        own = self.state_dict()
        for side in ("text", "image"):
            for p in ("weight", "bias"):
                src, dst = f"cmcl_{side}_proj.mlp.0.{p}", f"match_head.pool_{side}.{p}"
                if src in state and list(state[src].shape) == list(own[dst].shape):
                    state[dst] = state[src]
        return state

    def match_scores(self, features, locations, region_mask, ids, mask):
        """``[B]`` retrieval scores of aligned rows (one joint encoding each)."""
        cfg = self.retrieval_cfg
        enc = self.model(regions=(features, locations, region_mask), text=(ids, mask))
        if cfg.match_head == "vlm":
            logits = self.vlm_head(self._text_cls(enc))
            score = logits[:, 1] - logits[:, 0]
        else:
            score = self.match_head(self._text_cls(enc), self._image_cls(enc))[:, 0]
        if cfg.contrastive_weight:
            cos = (self.embed_image(features, locations, region_mask) * self.embed_text(ids, mask)).sum(-1)
            score = score + cfg.contrastive_weight * cos
        return score

    def forward(self, batch):
        cfg = self.retrieval_cfg
        feats, locs, rmask = batch["features"], batch["locations"], batch["region_mask"]
        ids, mask = batch["ids"], batch["mask"]
        row_image, row_text = batch["row_image"].numpy(), batch["row_text"].numpy()
        n_img = cfg.image_negatives
        if cfg.hard_keep:
            with paddle.no_grad():
                sim = paddle.matmul(self.embed_image(feats, locs, rmask), self.embed_text(ids, mask),
                                    transpose_y=True).numpy()
            row_image, row_text = keep_hardest(row_image, row_text, sim, n_img, cfg.hard_keep)
            n_img = cfg.hard_keep
        b, s = row_image.shape
        ri, rt = paddle.to_tensor(row_image.reshape(-1)), paddle.to_tensor(row_text.reshape(-1))
        g = paddle.gather
        scores = self.match_scores(g(feats, ri), g(locs, ri), g(rmask, ri), g(ids, rt), g(mask, rt)).reshape([b, s])
        loss, acc = retrieval_loss(scores, n_img, cfg)
        return {"loss": loss, "retrieval": loss, "retrieval_acc": acc}


@dataclass
class UNIMORetrievalTaskConfig:
    """``DataLoader.Train.task`` of UNIMO / Unicoder-VL retrieval
    fine-tuning: a pairs manifest whose images are looked up by ``key`` in
    the region store ``features``."""
    name: str = "UNIMORetrieval"
    features: str = ""
    key: str = "id"
    max_text_len: int = 64
    max_regions: int = 100

    def __post_init__(self):
        if not self.features:
            raise ValueError("features (a region feature store) is required")


class UNIMORetrievalTask(RetrievalTask):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx, PairsIndex(ctx.cfg.DataLoader.Train.path, key=cfg.key))
        self.arch, self.tok = ctx.cfg.Arch, ctx.tokenizer

    def inputs(self, images, texts):
        # the store is opened per process: in the loader worker
        regs = [get_regions(self.cfg.features, self.index.keys[i], f"{self.index.path}:{self.index.lines[i]}")
                for i in images]
        feats, locs, rmask = region_arrays(regs, self.cfg.max_regions, self.arch.feature_dim, self.arch.location_dim)
        tok = self.tok
        ids = pad_ids([tok.build_input(t, self.cfg.max_text_len) for t in tok.encode_batch(texts)], tok.pad_id)
        return {"features": feats, "locations": locs, "region_mask": rmask, "ids": ids, "mask": ids != tok.pad_id}


@TASK.register("UNIMORetrieval", config=UNIMORetrievalTaskConfig)
def build_task(cfg, ctx):
    if not os.path.isdir(cfg.features):
        raise FileNotFoundError(f"DataLoader.Train.task.features: {cfg.features}: no region feature store")
    return UNIMORetrievalTask(cfg, ctx)
