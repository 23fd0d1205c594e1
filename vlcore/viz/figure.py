"""matplotlib set up for files (the Agg backend: no display, no GUI
toolkit) and an atomic PNG write."""
from vlcore.formats.sharded import atomic_open


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, chosen before pyplot is
    first imported (a headless machine has no display for the default one)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path, dpi=110):
    """Write ``fig`` to ``path`` atomically (temp file, fsync, rename) and
    close it (pyplot keeps every open figure alive)."""
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return path
