"""Retrieval fine-tuning and evaluation end to end on tiny models: UNIMO
learns a toy set, UNIMO-2 two-stage == exhaustive on the same checkpoint,
Unicoder-VL's triplet fine-tuning runs, zero-shot classification by prompts,
resume from a micro step."""
import json
import os
import shutil

import numpy as np
import pytest

import unimo.builders  # noqa: F401
import unimo2.builders  # noqa: F401
import vlcore.data.finetune  # noqa: F401
from vlcore.framework import run

from helpers import make_tiny_corpus, make_tiny_regions
from retrieval_helpers import unimo2_cfg, unimo_cfg, write_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = make_tiny_regions(make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("retrieval")), "corpus")))
    with open(os.path.join(d, "pairs_train.jsonl")) as src, open(os.path.join(d, "toy8.jsonl"), "w") as dst:
        dst.writelines(src.readlines()[:8])
    return d


@pytest.mark.slow
def test_unimo_finetuning_raises_recall_on_a_toy_set(tmp_path, corpus):
    """Circle loss with 3 + 3 sampled negatives; recall on the (training) toy
    set of 8 images before (lr 0: the initial weights) and after 40 steps."""
    before = run.train(unimo_cfg(tmp_path, corpus, tmp_path / "before", 1, 0.0))
    after = run.train(unimo_cfg(tmp_path, corpus, tmp_path / "after", 40, 3e-3))
    assert before["images"] == after["images"] == 8 and after["captions"] == 40
    assert after["rsum"] > before["rsum"] + 100, (before, after)
    assert after["tr_r1"] > before["tr_r1"] and after["ir_r1"] > before["ir_r1"]
    log = [json.loads(line) for line in open(tmp_path / "after" / "metrics.jsonl")]
    losses = [r["retrieval"] for r in log if "retrieval" in r]
    assert losses[-1] < losses[0]


def test_unimo2_two_stage_equals_exhaustive_on_the_same_checkpoint(tmp_path, corpus):
    """A fine-tuned tiny UNIMO-2 (hard negatives by ITC); its checkpoint
    evaluated exhaustively and two-stage: with k = every caption both are
    identical; with small k only the shortlists reach the cross-encoder."""
    out = tmp_path / "u2"
    run.train(unimo2_cfg(tmp_path, corpus, out, 3, 1e-3))
    ckpt = str(out)
    ex = run.evaluate(unimo2_cfg(tmp_path, corpus, out, 3, 1e-3, name="ex.yaml", train="pairs_train.jsonl",
                                 max_images=10), str(tmp_path / "ex.json"))
    n_img, n_cap = ex["images"], ex["captions"]
    assert (n_img, n_cap) == (10, 50) and ex["pairs_scored"] == n_img * n_cap
    full = run.evaluate(unimo2_cfg(tmp_path, corpus, out, 3, 1e-3, name="full.yaml", train="pairs_train.jsonl",
                                   max_images=10, two_stage_k=n_cap), str(tmp_path / "full.json"))
    for m in ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum"):
        assert full[m] == ex[m], m
    k = 3
    two = run.evaluate(unimo2_cfg(tmp_path, corpus, out, 3, 1e-3, name="two.yaml", train="pairs_train.jsonl",
                                  max_images=10, two_stage_k=k, compare_exhaustive=True), str(tmp_path / "two.json"))
    assert two["pairs_scored"] <= k * (n_img + n_cap) and two["two_stage_k"] == k
    assert two["exhaustive_rsum"] == ex["rsum"]           # the comparison on the same checkpoint
    saved = json.load(open(tmp_path / "two.json"))
    assert saved["checkpoint"] == ckpt and saved["pairs_scored"] == two["pairs_scored"]


