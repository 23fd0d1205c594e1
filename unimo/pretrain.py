"""UNIMO / Unicoder-VL pre-training: the model plus its heads and losses.

``forward(batch)`` returns a dict of scalar losses with the weighted total
under ``"loss"`` (the contract of ``vlcore.framework.engine``). Per input kind:

- pairs: one joint pass ``[IMG] masked-regions [CLS] masked-text [SEP]``
  (visual learning + MLM, or seq2seq with the image as extra context), CMCL
  on separately encoded images and texts (UNIMO), visual-linguistic matching
  with a random negative image (Unicoder-VL);
- images: masked-region regression and classification;
- text: MLM or seq2seq (alternated per step, Section 3.3).
"""
import numpy as np
import paddle
import paddle.nn as nn

from vlcore.layers import Linear, truncated_normal_attr
from vlcore.layers.heads import MLMHead, ProjectionHead, cross_entropy_with_accuracy
from vlcore.layers.objectives import weighted_total

from .model import UNIMOModel
from .objectives import cmcl_loss, region_classification_loss, region_regression_loss


def _gather_rows(hidden, positions):
    """Rows ``positions`` (flat indices into ``[B * L]``) of ``hidden [B, L, D]``."""
    return paddle.gather(hidden.reshape([-1, hidden.shape[-1]]), positions)


