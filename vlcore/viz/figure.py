"""matplotlib set up for files (the Agg backend: no display, no GUI
toolkit) and an atomic PNG write."""
import os


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
    plt = pyplot()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
