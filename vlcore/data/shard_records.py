"""The samples of webdataset tar shards as the records of a pairs,
labelled or image corpus (:mod:`vlcore.formats.tar_shards` reads them).

What a sample must hold, by corpus kind:

- every kind: an image member, the first of ``jpg``, ``jpeg``, ``png``,
  ``webp``, ``bmp`` present (its bytes are decoded like an image file);
- ``pairs``: captions, in this order of preference: a ``json`` member's
  ``captions`` list (the toolkit's converter writes it), a ``txt`` member
  (one caption, as img2dataset writes it), a ``json`` member's ``caption``
  string (img2dataset's metadata);
- ``labelled``: a ``cls`` member (webdataset's convention for a class
  label, as text) or a ``json`` member's ``label``.

A sample without what its kind needs is a :class:`RecordError` naming
``shard.tar:key`` (skipped and counted like a bad manifest line; fatal in
strict mode).
"""
import json

from vlcore.formats.records import RecordError
from vlcore.formats.tar_shards import ShardError, TarShards

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp")


class ShardRecords:
    """``len()``, ``[i]`` (a record dict: ``image`` is a
    :class:`vlcore.formats.tar_shards.Member`) and :meth:`where` over the
    samples of tar shards. ``strict``: a shard with truncated members is an
    error naming the first one (by default they are left out and counted)."""

    def __init__(self, spec, kind, strict=False):
        self.shards, self.kind, self.path = TarShards(spec), kind, spec
        if strict and self.shards.truncated:
            raise ShardError(f"{self.shards.truncated[0]}: truncated member "
                             f"({len(self.shards.truncated)} in all; strict_data is on)")

    def __len__(self):
        return len(self.shards)

    def where(self, i):
        return self.shards.where(i)

    def describe(self):
        return self.shards.describe()

    def __getitem__(self, i):
        members = self.shards[i]
        image = next((members[e] for e in IMAGE_EXTS if e in members), None)
        if image is None:
            raise RecordError(f"{self.where(i)}: no image member ({', '.join(IMAGE_EXTS)}); has {sorted(members)}")
        record = {"image": image}
        if self.kind == "images":  # the image is all it needs: no metadata to parse
            return record
        meta = _json(members.get("json"))
        if self.kind == "pairs":
            record["captions"] = _captions(members, meta, lambda: self.where(i))
        elif self.kind == "labelled":
            label = bytes(members["cls"].data).decode("utf-8", "replace").strip() if "cls" in members else meta.get("label")
            if not isinstance(label, str) or not label.strip():
                raise RecordError(f"{self.where(i)}: no label (a .cls member or 'label' in the .json)")
            record["label"] = label
        return record


def _json(member):
    if member is None:
        return {}
    try:
        meta = json.loads(bytes(member.data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RecordError(f"{member.where}: not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise RecordError(f"{member.where}: expected a JSON object")
    return meta


def _captions(members, meta, where):
    """``where()`` names the sample (built only for an error message)."""
    if isinstance(meta.get("captions"), list):
        caps = meta["captions"]
    elif "txt" in members:
        try:
            caps = [bytes(members["txt"].data).decode("utf-8").strip()]
        except UnicodeDecodeError as e:
            raise RecordError(f"{members['txt'].where}: not UTF-8 ({e.reason})") from None
    elif isinstance(meta.get("caption"), str):
        caps = [meta["caption"]]
    else:
        raise RecordError(f"{where()}: no caption (a .txt member, or 'captions' / 'caption' in the .json)")
    if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
        raise RecordError(f"{where()}: empty caption")
    return caps