class UNIMOForPretraining(nn.Layer):
    def __init__(self, arch, loss):
        super().__init__()
        self.arch, self.loss_cfg = arch, loss
        d, std = arch.hidden_size, arch.init_std
        self.model = UNIMOModel(arch)
        self.mlm_head = MLMHead(d, self.model.word_embed.weight, arch.layer_norm_eps, std)
        self.mrfr_head = Linear(d, arch.feature_dim, weight_attr=truncated_normal_attr(std))
        self.mrc_head = Linear(d, arch.num_classes, weight_attr=truncated_normal_attr(std))
        if arch.cmcl_proj == "shared":
            self.cmcl_proj = ProjectionHead(d, arch.cmcl_dim, num_layers=1, init_std=std)
        else:  # the released pooled_fc_text / pooled_fc_image
            self.cmcl_text_proj = ProjectionHead(d, arch.cmcl_dim, num_layers=1, init_std=std, final_act="relu")
            self.cmcl_image_proj = ProjectionHead(d, arch.cmcl_dim, num_layers=1, init_std=std, final_act="relu")
        self.vlm_head = Linear(d, 2, weight_attr=truncated_normal_attr(std))

    # ----- where things are in an encoded sequence -----
    def _image_offset(self):
        return 1 if self.arch.image_token == "mean" else 0

    def _text_cls(self, enc):
        return enc.text[:, 0]

    def _image_cls(self, enc):
        return enc.image[:, 0]

    # ----- shared pieces -----
    def _regions(self, batch, masked=False):
        feats = batch["masked_features"] if masked else batch["features"]
        return feats, batch["locations"], batch["region_mask"]

    def _text(self, batch):
        if batch["lang_task"] == "seq2seq":
            return (batch["src_ids"], batch["src_mask"], batch["src_pos"]), \
                   (batch["tgt_ids"], batch["tgt_mask"], batch["tgt_pos"])
        return (batch["mlm_ids"], batch["mask"]), None

    def _language(self, enc, batch, parts):
        if batch["lang_task"] == "seq2seq":
            logits = self.mlm_head(_gather_rows(enc.target, batch["s2s_positions"]))
            parts["seq2seq"], parts["seq2seq_acc"] = cross_entropy_with_accuracy(logits, batch["s2s_labels"])
        else:
            logits = self.mlm_head(_gather_rows(enc.text, batch["mlm_positions"]))
            parts["mlm"], parts["mlm_acc"] = cross_entropy_with_accuracy(logits, batch["mlm_labels"])

    def _vision(self, enc, batch, parts):
        rc = self.loss_cfg.region
        hidden = _gather_rows(enc.image[:, self._image_offset():], batch["region_positions"])
        if rc.mrfr_weight > 0:
            parts["mrfr"] = region_regression_loss(self.mrfr_head(hidden), batch["mrfr_targets"])
        if rc.mrc_weight > 0:
            logits = self.mrc_head(hidden)
            if rc.mrc_target == "distribution":
                parts["mrc"] = region_classification_loss(logits, target_dist=batch["mrc_dist"])
            else:
                parts["mrc"] = region_classification_loss(logits, target_ids=batch["mrc_ids"])

    # ----- objectives per input kind -----
    def forward(self, batch):
        kind = batch["kind"]
        parts = {}
        if kind == "pairs":
            text, target = self._text(batch)
            enc = self.model(regions=self._regions(batch, masked=True), text=text, target=target)
            self._language(enc, batch, parts)
            self._vision(enc, batch, parts)
            if self.loss_cfg.cmcl.weight > 0:
                parts["cmcl"], parts["cmcl_acc"] = self._cmcl(batch)
            if self.loss_cfg.vlm.weight > 0:
                parts["vlm"], parts["vlm_acc"] = self._vlm(batch)
        elif kind == "images":
            enc = self.model(regions=self._regions(batch, masked=True))
            self._vision(enc, batch, parts)
        elif kind == "text":
            text, target = self._text(batch)
            enc = self.model(text=text, target=target)
            self._language(enc, batch, parts)
        else:
            raise ValueError(f"unknown batch kind {kind!r}")
        return self._total(parts)

    def _total(self, parts):
        rc, lc, c = self.loss_cfg.region, self.loss_cfg.language, self.loss_cfg
        return weighted_total(parts, {"mrfr": rc.mrfr_weight, "mrc": rc.mrc_weight, "cmcl": c.cmcl.weight,
                                      "vlm": c.vlm.weight, "mlm": lc.mlm_weight, "seq2seq": lc.seq2seq_weight})

    # ----- cross-modal -----
    def embed_image(self, features, locations, mask):
        """CMCL embedding of images encoded alone ([IMG] output)."""
        return self._cmcl_head("image")(self._image_cls(self.model(regions=(features, locations, mask))))

    def embed_text(self, ids, mask):
        """CMCL embedding of texts encoded alone ([CLS] output)."""
        return self._cmcl_head("text")(self._text_cls(self.model(text=(ids, mask))))

    def _cmcl_head(self, side):
        return self.cmcl_proj if self.arch.cmcl_proj == "shared" else getattr(self, f"cmcl_{side}_proj")

    def _cmcl(self, batch):
        img = self.embed_image(*self._regions(batch))
        txt = self.embed_text(batch["cmcl_ids"], batch["cmcl_mask"])          # [B * K, d]
        b, k = batch["cmcl_is_pos"].shape
        own = txt.reshape([b, k, -1])
        return cmcl_loss(img, own, batch["cmcl_is_pos"], batch["cmcl_valid"], own[:, 0], batch["groups"],
                         self.loss_cfg.cmcl.temperature)

    def matching_logits(self, features, locations, region_mask, ids, mask):
        """Visual-linguistic matching logits ``[B, 2]`` on the joint [CLS]."""
        enc = self.model(regions=(features, locations, region_mask), text=(ids, mask))
        return self.vlm_head(self._text_cls(enc))

    def _vlm(self, batch):
        """Unicoder-VL: each caption with its image (1) and with a random
        other image of the batch (0), both unmasked."""
        feats, locs, rmask = self._regions(batch)
        b = feats.shape[0]
        rng = np.random.default_rng(int(batch["seed"]) + 1)
        shift = rng.integers(1, b) if b > 1 else 0
        neg = paddle.to_tensor((np.arange(b) + shift) % b)
        cat = lambda x, y: paddle.concat([x, y], axis=0)  # noqa: E731
        logits = self.matching_logits(cat(feats, paddle.gather(feats, neg)), cat(locs, paddle.gather(locs, neg)),
                                      cat(rmask, paddle.gather(rmask, neg)), cat(batch["ids"], batch["ids"]),
                                      cat(batch["mask"], batch["mask"]))
        labels = paddle.concat([paddle.ones([b], "int64"), paddle.zeros([b], "int64")])
        return cross_entropy_with_accuracy(logits, labels)
