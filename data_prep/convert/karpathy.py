"""COCO captions, Flickr30k and Flickr8k in Karpathy's split JSON -> pairs
manifests.

Input: ``dataset_coco.json`` / ``dataset_flickr30k.json`` /
``dataset_flickr8k.json`` of Karpathy & Fei-Fei's ``caption_datasets.zip``
(cs.stanford.edu/people/karpathy/deepimagesent/; the same files are the
``dataset.json`` of github.com/karpathy/neuraltalk, read by its
``imagernn/data_provider.py``)::

    {"dataset": "coco", "images": [
      {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
       "imgid": 0, "split": "test", "cocoid": 391895, "sentids": [770337, ...],
       "sentences": [{"tokens": ["a", "man", ...], "raw": "A man with a red helmet ...",
                      "imgid": 0, "sentid": 770337}, ...]}, ...]}

Keys per release (as quoted from the files in public code, e.g. the
docstrings of open-mmlab/mmpretrain ``mmpretrain/datasets/flickr30k_*.py``
and many README excerpts of the three files):

===========  ==================================  ===========================
release      image keys                          record id (``image_id``)
===========  ==================================  ===========================
COCO         filepath, filename, imgid, split,   ``cocoid`` (required: the
             cocoid, sentids, sentences          COCO image id)
Flickr30k    filename, imgid, split, sentids,    stem of ``filename``
Flickr8k     sentences (no filepath, no cocoid)  (``1000092795``,
                                                 ``2513260012_03d33305cf``)
===========  ==================================  ===========================

``imgid`` is the image's position in the file (0, 1, ...), used by
neuraltalk to index its feature matrix, not an id of the dataset; it is
not read. Every sentence of every release quoted has ``raw`` and
``tokens``; no release without ``raw`` was found, so a sentence without
``raw`` is reported (not rebuilt from ``tokens``). Splits: ``train``,
``restval`` (COCO only), ``val``, ``test``.

Output: one pairs manifest per split, ``<out>/<split>.jsonl``, written
together (all or none), records ``{"id", "image": <prefix><filepath>/
<filename>, "image_id", "captions"}`` with the ``raw`` sentences
(whitespace collapsed). ``--restval-into-train`` writes restval into
``train.jsonl`` (the usual 113k-image COCO training set). Captions repeated
verbatim within an image are dropped and counted; an image with an empty
``sentences`` list yields no record (counted as a note). Messages name the
image (``[cocoid 391895]`` or ``[filename 1000092795.jpg]``) and the
sentence (``sentid``).
"""
from __future__ import annotations

import os

from .common import (
    ConvertError,
    ImageCheck,
    Report,
    add_common_args,
    add_image_args,
    add_unique_text,
    is_int,
    json_path,
    load_json,
    open_outputs,
    tag,
    type_name,
)

SPLITS = ("train", "restval", "val", "test")


def add_args(p):
    p.add_argument("--src", required=True, help="dataset_coco.json, dataset_flickr30k.json or dataset_flickr8k.json")
    add_common_args(p, out_help="output directory: <split>.jsonl per split")
    add_image_args(p)
    p.add_argument("--restval-into-train", action="store_true", help="write restval images into train.jsonl")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to write")


def _image_id(img, is_coco, where, report):
    """``(image_id, ids)``: the record id and the ids that name the image in
    messages (``{"cocoid": 9}``), or ``(None, {})`` (reported)."""
    name = img.get("filename")
    if not isinstance(name, str) or not name.strip():
        report.bad(tag(f"{where}.filename", cocoid=img.get("cocoid")),
                   f"missing or not a file name (got {type_name(name)})", "missing field")
        return None, {}
    if not is_coco:
        return os.path.splitext(name)[0], {"filename": name}
    cocoid = img.get("cocoid")
    if not is_int(cocoid):
        report.bad(tag(f"{where}.cocoid", filename=name), f"must be the COCO image id (an integer), got "
                   f"{type_name(cocoid) if 'cocoid' in img else 'nothing'}", "missing field")
        return None, {}
    return str(cocoid), {"cocoid": cocoid}


def _captions(sents, where, ids, report):
    caps = []
    for j, s in enumerate(sents):
        sid = s.get("sentid") if isinstance(s, dict) else None
        swhere = tag(f"{where}.{json_path('sentences', j)}.raw", **ids, sentid=sid)
        if not isinstance(s, dict) or "raw" not in s:
            report.bad(swhere, "missing (every release has 'raw'; 'tokens' are not used instead)", "bad caption")
            continue
        add_unique_text(caps, s["raw"], report, swhere, "caption")
    return caps


def convert(args, report: Report):
    data = load_json(args.src)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConvertError(f"{args.src}: top level: expected an object with an 'images' list "
                           "(Karpathy split JSON)")
    is_coco = args.format == "coco"
    target = {s: ("train" if s == "restval" and args.restval_into_train else s) for s in args.splits}
    files = {t: (os.path.join(args.out, f"{t}.jsonl"), "pairs") for t in sorted(set(target.values()))}
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs(files, report) as out:
        for i, img in enumerate(data["images"]):
            where = f"{args.src}: {json_path('images', i)}"
            if not isinstance(img, dict):
                report.bad(where, f"expected an object, got {type_name(img)}")
                continue
            image_id, ids = _image_id(img, is_coco, where, report)
            if image_id is None:
                continue
            split = img.get("split")
            if split not in SPLITS:
                report.bad(tag(f"{where}.split", **ids), f"expected one of {list(SPLITS)}, got {type_name(split)}")
                continue
            if split not in target:
                report.note(f"images of splits not written ({split})")
                continue
            filepath = img.get("filepath")
            if is_coco and (not isinstance(filepath, str) or not filepath.strip()):
                report.bad(tag(f"{where}.filepath", **ids),
                           f"missing or not a directory name (got {type_name(filepath)})", "missing field")
                continue
            rel = f"{filepath}/{img['filename']}" if isinstance(filepath, str) and filepath else img["filename"]
            sents = img.get("sentences")
            if not isinstance(sents, list):
                report.bad(tag(f"{where}.sentences", **ids), f"must be a list, got {type_name(sents)}",
                           "missing field")
                continue
            if not sents:
                report.note("images with 0 sentences (no record)")
                continue
            caps = _captions(sents, where, ids, report)
            if not caps:  # every sentence was reported above
                report.note("images left without a usable caption (no record)")
                continue
            where = tag(where, **ids)
            if not images.exists(rel):
                report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                continue
            out[target[split]].write({"id": f"{args.id_prefix}{image_id}", "image": images.path(rel),
                                      "image_id": image_id, "captions": caps}, where)
    return list(out.values())
