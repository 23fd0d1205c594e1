"""UNIMO captioning with Oscar-style object tags in the context: tags are the
thresholded, de-duplicated max classes of the stored boxes in box order,
placed as ``[CLS] tags [SEP]`` after the regions; the official tag file is
read with its positions; cached decoding still equals the full forward."""
import os

import numpy as np
import paddle
import pytest

import unimo  # noqa: F401  (registrations)
from unimo.config import UNIMOArchConfig
from unimo.object_tags import load_labels, read_tag_file, region_tags
from unimo.seq2seq import (
    UNIMOForSeq2Seq,
    UNIMOGenerationEvalConfig,
    UNIMOGenTaskConfig,
    _Inputs,
    _tensors,
    build_generation_eval,
)
from vlcore.formats.region_store import RegionFeatures, RegionStoreWriter
from vlcore.framework.config import load_config
from vlcore.framework.registry import TASK
from vlcore.framework.schema import TrainConfig
from vlcore.text.tokenizer import train_bpe

from helpers import ROOT

LABELS = ["dog", "man", "tree,trees", "red car", "sky"]


def _rec(key, classes, scores, dim=12):
    n = len(classes)
    rng = np.random.default_rng(len(key))
    boxes = np.array([[i, i, i + 10, i + 8] for i in range(n)], np.float32)
    ids = np.stack([classes, [(c + 1) % len(LABELS) for c in classes]], 1).astype(np.int32)
    sc = np.stack([scores, [0.01] * n], 1).astype(np.float32)
    return RegionFeatures(key, 40, 30, boxes, rng.normal(size=(n, dim)).astype(np.float32), ids, sc)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("tags")
    tok = train_bpe(["a dog and a man under a tree", "a red car under the sky", "dog man tree car sky"] * 20,
                    300, str(d / "vocab"))
    (d / "objects_vocab.txt").write_text("\n".join(LABELS) + "\n")
    recs = {"1": _rec("1", [1, 0, 1, 2, 4, 3], [0.9, 0.35, 0.8, 0.34, 0.6, 0.7]),   # man dog sky red car
            "2": _rec("2", [2, 2], [0.5, 0.99])}                                    # tree
    with RegionStoreWriter(str(d / "regions"), feature_dtype="float32") as w:
        for r in recs.values():
            w.put(r)
    return d, tok, recs


def tiny():
    return UNIMOArchConfig(hidden_size=16, num_layers=2, num_heads=2, vocab_size=300, max_positions=64,
                           feature_dim=12, cmcl_dim=8, dropout=0.0, attn_dropout=0.0, init_std=0.3)


def _inputs(d, tok, **kw):
    cfg = UNIMOGenTaskConfig(features=str(d / "regions"), tag_labels=str(d / "objects_vocab.txt"), **kw)
    return _Inputs(cfg, "caption", tiny(), tok, "DataLoader.Train.task")


def test_tags_thresholded_deduplicated_in_box_order(setup):
    d, _, recs = setup
    labels = load_labels(str(d / "objects_vocab.txt"), "k")
    assert labels == ["dog", "man", "tree", "red car", "sky"]
    assert region_tags(recs["1"], labels, 0.35, 100) == ["man", "dog", "sky", "red car"]
    assert region_tags(recs["1"], labels, 0.65, 100) == ["man", "red car"]
    assert region_tags(recs["1"], labels, 0.35, 2) == ["man", "dog"]       # only the boxes fed as regions
    assert region_tags(recs["2"], labels, 0.35, 100) == ["tree"]            # first synonym of "tree,trees"
    assert region_tags(recs["2"], labels, 1.0, 100) == []
    with pytest.raises(Exception, match="object class 4 outside the 3 labels"):
        region_tags(recs["1"], labels[:3], 0.35, 100)


def test_tag_token_ids_follow_the_regions(setup):
    d, tok, recs = setup
    batch = _inputs(d, tok).regions([{"id": "1"}, {"id": "2"}])
    want = [tok.build_input(tok.encode("man dog sky red car"), 100), tok.build_input(tok.encode("tree"), 100)]
    assert batch["src_ids"][0].tolist() == want[0]
    assert batch["src_ids"][1, :len(want[1])].tolist() == want[1]
    assert not batch["src_mask"][1, len(want[1]):].any() and batch["src_mask"][0].all()
    assert "src_pos" not in batch                                   # positions from the offset
    short = _inputs(d, tok, max_tag_len=4).regions([{"id": "1"}])["src_ids"][0].tolist()
    assert short == want[0][:3] + [tok.sep_id]
    # model layout: [IMG] regions then the tags; the tags' encoding is what a
    # text-only context [CLS] tags [SEP] at the offset positions would embed
    paddle.seed(0)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    t = _tensors(batch)
    regions, text = m._context(t)
    assert regions[0].shape == [2, 6, 12] and text[0].numpy().tolist() == batch["src_ids"].tolist()
    emb = m.model.embed_text(text[0])
    ref = m.model.embed_text(text[0], paddle.arange(text[0].shape[1], dtype="int64").unsqueeze(0) + 2)
    np.testing.assert_allclose(emb.numpy(), ref.numpy(), atol=1e-6)
    enc = m.model(regions=regions, text=text)
    assert enc.image.shape[1] == 7 and enc.text.shape[1] == batch["src_ids"].shape[1]


