"""UNIMO-2 on the demo web page (``tools/serve.py``): searching a gallery of
images with a caption, and the grounded tokens of an image.

The gallery's images are encoded once (ViT token features and their ITC
embeddings, :class:`unimo2.retrieval.UNIMO2Encoder`); a caption is ranked
against all of them by the dual encoder (ITC cosine), and the best
``rerank`` are re-ranked by the grounded transformer's matching margin (ITM),
the two-stage retrieval of ``DataLoader.Eval.two_stage_k``. The token
features of every gallery image stay in memory for the re-ranking: fine for
a demo gallery (the demo: 100 images x 17 tokens x 64 floats).
"""
from typing import List, NamedTuple

import numpy as np
import paddle

from unimo2.grounding_report import entry_words
from unimo2.retrieval import UNIMO2Encoder, pair_scorer


class Hit(NamedTuple):
    index: int      # row of the gallery
    itc: float      # dual-encoder cosine
    itm: float      # grounded transformer's matching margin, logit[match] - logit[mismatch]


def has_grounding(model):
    """Whether the model has a top-K grounded dictionary (not the baseline
    without one, nor the 1-to-1 ablation, which has no accumulated score)."""
    grounding = getattr(getattr(model, "model", None), "grounding", None)
    return grounding is not None and grounding.mode == "topk"


class GallerySearch:
    """Images of a gallery, encoded once, searched by caption."""

    def __init__(self, model, ctx, image_paths, batch_size=64):
        self.enc = UNIMO2Encoder(ctx, batch_size)
        self.batch_size = batch_size
        with paddle.no_grad():
            self.feats = self.enc.images(model, list(image_paths))       # [N, L, D]
            self.embeddings = model.embed_image(self.feats)                # [N, P]

    def __len__(self):
        return self.feats.shape[0]

    def search(self, model, caption, top=8, rerank=20) -> List[Hit]:
        """The best ``top`` images for ``caption``: the ``rerank`` best by ITC,
        re-ranked by ITM (ties keep the ITC order)."""
        with paddle.no_grad():
            txt, mask = self.enc.texts(model, [caption])
            itc = paddle.matmul(self.embeddings, model.embed_text(txt), transpose_y=True).numpy()[:, 0]
            short = np.argsort(-itc, kind="stable")[:rerank]
            scorer = pair_scorer(model, "itm", self.feats, txt, mask, self.batch_size)
            itm = scorer(short, np.zeros(len(short), np.int64))
        order = np.argsort(-itm, kind="stable")[:top]
        return [Hit(int(short[i]), float(itc[short[i]]), float(itm[i])) for i in order]


def grounded_tokens(model, encoder, image_path):
    """The grounded tokens of one image: ``[(entry, accumulated score)]``,
    highest first (Eq. 2 over the image's patches; the top-K of
    :class:`unimo2.grounding.GroundedDictionary`)."""
    with paddle.no_grad():
        out = model.model.ground(encoder.images(model, [image_path]))
    scores = out.scores.numpy()[0]
    return [(int(j), float(scores[j])) for j in out.indices.numpy()[0]]


def grounded_token_rows(model, encoder, image_path, words):
    """Table rows for the page: rank, entry, score, the entry's top words
    (``words``: ``{entry: [(word, logit)]}`` of
    :func:`unimo2.grounding_report.entry_words`: the gallery's words whose
    nearest entry it is, as in the grounded-dictionary figure)."""
    none = "(no word of the gallery is nearest to it)"
    return [[rank, entry, round(score, 3), ", ".join(f"{w} ({s:.1f})" for w, s in words.get(entry, [])) or none]
            for rank, (entry, score) in enumerate(grounded_tokens(model, encoder, image_path), 1)]


__all__ = ["GallerySearch", "Hit", "entry_words", "grounded_token_rows", "grounded_tokens", "has_grounding"]
