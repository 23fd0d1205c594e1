"""The pictures from the command lines, on a tiny trained UNIMO-2: training
draws curves.png, tools/eval.py a retrieval sheet, tools/plot.py compares
runs, tools/visualize_grounding.py the dictionary and its statistics; bad
input is one line."""
import json
import os

import pytest

from vlcore.framework.runlog import read_metrics

from helpers import make_tiny_corpus, run_tool, tiny_config

pytestmark = pytest.mark.slow


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pictures")
    corpus = make_tiny_corpus(os.path.join(str(tmp), "demo"))
    out = tmp / "run"
    cfg = tiny_config(tmp, corpus, out, Global={"max_steps": 4, "plot_curves": True})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, corpus, cfg, out, r.stdout + r.stderr


def test_training_ends_with_its_curves(run):
    _, _, _, out, log = run
    assert _png(out / "curves.png") and f"wrote {out / 'curves.png'}" in log


def test_eval_writes_a_retrieval_sheet(run):
    tmp, _, cfg, out, _ = run
    r = run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "--output", str(tmp / "ev.json")])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _png(tmp / "ev_sheet.png") and f"wrote {tmp / 'ev_sheet.png'}" in r.stdout + r.stderr


def test_plot_compares_runs_and_names_a_missing_one(run, tmp_path):
    tmp, corpus, _, out, _ = run
    other = tmp_path / "other"
    other.mkdir()
    with open(other / "metrics.jsonl", "w") as f:
        for rec in read_metrics(str(out / "metrics.jsonl")):
            f.write(json.dumps({k: v * 2 if k == "loss" else v for k, v in rec.items()}) + "\n")
    r = run_tool(["tools/plot.py", str(out), str(other), "-o", str(tmp_path / "cmp.png")])
    assert r.returncode == 0 and _png(tmp_path / "cmp.png"), r.stderr[-2000:]
    assert r.stdout.startswith(f"wrote {tmp_path / 'cmp.png'} (") and "loss" in r.stdout
    r = run_tool(["tools/plot.py", str(tmp_path / "nowhere")])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == \
        f"error: {tmp_path / 'nowhere' / 'metrics.jsonl'}: no such file (is {tmp_path / 'nowhere'} a run directory?)"


def test_visualize_grounding_writes_the_figure_and_statistics(run, tmp_path):
    tmp, _, cfg, out, _ = run
    r = run_tool(["tools/visualize_grounding.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "--out",
                  str(tmp_path / "g"), "--entries", "5", "--per-entry", "3"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _png(tmp_path / "g" / "grounding.png")
    report = json.loads((tmp_path / "g" / "grounding.json").read_text())
    u = report["usage"]
    assert u["dict_size"] == 16 and u["top_k"] == 4 and u["images"] == 6 and u["texts"] == 30
    assert 4 <= u["top_k_of_images"]["distinct"] <= 16 and 0 < u["top_k_of_texts"]["entropy_bits"] <= 4
    assert 1 <= len(report["entries"]) <= 5 and all(len(e["top_patches"]) <= 3 for e in report["entries"])
    assert f"texts: {u['top_k_of_texts']['distinct']} entries ever in a top-4" in r.stdout


def test_visualize_grounding_word_look_overlap(run, tmp_path):
    """--labels: the word-look overlap per label read from a dotted field,
    with groups; a missing field is one line naming the file and line."""
    tmp, corpus, cfg, out, _ = run
    labels = os.path.join(corpus, "images_train.jsonl")
    shapes = sorted({json.loads(line)["scene"][0]["shape"] for line in open(labels)})
    r = run_tool(["tools/visualize_grounding.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "--out",
                  str(tmp_path / "g"), "--labels", labels, "--label-field", "scene.0.shape",
                  "--group", f"first={shapes[0]}"])
    assert r.returncode == 0, r.stderr[-3000:]
    o = json.loads((tmp_path / "g" / "grounding.json").read_text())["overlap"]
    assert o["labels"] == shapes and sum(o["images"].values()) == 24 and o["chance"] == 0.25
    assert len(o["matrix"]) == len(shapes) and o["groups"]["first"]["matched"] == o["matrix"][0][0]
    assert f"first: a prompt's grounded tokens in its own images' top-4: {o['matrix'][0][0]:.1%}" in r.stdout
    r = run_tool(["tools/visualize_grounding.py", "-c", cfg, "-o", f"Global.checkpoint={out}", "--out",
                  str(tmp_path / "g"), "--labels", labels, "--label-field", "scene.5.shape"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: {labels}:1: no 'scene.5.shape' (--label-field)"


def test_visualize_grounding_refuses_a_model_without_dictionary(run, tmp_path):
    tmp, _, cfg, out, _ = run
    r = run_tool(["tools/visualize_grounding.py", "-c", cfg, "-o", "Arch.grounding.mode=none", "-o",
                  "Arch.fusion.attention=full", "-o",
                  f"Global.checkpoint={out}", "--out", str(tmp_path / "g")])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == ("error: Arch.grounding.mode: none: the model has no top-K "
                                                 "grounded dictionary to draw (e.g. Our Baseline)")
