#!/usr/bin/env python
"""Score image-caption pairs with a model exported by tools/export.py:

    python tools/predict.py --model output/unimo2_demo/export --pairs pairs.jsonl [--out scores.jsonl]

``--pairs``: JSONL ``{"image": ..., "caption": ...}`` (or ``"captions": [...]``)
or TSV ``image<TAB>caption``. Prints (or writes) one JSON line per pair with
``itm_prob``, ``itm_logits`` and ``itc_cosine``.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vlcore.framework.env import apply_cpu_defaults  # noqa: E402

apply_cpu_defaults()


PAIRS_FORMAT = """\
--pairs file, one pair (or one image with several captions) per line; both
kinds of line may be mixed, blank lines are skipped:
  JSONL  {"image": "imgs/dog.jpg", "caption": "a dog on a beach"}
         {"image": "imgs/dog.jpg", "captions": ["a dog", "a cat"]}   (one output line per caption)
  TSV    imgs/dog.jpg<TAB>a dog on a beach
Relative image paths are relative to the pairs file's directory.

Output: one JSON line per pair, in input order:
  {"image", "caption", "itm_prob", "itm_logits": [no match, match], "itc_cosine"}
"""


def main():
    p = argparse.ArgumentParser(description="Score image-caption pairs with an exported UNIMO-2.",
                                epilog=PAIRS_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="directory written by tools/export.py")
    p.add_argument("--pairs", required=True, help="JSONL or TSV of image paths and captions (format below)")
    p.add_argument("--out", default=None, help="output JSONL (default: stdout)")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    from vlcore.data.images import ImageError
    try:
        from unimo2.predictor import UNIMO2Predictor, read_pairs
        pairs = read_pairs(args.pairs)
        results = UNIMO2Predictor(args.model).score(pairs, args.batch_size)
    except (FileNotFoundError, ValueError, ImageError, KeyError) as e:
        if os.environ.get("VLCORE_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    lines = "".join(json.dumps(r) + "\n" for r in results)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(lines)
        print(f"wrote {len(results)} scores to {args.out}")
    else:
        sys.stdout.write(lines)


if __name__ == "__main__":
    main()
