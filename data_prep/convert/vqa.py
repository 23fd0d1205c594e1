"""VQA v1 / v2 questions (+ annotations) JSON -> vqa manifest.

Input, as published on visualqa.org (download.html for v2.0,
vqa_v1_download.html for v1.0: "Input Questions Format", "Annotation
Format"; file names as built by GT-Vision-Lab/VQA
``PythonHelperTools/vqaDemo.py``)::

    questions    v2: v2_OpenEnded_mscoco_<subtype>_questions.json
                 v1: OpenEnded_mscoco_<subtype>_questions.json, MultipleChoice_mscoco_<subtype>_questions.json
      {"info": ..., "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "train2014",
       "questions": [{"image_id": 458752, "question": "What is this photo taken looking through?",
                      "question_id": 458752000}, ...], "license": ...}
      (v1 MultipleChoice questions also carry "multiple_choices": [18 answer strings])
    annotations  v2: v2_mscoco_<subtype>_annotations.json    v1: mscoco_<subtype>_annotations.json
      {"info": ..., "data_subtype": "train2014",
       "annotations": [{"question_id": 458752000, "image_id": 458752, "question_type": "what is this",
                        "answer_type": "other", "multiple_choice_answer": "net",
                        "answers": [{"answer": "net", "answer_confidence": "maybe", "answer_id": 1}, ...]}]}

Subtypes: ``train2014``, ``val2014`` (with annotations), ``test2015`` and
``test-dev2015`` (questions only). test-dev2015 is a subset of the
test2015 images, stored as ``test2015/COCO_test2015_*.jpg`` (the COCO
"view" of rbgirshick/py-faster-rcnn ``lib/datasets/coco.py``
``_view_map``), so its image paths use ``test2015``. v1's abstract scenes
(``abstract_v002``) have other image names, not checked here: give
``--image-pattern``.

Output records (:mod:`vlcore.formats.manifests`, kind ``vqa``)::

    {"id": "458752000", "image": "train2014/COCO_train2014_000000458752.jpg", "image_id": "458752",
     "question": "...", "answers": {"net": 9, "netting": 1}, "answer_type": "other",
     "question_type": "what is this", "multiple_choices"?: [...]}

``answers`` counts the ten human answers as released (whitespace collapsed,
nothing else): normalisation belongs to the evaluator. Without
``--annotations`` (test splits) records have no ``answers``. The image path
follows ``--image-pattern`` (fields ``subtype``, ``image_id``), by default
COCO's ``{subtype}/COCO_{subtype}_{image_id:012d}.jpg``.

Every message names the ``question_id`` (and ``image_id``). A question
without an annotation, and an annotation whose ``question_id`` has no
question, are both reported and counted; a wrong type (a string
``image_id``) is reported naming the key.
"""
from __future__ import annotations

from collections import Counter

from .common import (
    ConvertError,
    ImageCheck,
    Report,
    add_common_args,
    add_image_args,
    clean_text,
    is_int,
    json_path,
    load_json,
    open_outputs,
    tag,
    type_name,
)

PATTERN = "{subtype}/COCO_{subtype}_{image_id:012d}.jpg"
IMAGE_SUBTYPE = {"test-dev2015": "test2015"}  # question subtype -> folder of its images


def add_args(p):
    p.add_argument("--src", required=True, help="questions JSON (v2_OpenEnded_mscoco_<split>_questions.json, "
                                                "v1 OpenEnded_/MultipleChoice_mscoco_<split>_questions.json)")
    p.add_argument("--annotations", help="annotations JSON (v2_mscoco_<split>_annotations.json, v1 "
                                         "mscoco_<split>_annotations.json); omit for test splits")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--image-pattern", default=PATTERN, help=f"image path of a question (default {PATTERN!r})")


def _list(data, key, path):
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ConvertError(f"{path}: top level: expected an object with a {key!r} list")
    return data[key]


def _answers(ann, path, qid, report):
    counts = Counter()
    answers = ann.get("answers")
    if not isinstance(answers, list) or not answers:
        report.bad(tag(f"{path}.answers", question_id=qid), f"must be a non-empty list, got {type_name(answers)}",
                   "bad answer")
        return None
    for j, a in enumerate(answers):
        text = clean_text(a.get("answer") if isinstance(a, dict) else None)
        if text is None:
            report.bad(tag(f"{path}.{json_path('answers', j)}.answer", question_id=qid,
                           answer_id=a.get("answer_id") if isinstance(a, dict) else None),
                       "missing or empty answer", "bad answer")
            return None
        counts[text] += 1
    return dict(counts)


