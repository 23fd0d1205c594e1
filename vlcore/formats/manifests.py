"""Task manifests: the JSONL records the pre-training and fine-tuning code
reads, one JSON object per line (blank lines ignored, unknown keys ignored).

``data_prep.convert`` writes them from the public dataset formats and checks
every record it writes with :func:`validate`; the training code reads them
with :class:`Manifest`, which checks each record when it is read and names
the file and line of a bad one. This module is the single definition of the
formats (no Paddle import).

Image paths (``image``) are relative to the manifest's directory (UNIMO-2
pre-training) or to a configured image root (fine-tuning), unless absolute.
For UNIMO / Unicoder-VL the image is looked up by key (``id`` or
``image_id``) in a region store (:mod:`vlcore.formats.region_store`).

Kinds and their records (``?`` = optional)::

  pairs      {"id": str, "image": str, "image_id"?: str, "captions": [str, ...]}
             one record per image, all its captions (COCO, Flickr30k, VG,
             CC, SBU). Retrieval and captioning read the Karpathy splits as
             separate files.
  labelled   {"id": str, "image": str, "label": str}
             image classification / ImageNet-style folders.
  vqa        {"id": str (question_id), "image": str, "image_id": str,
              "question": str, "answers"?: {answer_text: n_humans, ...},
              "answer_type"?: str, "question_type"?: str}
             ``answers`` counts the raw human answers (VQA v2: ten per
             question) exactly as released; answer normalisation and the
             answer vocabulary are the fine-tuning code's business. Test
             splits have no ``answers``.
  snli_ve    {"id": str (pairID), "image": str, "image_id": str,
              "hypothesis": str, "label"?: "entailment"|"neutral"|"contradiction"}
  text_cls   {"id": str, "text_a": str, "text_b"?: str, "label"?: str | float}
             GLUE; ``label`` is a class name (a string, e.g. "1",
             "entailment") or a float for regression (STS-B); absent on
             test splits.
  seq2seq    {"id": str, "source": str, "target"?: str}
             text generation (CNN/DM, Gigaword, SQuAD question generation).

Plain text corpora are not JSONL: UTF-8, one sample (sentence or document)
per line, blank lines ignored (see docs/data_formats.md); pre-tokenized corpora are
token shards (:mod:`vlcore.formats.token_shards`).
"""
from __future__ import annotations

import json
import math
import os
import sys

VE_LABELS = ("entailment", "neutral", "contradiction")

# kind -> {key: (type check, description)}; required keys first.
_STR = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
_OPT_STR = (lambda v: isinstance(v, str), "a string")


def _str_list(v):
    return isinstance(v, list) and len(v) > 0 and all(isinstance(c, str) and c.strip() for c in v)


def _answer_counts(v):
    return (isinstance(v, dict) and all(isinstance(k, str) for k in v)
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v.values()))


def _label(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, float) or isinstance(v, int):
        return math.isfinite(v)
    return isinstance(v, str) and v.strip() != ""


SPECS = {
    "pairs": {"required": {"id": _STR, "image": _STR,
                           "captions": (_str_list, "a non-empty list of non-empty strings")},
              "optional": {"image_id": _STR}},
    "labelled": {"required": {"id": _STR, "image": _STR, "label": _STR}, "optional": {}},
    "vqa": {"required": {"id": _STR, "image": _STR, "image_id": _STR, "question": _STR},
            "optional": {"answers": (_answer_counts, "an object {answer: positive int count}"),
                         "answer_type": _OPT_STR, "question_type": _OPT_STR}},
    "snli_ve": {"required": {"id": _STR, "image": _STR, "image_id": _STR, "hypothesis": _STR},
                "optional": {"label": (lambda v: v in VE_LABELS, f"one of {list(VE_LABELS)}")}},
    "text_cls": {"required": {"id": _STR, "text_a": _STR},
                 "optional": {"text_b": _OPT_STR,
                              "label": (_label, "a non-empty string or a finite number")}},
    "seq2seq": {"required": {"id": _STR, "source": _STR}, "optional": {"target": _OPT_STR}},
}
KINDS = tuple(SPECS)


class ManifestError(ValueError):
    """A record that does not follow its kind's spec (names file and line)."""


