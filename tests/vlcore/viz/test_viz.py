"""The pictures: which panels the curves get, the example queries of a
retrieval sheet against a NumPy ranking, and that the PNGs are written
(decoded back, right size, atomically)."""
import os

import numpy as np
import pytest

from vlcore.tasks.retrieval_eval import example_queries
from vlcore.viz.curves import panels, plot_runs
from vlcore.viz.grids import crop_rows
from vlcore.viz.sheets import retrieval_sheet


def _train(steps, **extra):
    return [{"step": s, "loss": 5.0 / s, "itc": 2.0 / s, "itc_acc": s / 10, "lr": 1e-3, "samples_per_s": 100.0,
             "time": 1e9 + s, "skipped": 0, "corpus": "pairs", **extra} for s in steps]


def _read_png(path):
    import matplotlib.image
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_panels_cover_every_number_in_reading_order():
    a = _train([10, 20, 30]) + [{"step": 30, "split": "eval", "ir_r1": 20.0, "ir_r10": 80.0, "ir_r5": 50.0,
                                 "rsum": 150.0, "seconds": 3.0, "images": 100}]
    b = _train([10, 20]) + [{"step": 20, "vcl": 3.0, "vcl_acc": 0.1}]
    got = panels({"a": a, "b": b})
    assert [t for t, _, _ in got] == ["loss", "itc loss", "vcl loss", "itc accuracy", "vcl accuracy", "lr",
                                      "samples / s", "evaluation at step 30"]
    lines = dict((t, d) for t, _, d in got)
    assert lines["loss"]["a"] == ([10, 20, 30], [0.5, 0.25, 5.0 / 30]) and lines["vcl loss"] == {"b": ([20], [3.0])}
    kind, bars = got[-1][1:]
    # one evaluation: bars of the last one, natural order, rsum (another scale) and bookkeeping left out
    assert kind == "bars" and bars == {"a": {"ir_r1": 20.0, "ir_r5": 50.0, "ir_r10": 80.0}}


def test_periodic_evaluation_gets_line_panels():
    evals = [{"step": s, "split": "eval", "ir_r1": float(s)} for s in (10, 20, 30)]
    got = panels({"a": _train([10, 20, 30]) + evals})
    assert ("eval ir_r1", "line", {"a": ([10, 20, 30], [10.0, 20.0, 30.0])}) in got


def test_plot_runs_writes_a_png_and_refuses_nothing_to_plot(tmp_path):
    out = tmp_path / "sub" / "curves.png"
    names = plot_runs({"a": _train([1, 2, 3]), "b": _train([1, 2])}, str(out), "title")
    assert names[0] == "loss" and _read_png(out).shape[0] > 200
    assert os.listdir(tmp_path / "sub") == ["curves.png"]  # no temp file left
    with pytest.raises(ValueError, match="nothing to plot: no step records in a"):
        plot_runs({"a": [{"note": "no step"}]}, str(tmp_path / "x.png"))


def test_example_queries_match_a_numpy_ranking():
    rng = np.random.default_rng(0)
    caption_image = np.repeat(np.arange(7), 2)               # 7 images, 2 captions each
    tr, ir = rng.normal(size=(7, 14)), rng.normal(size=(7, 14))
    ex = example_queries(tr, ir, caption_image, queries=3, top=4)
    assert [c for c, _, _ in ex["ir"]] == [0, 6, 13] and [i for i, _, _ in ex["tr"]] == [0, 3, 6]
    for c, images, rank in ex["ir"]:
        order = sorted(range(7), key=lambda i: -ir[i, c])
        assert images == order[:4] and rank == order.index(caption_image[c]) + 1
    for i, caps, rank in ex["tr"]:
        order = sorted(range(14), key=lambda c: -tr[i, c])
        assert caps == order[:4] and rank == min(order.index(c) for c in np.flatnonzero(caption_image == i)) + 1


def test_retrieval_sheet_and_crop_rows_draw(tmp_path):
    caption_image = np.repeat(np.arange(3), 2)
    ex = {"ir": [(0, [0, 1, 2], 1), (3, [2, 0, 1], 3)], "tr": [(2, [4, 5, 0], 1)]}
    colours = [np.full((20, 20, 3), v, np.uint8) for v in (0, 120, 250)]
    path = retrieval_sheet(ex, lambda i: None if i == 1 else colours[i], [f"caption {c}" for c in range(6)],
                           caption_image, str(tmp_path / "sheet.png"), "t")
    assert _read_png(path).shape[0] > 300
    crop_rows([("entry 3", colours, ["red (2)", "circle (1)"]), ("entry 5", [], [])], str(tmp_path / "g.png"))
    assert _read_png(tmp_path / "g.png").shape[1] > 300
    with pytest.raises(ValueError, match="no example queries"):
        retrieval_sheet({}, lambda i: None, [], caption_image, str(tmp_path / "none.png"))
