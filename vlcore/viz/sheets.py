"""Retrieval sheets: for a few held-out captions, the top images with the
right one framed in green (image retrieval), and for a few images, the top
captions with the right ones in green (text retrieval). One PNG, drawn from
:func:`vlcore.tasks.retrieval_eval.example_queries`."""
import textwrap

import numpy as np

from vlcore.viz.figure import pyplot, save_png

RIGHT, WRONG = "#1a9641", "#d7191c"


def _show(ax, img, colour=None):
    if img is None:
        img = np.full((8, 8, 3), 200, np.uint8)
    ax.imshow(img, interpolation="lanczos" if min(img.shape[:2]) > 64 else "nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(colour is not None)
        if colour is not None:
            side.set_edgecolor(colour)
            side.set_linewidth(4)


def _text(ax, lines, fontsize=8):
    """``lines``: ``[(text, colour)]`` top to bottom."""
    ax.axis("off")
    step = 1.0 / max(len(lines), 1)
    for i, (text, colour) in enumerate(lines):
        ax.text(0.0, 1.0 - (i + 0.5) * step, text, va="center", ha="left", fontsize=fontsize, color=colour)


def retrieval_sheet(examples, load, captions, caption_image, path, title=""):
    """``examples``: ``{"ir": [(caption, [images], rank)], "tr": [(image,
    [captions], rank)]}``; ``load(image index) -> uint8 RGB or None``."""
    ir, tr = examples.get("ir", []), examples.get("tr", [])
    if not ir and not tr:
        raise ValueError("nothing to draw: no example queries")
    top = max([len(t) for _, t, _ in ir] + [1])
    plt = pyplot()
    fig = plt.figure(figsize=(2.2 + 1.4 * top, 1.45 * (len(ir) + len(tr)) + 1.2))
    top_fig, bottom_fig = fig.subfigures(2, 1, height_ratios=[max(len(ir), 1), max(len(tr), 1)])
    if ir:
        top_fig.suptitle(f"image retrieval: each caption's top {top} images (green: its image)", fontsize=10)
        axes = top_fig.subplots(len(ir), top + 1, squeeze=False, gridspec_kw={"width_ratios": [2.2] + [1.4] * top})
        for row, (c, images, rank) in zip(axes, ir):
            wrapped = textwrap.fill(captions[c], 28)
            _text(row[0], [(wrapped, "black"), (f"its image ranks {rank}", RIGHT if rank == 1 else WRONG)])
            for ax, i in zip(row[1:], images):
                _show(ax, load(i), RIGHT if i == caption_image[c] else None)
            for ax in row[1 + len(images):]:
                ax.axis("off")
    if tr:
        bottom_fig.suptitle("text retrieval: each image's top captions (green: one of its captions)", fontsize=10)
        axes = bottom_fig.subplots(len(tr), 2, squeeze=False, gridspec_kw={"width_ratios": [1.4, 0.8 + 1.4 * top]})
        for row, (i, caps, rank) in zip(axes, tr):
            _show(row[0], load(i))
            lines = [(f"{k + 1}. {textwrap.shorten(captions[c], 70)}", RIGHT if caption_image[c] == i else "black")
                     for k, c in enumerate(caps)]
            lines.append((f"its first caption ranks {rank}", RIGHT if rank == 1 else WRONG))
            _text(row[1], lines)
    if title:
        fig.suptitle(title, fontsize=11, y=1.01)
    save_png(fig, path)
    return path