def test_unicoder_vl_triplet_finetuning_and_coco_folds(tmp_path, corpus):
    out = tmp_path / "uvl"
    r = run.train(unimo_cfg(tmp_path, corpus, out, 4, 1e-3, base="unicoder_vl/retrieval_demo.yaml",
                            train="pairs_train.jsonl", max_images=10, fold_size=5))
    assert r["folds"] == 2 and {"fold_tr_r1", "fold_ir_r10", "tr_r1", "rsum"} <= set(r)
    log = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert all(np.isfinite(x["retrieval"]) for x in log if "retrieval" in x)
    # the hinge of Eq. 1-3 is bounded by (lambda_1 + lambda_2) (gamma + score spread) at init
    assert 0 < log[0]["retrieval"] < 10


def test_batches_resume_from_any_micro_step(tmp_path, corpus):
    """The retrieval task's batch (positives and sampled negatives) at micro
    step s is the same whether the loader starts at 0 or at s -- what an exact
    resume needs; and each rank reads its own shard."""
    from vlcore.data.finetune import FinetuneTrainData
    from vlcore.framework.run import BuildContext
    from vlcore.text.tokenizer import BPETokenizer
    cfg = unimo_cfg(tmp_path, corpus, tmp_path / "r", 6, 1e-3, train="pairs_train.jsonl")
    tok = BPETokenizer.from_dir(cfg.Global.tokenizer_dir)

    def data(rank):
        ctx = BuildContext(cfg, None, tokenizer=tok, rank=rank, world_size=2, seed=5, total_micro_steps=6)
        return FinetuneTrainData(cfg.DataLoader.Train, ctx)
    d0 = data(0)
    from_start = [d0.make_batches(0)[i] for i in range(6)]
    resumed = d0.make_batches(4)
    for i in range(2):
        a, b = from_start[4 + i], resumed[i]
        assert a["step"] == b["step"] == 4 + i
        for key in ("features", "ids", "row_image", "row_text"):
            np.testing.assert_array_equal(a[key], b[key])
    other = data(1).make_batches(0)[0]
    assert not np.array_equal(other["ids"][:1], from_start[0]["ids"][:1]) or \
        not np.array_equal(other["features"][:1], from_start[0]["features"][:1])


def test_zero_shot_classification_by_prompts(tmp_path, corpus):
    """Top-1/top-5 over the manifest's labels; itm re-ranking the ITC
    shortlist with k = all labels equals exhaustive itm; predictions file."""
    from vlcore.tasks.metrics import topk_accuracy
    out = tmp_path / "zs"
    run.train(unimo2_cfg(tmp_path, corpus, out, 2, 1e-3))
    labelled = os.path.join(corpus, "images_train.jsonl")
    labels = tmp_path / "labels.txt"
    names = sorted({json.loads(line)["label"] for line in open(labelled)})
    labels.write_text("\n".join(names) + "\n")
    results = {}
    for score, k in [("itm", 0), ("itm", len(names)), ("itc", 0)]:
        cfg = unimo2_cfg(tmp_path, corpus, out, 2, 1e-3, name=f"zs_{score}{k}.yaml")
        cfg.DataLoader.Eval = write_config(tmp_path, "ev.yaml", {"DataLoader": {"Eval": {
            "name": "ZeroShotClassification", "path": labelled, "labels_file": str(labels), "score": score,
            "two_stage_k": k, "batch_size": 32, "predictions": str(tmp_path / f"pred_{score}{k}.jsonl")}}}
        ).DataLoader.Eval
        results[(score, k)] = run.evaluate(cfg, str(tmp_path / f"zs_{score}{k}.json"))
    ex = results[("itm", 0)]
    assert ex["classes"] == len(names) == 24 and ex["images"] == 24
    assert results[("itm", len(names))]["top1"] == ex["top1"] and results[("itm", len(names))]["top5"] == ex["top5"]
    assert 0 <= ex["top1"] <= ex["top5"] <= 100
    preds = [json.loads(line) for line in open(tmp_path / "pred_itc0.jsonl")]
    assert len(preds) == 24 and all(len(p["top5"]) == 5 and set(p["top5"]) <= set(names) for p in preds)
    top1 = 100 * np.mean([p["top5"][0] == p["label"] for p in preds])
    # predictions agree with the reported accuracy (no ties in float scores)
    assert top1 == pytest.approx(results[("itc", 0)]["top1"])
    assert topk_accuracy(np.eye(3), [0, 1, 2], (1,))["top1"] == 100.0
    # the class from another field (a dotted path), a subset of classes with the other images left out:
    # the same predictions as the whole model's scores restricted to those classes
    rows = [json.loads(line) for line in open(labelled)]
    shapes = sorted({r["scene"][0]["shape"] for r in rows})[:3]
    cfg = unimo2_cfg(tmp_path, corpus, out, 2, 1e-3, name="zs_shape.yaml")
    eval_cfg = {"name": "ZeroShotClassification", "path": labelled, "label_field": "scene.0.shape",
                "labels": shapes, "other_labels": "skip", "prompt": "a {label}", "score": "itc",
                "predictions": str(tmp_path / "pred_shape.jsonl")}
    cfg.DataLoader.Eval = write_config(tmp_path, "ev2.yaml", {"DataLoader": {"Eval": eval_cfg}}).DataLoader.Eval
    sub = run.evaluate(cfg, str(tmp_path / "zs_shape.json"))
    kept = [r for r in rows if r["scene"][0]["shape"] in shapes]
    assert sub["classes"] == 3 and sub["images"] == len(kept) and sub["skipped"] == len(rows) - len(kept) > 0
    preds = [json.loads(line) for line in open(tmp_path / "pred_shape.jsonl")]
    assert [p["id"] for p in preds] == [r["id"] for r in kept]
    assert [p["label"] for p in preds] == [r["scene"][0]["shape"] for r in kept]
    assert 100 * np.mean([p["top5"][0] == p["label"] for p in preds]) == pytest.approx(sub["top1"])
    from vlcore.formats.records import RecordError
    eval_cfg.update(other_labels="error", predictions="")
    cfg.DataLoader.Eval = write_config(tmp_path, "ev3.yaml", {"DataLoader": {"Eval": eval_cfg}}).DataLoader.Eval
    with pytest.raises(RecordError, match=r"images_train.jsonl:\d+: label '\w+' is not one of the classes"):
        run.evaluate(cfg, str(tmp_path / "zs_err.json"))


