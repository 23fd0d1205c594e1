"""data_prep/make_demo_tasks.py: the task manifests follow their specs and
their answers/labels agree with the scenes the demo corpus drew."""
import json
import os

from vlcore.formats.manifests import check_file

from cls_helpers import tiny_tasks


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_manifests_valid_and_answers_follow_the_scenes(tmp_path):
    corpus, tasks = tiny_tasks(tmp_path)
    kinds = {"vqa": "vqa", "snli_ve": "snli_ve", "sst2": "text_cls", "cola": "text_cls", "stsb": "text_cls",
             "mnli": "text_cls", "image_cls": "labelled"}
    for task, kind in kinds.items():
        for split in ("train", "test"):
            good, bad, errors = check_file(os.path.join(tasks, f"{task}_{split}.jsonl"), kind)
            assert bad == 0 and good > 0, errors
    scenes = {r["id"]: r["scene"] for r in _rows(os.path.join(corpus, "pairs_train.jsonl"))}
    for q in _rows(os.path.join(tasks, "vqa_train.jsonl")):
        objs = scenes[q["image_id"]]
        best = max(q["answers"], key=q["answers"].get)
        assert sum(q["answers"].values()) == 10 and q["answers"][best] >= 6
        if q["question"].startswith("what colour is the "):
            shape = q["question"][len("what colour is the "):-1]
            assert best in {o["colour"] for o in objs if o["shape"] == shape}
        else:
            assert best == str(len(objs))
    for h in _rows(os.path.join(tasks, "snli_ve_train.jsonl")):
        present = {f"{o['colour']} {o['shape']}" for o in scenes[h["image_id"]]}
        named = h["hypothesis"].replace("there is a ", "").split(" is hidden")[0].replace("a ", "", 1)
        assert (named in present) == (h["label"] == "entailment"), h
    testdev = _rows(os.path.join(tasks, "vqa_testdev.jsonl"))
    assert [q["id"] for q in testdev] == [q["id"] for q in _rows(os.path.join(tasks, "vqa_test.jsonl"))]
    assert all("answers" not in q for q in testdev)
