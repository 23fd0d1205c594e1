"""Means with confidence intervals, one panel per study: horizontal bars
(one group per variant, one bar per metric) with the 95 % interval as error
bars, each seed's value as a dot and chance as a dotted line, so
overlapping intervals are seen at once, and so are seeds that split into
groups (a mean and its interval alone would hide that)."""
from .figure import pyplot, save_png


def interval_panels(panels, path, title=""):
    """``panels``: ``[{"title", "metrics": [label, ...], "rows": [(variant,
    [(mean, half) or (mean, half, [seed values]) or None, ...]), ...],
    "chance": [value or None, ...]}]``. Writes a PNG to ``path``
    (atomically) and returns it."""
    plt = pyplot()
    heights = [max(2.0, 0.32 * len(p["rows"]) * len(p["metrics"]) + 1.0) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), max(heights)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels):
        metrics, rows = panel["metrics"], panel["rows"]
        width = 0.8 / len(metrics)
        for j, label in enumerate(metrics):
            ys, xs, errs, dots = [], [], [], []
            for i, (_, cells) in enumerate(rows):
                if cells[j] is not None:
                    ys.append(i + j * width)
                    xs.append(cells[j][0])
                    errs.append(cells[j][1])
                    dots += [(v, ys[-1]) for v in (cells[j][2] if len(cells[j]) > 2 else ())]
            ax.barh(ys, xs, width, xerr=errs, color=colours[j % len(colours)], label=label,
                    error_kw={"elinewidth": 1, "capsize": 2})
            if dots:
                ax.scatter(*zip(*dots), s=6, color="black", zorder=3, linewidths=0)
            chance = (panel.get("chance") or [None] * len(metrics))[j]
            if chance is not None:
                ax.axvline(chance, color=colours[j % len(colours)], linestyle=":", linewidth=1)
        ax.set_yticks([i + width * (len(metrics) - 1) / 2 for i in range(len(rows))])
        ax.set_yticklabels([name for name, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2)  # below: never over a bar
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
