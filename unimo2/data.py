"""UNIMO-2's pre-training data: corpora, per-step batches, collation.

On-disk formats (see README "Data formats"):

- pairs: JSONL ``{"id": str, "image": path, "captions": [str, ...]}``
- labelled images: JSONL ``{"id": str, "image": path, "label": str}``; read as
  pseudo pairs "``prompt`` label" (kind ``labelled``) or as image-only data for
  visual contrastive learning (kind ``images``)
- text: UTF-8, one sample per line, blank lines ignored

Image paths are relative to the manifest's directory unless absolute. Extra
keys in a record are ignored.

A bad record or image is skipped, replaced by another sample (so batches keep
their size), and reported in the batch's ``skipped`` list for the trainer to
count and log; with ``strict`` the first one stops the run with its file name.
"""
import os
import traceback
import zlib

import numpy as np
import paddle

from vlcore.data.images import ImageError, contrastive_view, read_rgb, resize, to_chw_float
from vlcore.data.masking import span_mask
from vlcore.data.records import JsonlFile, LineFile, RecordError

_REQUIRED = {"pairs": ("image", "captions"), "labelled": ("image", "label"), "images": ("image",)}
_MAX_SUBSTITUTES = 16


class Corpus:
    """One corpus file; ``load(i, rng)`` returns a raw sample or raises."""

    def __init__(self, cfg, corpus_id):
        self.cfg, self.kind, self.name = cfg, cfg.kind, cfg.name
        self.id = corpus_id
        if cfg.kind == "text":
            self.records = LineFile(cfg.path)
        else:
            self.records = JsonlFile(cfg.path, required=_REQUIRED[cfg.kind])
        self.root = os.path.dirname(os.path.abspath(cfg.path))

    def __len__(self):
        return len(self.records)

    def _image(self, record, i):
        rel = record["image"]
        if not isinstance(rel, str) or not rel:
            raise RecordError(f"{self.records.path}:{self.records.line_number(i)}: 'image' must be a non-empty string")
        return read_rgb(rel if os.path.isabs(rel) else os.path.join(self.root, rel))

    def load(self, i, rng):
        if self.kind == "text":
            return {"text": self.records[i]}
        record = self.records[i]
        where = f"{self.records.path}:{self.records.line_number(i)}"
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


class TextProcessor:
    """Tokenisation + span masking shared by captions and the text corpus."""

    def __init__(self, tokenizer, mlm_cfg):
        self.tok, self.mlm = tokenizer, mlm_cfg

    def encode(self, text, max_len, rng=None):
        ids = self.tok.encode(text)
        room = max_len - 2
        if len(ids) > room:
            # Long documents: a random window, not always the beginning.
            start = int(rng.integers(0, len(ids) - room + 1)) if rng is not None else 0
            ids = ids[start:start + room]
        return ids

    def collate(self, token_lists, rngs):
        """Pad, add [CLS]/[SEP], and span-mask the inner tokens."""
        tok, mlm = self.tok, self.mlm
        n = max(len(t) for t in token_lists) + 2
        b = len(token_lists)
        ids = np.full([b, n], tok.pad_id, dtype=np.int64)
        masked = ids.copy()
        positions, labels = [], []
        for r, (toks, rng) in enumerate(zip(token_lists, rngs)):
            m, pos, lab = span_mask(toks, tok.word_start, rng, tok.mask_id, tok.vocab_size, tok.special_ids,
                                    mlm.mask_ratio, mlm.span_p, mlm.max_span, mlm.replace_mask, mlm.replace_random)
            k = len(toks)
            ids[r, :k + 2] = [tok.cls_id, *toks, tok.sep_id]
            masked[r, :k + 2] = [tok.cls_id, *m, tok.sep_id]
            positions.append(r * n + 1 + pos)
            labels.append(lab)
        return {"ids": ids, "mlm_ids": masked, "mask": ids != tok.pad_id,
                "mlm_positions": np.concatenate(positions).astype(np.int64),
                "mlm_labels": np.concatenate(labels).astype(np.int64)}


class PretrainBatches(paddle.io.Dataset):
    """Item ``i`` is the whole (collated) batch of step ``start_step + i``; a
    DataLoader with ``batch_size=None`` prefetches steps in worker processes."""

    def __init__(self, corpora, schedule, tokenizer, data_cfg, mlm_cfg, image_size,
                 seed=0, rank=0, start_step=0, strict=False):
        self.corpora = {c.name: c for c in corpora}
        self.schedule, self.cfg, self.image_size = schedule, data_cfg, image_size
        self.text = TextProcessor(tokenizer, mlm_cfg)
        self.seed, self.rank, self.start_step, self.strict = seed, rank, start_step, strict

    def __len__(self):
        return self.schedule.total_steps - self.start_step

    def _load(self, corpus, index, rng, skipped):
        """Load ``index`` or, if it is bad, deterministic substitutes."""
        n = len(corpus)
        for attempt in range(_MAX_SUBSTITUTES):
            i = (int(index) + attempt * 7919) % n
            try:
                return corpus.load(i, rng)
            except (ImageError, RecordError) as e:
                if self.strict:
                    raise
                skipped.append(str(e))
        raise RuntimeError(f"{_MAX_SUBSTITUTES} consecutive bad records in corpus {corpus.name!r} "
                           f"({corpus.records.path}); last: {skipped[-1]}")

    def __getitem__(self, i):
        # Paddle's DataLoader can hang instead of re-raising an exception
        # from the loading thread/worker; hand it over as data instead and
        # let the trainer raise it in the main process.
        try:
            return self._batch(self.start_step + i)
        except Exception as e:  # noqa: BLE001 -- re-raised by the trainer
            bad_input = isinstance(e, (ImageError, RecordError))
            # (Paddle's loader drops a batch that holds no array at all.)
            return {"error": str(e) if bad_input else f"{type(e).__name__}: {e}", "step": self.start_step + i,
                    "traceback": "" if bad_input else traceback.format_exc(), "_": np.zeros(1, np.int8)}

    def _batch(self, step):
        name, indices = self.schedule.indices(step)
        corpus = self.corpora[name]
        rngs = [np.random.default_rng([self.seed, step, self.rank, j]) for j in range(len(indices))]
        skipped = []
        samples = [self._load(corpus, idx, rng, skipped) for idx, rng in zip(indices, rngs)]
        batch = getattr(self, f"_collate_{corpus.kind}")(samples, rngs)
        batch.update(step=step, corpus=name, skipped=skipped, batch_size=len(samples),
                     seed=int(np.random.default_rng([self.seed, step, self.rank, 1 << 20]).integers(1 << 62)))
        return batch

    def _pixels(self, images):
        c = self.cfg
        return np.stack([to_chw_float(resize(img, self.image_size), c.image_mean, c.image_std) for img in images])

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
        norm = [np.stack([to_chw_float(v, c.image_mean, c.image_std) for v in vs]) for vs in views]
        return {"kind": "images", "pixels": norm[0], "pixels2": norm[1]}
