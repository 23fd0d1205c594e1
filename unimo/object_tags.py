"""Detected object tags as text in UNIMO's caption context (Oscar style).

The official img2txt reader (PaddlePaddle/Research NLP/UNIMO,
``src/reader/img2txt_reader.py``, ``script/img2txt/coco/model_conf``) reads a
precomputed tag file ``coco_object_0.35_tot.ids`` -- one image per line,
``image_id;token ids;sentence ids;position ids`` (space-separated ints,
';' between the four fields), truncated to ``max_obj_len = 100`` -- and the
model (``src/model/unimo_finetune.py``) concatenates ``[regions][tags][target]``:
tag embedding = word + position (no sentence embedding), attended
bidirectionally with the regions, the target causally after both.

Two sources here, both giving the text half of the context (``src_ids``,
``src_mask`` and, for the file, its ``src_pos``):

* ``tag_labels`` -- tags computed from the region store: the max class of
  each box (``obj_ids[:, 0]``) whose score is >= ``tag_threshold`` (0.35 as
  the file's name says), names from the label file (one class a line,
  Visual Genome's ``objects_vocab.txt``; on a line ``a,b`` the first synonym),
  de-duplicated keeping the first occurrence in box order, joined by spaces,
  tokenised and wrapped as ``[CLS] tags [SEP]`` (positions from the offset,
  like every UNIMO text input). Only the boxes fed as regions count.
* ``tag_file`` -- the official file itself, looked up by the record's
  ``key`` field; ids used as given (they are in the release's
  ``unimo_en.vocab.txt`` order, the order of converted checkpoints' word
  embeddings -- unimo/convert.py -- so pair it with that tokenizer),
  positions as in the file, sentence ids ignored (as the official model does).
"""
import os

import numpy as np

from vlcore.data.text import pad_ids
from vlcore.formats.records import RecordError


def load_labels(path, key):
    """Class names of a label file; ``key`` names the config option in errors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: {path!r}: no object label file (one class name a line, e.g. Visual "
                                f"Genome's objects_vocab.txt)")
    names = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            name = line.strip().split(",")[0].strip()
            if not name:
                raise ValueError(f"{path}:{n}: empty class name ({key})")
            names.append(name)
    if not names:
        raise ValueError(f"{path}: no class names ({key})")
    return names


def region_tags(regions, labels, threshold, max_boxes, where=""):
    """Tag names of one image's first ``max_boxes`` boxes (see module doc)."""
    n = min(regions.num_boxes, max_boxes)
    if regions.obj_ids.shape[1] == 0:
        return []
    # compared in float32, the scores' dtype (0.35 is stored as 0.34999999)
    keep = regions.max_class_scores[:n] >= np.float32(threshold)
    tags, seen = [], set()
    for c in regions.max_class_ids[:n][keep].tolist():
        if not 0 <= c < len(labels):
            raise RecordError(f"{regions.image_id}: object class {c} outside the {len(labels)} labels{where}")
        if labels[c] not in seen:
            seen.add(labels[c])
            tags.append(labels[c])
    return tags


def read_tag_file(path, key):
    """The official ``image_id;ids;sent ids;pos ids`` file -> {image_id: (ids, positions)}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: {path!r}: no object tag file")
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.strip("\r\n").split(";")
            if len(fields) != 4:
                raise ValueError(f"{path}:{n}: {len(fields)} ';'-separated fields, expected 4 "
                                 f"(image_id;token ids;sentence ids;position ids)")
            try:
                ids, sent, pos = ([int(t) for t in x.split()] for x in fields[1:])
            except ValueError:
                raise ValueError(f"{path}:{n}: non-integer id") from None
            if not (len(ids) == len(sent) == len(pos)) or not ids:
                raise ValueError(f"{path}:{n}: token/sentence/position ids differ in length or are empty")
            out[fields[0]] = (ids, pos)
    return out


class ObjectTags:
    """``cfg`` (the training task's or the evaluator's config) has
    ``tag_labels``, ``tag_file``, ``tag_threshold``, ``max_tag_len``,
    ``max_regions`` and ``key``; ``where`` is its config path."""

    def __init__(self, cfg, tok, where):
        self.cfg, self.tok = cfg, tok
        if cfg.tag_labels and cfg.tag_file:
            raise ValueError(f"{where}: set tag_labels or tag_file, not both")
        self.labels = load_labels(cfg.tag_labels, f"{where}.tag_labels") if cfg.tag_labels else None
        self.file = read_tag_file(cfg.tag_file, f"{where}.tag_file") if cfg.tag_file else None
        self.tag_file = cfg.tag_file

    @staticmethod
    def enabled(cfg):
        return bool(cfg.tag_labels or cfg.tag_file)

    def arrays(self, keys, regs):
        """``src_ids``/``src_mask`` (+ ``src_pos`` from a tag file) of images
        ``keys`` whose region records are ``regs``."""
        tok, n = self.tok, self.cfg.max_tag_len
        if self.file is None:
            texts = [" ".join(region_tags(g, self.labels, self.cfg.tag_threshold, self.cfg.max_regions))
                     for g in regs]
            ids = pad_ids([tok.build_input(t, n) for t in tok.encode_batch(texts)], tok.pad_id)
            return {"src_ids": ids, "src_mask": ids != tok.pad_id}
        rows = []
        for k in keys:
            if k not in self.file:
                raise RecordError(f"{self.tag_file}: no object tags for image {k!r}")
            rows.append(self.file[k])
        ids = pad_ids([r[0][:n] for r in rows], tok.pad_id)
        pos = np.zeros_like(ids)
        mask = np.zeros(ids.shape, bool)
        for i, (_, p) in enumerate(rows):
            p = p[:n]
            pos[i, :len(p)], mask[i, :len(p)] = p, True
        return {"src_ids": ids, "src_mask": mask, "src_pos": pos}
