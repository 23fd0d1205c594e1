#!/usr/bin/env python
"""Print the demo's zero-shot retrieval next to chance level.

    python tools/demo_report.py output/unimo2_demo data/demo/meta.json

Reads ``eval_metrics.json`` (grounded-transformer ITM scores, written at the
end of training) and ``eval_itc.json`` (dual-encoder scores, tools/eval.py)
from the run directory, and the exact chance levels from the corpus's
``meta.json``.
"""
import json
import os
import sys


def main(run_dir, meta_path):
    with open(meta_path) as f:
        chance = json.load(f)["chance"]
    rows = []
    for name, label in (("eval_metrics.json", "ITM (cross-encoder)"), ("eval_itc.json", "ITC (dual encoder)")):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            with open(path) as f:
                rows.append((label, json.load(f)))
    if not rows:
        sys.exit(f"no eval_metrics.json / eval_itc.json in {run_dir}")
    ks = (1, 5, 10)
    print(f"\nZero-shot retrieval on the held-out split ({rows[0][1]['images']} images, "
          f"{rows[0][1]['captions']} captions), percent:")
    head = "  ".join(f"{d}R@{k:<2}" for d in ("IR ", "TR ") for k in ks)
    print(f"{'scores':<22}{head}")
    fmt = lambda vals: "  ".join(f"{v:6.1f}" for v in vals)  # noqa: E731
    for label, m in rows:
        print(f"{label:<22}{fmt([m[f'ir_r{k}'] for k in ks] + [m[f'tr_r{k}'] for k in ks])}")
    print(f"{'chance':<22}{fmt([100 * chance['text_to_image'][f'R@{k}'] for k in ks] + [100 * chance['image_to_text'][f'R@{k}'] for k in ks])}")
    best = max(m["ir_r1"] for _, m in rows)
    print(f"\nbest IR R@1 = {best:.1f}% = {best / (100 * chance['text_to_image']['R@1']):.0f}x chance")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
