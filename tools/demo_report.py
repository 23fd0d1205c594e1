#!/usr/bin/env python
"""Print zero-shot retrieval of one or more runs next to chance level.

    python tools/demo_report.py data/demo/meta.json output/unimo2_demo [more run dirs ...]

Reads ``eval_metrics.json`` (grounded-transformer ITM scores, written at the
end of training) and ``eval_itc.json`` (dual-encoder scores, tools/eval.py)
from each run directory, and the exact chance levels from the corpus's
``meta.json``; for the quick start's run, also the range the README states
(``docs/results/unimo2_demo.json``, several seeds) and whether this run falls
inside it.
"""
import json
import os
import sys

KS = (1, 5, 10)
FILES = (("eval_metrics.json", "ITM"), ("eval_itc.json", "ITC"))
DOCUMENTED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results",
                          "unimo2_demo.json")


def documented_range(score):
    """``{metric: (min, max)}`` of the README's UNIMO-2 demo row for ``score``
    (ITM or ITC), and the seeds; None without the file."""
    if not os.path.isfile(DOCUMENTED):
        return None
    with open(DOCUMENTED) as f:
        data = json.load(f)
    for run in data["runs"]:
        if run["name"].startswith("UNIMO-2") and run["name"].endswith(score):
            seeds = run["seeds"]
            keys = seeds[0]["metrics"].keys()
            return {k: (min(s["metrics"][k] for s in seeds), max(s["metrics"][k] for s in seeds))
                    for k in keys}, [s["seed"] for s in seeds]
    return None


def _row(label, values):
    return f"{label:<34}" + "  ".join(f"{v:6.1f}" for v in values)


def main(meta_path, run_dirs):
    with open(meta_path) as f:
        chance = json.load(f)["chance"]
    lines, best, size, ranges = [], 0.0, None, []
    for run in run_dirs:
        for name, score in FILES:
            path = os.path.join(run, name)
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                m = json.load(f)
            size = size or (m["images"], m["captions"])
            label = f"{os.path.basename(os.path.normpath(run))} {score}"
            lines.append(_row(label, [m[f"ir_r{k}"] for k in KS] + [m[f"tr_r{k}"] for k in KS]))
            best = max(best, m["ir_r1"])
            documented = documented_range(score) if len(run_dirs) == 1 else None
            if documented:
                (rng, seeds), r1 = documented, m["ir_r1"]
                lo, hi = rng["ir1"]
                inside = "inside" if lo <= r1 <= hi else "OUTSIDE"
                ranges.append(f"{score} IR R@1 {r1:.1f}: {inside} the README's range {lo:.1f}-{hi:.1f} "
                              f"(seeds {min(seeds)}-{max(seeds)})")
    if not lines:
        sys.exit(f"no eval_metrics.json / eval_itc.json in {', '.join(run_dirs)}")
    print(f"\nZero-shot retrieval on the held-out split ({size[0]} images, {size[1]} captions), percent"
          f" (ITM: grounded-transformer matching, ITC: dual encoder):")
    print(f"{'run / scores':<34}" + "  ".join(f"{d}R@{k:<2}" for d in ("IR ", "TR ") for k in KS))
    print("\n".join(lines))
    print(_row("chance", [100 * chance["text_to_image"][f"R@{k}"] for k in KS]
               + [100 * chance["image_to_text"][f"R@{k}"] for k in KS]))
    print(f"\nbest IR R@1 = {best:.1f}% = {best / (100 * chance['text_to_image']['R@1']):.0f}x chance")
    for line in ranges:
        print(line)
    if ranges:
        print("(each seed repeats exactly on one machine; another processor draws another value from "
              "about that range)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
