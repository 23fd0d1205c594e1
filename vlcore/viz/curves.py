"""Training curves of one or several runs on one figure (``tools/plot.py``;
``curves.png`` at the end of every training run).

A run is the list of records of its ``metrics.jsonl``: training records
(``step``, one number per objective and its ``*_acc``, ``lr``,
``samples_per_s``) and evaluation records (``split: eval``). Every number
gets a panel -- each objective's loss, each accuracy, the learning rate,
samples per second, each evaluation metric -- with one line per run, so the
demo and its baseline can be compared at a glance.
"""
import math
import re

from vlcore.viz.figure import pyplot, save_png

# bookkeeping, not curves
_SKIP = {"step", "time", "skipped", "seconds", "pairs_scored", "pairs_total", "images", "captions", "folds",
         "two_stage_k", "epoch"}
_FIRST = ("loss",)
_LAST = ("lr", "samples_per_s")


def _numbers(record):
    return {k: v for k, v in record.items()
            if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _natural(key):
    """``ir_r5`` before ``ir_r10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def panels(runs):
    """``[(title, kind, data)]`` of every number the runs logged: total loss
    first, then the objectives, accuracies, learning rate and speed
    (``kind`` "line", ``data`` ``{run: (steps, values)}``), then the
    evaluation metrics: a line panel each when some run evaluated at three
    steps or more, else one "bars" panel of the last evaluation
    (``data`` ``{run: {metric: value}}``; ``rsum`` left out, its scale is
    another)."""
    train, evals = {}, {}
    for name, records in runs.items():
        for r in records:
            if "step" not in r:
                continue
            target = evals if r.get("split") == "eval" else train
            for k, v in _numbers(r).items():
                steps, values = target.setdefault(k, {}).setdefault(name, ([], []))
                steps.append(r["step"])
                values.append(v)
    losses = sorted(k for k in train if not k.endswith("_acc") and k not in _FIRST + _LAST)
    accs = sorted(k for k in train if k.endswith("_acc"))
    order = [k for k in _FIRST if k in train] + losses + accs + [k for k in _LAST if k in train]
    out = [(_title(k), "line", train[k]) for k in order]
    keys = sorted(evals, key=_natural)
    if any(len(steps) >= 3 for k in keys for steps, _ in evals[k].values()):
        out += [(f"eval {k}", "line", evals[k]) for k in keys]
    elif keys:
        shown = [k for k in keys if k != "rsum"] or keys
        last = {run: {k: evals[k][run][1][-1] for k in shown if run in evals[k]} for run in runs}
        steps = sorted({evals[k][run][0][-1] for k in shown for run in runs if run in evals[k]})
        at = f" at step {steps[0]}" if len(steps) == 1 else ""
        out.append((f"evaluation{at}", "bars", {run: v for run, v in last.items() if v}))
    return out


def _title(key):
    if key == "samples_per_s":
        return "samples / s"
    if key.endswith("_acc"):
        return f"{key[:-4]} accuracy"
    return key if key in ("loss", "lr") else f"{key} loss"


def plot_runs(runs, path, title=""):
    """Draw ``runs`` (``{name: records}``) into the PNG ``path``; returns the
    panel titles. A run without records is drawn as nothing, not an error."""
    found = panels(runs)
    if not found:
        raise ValueError(f"nothing to plot: no step records in {', '.join(runs) or 'no runs'}")
    plt = pyplot()
    cols = min(4, len(found))
    rows = -(-len(found) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False)
    colours = {run: c for run, c in zip(runs, _cycle(plt, len(runs)))}
    for ax, (name, kind, data) in zip(axes.flat, found):
        if kind == "bars":
            _bars(ax, data, colours)
        else:
            for run, (steps, values) in data.items():
                style = "o-" if len(steps) < 3 else "-"
                ax.plot(steps, values, style, color=colours[run], label=run, linewidth=1.2, markersize=4)
            ax.set_xlabel("step", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if name == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in list(axes.flat)[len(found):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(runs) > 1 and handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(runs), 4), fontsize=9,
                   bbox_to_anchor=(0.5, 1.0 + 0.04 / rows))
    if title:
        fig.suptitle(title, y=1.0 + (0.08 if len(runs) > 1 else 0.02) / rows)
    fig.tight_layout()
    save_png(fig, path)
    return [name for name, _, _ in found]


def _cycle(plt, n):
    base = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [base[i % len(base)] for i in range(n)]


def _bars(ax, data, colours):
    """Grouped bars: one group per metric, one bar per run, values written
    on the bars (the figure is read, not measured)."""
    metrics = sorted({k for v in data.values() for k in v}, key=_natural)
    width = 0.8 / max(1, len(data))
    for i, (run, values) in enumerate(data.items()):
        xs = [m + i * width for m in range(len(metrics))]
        ys = [values.get(k, float("nan")) for k in metrics]
        bars = ax.bar(xs, ys, width, color=colours[run], label=run)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.set_xticks([m + width * (len(data) - 1) / 2 for m in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=45, ha="right", fontsize=8)
