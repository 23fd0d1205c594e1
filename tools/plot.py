#!/usr/bin/env python
"""Training curves of one or several runs as a PNG:

    python tools/plot.py output/unimo2_demo                      # -> output/unimo2_demo/curves.png
    python tools/plot.py output/unimo2_demo output/unimo2_demo_baseline -o compare.png

Each run directory's ``metrics.jsonl`` gives one line per run in every panel:
each objective's loss and accuracy, the learning rate, samples per second and
the evaluation metrics (:mod:`vlcore.viz.curves`). Training writes
``curves.png`` of its own run at the end; this redraws it, or compares runs.
"""
import argparse
import os

from vlcore.framework import cli as _cli


def run_names(dirs):
    """Short, distinct names: the directory's base name, with its parent
    where two runs share a base name."""
    base = [os.path.basename(os.path.normpath(d)) for d in dirs]
    return [os.path.join(os.path.basename(os.path.dirname(os.path.normpath(d))), b) if base.count(b) > 1 else b
            for d, b in zip(dirs, base)]


def main(argv=None):
    p = argparse.ArgumentParser(description="Plot the training curves of runs (their metrics.jsonl).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory (Global.output_dir) or its metrics.jsonl")
    p.add_argument("-o", "--output", help="PNG path (default: RUN/curves.png for one run, "
                                          "curves_compare.png beside the first run for several)")
    p.add_argument("--title", default="", help="figure title")
    args = p.parse_args(argv)

    def go():
        from vlcore.framework.runlog import read_metrics
        from vlcore.viz.curves import plot_runs
        dirs = [os.path.dirname(r) if r.endswith(".jsonl") else r for r in args.runs]
        runs = {}
        for name, d in zip(run_names(dirs), dirs):
            path = os.path.join(d, "metrics.jsonl")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: no such file (is {d} a run directory?)")
            try:
                runs[name] = read_metrics(path)
            except ValueError as e:
                raise ValueError(f"{path}: not JSON lines ({e})") from None
        out = args.output or (os.path.join(dirs[0], "curves.png") if len(dirs) == 1
                              else os.path.join(os.path.dirname(os.path.normpath(dirs[0])), "curves_compare.png"))
        panels = plot_runs(runs, out, args.title)
        print(f"wrote {out} ({len(panels)} panels: {', '.join(panels)})")
    _cli.run(go)


if __name__ == "__main__":
    main()