def test_bad_pairs_manifest_names_file_and_line(tmp_path, corpus):
    bad = tmp_path / "bad.jsonl"
    shutil.copy(os.path.join(corpus, "toy8.jsonl"), bad)
    with open(bad, "a") as f:
        f.write('{"id": "x", "image": "images/x.png", "captions": []}\n')
    from vlcore.data.retrieval import PairsIndex
    from vlcore.formats.records import RecordError
    with pytest.raises(RecordError, match=r"bad.jsonl:9: 'captions' must be"):
        PairsIndex(str(bad))


def test_unicoder_vl_rank_handler_uses_the_region_store(tmp_path, corpus):
    """``tools/infer.py rank`` for UNIMO-family models: the image is a region
    store key; the ranking is the fine-tuned (vlm-head) score, best first."""
    from vlcore.tasks import infer
    out = tmp_path / "uvl"
    cfg = unimo_cfg(tmp_path, corpus, out, 2, 1e-3, base="unicoder_vl/retrieval_demo.yaml")
    run.train(cfg)
    cfg.Global.checkpoint = str(out)
    model, ctx, _ = infer.load_model(cfg)
    record = json.loads(open(os.path.join(corpus, "toy8.jsonl")).readline())
    captions = record["captions"][:2] + ["a blue star"]
    args = type("Args", (), {"image": record["id"], "captions": captions, "captions_file": "", "features": "",
                             "score": "", "top": 0})()
    handler = infer.commands()["rank"].handler_for("UNIMOForRetrieval")
    import paddle
    with paddle.no_grad():
        result = handler(model, ctx, args)
        from unimo.data import open_store, region_arrays
        regs = open_store(os.path.join(corpus, "regions")).get(record["id"])
        f, l, m = (paddle.to_tensor(x) for x in region_arrays([regs] * 3, 100, 16, 4))
        from vlcore.data.text import pad_ids
        tok = ctx.tokenizer
        n_tok = cfg.DataLoader.Train.task.max_text_len
        ids = pad_ids([tok.build_input(t, n_tok) for t in tok.encode_batch(captions)], tok.pad_id)
        direct = model.match_scores(f, l, m, paddle.to_tensor(ids), paddle.to_tensor(ids != tok.pad_id)).numpy()
    assert result["score"] == "match" and [r["caption"] for r in result["ranking"]] == \
        [captions[j] for j in np.argsort(-direct, kind="stable")]
    np.testing.assert_allclose(sorted(r["score"] for r in result["ranking"]), sorted(direct), rtol=1e-4, atol=1e-5)
    args.image = "no_such_image"
    with pytest.raises(ValueError, match="no region features for 'no_such_image'"):
        handler(model, ctx, args)