def test_no_tags_by_default(setup):
    d, tok, _ = setup
    cfg = UNIMOGenTaskConfig(features=str(d / "regions"))
    batch = _Inputs(cfg, "caption", tiny(), tok).regions([{"id": "1"}])
    assert set(batch) == {"features", "locations", "region_mask"}


def _full_logits(m, regions, text, ids):
    pos = paddle.to_tensor(np.arange(ids.shape[1])[None].repeat(ids.shape[0], 0) + 2)
    enc = m.model(regions=regions, text=text, target=(ids, paddle.ones(ids.shape, "bool"), pos))
    return m.mlm_head(enc.target)


@pytest.mark.parametrize("source", ["labels", "file"])
def test_cached_decoding_equals_full_forward_with_tags(setup, source, tmp_path):
    d, tok, _ = setup
    if source == "labels":
        inputs = _inputs(d, tok)
    else:
        f = tmp_path / "coco_object_0.35_tot.ids"
        f.write_text("1;0 40 41 42 2;0 0 0 0 0;2 3 4 5 6\n2;0 43 2;0 0 0;2 3 4\n")
        cfg = UNIMOGenTaskConfig(features=str(d / "regions"), tag_file=str(f))
        inputs = _Inputs(cfg, "caption", tiny(), tok, "DataLoader.Train.task")
    batch = inputs.regions([{"id": "1"}, {"id": "2"}])
    paddle.seed(1)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    regions, text = m._context(_tensors(batch))
    ids = paddle.to_tensor(np.random.default_rng(1).integers(3, 300, size=(2, 5)))
    with paddle.no_grad():
        full = _full_logits(m, regions, text, ids).numpy()
        no_tags = _full_logits(m, regions, None, ids).numpy()
        _, caches, cmask = m.model.encode_context(regions, text)
        assert cmask.shape[1] == 1 + regions[0].shape[1] + text[0].shape[1]
        steps = []
        for t in range(ids.shape[1]):
            h = m.model.decode_step(ids[:, t:t + 1], paddle.full([2, 1], 2 + t, dtype="int64"), cmask, t, caches)
            steps.append(m.mlm_head(h[:, -1]).numpy())
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-4)
    assert np.abs(full - no_tags).max() > 1e-3                      # the tags do reach the target


def test_tag_file_positions_and_errors(setup, tmp_path):
    d, tok, _ = setup
    f = tmp_path / "tags.ids"
    f.write_text("1;0 40 2;0 0 0;2 3 4\n2;0 43 44 45 2;0 0 0 0 0;5 6 7 8 9\n")
    assert read_tag_file(str(f), "k") == {"1": ([0, 40, 2], [2, 3, 4]), "2": ([0, 43, 44, 45, 2], [5, 6, 7, 8, 9])}
    cfg = UNIMOGenTaskConfig(features=str(d / "regions"), tag_file=str(f), max_tag_len=4)
    b = _Inputs(cfg, "caption", tiny(), tok, "X").regions([{"id": "1"}, {"id": "2"}])
    assert b["src_ids"].tolist() == [[0, 40, 2, tok.pad_id], [0, 43, 44, 45]]
    assert b["src_pos"].tolist() == [[2, 3, 4, 0], [5, 6, 7, 8]]
    assert b["src_mask"].tolist() == [[True, True, True, False], [True] * 4]
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    text = m._context(_tensors(b))[1]
    assert len(text) == 3 and text[2].numpy().tolist() == b["src_pos"].tolist()
    bad = tmp_path / "bad.ids"
    bad.write_text("1;0 40 2;0 0 0;2 3 4\n2;0 43;0 0\n")
    with pytest.raises(ValueError, match=r"bad.ids:2: 3 ';'-separated fields"):
        read_tag_file(str(bad), "k")
    bad.write_text("1;0 40 2;0 0;2 3 4\n")
    with pytest.raises(ValueError, match=r"bad.ids:1: .*differ in length"):
        read_tag_file(str(bad), "k")
    with pytest.raises(Exception, match="no object tags for image '3'"):
        _Inputs(cfg, "caption", tiny(), tok, "X").tags.arrays(["3"], [])


