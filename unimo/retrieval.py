"""Image-text retrieval evaluation with region features (UNIMO Table 3,
Unicoder-VL Tables 1-2: zero-shot and fine-tuned Flickr30k / COCO 1K / 5K).

Scores (``score``):

- ``cmcl`` (UNIMO zero-shot): cosine of the CMCL embeddings of the
  separately encoded image and caption (dual encoder);
- ``vlm`` (Unicoder-VL zero-shot): the visual-linguistic matching logit
  margin of the joint encoding of every (image, caption) pair;
- ``match``: the fine-tuned retrieval score
  (:class:`unimo.retrieval_finetune.UNIMOForRetrieval`), joint encoding.

Cross-encoder scores are computed for every pair (image rows split across
ranks) or, with ``two_stage_k``, only for the CMCL shortlist; ``fold_size``
gives COCO 1K -- see :mod:`vlcore.retrieval_eval`.
"""
import numpy as np
import paddle

from vlcore import retrieval_eval
from vlcore.data.records import RecordError
from vlcore.data.retrieval import PairsIndex
from vlcore.data.text import pad_ids
from vlcore.formats.region_store import StoreError

from .data import open_store, region_arrays


def _train_setting(ctx, name, default):
    train = ctx.cfg.DataLoader.Train
    for section in (train, getattr(train, "task", None)):
        if section is not None and hasattr(section, name):
            return getattr(section, name)
    return default


class UNIMORetrieval:
    def __init__(self, cfg, ctx):
        self.cfg, self.arch, self.tok = cfg, ctx.cfg.Arch, ctx.tokenizer
        self.max_len = _train_setting(ctx, "max_text_len", 64)
        self.max_regions = _train_setting(ctx, "max_regions", 100)
        index = PairsIndex(cfg.path, key=cfg.key)
        n = min(cfg.max_images, len(index)) if cfg.max_images else len(index)
        store = open_store(cfg.features)
        self.regions = []
        try:
            for i in range(n):
                try:
                    self.regions.append(store.get(index.keys[i]))
                except (KeyError, StoreError):
                    raise RecordError(f"{cfg.features}: no region features for {index.keys[i]!r} "
                                      f"({cfg.path}, record {i + 1})") from None
        finally:
            # Built before the loader workers fork: LMDB handles must not be
            # inherited, so the evaluation split is read now and the store closed.
            store.close()
        self.captions = [c for caps in index.captions[:n] for c in caps]
        self.caption_image = np.repeat(np.arange(n), [len(caps) for caps in index.captions[:n]])

    def _region_batch(self, regs):
        feats, locs, mask = region_arrays(regs, self.max_regions, self.arch.feature_dim, self.arch.location_dim)
        return paddle.to_tensor(feats), paddle.to_tensor(locs), paddle.to_tensor(mask)

    def _texts(self, idx):
        tok = self.tok
        ids = pad_ids([tok.build_input(t, self.max_len) for t in tok.encode_batch([self.captions[c] for c in idx])],
                      tok.pad_id)
        return paddle.to_tensor(ids), paddle.to_tensor(ids != tok.pad_id)

    def _dual(self, model):
        bs = self.cfg.batch_size
        img = paddle.concat([model.embed_image(*self._region_batch(self.regions[s:s + bs]))
                             for s in range(0, len(self.regions), bs)])
        n = len(self.captions)
        txt = paddle.concat([model.embed_text(*self._texts(range(s, min(s + bs, n)))) for s in range(0, n, bs)])
        return paddle.matmul(img, txt, transpose_y=True).numpy()

    def _pair_scorer(self, model):
        score, bs = self.cfg.score, self.cfg.batch_size
        if score == "match" and not hasattr(model, "match_scores"):
            raise ValueError(f"score: match needs a retrieval fine-tuned model (Arch UNIMOForRetrieval), "
                             f"got {type(model).__name__}")

        def scores(i, cols):
            feats, locs, mask = self._region_batch([self.regions[i]])
            out = []
            for s in range(0, len(cols), bs):
                ids, tmask = self._texts(cols[s:s + bs])
                n = ids.shape[0]
                args = (feats.expand([n] + feats.shape[1:]), locs.expand([n] + locs.shape[1:]),
                        mask.expand([n, mask.shape[1]]), ids, tmask)
                if score == "match":
                    out.append(model.match_scores(*args).numpy())
                else:
                    logits = model.matching_logits(*args)
                    out.append((logits[:, 1] - logits[:, 0]).numpy())
            return np.concatenate(out)
        return scores

    def __call__(self, model):
        cfg = self.cfg
        dual = self._dual(model) if (cfg.score == "cmcl" or cfg.two_stage_k) else None
        scores = (lambda i, cols: dual[i, cols]) if cfg.score == "cmcl" else self._pair_scorer(model)
        result = retrieval_eval.evaluate(len(self.regions), self.caption_image, scores, dual, cfg.two_stage_k,
                                         cfg.fold_size, cfg.compare_exhaustive)
        result.update(images=len(self.regions), captions=len(self.captions), score=cfg.score)
        return result
