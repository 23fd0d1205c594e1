"""Rows of image crops with words beside them: one row per item (e.g. a
grounded-dictionary entry, UNIMO-2 Figure 3), its crops left to right and
its words on the right."""
import numpy as np

from vlcore.viz.figure import pyplot, save_png


def _strip(crops, size, gap=4):
    """Crops side by side on white, ``size`` pixels high."""
    if not crops:
        return np.full((size, size, 3), 255, np.uint8)
    out = np.full((size, len(crops) * (size + gap) - gap, 3), 255, np.uint8)
    for i, c in enumerate(crops):
        c = np.asarray(c, np.uint8)[:size, :size]
        out[:c.shape[0], i * (size + gap):i * (size + gap) + c.shape[1]] = c
    return out


def crop_rows(rows, path, title="", crop_size=48, per_row=6):
    """``rows``: ``[(label, [uint8 HWC crops], [word strings])]``. Writes the
    PNG ``path``."""
    if not rows:
        raise ValueError("nothing to draw: no rows")
    plt = pyplot()
    height = 0.75 * len(rows) + 0.6
    strip_inches = per_row * 0.62  # the crops' axes as wide as they are drawn: no gap before the words
    fig, axes = plt.subplots(len(rows), 2, figsize=(strip_inches + 5.5, height), squeeze=False,
                             gridspec_kw={"width_ratios": [strip_inches, 5.5]})
    width = per_row * (crop_size + 4) - 4
    for (label, crops, words), (ax_img, ax_txt) in zip(rows, axes):
        strip = _strip(crops[:per_row], crop_size)
        canvas = np.full((crop_size, width, 3), 255, np.uint8)
        canvas[:, :strip.shape[1]] = strip[:, :width]
        ax_img.imshow(canvas, interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        for side in ax_img.spines.values():
            side.set_visible(False)
        ax_img.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax_txt.axis("off")
        ax_txt.text(0.0, 0.5, ", ".join(words) if words else "(no words)", va="center", ha="left",
                    fontsize=9, wrap=True)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    return path
