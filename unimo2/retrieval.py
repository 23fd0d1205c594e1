"""Image-text retrieval evaluation (UNIMO-2 Table 1/10: zero-shot "ZS-IR" /
"ZS-TR" and fine-tuned Flickr30k / COCO 1K / 5K).

Every image and caption of a held-out pairs manifest is encoded once by the
unimodal encoders. Scores (``score``) are either

- ``itm``: the grounded transformer's matching logit margin for *every*
  (image, caption) pair -- a cross-encoder, quadratic in the split size;
  the pairs are scored in flat batches split across ranks;
- ``match``: the fine-tuned retrieval score (ITM logit + weighted ITC
  cosine, :class:`unimo2.retrieval_finetune.UNIMO2ForRetrieval`), also a
  cross-encoder;
- ``itc``: cosine similarity of the projected [CLS] features (dual encoder,
  needs a model trained with ``Loss.itc.weight > 0``).

``two_stage_k``, ``fold_size`` and ``compare_exhaustive``: see
:mod:`vlcore.tasks.retrieval_eval`.
"""
import numpy as np
import paddle

from vlcore.data.images import Preprocess
from vlcore.data.retrieval import PairsIndex, train_setting
from vlcore.data.text import pad_ids
from vlcore.tasks import infer, retrieval_eval


class UNIMO2Encoder:
    """Pixels and token ids of image paths and texts, preprocessed like the
    run's training data; unimodal features in batches."""

    def __init__(self, ctx, batch_size, max_text_len=0, image_mean=(), image_std=()):
        self.tok, self.batch_size = ctx.tokenizer, batch_size
        vit = ctx.cfg.Arch.vit
        self.preprocess = Preprocess(vit.image_size,
                                     list(image_mean) or train_setting(ctx, "image_mean", [0.5, 0.5, 0.5]),
                                     list(image_std) or train_setting(ctx, "image_std", [0.5, 0.5, 0.5]),
                                     vit.preprocess)
        self.max_len = max_text_len or train_setting(ctx, "max_text_len", 64)

    def pixels(self, paths):
        return np.stack([self.preprocess(p) for p in paths])

    def token_ids(self, texts):
        tok = self.tok
        ids = pad_ids([tok.build_input(t, self.max_len) for t in tok.encode_batch(texts)], tok.pad_id)
        return ids, ids != tok.pad_id

    def images(self, model, paths):
        bs = self.batch_size
        return paddle.concat([model.model.encode_image(paddle.to_tensor(self.pixels(paths[s:s + bs])))
                              for s in range(0, len(paths), bs)], axis=0)

    def texts(self, model, texts):
        ids, mask = self.token_ids(texts)
        ids_t, mask_t = paddle.to_tensor(ids), paddle.to_tensor(mask)
        bs = self.batch_size
        feats = [model.model.encode_text(ids_t[s:s + bs], mask_t[s:s + bs]) for s in range(0, len(texts), bs)]
        return paddle.concat(feats, axis=0), mask_t


def pair_scorer(model, score, img, txt, mask, batch_size, use_grounding=True):
    """``(images, captions) -> scores`` of aligned index arrays with the
    cross-encoder ``score`` (``itm`` margin or fine-tuned ``match``), in
    batches of ``batch_size`` pairs (see vlcore.tasks.retrieval_eval.score_pairs)."""
    def args(images, captions):
        ii = paddle.to_tensor(np.asarray(images, np.int64))
        cc = paddle.to_tensor(np.asarray(captions, np.int64))
        return paddle.gather(img, ii), paddle.gather(txt, cc), paddle.gather(mask, cc), use_grounding
    return retrieval_eval.batched_pair_scorer(model, score, "UNIMO2ForRetrieval", batch_size,
                                              lambda i, c: model.match_scores(*args(i, c)),
                                              lambda i, c: model.itm_logits(*args(i, c))[0])


class ZeroShotRetrieval:
    def __init__(self, cfg, ctx):
        self.cfg = cfg
        self.enc = UNIMO2Encoder(ctx, cfg.batch_size, cfg.max_text_len, cfg.image_mean, cfg.image_std)
        index = PairsIndex(cfg.path, cfg.image_root)
        n = min(cfg.max_images, len(index)) if cfg.max_images else len(index)
        self.images = index.images[:n]
        self.captions = [c for caps in index.captions[:n] for c in caps]
        self.caption_image = np.repeat(np.arange(n), [len(caps) for caps in index.captions[:n]])

    def __call__(self, model):
        img = self.enc.images(model, self.images)
        txt, mask = self.enc.texts(model, self.captions)
        dual = None
        if self.cfg.score == "itc" or self.cfg.two_stage_k:
            dual = paddle.matmul(model.embed_image(img), model.embed_text(txt), transpose_y=True).numpy()
        if self.cfg.score == "itc":
            scores = lambda imgs, caps: dual[imgs, caps]  # noqa: E731
        else:
            scores = pair_scorer(model, self.cfg.score, img, txt, mask, self.cfg.batch_size,
                                 self.cfg.use_grounding)
        self.examples = {}
        result = retrieval_eval.evaluate(len(self.images), self.caption_image, scores, dual, self.cfg.two_stage_k,
                                         self.cfg.fold_size, self.cfg.compare_exhaustive, self.examples)
        result.update(images=len(self.images), captions=len(self.captions), score=self.cfg.score,
                      use_grounding=self.cfg.use_grounding)
        return result

    def draw_sheet(self, path, title=""):
        """The retrieval sheet of the last evaluation (tools/eval.py)."""
        return retrieval_eval.draw_sheet(path, self.examples, self.images, self.captions, self.caption_image, title)


def rank_captions(model, ctx, image_path, captions, score="match", batch_size=64, use_grounding=True):
    """Captions ranked for one image file: ``[(caption, score)]`` best first
    (``tools/infer.py rank``)."""
    enc = UNIMO2Encoder(ctx, batch_size)
    img = enc.images(model, [image_path])
    txt, mask = enc.texts(model, list(captions))
    if score == "itc":
        s = paddle.matmul(model.embed_image(img), model.embed_text(txt), transpose_y=True).numpy()[0]
    else:
        n = len(captions)
        s = pair_scorer(model, score, img, txt, mask, batch_size, use_grounding)(np.zeros(n, np.int64), np.arange(n))
    order = np.argsort(-s, kind="stable")
    return [(captions[j], float(s[j])) for j in order]


@infer.register("rank", archs=("UNIMO2", "UNIMO2ForRetrieval"), help="rank captions for an image",
                arguments=infer.rank_arguments)
def _infer_rank(model, ctx, args):
    score = args.score or ("match" if hasattr(model, "match_scores") else "itm")
    if score not in ("itm", "itc", "match"):
        raise ValueError(f"--score {score}: UNIMO-2 scores are itm, itc or match")
    ranked = rank_captions(model, ctx, args.image, infer.read_captions(args), score)
    return infer.ranking_result(args.image, score, ranked, args.top)
