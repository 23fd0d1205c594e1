"""COCO captions and Flickr30k in Karpathy's split JSON -> pairs manifests.

Input (``dataset_coco.json`` / ``dataset_flickr30k.json`` of Karpathy &
Fei-Fei's release)::

    {"dataset": "coco", "images": [
      {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
       "imgid": 0, "split": "test", "cocoid": 391895, "sentids": [770337, ...],
       "sentences": [{"tokens": ["a", "man", ...], "raw": "A man with a red helmet ...",
                      "imgid": 0, "sentid": 770337}, ...]}, ...]}

Flickr30k has no ``filepath`` and no ``cocoid`` (the id is the file name's
stem). Splits: ``train``, ``restval`` (COCO only), ``val``, ``test``.

Output: one pairs manifest per split, ``<out>/<split>.jsonl``, records
``{"id", "image": <prefix><filepath>/<filename>, "image_id", "captions"}``
with the ``raw`` sentences (whitespace collapsed; ``tokens`` are only used
when ``raw`` is missing, as in older releases). ``--restval-into-train``
writes restval into ``train.jsonl`` (the usual 113k-image COCO training
set). Captions repeated verbatim within an image are dropped (counted).
"""
from __future__ import annotations

import os

from .common import (ConvertError, ImageCheck, Report, add_common_args, add_image_args, add_unique_text, json_path,
                     load_json, open_outputs)

SPLITS = ("train", "restval", "val", "test")


def add_args(p):
    p.add_argument("--src", required=True, help="dataset_coco.json or dataset_flickr30k.json")
    add_common_args(p, out_help="output directory: <split>.jsonl per split")
    add_image_args(p)
    p.add_argument("--restval-into-train", action="store_true", help="write restval images into train.jsonl")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to write")


def convert(args, report: Report):
    data = load_json(args.src)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConvertError(f"{args.src}: top level: expected an object with an 'images' list "
                           "(Karpathy split JSON)")
    target = {s: ("train" if s == "restval" and args.restval_into_train else s) for s in args.splits}
    files = {t: (os.path.join(args.out, f"{t}.jsonl"), "pairs") for t in sorted(set(target.values()))}
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs(files, report) as out:
        for i, img in enumerate(data["images"]):
            where = f"{args.src}: {json_path('images', i)}"
            if not isinstance(img, dict):
                report.bad(where, "not an object")
                continue
            split = img.get("split")
            if split not in SPLITS:
                report.bad(f"{where}.split", f"expected one of {list(SPLITS)}, got {split!r}")
                continue
            if split not in target:
                continue
            name = img.get("filename")
            if not isinstance(name, str) or not name:
                report.bad(f"{where}.filename", "missing or not a string")
                continue
            rel = f"{img['filepath']}/{name}" if isinstance(img.get("filepath"), str) and img["filepath"] else name
            image_id = img.get("cocoid", os.path.splitext(name)[0])
            sents = img.get("sentences")
            if not isinstance(sents, list):
                report.bad(f"{where}.sentences", "missing or not a list")
                continue
            caps = []
            for j, s in enumerate(sents):
                raw = s.get("raw") if isinstance(s, dict) else None
                if raw is None and isinstance(s, dict) and isinstance(s.get("tokens"), list):
                    raw = " ".join(t for t in s["tokens"] if isinstance(t, str))
                add_unique_text(caps, raw, report, f"{where}.{json_path('sentences', j)}.raw", "caption")
            if not caps:
                report.bad(f"{where}.sentences", "no usable caption", "image without captions")
                continue
            if not images.exists(rel):
                report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                continue
            out[target[split]].write({"id": f"{args.id_prefix}{image_id}", "image": images.path(rel),
                                      "image_id": str(image_id), "captions": caps}, where)
    return list(out.values())
