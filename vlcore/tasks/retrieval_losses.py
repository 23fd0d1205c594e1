"""Image-text retrieval fine-tuning: the loss configuration and the losses on
a ``[B, 1 + n_img + n_cap]`` score matrix.

Row ``b`` of the matrix scores one positive pair and its negatives, in the
order of the official readers (PaddlePaddle/Research NLP/UNIMO and
NLP/UNIMO-2, ``_negative_schema = ['ei'] * 10 + ['ec'] * 10``):

- column 0: the caption with its own image;
- columns ``1 .. n_img``: the same caption with other images ("ei": exchange
  the image -- the negatives of text-to-image retrieval);
- the rest: the same image with captions of other images ("ec" -- the
  negatives of image-to-text retrieval).

``circle`` is the official UNIMO / UNIMO-2 fine-tuning loss (circle loss,
Sun et al. 2020, margin 0.2, scale 1.0, averaged over the two negative
sets); ``triplet_hardest`` is Unicoder-VL's Eq. 1-3: a hinge on the hardest
sampled negative of each side, weighted lambda_1 (image -> text) and
lambda_2 (text -> image).
"""
from dataclasses import dataclass
from typing import Literal

import numpy as np
import paddle
import paddle.nn.functional as F

from vlcore.framework.registry import LOSS


@dataclass
class RetrievalLossConfig:
    name: str = "RetrievalFinetune"
    kind: Literal["circle", "triplet_hardest"] = "circle"
    # circle loss (official run.sh defaults: --margin 0.2 --scale_circle 1.0)
    margin: float = 0.2
    scale: float = 1.0
    # Unicoder-VL (Section "Objective Function"): gamma = 0.5, lambda_1 = 1.0, lambda_2 = 1.5
    triplet_margin: float = 0.5
    lambda_i2t: float = 1.0        # L_hard(I, T): an image against its hardest negative caption
    lambda_t2i: float = 1.5        # L_hard(T, I): a caption against its hardest negative image
    # Negatives sampled per positive pair (official: 10 + 10; Unicoder-VL: 3 + 3).
    image_negatives: int = 10
    caption_negatives: int = 10
    # Hard negatives: of the sampled ones keep the ``hard_keep`` most similar
    # under the dual encoder (UNIMO-2 ITC / UNIMO CMCL) for the cross-encoder;
    # 0 keeps them all (the official random negatives).
    hard_keep: int = 0
    # score = matching logit + contrastive_weight * cosine of the dual encoder
    # (official UNIMO-2: --with_cmcl True --cmcl_score_weight 0.3; UNIMO: 0).
    contrastive_weight: float = 0.0
    # UNIMO / Unicoder-VL: the head scoring a joint encoding -- pooled: UNIMO's
    # match_fc on ReLU-pooled [IMG] x [CLS] (new parameters); vlm: the
    # pre-trained matching head's logit margin on [CLS] (Unicoder-VL Eq. 2).
    # UNIMO-2 always scores with its ITM head.
    match_head: Literal["pooled", "vlm"] = "pooled"

    def __post_init__(self):
        if self.image_negatives < 1 or self.caption_negatives < 1:
            raise ValueError("Loss.image_negatives and Loss.caption_negatives must be >= 1")
        if self.hard_keep < 0 or self.hard_keep > min(self.image_negatives, self.caption_negatives):
            raise ValueError(f"Loss.hard_keep={self.hard_keep} must be in [0, min(image_negatives, "
                             f"caption_negatives)]")
        if self.scale <= 0:
            raise ValueError("Loss.scale must be positive")

    def kept(self):
        """Negatives per side that reach the cross-encoder."""
        return (self.hard_keep or self.image_negatives), (self.hard_keep or self.caption_negatives)


LOSS.register("RetrievalFinetune", config=RetrievalLossConfig)


def circle_loss(sp, sn, margin, scale):
    """The official ``circle_loss``: ``log(1 + sum_n exp(s*a_n*(s_n - m)) *
    sum_p exp(-s*a_p*(s_p - 1 + m)))`` with the weights ``a_p = relu(1 + m -
    s_p)``, ``a_n = relu(s_n + m)`` held constant (``stop_gradient``); mean
    over rows. ``sp [B, P]``, ``sn [B, N]``. Computed as softplus of two
    log-sum-exps (the official code casts to float64 instead)."""
    ap = F.relu(1.0 + margin - sp).detach()
    an = F.relu(sn + margin).detach()
    logit_p = -scale * ap * (sp - (1.0 - margin))
    logit_n = scale * an * (sn - margin)
    return F.softplus(paddle.logsumexp(logit_n, axis=1) + paddle.logsumexp(logit_p, axis=1)).mean()


def hardest_triplet_loss(pos, image_neg, caption_neg, margin, lambda_i2t, lambda_t2i):
    """Unicoder-VL Eq. 1-3 with the hardest sampled negative per side:
    ``lambda_1 [gamma - s(I,T) + max_t s(I,t-)]_+ + lambda_2 [gamma - s(I,T)
    + max_i s(i-,T)]_+``, averaged over the positive pairs (Eq. 3 sums; the
    mean keeps the learning rate independent of the batch size)."""
    i2t = F.relu(margin - pos + caption_neg.max(axis=1))
    t2i = F.relu(margin - pos + image_neg.max(axis=1))
    return (lambda_i2t * i2t + lambda_t2i * t2i).mean()


def retrieval_loss(scores, n_image_neg, cfg: RetrievalLossConfig):
    """``scores [B, 1 + n_image_neg + n_caption_neg]`` -> (loss, accuracy),
    accuracy = the positive scores highest in its row (official ``acc``)."""
    pos, image_neg, caption_neg = paddle.split(
        scores, [1, n_image_neg, scores.shape[1] - 1 - n_image_neg], axis=1)
    if cfg.kind == "circle":
        loss = (circle_loss(pos, caption_neg, cfg.margin, cfg.scale)
                + circle_loss(pos, image_neg, cfg.margin, cfg.scale)) / 2
    else:
        loss = hardest_triplet_loss(pos[:, 0], image_neg, caption_neg, cfg.triplet_margin,
                                    cfg.lambda_i2t, cfg.lambda_t2i)
    acc = (scores.argmax(axis=1) == 0).astype("float32").mean()
    return loss, acc


def keep_hardest(row_image, row_text, similarity, n_image_neg, keep):
    """Hard negatives: of the sampled negatives of every row keep the
    ``keep`` per side most similar to the positive under the dual encoder.

    ``row_image``/``row_text`` ``[B, 1 + n_img + n_cap]`` index the batch's
    distinct images/captions; ``similarity [n_images, n_texts]`` (numpy).
    An image negative is judged against the row's caption, a caption negative
    against the row's image. Returns the narrowed ``(row_image, row_text)``.
    """
    row_image, row_text = np.asarray(row_image), np.asarray(row_text)
    b = row_image.shape[0]
    img_cols = np.arange(1, 1 + n_image_neg)
    cap_cols = np.arange(1 + n_image_neg, row_image.shape[1])
    s_img = similarity[row_image[:, img_cols], row_text[:, :1]]          # [B, n_img]
    s_cap = similarity[row_image[:, :1], row_text[:, cap_cols]]          # [B, n_cap]
    top_img = img_cols[np.argsort(-s_img, axis=1, kind="stable")[:, :keep]]
    top_cap = cap_cols[np.argsort(-s_cap, axis=1, kind="stable")[:, :keep]]
    cols = np.concatenate([np.zeros([b, 1], np.int64), top_img, top_cap], axis=1)
    rows = np.arange(b)[:, None]
    return row_image[rows, cols], row_text[rows, cols]