def _annotations(path, subtype, src, report):
    """``{question_id: (annotation, where)}``; bad ones are reported."""
    adata = load_json(path)
    anns = _list(adata, "annotations", path)
    if isinstance(adata.get("data_subtype"), str) and adata["data_subtype"] != subtype:
        raise ConvertError(f"{path}: data_subtype {adata['data_subtype']!r} does not match the "
                           f"questions' {subtype!r} ({src})")
    by_qid = {}
    for i, ann in enumerate(anns):
        where = f"{path}: {json_path('annotations', i)}"
        if not isinstance(ann, dict):
            report.bad(where, f"expected an object, got {type_name(ann)}")
            continue
        qid = ann.get("question_id")
        if not is_int(qid):
            report.bad(f"{where}.question_id", f"must be an integer, got {type_name(qid)}", "missing field")
            continue
        if qid in by_qid:
            report.bad(tag(where, question_id=qid), f"annotated twice (first at {by_qid[qid][1]})", "duplicate id")
            continue
        by_qid[qid] = (ann, where)
    return by_qid


def _question(q, where, report):
    """``(question_id, image_id, text, multiple_choices, where)`` or None (reported)."""
    if not isinstance(q, dict):
        report.bad(where, f"expected an object, got {type_name(q)}")
        return None
    qid = q.get("question_id")
    if not is_int(qid):
        report.bad(f"{where}.question_id", f"must be an integer, got {type_name(qid)}", "missing field")
        return None
    where = tag(where, question_id=qid)
    image_id = q.get("image_id")
    if not is_int(image_id):
        report.bad(where, f"'image_id' must be an integer, got {type_name(image_id)}", "missing field")
        return None
    text = clean_text(q.get("question"))
    if text is None:
        report.bad(where, f"'question' must be a non-empty string, got {type_name(q.get('question'))}",
                   "missing field")
        return None
    choices = q.get("multiple_choices")
    if choices is not None and not (isinstance(choices, list) and choices
                                    and all(clean_text(c) for c in choices)):
        report.bad(where, f"'multiple_choices' must be a list of non-empty strings, got {type_name(choices)}")
        return None
    return qid, image_id, text, choices, where


def convert(args, report: Report):
    qdata = load_json(args.src)
    questions = _list(qdata, "questions", args.src)
    subtype = qdata.get("data_subtype")
    if not isinstance(subtype, str) and "{subtype}" in args.image_pattern:
        raise ConvertError(f"{args.src}: top level: no 'data_subtype' (e.g. 'train2014') for the image path")
    by_qid = _annotations(args.annotations, subtype, args.src, report) if args.annotations else None
    images = ImageCheck(args.check_images, args.image_prefix)
    seen = set()
    with open_outputs({"out": (args.out, "vqa")}, report) as out:
        for i, q in enumerate(questions):
            parsed = _question(q, f"{args.src}: {json_path('questions', i)}", report)
            if parsed is None:
                continue
            qid, image_id, text, choices, where = parsed
            if qid in seen:
                report.bad(where, f"question_id {qid} repeated", "duplicate id")
                continue
            seen.add(qid)
            rel = args.image_pattern.format(subtype=IMAGE_SUBTYPE.get(subtype, subtype), image_id=image_id)
            rec = {"id": f"{args.id_prefix}{qid}", "image": images.path(rel), "image_id": str(image_id),
                   "question": text}
            if choices is not None:
                rec["multiple_choices"] = [clean_text(c) for c in choices]
            if by_qid is not None:
                if qid not in by_qid:
                    report.bad(where, f"has no annotation in {args.annotations}", "no annotation")
                    continue
                ann, apath = by_qid[qid]
                awhere = tag(apath, question_id=qid)
                if ann.get("image_id") != image_id:
                    report.bad(awhere, f"image_id is {type_name(ann.get('image_id'))} but the question's image_id "
                                       f"is {image_id} ({args.src})")
                    continue
                answers = _answers(ann, apath, qid, report)
                if answers is None:
                    continue
                rec["answers"] = answers
                wrong = [k for k in ("answer_type", "question_type") if k in ann and not isinstance(ann[k], str)]
                if wrong:
                    report.bad(awhere, f"{wrong[0]!r} must be a string, got {type_name(ann[wrong[0]])}")
                    continue
                rec.update({k: ann[k] for k in ("answer_type", "question_type") if k in ann})
            if not images.exists(rel):
                report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                continue
            out["out"].write(rec, where)
        asked = {q.get("question_id") for q in questions if isinstance(q, dict)}  # also the bad ones (reported)
        for qid, (_, apath) in (by_qid or {}).items():
            if qid not in asked:
                report.bad(tag(apath, question_id=qid), f"question_id {qid} has no question in {args.src}",
                           "no question")
    return list(out.values())
