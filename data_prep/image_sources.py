"""The images to extract, and optional given boxes, from what users have.

``list_images(spec)`` accepts:

- a directory: every image file below it (``.jpg .jpeg .png .bmp .webp
  .tif .tiff``), sorted; id = path relative to the directory without the
  extension (``train2014/COCO_train2014_000000000009``; a flat folder gives
  the file stem);
- a ``.txt``/``.lst`` list: one image per line, ``path`` or ``path<TAB>id``;
- a ``.jsonl`` manifest of this toolkit (``{"id": ..., "image": ...}`` per line);
- a ``.json`` annotation file: COCO (``images[].id``, ``images[].file_name``)
  or Karpathy's split files for COCO/Flickr30k (``images[].filename``,
  optional ``filepath``; id = ``cocoid`` if present, else the file stem).

Relative paths are resolved against ``image_root`` if given, else the list's
own directory. Ids must be unique (two different files with one id is an
error naming both); an id listed twice for the same file is kept once.

``read_boxes(path)`` reads given boxes: JSONL, one ``{"id": ..., "boxes":
[[x1, y1, x2, y2], ...]}`` per image, original-image pixels.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from vlcore.formats.jsonl import iter_jsonl

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceError(ValueError):
    """A bad image list or boxes file; the message names the file (and line)."""


@dataclass(frozen=True)
class ImageItem:
    image_id: str
    path: str


def _resolve(path, root):
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(root, path))


def _from_dir(d):
    items = []
    for base, dirs, files in os.walk(d):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                full = os.path.join(base, name)
                items.append(ImageItem(os.path.splitext(os.path.relpath(full, d))[0].replace(os.sep, "/"), full))
    return items


def _from_list(path, root):
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) > 2:
                raise SourceError(f"{path}:{lineno}: expected 'path' or 'path<TAB>id', got {len(parts)} fields")
            p = _resolve(parts[0].strip(), root)
            iid = parts[1].strip() if len(parts) == 2 else os.path.splitext(os.path.basename(p))[0]
            items.append(ImageItem(iid, p))
    return items


def _from_jsonl(path, root):
    items = []
    for rec, where in iter_jsonl(path, SourceError):
        try:
            items.append(ImageItem(str(rec["id"]), _resolve(rec["image"], root)))
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(f"{where}: expected {{\"id\": ..., \"image\": ...}} ({e})") from None
    return items


def _from_json(path, root):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        images = data["images"]
    except (ValueError, KeyError, TypeError) as e:
        raise SourceError(f"{path}: not a COCO or Karpathy annotation file (need 'images': {e})") from None
    items = []
    for i, im in enumerate(images):
        if "file_name" in im and "id" in im:                      # COCO
            items.append(ImageItem(str(im["id"]), _resolve(im["file_name"], root)))
        elif "filename" in im:                                     # Karpathy
            rel = os.path.join(im.get("filepath", ""), im["filename"])
            iid = str(im["cocoid"]) if "cocoid" in im else os.path.splitext(os.path.basename(im["filename"]))[0]
            items.append(ImageItem(iid, _resolve(rel, root)))
        else:
            raise SourceError(f"{path}: images[{i}] has neither file_name+id (COCO) nor filename (Karpathy)")
    return items


def list_images(spec, image_root: Optional[str] = None) -> List[ImageItem]:
    if os.path.isdir(spec):
        items = _from_dir(spec)
    elif not os.path.isfile(spec):
        raise FileNotFoundError(f"{spec}: no such file or directory")
    else:
        root = image_root or os.path.dirname(os.path.abspath(spec))
        low = spec.lower()
        if low.endswith(".jsonl"):
            items = _from_jsonl(spec, root)
        elif low.endswith(".json"):
            items = _from_json(spec, root)
        else:
            items = _from_list(spec, root)
    seen: Dict[str, str] = {}
    unique = []
    for it in items:
        if it.image_id in seen:
            if seen[it.image_id] != it.path:
                raise SourceError(f"{spec}: image id {it.image_id!r} names two files: "
                                  f"{seen[it.image_id]} and {it.path}")
            continue
        seen[it.image_id] = it.path
        unique.append(it)
    return unique


def shard(items, index, count):
    """Shard ``index`` of ``count``: every ``count``-th item from ``index``."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    return items[index::count]


def read_boxes(path) -> Dict[str, np.ndarray]:
    boxes = {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    for rec, where in iter_jsonl(path, SourceError):
        try:
            iid, b = str(rec["id"]), np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(f"{where}: expected {{\"id\": ..., \"boxes\": [[x1, y1, x2, y2], ...]}} "
                              f"({e})") from None
        bad = np.nonzero(~((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) & np.isfinite(b).all(1)))[0]
        if len(bad):
            raise SourceError(f"{where}: id {iid!r}: box {bad[0]} {b[bad[0]].tolist()} needs x1 < x2 and y1 < y2")
        if iid in boxes:
            raise SourceError(f"{where}: id {iid!r} appears twice")
        boxes[iid] = b
    return boxes
