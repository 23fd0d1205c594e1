"""SNLI-VE (visual entailment) JSONL -> snli_ve manifest.

Input: ``snli_ve_{train,dev,test}.jsonl`` as written by the SNLI-VE
generator (github.com/necla-ml/SNLI-VE, ``vet/tools/snli_ve_generator.py``):
SNLI 1.0's fields (``sentence1``, ``sentence2``, ``gold_label``, ``pairID``,
``captionID``, ``annotator_labels``, ``*_parse``) plus the Flickr30k image,
one object per line. The two published generator versions spell the image
key differently; both are read:

==========================  ==================  ==========================
generator                   key                 value
==========================  ==================  ==========================
2018 (commit dcfc8933,      ``Flikr30kID``      ``"3416050480.jpg"``
``snli_ve_generator.py``)   (sic)               (file name)
2020 (commit 8484c159 on,   ``Flickr30K_ID``    ``"3416050480"``
``vet/tools/...``)                              (no ``.jpg``)
==========================  ==================  ==========================

Both generators derive the image from ``pairID`` (its part before
``.jpg``), so the image is checked against ``pairID``'s prefix. The README
of that repository says ``Flickr30kID``; no generator version writes that
spelling, so it is not read. Both generators drop SNLI's pairs whose
``gold_label`` is ``-`` (no annotator consensus) and its VisualGenome pairs;
a ``-`` label found anyway is reported.

The premise is the image, so ``sentence1`` (its caption) is not used.
Output records::

    {"id": "3416050480.jpg#4r1n", "image": "<prefix>3416050480.jpg", "image_id": "3416050480",
     "hypothesis": "...", "label": "neutral"}

Bad lines are reported with ``file:line [pairID ...]`` naming the key (a
missing or wrongly typed ``sentence2``, an image key that disagrees with
``pairID``, ...). ``--no-labels`` drops labels (blind test sets).
"""
from __future__ import annotations

import json

from vlcore.formats.manifests import VE_LABELS

from .common import (
    ImageCheck,
    Report,
    add_common_args,
    add_image_args,
    clean_text,
    open_outputs,
    read_lines,
    tag,
    type_name,
)

# key -> whether its value is the file name (2018) or the bare image id (2020)
IMAGE_KEYS = {"Flickr30K_ID": False, "Flikr30kID": True}


def add_args(p):
    p.add_argument("--src", required=True, help="snli_ve_<split>.jsonl")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--no-labels", action="store_true", help="write no labels (blind test sets)")


def _image_id(row, where, report):
    """The Flickr30k image id of a row (either generator), or None (reported)."""
    found = {}
    for key, with_ext in IMAGE_KEYS.items():
        if key not in row:
            continue
        value = row[key]
        if not isinstance(value, str) or not value.strip():
            report.bad(where, f"{key!r} must be a non-empty string, got {type_name(value)}")
            return None
        value = value.strip()
        if with_ext != value.endswith(".jpg"):
            form = "a file name ending in '.jpg'" if with_ext else "an image id without '.jpg'"
            report.bad(where, f"{key!r} is {value!r}, expected {form} ({'2018' if with_ext else '2020'} generator)")
            return None
        found[key] = value[:-len(".jpg")] if with_ext else value
    if not found:
        report.bad(where, f"no image key: neither {list(IMAGE_KEYS)[0]!r} (2020 generator) nor "
                          f"{list(IMAGE_KEYS)[1]!r} (2018 generator)", "missing field")
        return None
    if len(set(found.values())) > 1:
        report.bad(where, " and ".join(f"{k} {v!r}" for k, v in found.items()) + " name different images")
        return None
    return next(iter(found.values()))


def convert(args, report: Report):
    images = ImageCheck(args.check_images, args.image_prefix)
    required = ("pairID", "sentence2") + (() if args.no_labels else ("gold_label",))
    with open_outputs({"out": (args.out, "snli_ve")}, report) as out:
        for lineno, text in read_lines(args.src, report):
            where = f"{args.src}:{lineno}"
            if not text.strip():
                report.note("blank lines")
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                report.bad(where, f"malformed JSON ({e.msg} at column {e.colno})", "malformed line")
                continue
            if not isinstance(row, dict):
                report.bad(where, f"expected a JSON object, got {type_name(row)}", "malformed line")
                continue
            pair_id = row.get("pairID")
            where = tag(where, pairID=pair_id if isinstance(pair_id, str) else None)
            missing = [k for k in required if k not in row]
            if missing:
                report.bad(where, f"missing field(s) {missing}", "missing field")
                continue
            if not isinstance(pair_id, str) or not pair_id.strip():
                report.bad(where, f"'pairID' must be a non-empty string, got {type_name(pair_id)}")
                continue
            image_id = _image_id(row, where, report)
            if image_id is None:
                continue
            if pair_id.split(".jpg", 1)[0] != image_id:  # both generators take the image from pairID
                report.bad(where, f"image {image_id!r} differs from the image of pairID {pair_id!r}")
                continue
            hyp = clean_text(row["sentence2"])
            if hyp is None:
                report.bad(where, f"'sentence2' must be a non-empty string, got {type_name(row['sentence2'])}")
                continue
            name = f"{image_id}.jpg"
            rec = {"id": f"{args.id_prefix}{pair_id}", "image": images.path(name), "image_id": image_id,
                   "hypothesis": hyp}
            if not args.no_labels:
                if row["gold_label"] not in VE_LABELS:
                    report.bad(where, f"gold_label {row['gold_label']!r} is not one of {list(VE_LABELS)}",
                               "no gold label")
                    continue
                rec["label"] = row["gold_label"]
            if not images.exists(name):
                report.bad(where, f"image {name!r} not under {args.check_images}", "missing image")
                continue
            out["out"].write(rec, where)
    return list(out.values())
