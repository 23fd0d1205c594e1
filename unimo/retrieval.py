"""Zero-shot image-text retrieval with region features.

UNIMO: images and captions encoded separately, scored by CMCL cosine
similarity (``score: cmcl``). Unicoder-VL: the visual-linguistic matching
logit of the joint encoding of every (image, caption) pair (``score: vlm``),
image rows split across ranks.
"""
import numpy as np
import paddle

from vlcore import dist
from vlcore.data.records import JsonlFile
from vlcore.data.text import pad_ids
from vlcore.metrics import retrieval_recall

from .data import open_store, region_arrays


class UNIMORetrieval:
    def __init__(self, cfg, ctx):
        self.cfg, self.arch, self.tok = cfg, ctx.cfg.Arch, ctx.tokenizer
        train = ctx.cfg.DataLoader.Train
        self.max_len = train.max_text_len if train is not None else 64
        self.max_regions = train.max_regions if train is not None else 100
        records = JsonlFile(cfg.path, required=(cfg.key, "captions"))
        store = open_store(cfg.features)
        self.regions, self.captions, caption_image = [], [], []
        try:
            for i in range(len(records)):
                rec = records[i]
                key = str(rec[cfg.key])
                if key not in store:
                    raise KeyError(f"{cfg.features}: no region features for {key!r} "
                                   f"({cfg.path}:{records.line_number(i)})")
                self.regions.append(store.get(key))
                caps = rec["captions"] if isinstance(rec["captions"], list) else [rec["captions"]]
                self.captions += caps
                caption_image += [i] * len(caps)
        finally:
            # Built before the loader workers fork: LMDB handles must not be
            # inherited, so the evaluation split is read now and the store closed.
            store.close()
        self.caption_image = np.asarray(caption_image)

    def _region_batch(self, regs):
        feats, locs, mask = region_arrays(regs, self.max_regions, self.arch.feature_dim, self.arch.location_dim)
        return paddle.to_tensor(feats), paddle.to_tensor(locs), paddle.to_tensor(mask)

    def _texts(self, start, end):
        tok = self.tok
        ids = pad_ids([tok.build_input(t, self.max_len) for t in tok.encode_batch(self.captions[start:end])],
                      tok.pad_id)
        return paddle.to_tensor(ids), paddle.to_tensor(ids != tok.pad_id)

    def __call__(self, model):
        bs = self.cfg.batch_size
        if self.cfg.score == "cmcl":
            img = paddle.concat([model.embed_image(*self._region_batch(self.regions[s:s + bs]))
                                 for s in range(0, len(self.regions), bs)])
            txt = paddle.concat([model.embed_text(*self._texts(s, s + bs)) for s in range(0, len(self.captions), bs)])
            scores = paddle.matmul(img, txt, transpose_y=True).numpy()
        else:
            scores = self._vlm_scores(model, bs)
        result = retrieval_recall(scores, self.caption_image)
        result.update(images=len(self.regions), captions=len(self.captions), score=self.cfg.score)
        return result

    def _vlm_scores(self, model, bs):
        n_txt = len(self.captions)

        def row(i):
            feats, locs, mask = self._region_batch([self.regions[i]])
            out = []
            for s in range(0, n_txt, bs):
                ids, tmask = self._texts(s, s + bs)
                n = ids.shape[0]
                logits = model.matching_logits(feats.expand([n] + feats.shape[1:]), locs.expand([n] + locs.shape[1:]),
                                               mask.expand([n, mask.shape[1]]), ids, tmask)
                out.append((logits[:, 1] - logits[:, 0]).numpy())
            return np.concatenate(out)
        return dist.sharded_rows(len(self.regions), n_txt, row)
