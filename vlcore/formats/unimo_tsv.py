"""The region-feature TSV of the official UNIMO release, and conversion to and
from the region store (:mod:`vlcore.formats.region_store`).

What the official code reads (PaddlePaddle/Research, ``NLP/UNIMO/src/reader/
retrieval_reader.py``, ``_parse_image_line``): one image per line, seven
tab-separated fields ::

    img_filename  image_w  image_h  number_box  boxes  image_embeddings  probs

``boxes``, ``image_embeddings`` and ``probs`` are ``base64(float32 bytes)``
(``np.frombuffer(base64.b64decode(s), np.float32)``), reshaped to
``[number_box, -1]``: boxes ``[N, 4]`` (x1, y1, x2, y2 in pixels of the
original image, divided by ``image_w``/``image_h`` by the reader), embeddings
``[N, 2048]``, probs ``[N, 1601]`` (``image_class_size: 1601`` in
``model_files/config/unimo_base_en.json``: Visual Genome's 1600 classes plus
background). The official reader infers the widths and silently
``np.resize``-s a short field; this one checks the widths and names the
line. (Its ``img2txt_reader.py`` reads a different, ``;``-separated
16-field caption+feature format, not handled here.)

The official files do not say where the background column of ``probs`` is.
The Caffe bottom-up-attention model the UNIMO paper cites puts it first;
the detectron2 port (and the store's ``cls_probs``) puts it last.
``probs_background="first"`` (default) or ``"last"`` says which.

Round trip. TSV -> store -> TSV reproduces every line byte for byte when the
store keeps float32 features and full probabilities (``float32=True``,
``keep_probs=True``) and the TSV is canonical (integer ``image_w``/``image_h``,
standard padded base64, ``\\n`` line ends). With the default float16 store,
boxes are exact and features and probabilities are rounded to float16
(relative error <= 2**-11, about 5e-4; probabilities below 6e-8 become
float16 subnormals or zero).
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from vlcore.formats.region_store import RegionFeatures, RegionStore, RegionStoreWriter, StoreError, top_k

FIELDS = ("img_filename", "image_w", "image_h", "number_box", "boxes", "image_embeddings", "probs")
FEATURE_DIM = 2048
NUM_PROBS = 1601


class TsvError(ValueError):
    """A malformed TSV line; the message is ``file:line: what``."""


@dataclass(frozen=True)
class TsvRecord:
    img_filename: str
    image_w: int
    image_h: int
    boxes: np.ndarray             # float32 [N, 4]
    image_embeddings: np.ndarray  # float32 [N, D]
    probs: np.ndarray             # float32 [N, C]
    lineno: int = 0

    @property
    def number_box(self) -> int:
        return int(self.boxes.shape[0])


def _int_field(text, name, where):
    try:
        value = float(text)
    except ValueError:
        raise TsvError(f"{where}: {name} {text!r} is not a number") from None
    if value != int(value) or value < 0:
        raise TsvError(f"{where}: {name} {text!r} is not a non-negative integer")
    return int(value)


def _decode(text, n, width, name, where):
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TsvError(f"{where}: {name} is not valid base64") from None
    if len(raw) % 4:
        raise TsvError(f"{where}: {name} has {len(raw)} bytes, not a whole number of float32")
    values = np.frombuffer(raw, dtype=np.float32)
    if n == 0:
        if values.size:
            raise TsvError(f"{where}: {name} has {values.size} values for 0 boxes")
        return np.zeros((0, width or 0), np.float32)
    if values.size % n or (width and values.size != n * width):
        want = f"{n} x {width}" if width else f"a multiple of {n}"
        raise TsvError(f"{where}: {name} has {values.size} values, expected {want}")
    return values.reshape(n, -1)


def parse_line(line: str, where: str = "<line>", feature_dim: Optional[int] = FEATURE_DIM,
               num_probs: Optional[int] = NUM_PROBS) -> TsvRecord:
    """One TSV line -> :class:`TsvRecord`; ``None`` widths are inferred."""
    items = line.rstrip("\r\n").split("\t")
    if len(items) != len(FIELDS):
        raise TsvError(f"{where}: {len(items)} tab-separated fields, expected {len(FIELDS)} ({', '.join(FIELDS)})")
    name, w, h, n = items[0], *(_int_field(items[i], FIELDS[i], where) for i in (1, 2, 3))
    boxes = _decode(items[4], n, 4, "boxes", where)
    emb = _decode(items[5], n, feature_dim, "image_embeddings", where)
    probs = _decode(items[6], n, num_probs, "probs", where)
    return TsvRecord(name, w, h, boxes, emb, probs)


def read_tsv(path, feature_dim: Optional[int] = FEATURE_DIM, num_probs: Optional[int] = NUM_PROBS,
             strict=True, on_error=None) -> Iterator[TsvRecord]:
    """Stream the records of a TSV file (blank lines skipped). A malformed line
    raises :class:`TsvError` (``path:line: ...``), or with ``strict=False`` is
    passed to ``on_error(exc)`` and skipped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "r", encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = parse_line(line, f"{path}:{lineno}", feature_dim, num_probs)
            except TsvError as e:
                if strict:
                    raise
                if on_error:
                    on_error(e)
                continue
            yield TsvRecord(rec.img_filename, rec.image_w, rec.image_h, rec.boxes, rec.image_embeddings,
                            rec.probs, lineno)