def test_unimo_match_head_pooling_starts_from_the_pretrained_pooled_fcs(tmp_path, corpus):
    """Official UNIMO retrieval fine-tuning reuses the pre-trained
    pooled_fc_text / pooled_fc_image: a pre-training checkpoint with
    per-modality CMCL projections initialises the match head's pooling;
    a fine-tuned checkpoint (with a match head) loads unchanged."""
    import paddle

    from vlcore.framework import checkpoint as ckpt
    from vlcore.framework.run import build_model
    pre = unimo_cfg(tmp_path, corpus, tmp_path / "pre", 1, 0.0, name="pre.yaml")
    pre.Arch.name, pre.Arch.cmcl_proj, pre.Arch.cmcl_dim, pre.Loss = "UNIMO", "separate_relu", 32, None
    pre.Global.tokenizer_dir = ""
    pre.Arch.vocab_size = 400
    pretrained = build_model(pre)
    state = {k: v.numpy() for k, v in pretrained.state_dict().items()}
    ft = unimo_cfg(tmp_path, corpus, tmp_path / "ft", 1, 0.0, name="ft.yaml")
    ft.Arch.cmcl_proj, ft.Arch.cmcl_dim, ft.Arch.vocab_size, ft.Global.tokenizer_dir = "separate_relu", 32, 400, ""
    ft.Global.seed = 11
    model = build_model(ft)
    missing, _ = ckpt.set_weights(model, dict(state), "pre", strict=False)
    assert missing == ["match_head.classifier.bias", "match_head.classifier.weight"]
    got = model.state_dict()
    np.testing.assert_array_equal(got["match_head.pool_text.weight"].numpy(), state["cmcl_text_proj.mlp.0.weight"])
    np.testing.assert_array_equal(got["match_head.pool_image.bias"].numpy(), state["cmcl_image_proj.mlp.0.bias"])
    finetuned = {k: v.numpy() for k, v in model.state_dict().items()}
    finetuned["match_head.pool_text.weight"] = finetuned["match_head.pool_text.weight"] + 1.0
    other = build_model(ft)
    ckpt.set_weights(other, dict(finetuned), "ft")
    np.testing.assert_array_equal(other.state_dict()["match_head.pool_text.weight"].numpy(),
                                  finetuned["match_head.pool_text.weight"])
    assert paddle.is_tensor(other.state_dict()["match_head.classifier.weight"])


def test_missing_region_features_name_the_manifest_line(tmp_path, corpus):
    bad = tmp_path / "missing.jsonl"
    lines = open(os.path.join(corpus, "toy8.jsonl")).readlines()
    rec = json.loads(lines[0])
    rec["id"] = "not_in_the_store"
    bad.write_text("".join(lines[:4]) + json.dumps(rec) + "\n")
    from vlcore.formats.records import RecordError
    run.train(unimo_cfg(tmp_path, corpus, tmp_path / "m", 1, 0.0, name="m.yaml"))
    cfg = unimo_cfg(tmp_path, corpus, tmp_path / "m", 1, 0.0, name="m2.yaml")
    cfg.DataLoader.Eval.path = str(bad)
    with pytest.raises(RecordError, match=r"no region features for 'not_in_the_store' \(.*missing.jsonl:5\)"):
        run.evaluate(cfg, str(tmp_path / "x.json"))
