"""Image-text retrieval evaluation with region features (UNIMO Table 3,
Unicoder-VL Tables 1-2: zero-shot and fine-tuned Flickr30k / COCO 1K / 5K).

Scores (``score``):

- ``cmcl`` (UNIMO zero-shot): cosine of the CMCL embeddings of the
  separately encoded image and caption (dual encoder);
- ``vlm`` (Unicoder-VL zero-shot): the visual-linguistic matching logit
  margin of the joint encoding of every (image, caption) pair;
- ``match``: the fine-tuned retrieval score
  (:class:`unimo.retrieval_finetune.UNIMOForRetrieval`), joint encoding.

Cross-encoder scores are computed for every pair (flat batches of pairs
split across ranks) or, with ``two_stage_k``, only for the CMCL shortlist; ``fold_size``
gives COCO 1K -- see :mod:`vlcore.tasks.retrieval_eval`.
"""
import numpy as np
import paddle

from vlcore.data.retrieval import PairsIndex, train_setting
from vlcore.data.text import pad_ids
from vlcore.tasks import infer, retrieval_eval

from .data import get_regions, infer_features, open_store, region_arrays


class RegionPairs:
    """Images (region features) and captions to score against each other.
    Every batch is padded to the same region count and text length (those of
    the whole set), so a pair's score does not depend on its batch-mates:
    two-stage and exhaustive scoring agree exactly on the pairs they share."""

    def __init__(self, ctx, regions, captions, batch_size):
        self.arch, self.tok, self.regions, self.captions = ctx.cfg.Arch, ctx.tokenizer, regions, captions
        max_len = train_setting(ctx, "max_text_len", 64)
        self.max_regions = train_setting(ctx, "max_regions", 100)
        self.batch_size = batch_size
        self.n_regions = max(1, min(self.max_regions, max(g.num_boxes for g in regions)))
        tok = self.tok
        self.ids = pad_ids([tok.build_input(t, max_len) for t in tok.encode_batch(captions)], tok.pad_id)

    def _region_batch(self, idx):
        feats, locs, mask = region_arrays([self.regions[i] for i in idx], self.max_regions, self.arch.feature_dim,
                                          self.arch.location_dim)
        pad = self.n_regions - feats.shape[1]
        if pad:
            feats = np.pad(feats, [(0, 0), (0, pad), (0, 0)])
            locs = np.pad(locs, [(0, 0), (0, pad), (0, 0)])
            mask = np.pad(mask, [(0, 0), (0, pad)])
        return paddle.to_tensor(feats), paddle.to_tensor(locs), paddle.to_tensor(mask)

    def _texts(self, idx):
        ids = self.ids[np.asarray(idx, np.int64)]
        return paddle.to_tensor(ids), paddle.to_tensor(ids != self.tok.pad_id)

    def dual(self, model):
        bs, n_img, n_cap = self.batch_size, len(self.regions), len(self.captions)
        img = paddle.concat([model.embed_image(*self._region_batch(range(s, min(s + bs, n_img))))
                             for s in range(0, n_img, bs)])
        txt = paddle.concat([model.embed_text(*self._texts(range(s, min(s + bs, n_cap)))) for s in range(0, n_cap, bs)])
        return paddle.matmul(img, txt, transpose_y=True).numpy()

    def pair_scorer(self, model, score):
        """``(images, captions) -> scores`` of aligned index arrays: one joint
        encoding per pair (``vlm`` margin or fine-tuned ``match``)."""
        def args(images, captions):
            return self._region_batch(images) + self._texts(captions)
        return retrieval_eval.batched_pair_scorer(model, score, "UNIMOForRetrieval", self.batch_size,
                                                  lambda i, c: model.match_scores(*args(i, c)),
                                                  lambda i, c: model.matching_logits(*args(i, c)))


class UNIMORetrieval(RegionPairs):
    def __init__(self, cfg, ctx):
        self.cfg = cfg
        index = PairsIndex(cfg.path, key=cfg.key)
        n = min(cfg.max_images, len(index)) if cfg.max_images else len(index)
        store = open_store(cfg.features)
        regions = []
        try:
            for i in range(n):
                regions.append(get_regions(cfg.features, index.keys[i], f"{cfg.path}:{index.lines[i]}"))
        finally:
            # Built before the loader workers fork: LMDB handles must not be
            # inherited, so the evaluation split is read now and the store closed.
            store.close()
        super().__init__(ctx, regions, [c for caps in index.captions[:n] for c in caps], cfg.batch_size)
        self.caption_image = np.repeat(np.arange(n), [len(caps) for caps in index.captions[:n]])
        self.image_paths = index.images[:n]

    def __call__(self, model):
        cfg = self.cfg
        dual = self.dual(model) if (cfg.score == "cmcl" or cfg.two_stage_k) else None
        scores = (lambda imgs, caps: dual[imgs, caps]) if cfg.score == "cmcl" else self.pair_scorer(model, cfg.score)
        self.examples = {}
        result = retrieval_eval.evaluate(len(self.regions), self.caption_image, scores, dual, cfg.two_stage_k,
                                         cfg.fold_size, cfg.compare_exhaustive, self.examples)
        result.update(images=len(self.regions), captions=len(self.captions), score=cfg.score)
        return result

    def draw_sheet(self, path, title=""):
        """The retrieval sheet of the last evaluation (tools/eval.py); the
        manifest's image files are drawn where they exist (the model read
        region features)."""
        return retrieval_eval.draw_sheet(path, self.examples, self.image_paths, self.captions, self.caption_image,
                                         title)


def rank_captions(model, ctx, regions, captions, score="match", batch_size=64):
    """Captions ranked for one image (region features): ``[(caption, score)]``
    best first (``tools/infer.py rank``)."""
    pairs = RegionPairs(ctx, [regions], list(captions), batch_size)
    n = len(captions)
    if score == "cmcl":
        s = pairs.dual(model)[0]
    else:
        s = pairs.pair_scorer(model, score)(np.zeros(n, np.int64), np.arange(n))
    order = np.argsort(-s, kind="stable")
    return [(captions[j], float(s[j])) for j in order]


@infer.register("rank", archs=("UNIMO", "UNIMOForRetrieval"), help="rank captions for an image",
                arguments=infer.rank_arguments)
def _infer_rank(model, ctx, args):
    score = args.score or ("match" if hasattr(model, "match_scores") else
                           ("vlm" if ctx.cfg.Arch.layout == "unicoder" else "cmcl"))
    if score not in ("cmcl", "vlm", "match"):
        raise ValueError(f"--score {score}: UNIMO / Unicoder-VL scores are cmcl, vlm or match")
    regions = get_regions(infer_features(args, ctx.cfg, "rank"), args.image, error=ValueError)
    ranked = rank_captions(model, ctx, regions, infer.read_captions(args), score)
    return infer.ranking_result(args.image, score, ranked, args.top)