def test_missing_label_file_names_the_key(setup, tmp_path):
    d, tok, _ = setup
    cfg = UNIMOGenTaskConfig(features=str(d / "regions"), tag_labels=str(tmp_path / "objects_vocab.txt"))
    with pytest.raises(FileNotFoundError, match=r"DataLoader\.Train\.task\.tag_labels: .*objects_vocab\.txt"):
        TASK.hook("UNIMOCaption", "prepare")(cfg, None, None)
    with pytest.raises(FileNotFoundError, match=r"DataLoader\.Train\.task\.tag_labels"):
        _Inputs(cfg, "caption", tiny(), tok, "DataLoader.Train.task")
    ev = UNIMOGenerationEvalConfig(features=str(d / "regions"), tag_labels=str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match=r"DataLoader\.Eval\.tag_labels: .*nope\.txt"):
        build_generation_eval(ev, None)
    (tmp_path / "blank.txt").write_text("dog\n\nman\n")
    with pytest.raises(ValueError, match=r"blank.txt:2: empty class name"):
        _inputs_cfg = UNIMOGenTaskConfig(features=str(d / "regions"), tag_labels=str(tmp_path / "blank.txt"))
        _Inputs(_inputs_cfg, "caption", tiny(), tok, "DataLoader.Train.task")
    with pytest.raises(ValueError, match="tag_threshold"):
        UNIMOGenTaskConfig(tag_threshold=1.5)


def test_coco_caption_config_enables_official_tag_values():
    cfg = load_config(TrainConfig, os.path.join(ROOT, "configs", "unimo", "coco_caption.yaml"), [])
    for c in (cfg.DataLoader.Train.task, cfg.DataLoader.Eval):
        assert c.tag_labels.endswith("objects_vocab.txt") and c.tag_threshold == 0.35 and c.max_tag_len == 100


@pytest.mark.slow
def test_train_eval_infer_with_tags_end_to_end(tmp_path_factory, tmp_path):
    """tools/train.py (evaluating at the end) and tools/infer.py caption with
    coco_caption.yaml's tags on: a label file covering the demo store's classes."""
    import json

    import yaml

    from vlcore.formats.region_store import RegionStore

    from helpers import make_tiny_corpus, make_tiny_regions, run_tool
    corpus = make_tiny_regions(make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("corpus")), "demo")))
    store = RegionStore(os.path.join(corpus, "regions"))
    n_cls = 1 + max(int(store.get(k).obj_ids.max()) for k in store.keys())
    labels = tmp_path / "objects_vocab.txt"
    labels.write_text("".join(f"object{i}\n" for i in range(n_cls)))
    manifest = tmp_path / "pairs.jsonl"
    with open(os.path.join(corpus, "pairs_train.jsonl")) as f:
        manifest.write_text("".join(f.readlines()[:4]))
    out = tmp_path / "run"
    tags = {"tag_labels": str(labels), "tag_threshold": 0.0}
    cfg = {"_base_": os.path.join(ROOT, "configs", "unimo", "coco_caption.yaml"),
           "Global": {"output_dir": str(out), "tokenizer_dir": os.path.join(corpus, "vocab"), "max_steps": 2,
                      "log_interval": 1, "save_interval": 2, "keep_last": 1, "progress_bar": False,
                      "visualdl": False, "plot_curves": False, "seed": 3, "init_from": ""},
           "Arch": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "vocab_size": 0, "max_positions": 40,
                    "feature_dim": 16},
           "DataLoader": {"Train": {"path": str(manifest), "batch_size": 2, "num_workers": 0,
                                    "task": {"features": os.path.join(corpus, "regions"), "max_tgt_len": 12,
                                             **tags}},
                          "Eval": {"path": str(manifest), "features": os.path.join(corpus, "regions"),
                                   "batch_size": 4, "generation": {"beam_size": 2, "max_len": 6, "min_len": 1},
                                   "coco_metrics": ["bleu"], **tags}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = run_tool(["tools/train.py", "-c", str(path)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "eval_metrics.json").read_text())["examples"] == 4
    key = json.loads(manifest.read_text().splitlines()[0])["id"]
    r = run_tool(["tools/infer.py", "-c", str(path), "-o", f"Global.checkpoint={out}", "caption", "--image", key])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout[r.stdout.index("{"):])["captions"]
    r = run_tool(["tools/infer.py", "-c", str(path), "-o", f"Global.checkpoint={out}",
                  "-o", f"DataLoader.Eval.tag_labels={tmp_path / 'gone.txt'}", "caption", "--image", key])
    assert r.returncode != 0 and "DataLoader.Eval.tag_labels" in r.stderr and "gone.txt" in r.stderr
