"""Zero-shot image-text retrieval (UNIMO-2 Table 1/10, "ZS-IR"/"ZS-TR").

Every image and caption of a held-out pairs manifest is encoded once by the
unimodal encoders. Scores are either

- ``itm``: the grounded transformer's matching logit margin for *every*
  (image, caption) pair -- a cross-encoder, quadratic in the split size;
  image rows are split across ranks;
- ``itc``: cosine similarity of the projected [CLS] features (dual encoder,
  needs a model trained with ``Loss.itc.weight > 0``).
"""
import os

import numpy as np
import paddle

from vlcore import dist
from vlcore.data.images import read_rgb, resize, to_chw_float
from vlcore.data.records import JsonlFile
from vlcore.metrics import retrieval_recall


def load_pairs(path):
    """Images and their captions from a pairs manifest (no skipping: an
    evaluation split with a bad record is an error, named by file:line)."""
    records = JsonlFile(path, required=("image", "captions"))
    images, captions, caption_image = [], [], []
    root = os.path.dirname(os.path.abspath(path))
    for i in range(len(records)):
        rec = records[i]
        images.append(rec["image"] if os.path.isabs(rec["image"]) else os.path.join(root, rec["image"]))
        caps = rec["captions"] if isinstance(rec["captions"], list) else [rec["captions"]]
        captions.extend(caps)
        caption_image.extend([i] * len(caps))
    return images, captions, np.asarray(caption_image)


class ZeroShotRetrieval:
    def __init__(self, cfg, ctx):
        self.cfg = cfg
        arch = ctx.cfg.Arch
        self.image_size = arch.vit.image_size
        train = ctx.cfg.DataLoader.Train
        self.mean = train.image_mean if train is not None else [0.5, 0.5, 0.5]
        self.std = train.image_std if train is not None else [0.5, 0.5, 0.5]
        self.max_len = train.max_text_len if train is not None else 64
        self.tok = ctx.tokenizer
        self.images, self.captions, self.caption_image = load_pairs(cfg.path)
        if cfg.max_images:
            keep = self.caption_image < cfg.max_images
            self.images = self.images[:cfg.max_images]
            self.captions = [c for c, k in zip(self.captions, keep) if k]
            self.caption_image = self.caption_image[keep]

    def _encode_images(self, model):
        feats = []
        for s in range(0, len(self.images), self.cfg.batch_size):
            px = np.stack([to_chw_float(resize(read_rgb(p), self.image_size), self.mean, self.std)
                           for p in self.images[s:s + self.cfg.batch_size]])
            feats.append(model.model.encode_image(paddle.to_tensor(px)))
        return paddle.concat(feats, axis=0)

    def _encode_texts(self, model):
        tok = self.tok
        seqs = [tok.build_input(ids, self.max_len) for ids in tok.encode_batch(self.captions)]
        n = max(len(s) for s in seqs)
        ids = np.full([len(seqs), n], tok.pad_id, dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = s
        ids_t, mask_t = paddle.to_tensor(ids), paddle.to_tensor(ids != tok.pad_id)
        feats = [model.model.encode_text(ids_t[s:s + self.cfg.batch_size], mask_t[s:s + self.cfg.batch_size])
                 for s in range(0, len(seqs), self.cfg.batch_size)]
        return paddle.concat(feats, axis=0), mask_t

    def _itm_scores(self, model, img, txt, mask):
        """Logit margin (match - no match) for every pair; rows split over ranks."""
        bs, n_txt = self.cfg.batch_size, txt.shape[0]

        def row(i):
            out = []
            for s in range(0, n_txt, bs):
                t = txt[s:s + bs]
                v = img[i:i + 1].expand([t.shape[0], img.shape[1], img.shape[2]])
                logits, _ = model.itm_logits(v, t, mask[s:s + bs], self.cfg.use_grounding)
                out.append((logits[:, 1] - logits[:, 0]).numpy())
            return np.concatenate(out)
        return dist.sharded_rows(img.shape[0], n_txt, row)

    def __call__(self, model):
        img = self._encode_images(model)
        txt, mask = self._encode_texts(model)
        if self.cfg.score == "itc":
            scores = paddle.matmul(model.embed_image(img), model.embed_text(txt), transpose_y=True).numpy()
        else:
            scores = self._itm_scores(model, img, txt, mask)
        result = retrieval_recall(scores, self.caption_image)
        result.update(images=len(self.images), captions=len(self.captions), score=self.cfg.score,
                      use_grounding=self.cfg.use_grounding)
        return result
