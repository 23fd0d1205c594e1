"""UNIMO-2's pre-training data: corpora, per-step batches, collation.

On-disk formats (see docs/data_formats.md):

- pairs: JSONL ``{"id": str, "image": path, "captions": [str, ...]}``
- labelled images: JSONL ``{"id": str, "image": path, "label": str}``; read as
  pseudo pairs "``prompt`` label" (kind ``labelled``) or as image-only data for
  visual contrastive learning (kind ``images``)
- text: UTF-8, one sample per line, blank lines ignored; or token shards
  (``path`` = a ``tokens.index.json`` of ``data_prep.tokenize_shards``)
- pairs, labelled and images may also be webdataset tar shards (``path`` =
  ``dir/{00000..00099}.tar``, a directory of ``.tar`` files, or one):
  :mod:`vlcore.data.shard_records` says what a sample holds

Image paths are relative to the manifest's directory unless absolute. Extra
keys in a record are ignored.

A bad record or image is skipped, replaced by another sample (so batches keep
their size), and reported in the batch's ``skipped`` list for the trainer to
count and log; with ``strict`` the first one stops the run with its file name.
"""
import os
import zlib

import numpy as np

from vlcore.data.batches import StepBatches
from vlcore.data.images import Preprocess, contrastive_view, normalise_chw, read_rgb, to_chw_uint8
from vlcore.data.shard_records import ShardRecords
from vlcore.data.text import TextProcessor
from vlcore.data.token_text import check_tokenizer, open_text_corpus
from vlcore.formats.records import JsonlFile, RecordError
from vlcore.formats.tar_shards import Member, is_shards

_REQUIRED = {"pairs": ("image", "captions"), "labelled": ("image", "label"), "images": ("image",)}


class Corpus:
    """One corpus file; ``load(i, rng)`` returns a raw sample or raises."""

    def __init__(self, cfg, corpus_id, decode=read_rgb, strict=False):
        self.cfg, self.kind, self.name = cfg, cfg.kind, cfg.name
        self.id, self.decode = corpus_id, decode
        if cfg.kind == "text":
            self.records = open_text_corpus(cfg.path)  # lines, or token ids from token shards
        elif is_shards(cfg.path):
            self.records = ShardRecords(cfg.path, cfg.kind, strict)
        else:
            self.records = JsonlFile(cfg.path, required=_REQUIRED[cfg.kind])
        self.root = os.path.dirname(os.path.abspath(cfg.path))

    def __len__(self):
        return len(self.records)

    def _image(self, record, i):
        rel = record["image"]
        if isinstance(rel, Member):  # the bytes of a tar shard's member
            return self.decode(rel)
        if not isinstance(rel, str) or not rel:
            raise RecordError(f"{self.records.where(i)}: 'image' must be a non-empty string")
        return self.decode(rel if os.path.isabs(rel) else os.path.join(self.root, rel))

    def load(self, i, rng):
        if self.kind == "text":
            return {"text": self.records[i]}
        record = self.records[i]
        where = self.records.where(i)
        if self.kind == "pairs":
            caps = record["captions"]
            if isinstance(caps, str):
                caps = [caps]
            if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                raise RecordError(f"{where}: 'captions' must be a non-empty list of non-empty strings")
            # One group per image: its other captions are not negatives.
            return {"image": self._image(record, i), "text": caps[int(rng.integers(len(caps)))],
                    "group": (self.id << 40) | int(i)}
        if self.kind == "labelled":
            label = record["label"]
            if not isinstance(label, str) or not label.strip():
                raise RecordError(f"{where}: 'label' must be a non-empty string")
            # Images with the same label share a caption: one group per label.
            return {"image": self._image(record, i), "text": f"{self.cfg.prompt} {label}".strip(),
                    "group": (self.id << 40) | zlib.crc32(label.encode("utf-8"))}
        return {"image": self._image(record, i)}


class PretrainBatches(StepBatches):
    """UNIMO-2's batches: pixels, captions with span masking, VCL views."""

    def __init__(self, corpora, schedule, tokenizer, data_cfg, mlm_cfg, image_size,
                 seed=0, rank=0, start_step=0, strict=False, preprocess="opencv"):
        super().__init__(corpora, schedule, seed, rank, start_step, strict)
        check_tokenizer(corpora, tokenizer)
        self.cfg, self.image_size = data_cfg, image_size
        self.prep = Preprocess(image_size, data_cfg.image_mean, data_cfg.image_std, preprocess)
        self.text = TextProcessor(tokenizer, mlm_cfg)

    def collate(self, corpus, samples, rngs, batch_seed):
        return getattr(self, f"_collate_{corpus.kind}")(samples, rngs)

    def _pixels(self, images):
        # uint8 until the main process (finish): a worker pickles 4x fewer bytes
        return np.stack([to_chw_uint8(self.prep.resize(img)) for img in images])

    def finish(self, batch):
        """In the main process (:func:`vlcore.data.workers.step_loader`):
        normalise the uint8 pixels a worker sent, bit-identically to doing
        it in the worker."""
        import paddle
        for key in ("pixels", "pixels2"):
            if key in batch:
                x = batch[key]
                x = x.numpy() if hasattr(x, "numpy") else x
                batch[key] = paddle.to_tensor(normalise_chw(x, self.prep.mean, self.prep.std))
        return batch

    def _collate_pairs(self, samples, rngs):
        toks = [self.text.encode(s["text"], self.cfg.max_text_len, r) for s, r in zip(samples, rngs)]
        batch = self.text.collate(toks, rngs)
        batch.update(kind="pairs", pixels=self._pixels([s["image"] for s in samples]),
                     groups=np.asarray([s["group"] for s in samples], dtype=np.int64))
        return batch

    _collate_labelled = _collate_pairs

    def _collate_text(self, samples, rngs):
        toks = [self.text.encode(s["text"], self.cfg.max_text_len_corpus, r) for s, r in zip(samples, rngs)]
        batch = self.text.collate(toks, rngs)
        batch["kind"] = "text"
        return batch

    def _collate_images(self, samples, rngs):
        c, size = self.cfg, self.image_size
        views = [[contrastive_view(s["image"], size, r, c.augment) for s, r in zip(samples, rngs)] for _ in range(2)]
        u8 = [np.stack([to_chw_uint8(v) for v in vs]) for vs in views]
        return {"kind": "images", "pixels": u8[0], "pixels2": u8[1]}
