"""SNLI-VE (visual entailment) JSONL -> snli_ve manifest.

Input: ``snli_ve_{train,dev,test}.jsonl`` as written by the SNLI-VE
generator (necla-ml/SNLI-VE): SNLI's fields plus the Flickr30k image, one
object per line, e.g.::

    {"Flikr30kID": "3416050480.jpg", "captionID": "3416050480.jpg#4", "pairID": "3416050480.jpg#4r1n",
     "sentence1": "A person on a horse ...", "sentence2": "A person is training his horse ...",
     "gold_label": "neutral", "annotator_labels": ["neutral"], "sentence1_parse": ..., ...}

(``Flikr30kID`` is spelled so in the release; ids without ``.jpg`` are
accepted.) The premise is the image, so ``sentence1`` (its caption) is not
used. Output records::

    {"id": "3416050480.jpg#4r1n", "image": "<prefix>3416050480.jpg", "image_id": "3416050480",
     "hypothesis": "...", "label": "neutral"}

A ``gold_label`` outside entailment/neutral/contradiction (SNLI's ``-``, no
annotator consensus) is skipped and counted; ``--no-labels`` drops labels.
"""
from __future__ import annotations

import json

from vlcore.formats.manifests import VE_LABELS

from .common import (ImageCheck, Report, add_common_args, add_image_args, clean_text, open_outputs,
                     read_lines)


def add_args(p):
    p.add_argument("--src", required=True, help="snli_ve_<split>.jsonl")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--no-labels", action="store_true", help="write no labels (blind test sets)")


def convert(args, report: Report):
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs({"out": (args.out, "snli_ve")}, report) as out:
        for lineno, text in read_lines(args.src, report):
            if not text.strip():
                continue
            where = f"{args.src}:{lineno}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                report.bad(where, f"malformed JSON ({e.msg} at column {e.colno})", "malformed line")
                continue
            if not isinstance(row, dict):
                report.bad(where, "not a JSON object", "malformed line")
                continue
            missing = [k for k in ("Flikr30kID", "sentence2", "pairID") + (() if args.no_labels else ("gold_label",))
                       if k not in row]
            if missing:
                report.bad(where, f"missing field(s) {missing}")
                continue
            name = str(row["Flikr30kID"]).strip()
            if not name:
                report.bad(where, "empty 'Flikr30kID'")
                continue
            if "." not in name:
                name += ".jpg"
            hyp = clean_text(row["sentence2"])
            if hyp is None:
                report.bad(where, "'sentence2' missing or empty")
                continue
            rec = {"id": f"{args.id_prefix}{row['pairID']}", "image": images.path(name),
                   "image_id": name.rsplit(".", 1)[0], "hypothesis": hyp}
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
