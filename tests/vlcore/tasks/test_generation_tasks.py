"""Generation tasks end to end through tools/train.py and tools/eval.py on
the shipped configs (tiny overrides): a tiny model trained on a memorisable
set reproduces its captions / targets, the COCO metrics (pycocoevalcap)
score them, the prediction files are in the official formats, and bad
input is reported with its file and key."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from vlcore.framework.runlog import read_metrics

from helpers import ROOT, make_tiny_corpus, make_tiny_regions, run_tool, tool_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))
    return make_tiny_regions(d)


def _memo_pairs(corpus, path, n=4):
    """``n`` images, one (short) caption each: memorisable."""
    with open(os.path.join(corpus, "pairs_train.jsonl")) as f:
        recs = [json.loads(line) for line in f][:n]
    with open(path, "w") as f:
        for r in recs:
            cap = min(r["captions"], key=len)
            f.write(json.dumps({"id": r["id"], "image": os.path.join(corpus, r["image"]), "captions": [cap]}) + "\n")
    return [min(r["captions"], key=len) for r in recs]


def _config(tmp_path, base, sections):
    cfg = {"_base_": os.path.join(ROOT, "configs", base)}
    cfg.update(sections)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _global(corpus, out, steps):
    return {"output_dir": str(out), "tokenizer_dir": os.path.join(corpus, "vocab"), "max_steps": steps,
            "log_interval": 10, "save_interval": steps, "keep_last": 1, "progress_bar": False, "visualdl": False, "plot_curves": False,
            "seed": 3, "init_from": ""}


TRAIN_OPT = {"Optimizer": {"lr": 3.0e-3}, "LRScheduler": {"name": "constant", "warmup_ratio": 0.0},
             "Loss": {"label_smooth": 0.0}}


def _infer(cfg, out, *args):
    r = run_tool(["tools/infer.py", "-c", cfg, "-o", f"Global.checkpoint={out}", *args])
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout[r.stdout.index("{"):])


def _run(cfg, out, eval_tool=False):
    """Train (which evaluates at the end); optionally evaluate the saved
    checkpoint again with tools/eval.py on two ranks (METEOR/PTB java
    start-ups make each evaluation cost ~10 s, so only one test does)."""
    train = run_tool(["tools/train.py", "-c", cfg])
    assert train.returncode == 0, train.stderr[-3000:]
    losses = [r["loss"] for r in read_metrics(str(out / "metrics.jsonl")) if "loss" in r]
    assert losses[-1] < 0.2 * losses[0], losses
    if eval_tool:  # two ranks, each decoding half of the examples
        os.remove(out / "eval_metrics.json")
        log = out.parent / "evallog"
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(log), "--nproc_per_node", "2",
               os.path.join(ROOT, "tools", "eval.py"), "-c", cfg, "-o", f"Global.checkpoint={out}"]
        ev = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=600)
        logs = "".join(open(log / f).read() for f in os.listdir(log) if f.startswith("workerlog"))
        assert ev.returncode == 0, (ev.stdout + logs)[-3000:]
        assert "world size 2" in logs + ev.stdout + ev.stderr
    return json.loads((out / "eval_metrics.json").read_text())


@pytest.mark.dist
def test_unimo_caption_memorises_and_scores(corpus, tmp_path):
    manifest = tmp_path / "memo.jsonl"
    caps = _memo_pairs(corpus, manifest)
    out = tmp_path / "run"
    sections = {
        "Global": _global(corpus, out, 120),
        "Arch": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 0, "max_positions": 40,
                 "feature_dim": 16, "dropout": 0.0, "attn_dropout": 0.0, "init_std": 0.1},
        **TRAIN_OPT,
        "DataLoader": {
            "Train": {"path": str(manifest), "batch_size": 4, "num_workers": 0,
                      "task": {"features": os.path.join(corpus, "regions"), "max_tgt_len": 24, "tag_labels": ""}},
            "Eval": {"path": str(manifest), "features": os.path.join(corpus, "regions"), "batch_size": 4,
                     "tag_labels": "",  # regions only (object tags: tests/unimo/test_unimo_object_tags.py)
                     "generation": {"beam_size": 3, "max_len": 20, "min_len": 1},
                     "coco_metrics": ["bleu", "rouge_l", "cider", "spice"]}}}
    cfg = _config(tmp_path, "unimo/coco_caption.yaml", sections)
    m = _run(cfg, out, eval_tool=True)
    assert m["checkpoint"] == str(out)
    assert m["examples"] == 4
    assert m["Bleu_4"] == pytest.approx(100.0, abs=1e-3) and m["ROUGE_L"] == pytest.approx(100.0, abs=1e-3)
    assert m["CIDEr"] > 0
    assert "SPICE" in m or "SPICE_status" in m
    assert os.path.basename(m["predictions"]) == "memo_predictions.json"   # named after the manifest
    preds = json.loads(open(m["predictions"]).read())          # COCO result format
    assert [set(p) for p in preds] == [{"image_id", "caption"}] * 4
    assert [p["caption"] for p in preds] == caps
    key = json.loads(open(manifest).readline())["id"]
    r = _infer(cfg, out, "caption", "--image", key, "--n-best", "2")
    assert [c["text"] for c in r["captions"]][0] == caps[0] and len(r["captions"]) == 2
    assert r["captions"][0]["score"] >= r["captions"][1]["score"]


def test_unimo_text_seq2seq_copies_and_scores_rouge(corpus, tmp_path):
    # A memorisable text task: copy the source
    with open(os.path.join(corpus, "pairs_train.jsonl")) as f:
        caps = [min(json.loads(line)["captions"], key=len) for line in f][:4]
    manifest = tmp_path / "s2s.jsonl"
    with open(manifest, "w") as f:
        for i, c in enumerate(caps):
            f.write(json.dumps({"id": f"ex{i}", "source": c, "target": c}) + "\n")
    out = tmp_path / "run"
    sections = {
        "Global": _global(corpus, out, 120),
        "Arch": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 0, "max_positions": 40,
                 "feature_dim": 16, "dropout": 0.0, "attn_dropout": 0.0, "init_std": 0.1},
        **TRAIN_OPT,
        "DataLoader": {
            "Train": {"path": str(manifest), "batch_size": 4, "num_workers": 0,
                      "task": {"max_src_len": 24, "max_tgt_len": 24}},
            "Eval": {"path": str(manifest), "batch_size": 4, "max_src_len": 24,
                     "generation": {"beam_size": 2, "max_len": 20, "min_len": 1, "block_ngram": 0},
                     "metrics": ["rouge", "coco"], "coco_metrics": ["bleu"]}}}
    cfg = _config(tmp_path, "unimo/gigaword.yaml", sections)
    m = _run(cfg, out)
    assert m["rouge1"] == pytest.approx(100.0) and m["rougeL"] == pytest.approx(100.0)
    assert m["Bleu_4"] == pytest.approx(100.0, abs=1e-3)
    rows = [json.loads(line) for line in open(m["predictions"])]
    assert [r["prediction"] for r in rows] == caps
    r = _infer(cfg, out, "generate", "--source", caps[1], "--beam-size", "2")
    assert r["outputs"][0]["text"] == caps[1]


def test_unimo2_caption_memorises(corpus, tmp_path):
    manifest = tmp_path / "memo.jsonl"
    caps = _memo_pairs(corpus, manifest)
    out = tmp_path / "run"
    sections = {
        "Global": _global(corpus, out, 120),
        "Arch": {"hidden_size": 32, "vit": {"image_size": 16, "patch_size": 8, "num_layers": 1, "num_heads": 2},
                 "text": {"vocab_size": 0, "max_positions": 40, "num_layers": 1, "num_heads": 2,
                          "dropout": 0.0, "attn_dropout": 0.0},
                 "grounding": {"dict_size": 16, "top_k": 4},
                 "fusion": {"num_layers": 1, "num_heads": 2, "dropout": 0.0, "attn_dropout": 0.0},
                 "init_std": 0.1, "recompute": False},
        **TRAIN_OPT,
        "DataLoader": {
            "Train": {"path": str(manifest), "batch_size": 4, "num_workers": 0,
                      "task": {"image_root": "", "max_tgt_len": 24}},
            "Eval": {"path": str(manifest), "image_root": "", "batch_size": 4,
                     "generation": {"beam_size": 3, "max_len": 20, "min_len": 1},
                     "coco_metrics": ["bleu", "cider"]}}}
    cfg = _config(tmp_path, "unimo2/coco_caption.yaml", sections)
    m = _run(cfg, out)
    assert m["Bleu_4"] == pytest.approx(100.0, abs=1e-3) and m["CIDEr"] > 0
    assert [p["caption"] for p in json.loads(open(m["predictions"]).read())] == caps
    image = json.loads(open(manifest).readline())["image"]
    assert _infer(cfg, out, "caption", "--image", image)["captions"][0]["text"] == caps[0]


def test_missing_region_store_names_the_key(corpus, tmp_path):
    manifest = tmp_path / "memo.jsonl"
    _memo_pairs(corpus, manifest)
    sections = {"Global": _global(corpus, tmp_path / "run", 2),
                "DataLoader": {"Train": {"path": str(manifest), "task": {"features": str(tmp_path / "nowhere")}}}}
    r = run_tool(["tools/train.py", "-c", _config(tmp_path, "unimo/coco_caption.yaml", sections)])
    assert r.returncode != 0
    assert "DataLoader.Train.task.features" in r.stderr and "nowhere" in r.stderr


def test_bad_eval_manifests_name_the_line(corpus, tmp_path):
    from types import SimpleNamespace

    from unimo.config import UNIMOArchConfig
    from unimo.seq2seq import UNIMOGenerationEval, UNIMOGenerationEvalConfig
    from vlcore.formats.manifests import ManifestError
    from vlcore.framework.run import BuildContext
    from vlcore.text.tokenizer import BPETokenizer
    tok = BPETokenizer.from_dir(os.path.join(corpus, "vocab"))
    cfg = SimpleNamespace(Arch=UNIMOArchConfig(), Global=SimpleNamespace(output_dir=str(tmp_path)))
    ctx = BuildContext(cfg, None, tokenizer=tok)
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "source": "x", "target": "y"}\n{"id": "a", "source": "z", "target": "w"}\n')
    with pytest.raises(ValueError, match=r"dup.jsonl:2: id 'a' repeated \(first on line 1\)"):
        UNIMOGenerationEval(UNIMOGenerationEvalConfig(path=str(path), task="text"), ctx)
    path.write_text('{"id": "a", "source": "x"}\n')
    with pytest.raises(ManifestError, match="dup.jsonl:1"):
        UNIMOGenerationEval(UNIMOGenerationEvalConfig(path=str(path), task="text"), ctx)
