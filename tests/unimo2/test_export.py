"""Export (tools/export.py, paddle.jit.save) and the predictor (Paddle
Inference): the exported program returns what the dygraph model returns, for
any batch size, and the command lines score pairs read from files."""
import json
import os

import numpy as np
import paddle
import pytest

from vlcore.formats import weights_file

from helpers import make_tiny_corpus, run_tool, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    corpus = make_tiny_corpus(os.path.join(str(tmp), "demo"))
    cfg_path = tiny_config(tmp, corpus, tmp / "run")
    import unimo2.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.run import build_model
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, cfg_path)
    model = build_model(cfg)
    # Move every weight off its initialisation so that nothing (e.g. ITM
    # logits of a fresh head) is trivially equal.
    rng = np.random.default_rng(0)
    model.set_state_dict({k: v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32")
                          for k, v in model.state_dict().items()})
    weights = os.path.join(str(tmp), "model.safetensors")
    weights_file.save(weights, model.state_dict())
    out = os.path.join(str(tmp), "exported")
    r = run_tool(["tools/export.py", "-c", cfg_path, "-o", f"Global.checkpoint={weights}", "--out", out,
                  "--max-len", "12"])
    assert r.returncode == 0, r.stderr[-3000:]
    model.eval()
    return {"dir": out, "model": model, "corpus": corpus, "tmp": tmp, "stdout": r.stdout}


def _pairs(corpus, n):
    from unimo2.predictor import read_pairs
    return read_pairs(os.path.join(corpus, "pairs_test.jsonl"))[:n]


def test_export_directory_is_self_contained(exported):
    files = sorted(os.listdir(exported["dir"]))
    assert {"export.json", "model.pdiparams", "tokenizer"} <= set(files)
    assert "model.json" in files or "model.pdmodel" in files
    meta = json.load(open(os.path.join(exported["dir"], "export.json")))
    assert meta["max_len"] == 12 and meta["outputs"] == ["itm_logits", "image_embedding", "text_embedding"]
    assert sorted(os.listdir(os.path.join(exported["dir"], "tokenizer"))) == ["merges.txt", "vocab.json"]


@pytest.mark.parametrize("batch", [1, 4])
def test_exported_outputs_equal_the_dygraph_model(exported, batch):
    from unimo2.inference import UNIMO2Scorer
    from unimo2.predictor import UNIMO2Predictor
    pred = UNIMO2Predictor(exported["dir"], threads=1)
    pairs = _pairs(exported["corpus"], batch)
    pairs[-1] = (pairs[-1][0], "a red circle")  # short: padded
    pixels = pred.images([p for p, _ in pairs])
    ids, mask = pred.texts([c for _, c in pairs])
    assert ids.shape == (batch, 12) and not mask.all()   # padded to the exported length
    got = pred.run(pixels, ids, mask)
    scorer = UNIMO2Scorer(exported["model"])
    with paddle.no_grad():
        ref = [t.numpy() for t in scorer(paddle.to_tensor(pixels), paddle.to_tensor(ids), paddle.to_tensor(mask))]
        loaded = paddle.jit.load(os.path.join(exported["dir"], "model"))
        via_jit = [t.numpy() for t in loaded(paddle.to_tensor(pixels), paddle.to_tensor(ids), paddle.to_tensor(mask))]
    for name, r, g, j in zip(("itm_logits", "image_embedding", "text_embedding"), ref, got.values(), via_jit):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(j, r, rtol=1e-5, atol=1e-5, err_msg=name)
    assert np.abs(ref[0][:, 1] - ref[0][:, 0]).max() > 1e-3  # not a degenerate constant


def test_predict_command_scores_pairs_from_a_file(exported):
    tmp, corpus = exported["tmp"], exported["corpus"]
    pairs = _pairs(corpus, 3)
    tsv = os.path.join(str(tmp), "pairs.tsv")
    with open(tsv, "w") as f:
        f.writelines(f"{os.path.relpath(p, str(tmp))}\t{c}\n" for p, c in pairs)
    out = os.path.join(str(tmp), "scores.jsonl")
    r = run_tool(["tools/predict.py", "--model", exported["dir"], "--pairs", tsv, "--out", out])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(ln) for ln in open(out)]
    assert [(row["image"], row["caption"]) for row in rows] == pairs
    from unimo2.predictor import UNIMO2Predictor
    direct = UNIMO2Predictor(exported["dir"]).score(pairs)
    for row, d in zip(rows, direct):
        assert abs(row["itm_prob"] - d["itm_prob"]) < 1e-6 and 0 < row["itm_prob"] < 1
        assert abs(row["itc_cosine"] - d["itc_cosine"]) < 1e-6
    bad = os.path.join(str(tmp), "bad.tsv")
    with open(bad, "w") as f:
        f.write("only-one-field\n")
    r = run_tool(["tools/predict.py", "--model", exported["dir"], "--pairs", bad])
    assert r.returncode == 2 and "bad.tsv:1" in r.stderr and "Traceback" not in r.stderr
