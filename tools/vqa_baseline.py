"""Answer-prior baselines of a VQA split, with the official accuracy: what a
model that ignores the image scores.

- ``majority``: the most frequent training answer for every question;
- ``question_prior``: the most frequent training answer of the same
  question string (falling back to ``majority``).

    python tools/vqa_baseline.py data/demo/tasks/vqa_train.jsonl data/demo/tasks/vqa_test.jsonl
    -> {"majority": 24.5, "question_prior": 41.2, "num_examples": 200}
"""
import argparse
import json
import sys
from collections import Counter, defaultdict

from vlcore.formats.manifests import Manifest  # noqa: E402
from vlcore.formats.sharded import atomic_open  # noqa: E402
from vlcore.tasks.vqa_answers import normalize_answer, vqa_accuracy  # noqa: E402


def top_answer(counts):
    return counts.most_common(1)[0][0] if counts else ""


def baselines(train_path, eval_path):
    overall, per_question = Counter(), defaultdict(Counter)
    for q in Manifest(train_path, "vqa", require=("answers",)):
        for a, n in q["answers"].items():
            a = normalize_answer(a)
            overall[a] += n
            per_question[q["question"]][a] += n
    majority = top_answer(overall)
    scores = {"majority": [], "question_prior": []}
    for q in Manifest(eval_path, "vqa", require=("answers",)):
        scores["majority"].append(vqa_accuracy(majority, q["answers"]))
        prior = top_answer(per_question.get(q["question"], Counter())) or majority
        scores["question_prior"].append(vqa_accuracy(prior, q["answers"]))
    n = len(scores["majority"])
    if n == 0:
        raise ValueError(f"{eval_path}: no questions")
    out = {k: round(100.0 * sum(v) / n, 2) for k, v in scores.items()}
    out.update(num_examples=n, majority_answer=majority)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train", help="VQA manifest with answers (the answer priors)")
    ap.add_argument("eval", help="VQA manifest with answers (scored)")
    ap.add_argument("--output", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    try:
        result = json.dumps(baselines(args.train, args.eval))
        print(result)
        if args.output:
            with atomic_open(args.output) as f:
                f.write(result + "\n")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
