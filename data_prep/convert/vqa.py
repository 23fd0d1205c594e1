"""VQA v2 questions (+ annotations) JSON -> vqa manifest.

Input, official field names (visualqa.org)::

    v2_OpenEnded_mscoco_train2014_questions.json
      {"info": ..., "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "train2014",
       "questions": [{"image_id": 458752, "question": "What is this photo taken looking through?",
                      "question_id": 458752000}, ...], "license": ...}
    v2_mscoco_train2014_annotations.json   (not for test2015)
      {"info": ..., "data_subtype": "train2014",
       "annotations": [{"question_id": 458752000, "image_id": 458752, "question_type": "what is this",
                        "answer_type": "other", "multiple_choice_answer": "net",
                        "answers": [{"answer": "net", "answer_confidence": "maybe", "answer_id": 1}, ...]}]}

Output records (:mod:`vlcore.formats.manifests`, kind ``vqa``)::

    {"id": "458752000", "image": "train2014/COCO_train2014_000000458752.jpg", "image_id": "458752",
     "question": "...", "answers": {"net": 9, "netting": 1}, "answer_type": "other",
     "question_type": "what is this"}

``answers`` counts the ten human answers as released (whitespace collapsed,
nothing else): normalisation belongs to the evaluator. Without
``--annotations`` (test splits) records have no ``answers``. The image path
follows ``--image-pattern`` (fields ``subtype``, ``image_id``), by default
COCO's ``{subtype}/COCO_{subtype}_{image_id:012d}.jpg``.
"""
from __future__ import annotations

from collections import Counter

from .common import (ConvertError, ImageCheck, Report, add_common_args, add_image_args, clean_text, json_path,
                     load_json, open_outputs)

PATTERN = "{subtype}/COCO_{subtype}_{image_id:012d}.jpg"


def add_args(p):
    p.add_argument("--src", required=True, help="questions JSON (v2_OpenEnded_mscoco_<split>_questions.json)")
    p.add_argument("--annotations", help="annotations JSON (v2_mscoco_<split>_annotations.json); "
                                         "omit for test splits")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--image-pattern", default=PATTERN, help=f"image path of a question (default {PATTERN!r})")


def _list(data, key, path):
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ConvertError(f"{path}: top level: expected an object with a {key!r} list")
    return data[key]


def _answers(ann, where, report):
    counts = Counter()
    answers = ann.get("answers")
    if not isinstance(answers, list) or not answers:
        report.bad(f"{where}.answers", "missing or empty")
        return None
    for j, a in enumerate(answers):
        text = clean_text(a.get("answer") if isinstance(a, dict) else None)
        if text is None:
            report.bad(f"{where}.{json_path('answers', j)}.answer", "missing or empty answer", "bad answer")
            return None
        counts[text] += 1
    return dict(counts)


def convert(args, report: Report):
    qdata = load_json(args.src)
    questions = _list(qdata, "questions", args.src)
    subtype = qdata.get("data_subtype")
    if not isinstance(subtype, str) and "{subtype}" in args.image_pattern:
        raise ConvertError(f"{args.src}: top level: no 'data_subtype' (e.g. 'train2014') for the image path")
    by_qid = None
    if args.annotations:
        adata = load_json(args.annotations)
        by_qid = {}
        for i, ann in enumerate(_list(adata, "annotations", args.annotations)):
            where = f"{args.annotations}: {json_path('annotations', i)}"
            qid = ann.get("question_id") if isinstance(ann, dict) else None
            if not isinstance(qid, int):
                report.bad(f"{where}.question_id", "missing or not an integer")
                continue
            by_qid[qid] = (ann, where)
        if isinstance(adata.get("data_subtype"), str) and adata["data_subtype"] != subtype:
            raise ConvertError(f"{args.annotations}: data_subtype {adata['data_subtype']!r} does not match the "
                               f"questions' {subtype!r} ({args.src})")
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs({"out": (args.out, "vqa")}, report) as out:
        for i, q in enumerate(questions):
            where = f"{args.src}: {json_path('questions', i)}"
            if not isinstance(q, dict):
                report.bad(where, "not an object")
                continue
            qid, image_id, text = q.get("question_id"), q.get("image_id"), clean_text(q.get("question"))
            if not isinstance(qid, int):
                report.bad(f"{where}.question_id", "missing or not an integer")
                continue
            if not isinstance(image_id, int):
                report.bad(f"{where}.image_id", "missing or not an integer")
                continue
            if text is None:
                report.bad(f"{where}.question", "missing or empty")
                continue
            rel = args.image_pattern.format(subtype=subtype, image_id=image_id)
            rec = {"id": f"{args.id_prefix}{qid}", "image": images.path(rel), "image_id": str(image_id),
                   "question": text}
            if by_qid is not None:
                if qid not in by_qid:
                    report.bad(where, f"question_id {qid} has no annotation in {args.annotations}",
                               "no annotation")
                    continue
                ann, awhere = by_qid[qid]
                if ann.get("image_id") != image_id:
                    report.bad(awhere, f"image_id {ann.get('image_id')!r} differs from the question's {image_id}")
                    continue
                answers = _answers(ann, awhere, report)
                if answers is None:
                    continue
                rec["answers"] = answers
                for key in ("answer_type", "question_type"):
                    if isinstance(ann.get(key), str):
                        rec[key] = ann[key]
            if not images.exists(rel):
                report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                continue
            out["out"].write(rec, where)
    return list(out.values())
