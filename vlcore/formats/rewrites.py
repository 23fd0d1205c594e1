"""Rewritten captions for UNIMO's cross-modal contrastive learning (CMCL).

The text-rewriting tools of ``data_prep/rewrite/`` write this format and the
UNIMO CMCL reader consumes it (UNIMO paper, Section 3.1: back-translated
positives, TF-IDF retrieved and scene-graph rewritten hard negatives).

Format
------
JSONL, UTF-8, one object per caption of a pairs manifest::

    {"caption_id": "coco_391895#2",
     "image_id": "coco_391895",
     "caption": "A man with a red helmet on a small moped on a dirt road.",
     "positives": [{"text": "A man in a red helmet on a small moped on a dirt road.",
                    "kind": "bt"}],
     "negatives": [{"text": "A man with a red helmet on a small moped on a dirt track.",
                    "kind": "sg-object"},
                   {"text": "A man riding a moped on a dirt road.", "kind": "tfidf",
                    "source": "coco_57870#0"}]}

* ``caption_id`` is ``<record id>#<k>``: caption ``k`` (0-based) of the
  record with that ``id`` in the pairs manifest (``{"id", "image",
  "captions": [...]}``). The record id may itself contain ``#``; the index
  is what follows the last one.
* ``image_id`` is the record id (the part before the last ``#``); two
  captions are "of the same image" when their ``image_id`` is equal.
* ``caption`` is the manifest caption verbatim; a merge checks that every
  file agrees on it, so rewrites of a since-edited manifest are caught.
* ``positives[*].kind`` is ``"bt"`` (back-translation).
* ``negatives[*].kind`` is one of ``"tfidf"``, ``"sg-object"``,
  ``"sg-attribute"``, ``"sg-relation"``; ``source`` (optional, tfidf only)
  is the caption id the negative was retrieved from. TF-IDF negatives are
  in descending similarity.
* No text in ``positives``/``negatives`` equals the caption, and no text
  appears twice in a record (compared after :func:`normalize_text`).
* Unknown keys are ignored by the reader and not written by the writer.

Files may be sharded (``<name>-00003-of-00016.jsonl``, see
:mod:`vlcore.formats.sharded`); every shard is written atomically.
:func:`read_rewrites` merges several files (e.g. the back-translation,
TF-IDF and scene-graph outputs) by ``caption_id``.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata

from vlcore.formats.jsonl import iter_jsonl
from vlcore.formats.sharded import atomic_open, list_shards, parse_shard_name

POSITIVE_KINDS = ("bt",)
NEGATIVE_KINDS = ("tfidf", "sg-object", "sg-attribute", "sg-relation")
_WS = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


class RewriteFormatError(ValueError):
    """A malformed rewrite record; the message starts with ``file:line``."""


def caption_id(record_id: str, index: int) -> str:
    return f"{record_id}#{index}"


def split_caption_id(cid: str) -> tuple[str, int]:
    """``("coco_1", 2)`` for ``"coco_1#2"``; ValueError if not of that form."""
    rid, sep, idx = cid.rpartition("#")
    if not sep or not rid or not idx.isdigit():
        raise ValueError(f"caption id {cid!r} is not '<record id>#<index>'")
    return rid, int(idx)


def normalize_text(text: str) -> str:
    """The key two texts are compared by: NFKC, case-folded, whitespace
    collapsed, leading/trailing punctuation dropped ("A dog." == "a dog")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE_PUNCT.sub("", _WS.sub(" ", text).strip())


def _check_items(items, kinds, what, where, allow_source):
    if not isinstance(items, list):
        raise RewriteFormatError(f"{where}: '{what}' must be a list")
    out = []
    for i, item in enumerate(items):
        at = f"{where}: {what}[{i}]"
        if not isinstance(item, dict):
            raise RewriteFormatError(f"{at} must be an object")
        text, kind = item.get("text"), item.get("kind")
        if not isinstance(text, str) or not text.strip():
            raise RewriteFormatError(f"{at}: 'text' must be a non-empty string")
        if kind not in kinds:
            raise RewriteFormatError(f"{at}: 'kind' must be one of {list(kinds)}, got {kind!r}")
        clean = {"text": text, "kind": kind}
        if "source" in item and item["source"] is not None:
            if not allow_source or not isinstance(item["source"], str):
                raise RewriteFormatError(f"{at}: 'source' must be a caption id string")
            clean["source"] = item["source"]
        out.append(clean)
    return out


