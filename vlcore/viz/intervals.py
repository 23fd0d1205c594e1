"""Means with confidence intervals, one panel per study: horizontal bars
(one group per variant, one bar per metric) with the 95 % interval as error
bars and chance as a dotted line, so overlapping intervals are seen at once."""
from .figure import pyplot, save_png


def interval_panels(panels, path, title=""):
    """``panels``: ``[{"title", "metrics": [label, ...], "rows": [(variant,
    [(mean, half) or None, ...]), ...], "chance": [value or None, ...]}]``.
    Writes a PNG to ``path`` (atomically) and returns it."""
    plt = pyplot()
    heights = [max(2.0, 0.32 * len(p["rows"]) * len(p["metrics"]) + 1.0) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), max(heights)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels):
        metrics, rows = panel["metrics"], panel["rows"]
        width = 0.8 / len(metrics)
        for j, label in enumerate(metrics):
            ys, xs, errs = [], [], []
            for i, (_, cells) in enumerate(rows):
                if cells[j] is not None:
                    ys.append(i + j * width)
                    xs.append(cells[j][0])
                    errs.append(cells[j][1])
            ax.barh(ys, xs, width, xerr=errs, color=colours[j % len(colours)], label=label,
                    error_kw={"elinewidth": 1, "capsize": 2})
            chance = (panel.get("chance") or [None] * len(metrics))[j]
            if chance is not None:
                ax.axvline(chance, color=colours[j % len(colours)], linestyle=":", linewidth=1)
        ax.set_yticks([i + width * (len(metrics) - 1) / 2 for i in range(len(rows))])
        ax.set_yticklabels([name for name, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
