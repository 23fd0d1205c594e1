"""Fine-tuning task manifests derived from the synthetic demo corpus
(``data_prep/make_demo_corpus.py``), whose records carry their scene
(objects with colour, shape, size and box), so the answers are known:

- ``vqa_{train,test}.jsonl``: "what colour is the <shape>?" -> its colour and
  "how many shapes are there?" -> the count, ten "human" answers each, a few
  of them noisy (a wrong colour, the count as a word) so that the official
  accuracy and the normalisation matter; ``vqa_testdev.jsonl`` is the test
  questions without answers (the prediction-file path);
- ``snli_ve_{train,test}.jsonl``: "there is a <colour> <shape>" (entailment
  when in the picture), the same with a colour absent from it
  (contradiction), "a <colour> <shape> is hidden behind the ..." (neutral);
- ``sst2_*``, ``cola_*``, ``stsb_*``, ``mnli_*`` (text only, GLUE fields):
  a caption labelled 1 when it names a warm colour (SST-2-like); a caption
  (1) or its words shuffled (0) (CoLA-like); two captions scored 0-5 by
  word overlap (STS-B-like); a caption and a VE hypothesis (MNLI-like);
- ``image_cls_{train,test}.jsonl``: the labelled images ("red circle").

Train files come from the corpus's training split, test files from its
held-out split (disjoint scenes). Image paths are relative to the corpus
directory (``image_root``).

    python -m data_prep.make_demo_tasks data/demo            # -> data/demo/tasks/
"""
import argparse
import json
import os
import sys

import numpy as np

from vlcore.data.demo import DEMO_TASKS

TASKS = DEMO_TASKS  # each as <task>_{train,test}.jsonl (vlcore.data.demo.task_file_names)
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
WARM = {"red", "orange", "yellow"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}


def _read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(path, rows):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def _humans(answer, wrong, rng, noise):
    """Ten answers: mostly ``answer``, up to ``noise`` of them ``wrong``."""
    k = int(rng.integers(0, noise + 1))
    counts = {answer: 10 - k}
    if k:
        counts[wrong] = counts.get(wrong, 0) + k
    return counts


def vqa_rows(records, rng, first_qid):
    rows, qid = [], first_qid
    for r in records:
        objs = r["scene"]
        o = objs[int(rng.integers(len(objs)))]
        other = [c for c in COLOURS if c != o["colour"]]
        n = len(objs)
        base = {"image": r["image"], "image_id": r["id"]}
        rows.append(dict(base, id=str(qid), question=f"what colour is the {o['shape']}?",
                         answers=_humans(o["colour"], other[int(rng.integers(len(other)))], rng, 3)))
        # the count as a digit or a word: the official normalisation makes them one answer
        rows.append(dict(base, id=str(qid + 1), question="how many shapes are there?",
                         answers=_humans(str(n), NUMBER_WORDS[n], rng, 4)))
        qid += 2
    return rows


def ve_rows(records, rng):
    rows = []
    for r in records:
        objs = r["scene"]
        present = {(o["colour"], o["shape"]) for o in objs}
        o = objs[int(rng.integers(len(objs)))]
        absent = [c for c in COLOURS if (c, o["shape"]) not in present and c not in {x["colour"] for x in objs}]
        c = absent[int(rng.integers(len(absent)))]
        base = {"image": r["image"], "image_id": r["id"]}
        rows.append(dict(base, id=f"{r['id']}#e", hypothesis=f"there is a {o['colour']} {o['shape']}",
                         label="entailment"))
        rows.append(dict(base, id=f"{r['id']}#c", hypothesis=f"there is a {c} {o['shape']}", label="contradiction"))
        rows.append(dict(base, id=f"{r['id']}#n", hypothesis=f"a {c} {o['shape']} is hidden behind the "
                         f"{o['colour']} {o['shape']}", label="neutral"))
    return rows


def text_rows(records, rng):
    sst, cola, sts, mnli = [], [], [], []
    for r in records:
        caps = r["captions"]
        a = caps[int(rng.integers(len(caps)))]
        words = a.split()
        sst.append({"id": r["id"], "text_a": a, "label": "1" if WARM & set(words) else "0"})
        shuffled = list(rng.permutation(words))
        bad = rng.random() < 0.5 and shuffled != words and len(words) > 2
        cola.append({"id": r["id"], "text_a": " ".join(shuffled) if bad else a, "label": "0" if bad else "1"})
        b = caps[int(rng.integers(len(caps)))]
        wa, wb = set(words), set(b.split())
        sts.append({"id": r["id"], "text_a": a, "text_b": b, "label": round(5.0 * len(wa & wb) / len(wa | wb), 2)})
    for r in records:
        for v in ve_rows([r], rng):
            mnli.append({"id": v["id"], "text_a": r["captions"][0], "text_b": v["hypothesis"], "label": v["label"]})
    return {"sst2": sst, "cola": cola, "stsb": sts, "mnli": mnli}


def build(corpus_dir, out_dir=None, seed=0, quiet=False):
    missing = [n for n in ("pairs_train.jsonl", "pairs_test.jsonl", "images_train.jsonl")
               if not os.path.isfile(os.path.join(corpus_dir, n))]
    if missing:
        raise FileNotFoundError(f"{corpus_dir}: not a demo corpus (no {', '.join(missing)}); build it first with "
                                f"`python -m data_prep.make_demo_corpus --out {corpus_dir}`")
    out_dir = out_dir or os.path.join(corpus_dir, "tasks")
    os.makedirs(out_dir, exist_ok=True)
    train = _read(os.path.join(corpus_dir, "pairs_train.jsonl"))
    test = _read(os.path.join(corpus_dir, "pairs_test.jsonl"))
    images = _read(os.path.join(corpus_dir, "images_train.jsonl"))
    for split, recs in (("train", train), ("test", test)):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        vqa = vqa_rows(recs, rng, 1_000_000 if split == "train" else 2_000_000)
        _write(os.path.join(out_dir, f"vqa_{split}.jsonl"), vqa)
        if split == "test":
            _write(os.path.join(out_dir, "vqa_testdev.jsonl"), [{k: v for k, v in q.items() if k != "answers"}
                                                                 for q in vqa])
        _write(os.path.join(out_dir, f"snli_ve_{split}.jsonl"), ve_rows(recs, rng))
        for task, rows in text_rows(recs, rng).items():
            _write(os.path.join(out_dir, f"{task}_{split}.jsonl"), rows)
    cut = max(1, len(images) // 10)
    labelled = [{k: r[k] for k in ("id", "image", "label")} for r in images]
    _write(os.path.join(out_dir, "image_cls_train.jsonl"), labelled[cut:])
    _write(os.path.join(out_dir, "image_cls_test.jsonl"), labelled[:cut])
    if not quiet:
        print(f"wrote task manifests to {out_dir}")
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("--out", default=None, help="default: <corpus_dir>/tasks")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        build(args.corpus_dir, args.out, args.seed)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