def validate_record(obj, where: str = "<record>") -> dict:
    """Check one record against the contract; return it with only known keys.
    ``where`` (e.g. ``file:line``) starts every error message."""
    if not isinstance(obj, dict):
        raise RewriteFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("caption_id", "image_id", "caption"):
        if not isinstance(obj.get(key), str):
            raise RewriteFormatError(f"{where}: missing or non-string '{key}'")
    try:
        rid, _ = split_caption_id(obj["caption_id"])
    except ValueError as e:
        raise RewriteFormatError(f"{where}: {e}") from None
    if rid != obj["image_id"]:
        raise RewriteFormatError(f"{where}: caption_id {obj['caption_id']!r} does not belong to "
                                 f"image_id {obj['image_id']!r}")
    return {"caption_id": obj["caption_id"], "image_id": obj["image_id"], "caption": obj["caption"],
            "positives": _check_items(obj.get("positives", []), POSITIVE_KINDS, "positives", where, False),
            "negatives": _check_items(obj.get("negatives", []), NEGATIVE_KINDS, "negatives", where, True)}


def make_record(cid: str, caption: str, positives=(), negatives=()) -> dict:
    """A valid record, with texts equal to the caption or repeated dropped."""
    rid, _ = split_caption_id(cid)
    rec = {"caption_id": cid, "image_id": rid, "caption": caption, "positives": [], "negatives": []}
    seen = {normalize_text(caption)}
    _add_unique(rec, positives, seen, "positives")
    _add_unique(rec, negatives, seen, "negatives")
    return rec


def _add_unique(rec, items, seen, field):
    added = 0
    for item in items:
        key = normalize_text(item["text"])
        if key and key not in seen:
            seen.add(key)
            rec[field].append(dict(item))
            added += 1
    return added


def dumps(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def write_rewrites(path: str, records) -> int:
    """Write records (validated) to ``path`` atomically; return the count."""
    n = 0
    with atomic_open(path) as f:
        for rec in records:
            f.write(dumps(validate_record(rec, f"{path}: record {n}")) + "\n")
            n += 1
    return n


def iter_rewrites(path: str):
    """Yield ``(record, "file:line")`` for each non-blank line of ``path``."""
    for obj, where in iter_jsonl(path, RewriteFormatError):
        yield validate_record(obj, where), where


def expand_paths(paths) -> list[str]:
    """Files as given; a directory stands for all its complete shard sets."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted({parsed[0] for f in os.listdir(p)
                            if (parsed := parse_shard_name(f)) and parsed[3] == "jsonl"})
            if not names:
                raise FileNotFoundError(f"{p}: no '<name>-NNNNN-of-NNNNN.jsonl' shards")
            for name in names:
                out.extend(list_shards(p, name))
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


class RewriteMerger:
    """Merge records by caption id across files; de-duplicate texts.

    A caption id may occur once per file; across files its ``image_id`` and
    ``caption`` must agree. Texts equal to the caption or already present
    are dropped (counted in ``dropped``)."""

    def __init__(self):
        self.records: dict[str, dict] = {}
        self._where: dict[str, str] = {}
        self._seen: dict[str, set] = {}
        self._files: dict[str, set] = {}
        self.dropped = 0

    def add(self, rec: dict, where: str, file_key: str | None = None) -> None:
        cid = rec["caption_id"]
        first = self.records.get(cid)
        if first is None:
            first = self.records[cid] = {**rec, "positives": [], "negatives": []}
            self._where[cid] = where
            self._seen[cid] = {normalize_text(rec["caption"])}
            self._files[cid] = {file_key}
        else:
            if file_key is not None and file_key in self._files[cid]:
                raise RewriteFormatError(f"{where}: caption id {cid!r} repeated in one file "
                                         f"(first at {self._where[cid]})")
            self._files[cid].add(file_key)
            for key in ("image_id", "caption"):
                if first[key] != rec[key]:
                    raise RewriteFormatError(f"{where}: {key} {rec[key]!r} of {cid!r} differs from "
                                             f"{first[key]!r} at {self._where[cid]}")
        seen = self._seen[cid]
        for field in ("positives", "negatives"):
            self.dropped += len(rec[field]) - _add_unique(first, rec[field], seen, field)


def read_rewrites(paths) -> dict[str, dict]:
    """Read and merge rewrite files (or shard directories) into
    ``{caption_id: record}``, in order of first appearance."""
    merger = RewriteMerger()
    for path in expand_paths(paths):
        for rec, where in iter_rewrites(path):
            merger.add(rec, where, file_key=path)
    return merger.records