def _b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode("ascii")


def format_line(rec: TsvRecord) -> str:
    if "\t" in rec.img_filename or "\n" in rec.img_filename:
        raise TsvError(f"{rec.img_filename!r}: an image name may not contain tabs or newlines")
    return "\t".join([rec.img_filename, str(int(rec.image_w)), str(int(rec.image_h)), str(rec.number_box),
                      _b64(rec.boxes), _b64(rec.image_embeddings), _b64(rec.probs)]) + "\n"


class TsvWriter:
    """Write records to ``path`` through a temporary file renamed into place by
    ``close()``: a killed conversion never leaves a truncated TSV. Leaving the
    ``with`` block by an exception discards the temporary file."""

    def __init__(self, path):
        self.path = str(path)
        self._tmp = f"{self.path}.tmp-{os.getpid()}"
        self._f = open(self._tmp, "w", encoding="utf-8", newline="")
        self.count = 0

    def write(self, rec: TsvRecord):
        self._f.write(format_line(rec))
        self.count += 1

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            os.replace(self._tmp, self.path)

    def abort(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        self.abort() if exc_type else self.close()


# ---------------------------------------------------------------- conversion
def _bg_last(probs, background):
    if background == "last":
        return probs
    if background != "first":
        raise ValueError(f"probs_background must be 'first' or 'last', not {background!r}")
    return np.concatenate([probs[:, 1:], probs[:, :1]], axis=1)


def _bg_as(probs_bg_last, background):
    if background == "last":
        return probs_bg_last
    return np.concatenate([probs_bg_last[:, -1:], probs_bg_last[:, :-1]], axis=1)


def record_from_tsv(rec: TsvRecord, k=10, probs_background="first", keep_probs=True) -> RegionFeatures:
    probs = _bg_last(rec.probs, probs_background)
    ids, scores = top_k(probs[:, :-1], k)
    return RegionFeatures(rec.img_filename, rec.image_w, rec.image_h, rec.boxes, rec.image_embeddings, ids, scores,
                          cls_probs=probs if keep_probs else None)


def tsv_from_record(rec: RegionFeatures, probs_background="first", sparse_probs=False,
                    num_classes=None) -> TsvRecord:
    if rec.cls_probs is not None:
        probs = np.asarray(rec.cls_probs, np.float32)
    elif sparse_probs:
        # only the top-k were kept: the others are 0 and background takes the rest
        c = int(num_classes or NUM_PROBS - 1)
        probs = np.zeros((rec.num_boxes, c + 1), np.float32)
        np.put_along_axis(probs, rec.obj_ids.astype(np.int64), rec.obj_scores, axis=1)
        probs[:, -1] = np.clip(1.0 - probs[:, :-1].sum(1), 0.0, 1.0)
    else:
        raise StoreError(f"record {rec.image_id!r}: the store kept only the top-{rec.obj_ids.shape[1]} classes, "
                         "not the full probabilities the TSV needs (extract with --full-probs, or export "
                         "with --sparse-probs to fill the rest with zeros)")
    return TsvRecord(rec.image_id, rec.image_w, rec.image_h, np.asarray(rec.boxes, np.float32),
                     np.asarray(rec.features, np.float32), _bg_as(probs, probs_background))


def tsv_to_store(tsv_paths: Iterable[str], store_path, float32=False, k=10, probs_background="first",
                 keep_probs=True, strict=True, feature_dim: Optional[int] = FEATURE_DIM,
                 num_probs: Optional[int] = NUM_PROBS, log=print) -> dict:
    """Import TSV files into a store (appending; ids already there are
    skipped, so an interrupted import can be re-run). Returns counts."""
    stats = {"read": 0, "written": 0, "skipped_existing": 0, "bad_lines": 0}

    def bad(e):
        stats["bad_lines"] += 1
        log(f"skipped: {e}")

    meta = {"source": "unimo_tsv", "probs_background_in_tsv": probs_background,
            "num_classes": (num_probs - 1) if num_probs else None}
    with RegionStoreWriter(store_path, feature_dtype="float32" if float32 else "float16", meta=meta) as out:
        for path in tsv_paths:
            for rec in read_tsv(path, feature_dim, num_probs, strict=strict, on_error=bad):
                stats["read"] += 1
                if rec.img_filename in out:
                    stats["skipped_existing"] += 1
                    continue
                out.put(record_from_tsv(rec, k, probs_background, keep_probs))
                stats["written"] += 1
    return stats


def store_to_tsv(store_path, tsv_path, probs_background="first", sparse_probs=False, ids=None) -> int:
    """Export a store (or the given ``ids``, in that order) to one TSV file,
    written atomically. Returns the number of lines."""
    store = RegionStore(store_path)
    num_classes = store.meta.get("num_classes")
    with TsvWriter(tsv_path) as out:
        for key in (ids if ids is not None else store.keys()):
            out.write(tsv_from_record(store.get(key), probs_background, sparse_probs, num_classes))
        n = out.count
    store.close()
    return n
