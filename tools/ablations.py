#!/usr/bin/env python
"""The ablation study of docs/ablations.md, from one command:

    python tools/ablations.py run [--jobs 2] [--seeds 0 1 2 3 4] [--suites unimo2_ablation ...]
    python tools/ablations.py plot            # docs/images/ablations.png from docs/results/*.json

``run`` builds the controlled corpora once (data/ablation: the demo corpus
with hexagons and stars kept out of every image-text pair, with region
features, oracle rewrites and TF-IDF negatives for UNIMO; data/ablation_rare:
the same shapes in 20 pairs each; data/ablation_colours: orange and purple
in 1 pair each), then runs, in this order, the suites ``unimo_ablation``
(UNIMO: CMCL, each kind of rewrite, single-modal data), ``unimo2_ablation``
(UNIMO-2 Table 4 on the first corpus, two seeds), ``unimo2_ablation_rare``
(on the second, one seed), ``unimo2_colour_pilot`` (the number of anchor
pairs, chosen on two other colours), ``unimo2_ablation_colours`` (Table 4 on
the colour corpus) and ``unimo2_ablation_grounding`` (Table 5: C and K, on
the colour corpus) of docs/results/suites.yaml through tools/results.py:
every variant for every seed, ``--jobs`` at a time, each job with its share
of the cores. A finished run is never redone, so a killed study resumes where
it stopped. Then it writes docs/results/<suite>.json, the plot, and the
tables in the docs (``python tools/results.py render``): the mean and the 95 %
confidence interval of every metric over the seeds.
"""
import argparse
import logging
import os
import sys
import textwrap

import results  # tools/results.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# in the order they run: UNIMO's (the cheapest) first, then UNIMO-2 Tables 4 and 5
SUITES = ("unimo_ablation", "unimo2_ablation", "unimo2_ablation_rare", "unimo2_colour_pilot", "unimo2_ablation_colours",
          "unimo2_ablation_grounding")
CONFIGS = ("configs/unimo_ablation.yaml", "configs/unimo2_ablation.yaml", "configs/unimo2_ablation_rare.yaml",
           "configs/unimo2_ablation_colours.yaml")
PLOT = os.path.join(ROOT, "docs", "images", "ablations.png")
# The plot's metrics per suite: (label, metric name in suites.yaml).
PLOTTED = {
    # (the first two UNIMO-2 corpora ran one or two seeds: tables only, no intervals worth drawing)
    "unimo2_ablation_colours": [("seen IR R@1 (ITM)", "sir"), ("unseen IR R@1 (ITC)", "uirc"),
                                ("unseen colour (ITM)", "ushm"), ("unseen colour (ITC)", "ushc")],
    "unimo2_ablation_grounding": [("seen IR R@1 (ITM)", "sir"), ("unseen IR R@1 (ITC)", "uirc"),
                                  ("unseen colour (ITM)", "ushm"), ("unseen colour (ITC)", "ushc")],
    "unimo_ablation": [("seen IR R@1", "sir"), ("unseen IR R@1", "uir"), ("unseen IR R@5", "uir5"),
                       ("unseen TR R@1", "utr")],
}


def prepare(log=print):
    """Build data/ablation as the configs' ``demo`` sections ask (once; a
    finished corpus is checked and reused), before jobs run side by side."""
    from data_prep.demo import DemoDataConfig, ensure_demo
    from vlcore.framework.config import load_yaml_with_bases
    for path in CONFIGS:
        cfg, _ = load_yaml_with_bases(os.path.join(ROOT, path))
        train = cfg["DataLoader"]["Train"]
        demo = DemoDataConfig(**train["demo"])
        log(f"[ablations] data for {path}: {train['demo_dir']}")
        ensure_demo(demo, os.path.join(ROOT, train["demo_dir"]), logging.getLogger("ablations"),
                    regions="unimo_" in os.path.basename(path))


def plot(suites=SUITES, path=PLOT):
    """One panel per suite whose results exist: mean, 95 % interval and
    each seed's value of the PLOTTED metrics per variant; chance as a dotted
    line."""
    import json

    from vlcore.tasks.metrics import mean_interval
    from vlcore.viz.intervals import interval_panels
    defs = results.load_suites()
    panels = []
    for name in suites:
        src = os.path.join(results.RESULTS, f"{name}.json")
        if name not in PLOTTED or not os.path.isfile(src):  # e.g. the pilot: a table, no panel
            continue
        with open(src, encoding="utf-8") as f:
            data = json.load(f)
        labels, keys = zip(*PLOTTED[name])
        rows, chance, n_seeds = [], [None] * len(keys), 0
        for run in data["runs"]:
            values = [[s["metrics"][k] for s in run["seeds"] if k in s["metrics"]] for k in keys]
            if run["name"] == "chance":
                chance = [v[0] if v else None for v in values]
                continue
            rows.append((run["name"], [(*mean_interval(v), v) if v else None for v in values]))
            n_seeds = max(n_seeds, len(run["seeds"]))
        title = textwrap.fill(defs[name]["title"], 60)
        panels.append({"title": f"{title}\n(mean, 95 % interval over {n_seeds} seeds)",
                       "metrics": list(labels), "rows": rows, "chance": chance})
    if not panels:
        raise ValueError("no ablation results yet: python tools/ablations.py run")
    return interval_panels(panels, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="prepare the corpus, run the suites, write the JSON, plot and docs")
    r.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2: one core each here)")
    r.add_argument("--seeds", nargs="+", type=int, help="override the suites' seeds")
    r.add_argument("--suites", nargs="+", default=list(SUITES), choices=SUITES)
    sub.add_parser("plot", help=f"write {os.path.relpath(PLOT, ROOT)} from docs/results/*.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.cmd == "run":
            prepare()
            suites, failed = results.load_suites(), []
            for name in args.suites:
                try:
                    results.run_suite(name, suites[name], args.seeds, jobs=max(1, args.jobs))
                except SystemExit as e:  # the failed runs are named; the other suites still run
                    failed.append(f"{name}: {e}")
            results.render()
            print(f"[ablations] wrote {os.path.relpath(plot(), ROOT)}")
            if failed:
                print("\n".join(failed), file=sys.stderr)
                return 1
            return 0
        print(f"[ablations] wrote {os.path.relpath(plot(), ROOT)}")
        return 0
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