def validate(kind: str, record, where: str = "record", require=()):
    """Check ``record`` against the spec of ``kind``; return it unchanged.

    ``require`` names optional keys that must be present here (e.g.
    ``("answers",)`` when training VQA). Raises :class:`ManifestError`
    starting with ``where`` (``file:line``) and naming the key.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown manifest kind {kind!r}; known: {list(KINDS)}")
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
    spec = SPECS[kind]
    for key in spec["required"]:
        if key not in record:
            raise ManifestError(f"{where}: {kind} record has no {key!r}")
    for key in require:
        if key not in record:
            raise ManifestError(f"{where}: {kind} record has no {key!r} (needed here)")
    for key, (ok, desc) in {**spec["required"], **spec["optional"]}.items():
        if key in record and not ok(record[key]):
            raise ManifestError(f"{where}: {key!r} must be {desc}, got {_short(record[key])}")
    return record


def lookup(record, path: str):
    """The value at a dotted ``path`` of a record (``label``,
    ``scene.0.shape``: keys, and list positions as numbers); KeyError when
    the record has none."""
    value = record
    for part in path.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(path) from None
    return value


def _short(value, n=60):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= n else text[:n - 3] + "..."


class Manifest:
    """``len()`` and ``[i]`` over a manifest of one kind; every record is
    validated when read. Uses the byte-offset index of
    :class:`vlcore.formats.records.JsonlFile` (nothing is loaded into memory)."""

    def __init__(self, path: str, kind: str, require=()):
        from vlcore.formats.records import JsonlFile  # numpy only, no Paddle
        if kind not in SPECS:
            raise ValueError(f"unknown manifest kind {kind!r}; known: {list(KINDS)}")
        self.path, self.kind, self.require = path, kind, tuple(require)
        self.records = JsonlFile(path)

    def __len__(self):
        return len(self.records)

    def line_number(self, i):
        return self.records.line_number(i)

    def __getitem__(self, i):
        try:
            record = self.records[i]
        except ValueError as e:  # RecordError: malformed JSON / not UTF-8, already located
            raise ManifestError(str(e)) from None
        return validate(self.kind, record, f"{self.path}:{self.line_number(i)}", self.require)


def labelled_images(path: str, label_field: str = "label", image_root: str = "", limit: int = 0,
                    option: str = "label_field"):
    """``(id, image path, label, line)`` of each record of a labelled
    manifest (the first ``limit``; 0: all): the image resolved against
    ``image_root`` ("" = the manifest's directory), the label read at the
    dotted ``label_field`` (:func:`lookup`) as text. A record without it is a
    ManifestError naming the file, line and ``option`` (the switch that set
    the field)."""
    manifest = Manifest(path, "labelled")
    root = image_root or os.path.dirname(os.path.abspath(path))
    out = []
    for i in range(min(limit, len(manifest)) if limit else len(manifest)):
        rec, line = manifest[i], manifest.line_number(i)
        try:
            label = str(lookup(rec, label_field))
        except KeyError:
            raise ManifestError(f"{path}:{line}: no {label_field!r} ({option})") from None
        out.append((rec["id"], rec["image"] if os.path.isabs(rec["image"]) else os.path.join(root, rec["image"]),
                    label, line))
    return out

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def check_file(path: str, kind: str, require=(), max_errors: int = 20, log=None):
    """Validate every record of ``path``: ``(n_good, errors)`` with up to
    ``max_errors`` messages kept; also reports repeated ids."""
    m = Manifest(path, kind, require)
    errors, good, seen, n_bad = [], 0, {}, 0
    for i in range(len(m)):
        try:
            rec = m[i]
            rid = rec["id"]
            if rid in seen:
                raise ManifestError(f"{path}:{m.line_number(i)}: id {rid!r} repeated (first on line {seen[rid]})")
            seen[rid] = m.line_number(i)
            good += 1
        except ManifestError as e:
            n_bad += 1
            if len(errors) < max_errors:
                errors.append(str(e))
    return good, n_bad, errors


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m vlcore.formats.manifests",
                                 description="Check a task manifest against its spec.")
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("path")
    ap.add_argument("--require", nargs="*", default=[], help="optional keys that must be present")
    args = ap.parse_args(argv)
    try:
        good, bad, errors = check_file(args.path, args.kind, args.require)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{args.path}: {good} valid {args.kind} records, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
