"""tools/results_table.py on generated metrics files, and tools/infer.py rank
on a tiny fine-tuned checkpoint."""
import json
import os

import numpy as np
import pytest
import yaml

import results_table  # noqa: E402
from helpers import ROOT, make_tiny_corpus, run_tool


def _write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def test_paper_numbers_file_is_consistent():
    tables = results_table.load_papers(results_table.DEFAULT_PAPERS)
    assert {"unimo2_table1", "unimo2_table2", "unimo2_table10", "unimo_table3", "unicoder_vl_table1",
            "unicoder_vl_table2"} <= set(tables)
    # spot checks against the papers' text
    t10 = tables["unimo2_table10"]
    assert t10["rows"]["UNIMO-2"][:3] == [72.70, 91.18, 94.60]
    assert tables["unicoder_vl_table1"]["rows"]["Unicoder-VL (pre-train + fine-tune)"][6] == 59.6
    assert tables["unimo2_table2"]["rows"]["UNIMO-2"] == [66.3, 80.8]


def test_results_table_rows_differences_and_missing_metrics(tmp_path, capsys):
    zs = _write(tmp_path / "zs.json", {"ir_r1": 50.0, "ir_r5": 75.5, "ir_r10": 90, "tr_r1": 60, "tr_r5": 80,
                                       "tr_r10": 95.25, "images": 100, "score": "itm"})
    ft = _write(tmp_path / "ft.json", {"ir_r1": 70.0, "tr_r1": 85.0})
    out = tmp_path / "t.md"
    rc = results_table.main(["--table", "unimo2_table10", "--ours", "tiny", f"zs_flickr30k={zs}", f"flickr30k={ft}",
                             "--compare", "UNIMO-2", "--out", str(out)])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "**UNIMO-2 Table 10: Flickr30k retrieval, full results**"
    header = next(line for line in lines if line.startswith("| Model |"))
    assert header.count("|") == 14  # 12 metric columns
    ours = next(line for line in lines if line.startswith("| **tiny (ours)**"))
    assert ours == ("| **tiny (ours)** | 50.00 | 75.50 | 90.00 | 60.00 | 80.00 | 95.25 | 70.00 | - | - | "
                    "85.00 | - | - |")
    diff = next(line for line in lines if line.startswith("| tiny - UNIMO-2"))
    assert diff.split(" | ")[1] == "-22.70" and diff.split(" | ")[7] == "-10.14"  # 50 - 72.70, 70 - 80.14
    assert "| UNIMO-2 (paper) | 72.70 | 91.18 | 94.60 |" in out.read_text()
    assert "Not in our metrics files: flickr30k:ir_r10, flickr30k:ir_r5, flickr30k:tr_r10, flickr30k:tr_r5." in lines


def test_results_table_coco_1k_5k_and_all(tmp_path, capsys):
    coco = _write(tmp_path / "coco.json", {"fold_tr_r1": 80.0, "tr_r1": 55.0, "fold_ir_r1": 66.0, "ir_r1": 40.0})
    rc = results_table.main(["--ours", "mine", f"coco={coco}"])
    text = capsys.readouterr().out
    assert rc == 0
    # only the tables our runs fill: Unicoder-VL Table 1 (COCO)
    assert text.count("**") == 4 and "Unicoder-VL Table 1" in text
    row = next(line for line in text.splitlines() if line.startswith("| **mine (ours)**")).split(" | ")
    assert row[1] == "80.00" and row[4] == "66.00" and row[7] == "55.00" and row[10] == "40.00"


def test_results_table_errors_name_the_problem(tmp_path, capsys):
    assert results_table.main(["--table", "nope", "--ours", "x", f"a={_write(tmp_path / 'a.json', {})}"]) == 2
    assert "unknown table(s) ['nope']" in capsys.readouterr().err
    assert results_table.main(["--ours", "x", "coco=" + str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert results_table.main(["--ours", "x", f"coco={bad}"]) == 2
    assert "bad.json: not JSON" in capsys.readouterr().err
    papers = tmp_path / "p.yaml"
    papers.write_text(yaml.safe_dump({"tables": {"t": {"title": "T", "source": "S", "columns": [
        {"label": "a", "role": "r", "metric": "m"}], "rows": {"x": [1, 2]}}}}))
    assert results_table.main(["--papers", str(papers), "--list"]) == 2
    assert "row 'x' has 2 values for 1 columns" in capsys.readouterr().err


@pytest.mark.slow
def test_infer_rank_cli_on_a_finetuned_checkpoint(tmp_path):
    import unimo.builders  # noqa: F401
    import unimo2.builders  # noqa: F401
    import vlcore.data.finetune  # noqa: F401
    from vlcore.framework import run
    from vlcore.tasks import infer

    from retrieval_helpers import unimo2_cfg
    corpus = make_tiny_corpus(str(tmp_path / "corpus"))
    with open(os.path.join(corpus, "pairs_train.jsonl")) as src, open(os.path.join(corpus, "toy8.jsonl"), "w") as dst:
        dst.writelines(src.readlines()[:8])
    out = tmp_path / "run"
    run.train(unimo2_cfg(tmp_path, corpus, out, 2, 1e-3))
    record = json.loads(open(os.path.join(corpus, "toy8.jsonl")).readline())
    image = os.path.join(corpus, record["image"])
    captions = [record["captions"][0], "a blue star", "two green circles above a red ring"]
    r = run_tool(["tools/infer.py", "-c", str(out / "config.yaml"), "-o", f"Global.checkpoint={out}",
                  "--output", str(tmp_path / "rank.json"), "rank", "--image", image, "--captions", *captions,
                  "--top", "2"])
    assert r.returncode == 0, r.stderr
    result = json.load(open(tmp_path / "rank.json"))
    assert result["command"] == "rank" and result["score"] == "match" and result["checkpoint"] == str(out)
    ranking = result["ranking"]
    assert len(ranking) == 2 and {x["caption"] for x in ranking} <= set(captions)
    # the same numbers and order as the model's fine-tuned score computed here directly
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, str(out / "config.yaml"), [f"Global.checkpoint={out}"])
    model, ctx, _ = infer.load_model(cfg)
    import paddle

    from unimo2.retrieval import UNIMO2Encoder
    enc = UNIMO2Encoder(ctx, 8)
    with paddle.no_grad():
        img = enc.images(model, [image]).expand([3, -1, -1])
        txt, mask = enc.texts(model, captions)
        direct = model.match_scores(img, txt, mask).numpy()
    best = np.argsort(-direct, kind="stable")[:2]
    assert [x["caption"] for x in ranking] == [captions[j] for j in best]
    np.testing.assert_allclose([x["score"] for x in ranking], direct[best], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no captions"):
        infer.read_captions(type("A", (), {"captions": [], "captions_file": ""})())
    with pytest.raises(ValueError, match="not available for Arch 'UNIMO2ForVQA'"):
        infer.commands()["rank"].handler_for("UNIMO2ForVQA")


@pytest.mark.parametrize("config", [
    "unimo2/retrieval_base.yaml", "unimo2/flickr30k_retrieval.yaml", "unimo2/coco_retrieval.yaml",
    "unimo2/retrieval_demo.yaml", "unimo2/flickr30k_zeroshot_retrieval.yaml", "unimo2/coco_zeroshot_retrieval.yaml",
    "unimo2/imagenet_zeroshot.yaml", "unimo2/zeroshot_cls_demo.yaml", "unimo2/flickr30k_zeroshot_retrieval_official.yaml",
    "unimo/retrieval_base.yaml", "unimo/flickr30k_retrieval.yaml", "unimo/coco_retrieval.yaml",
    "unimo/retrieval_demo.yaml", "unimo/flickr30k_zeroshot_retrieval.yaml", "unimo/coco_zeroshot_retrieval.yaml",
    "unicoder_vl/retrieval_base.yaml", "unicoder_vl/flickr30k_retrieval.yaml", "unicoder_vl/coco_retrieval.yaml",
    "unicoder_vl/retrieval_demo.yaml", "unicoder_vl/flickr30k_zeroshot_retrieval.yaml",
    "unicoder_vl/coco_zeroshot_retrieval.yaml"])
def test_shipped_retrieval_configs_validate(config):
    import unimo.builders  # noqa: F401
    import unimo2.builders  # noqa: F401
    import vlcore.data.finetune  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    cfg = load_config(TrainConfig, os.path.join(ROOT, "configs", config), [])
    ev = cfg.DataLoader.Eval
    if "coco" in config:
        assert ev.fold_size == 1000          # COCO 1K folds beside 5K
    if config.endswith("_official.yaml"):  # the released model's computation
        a = cfg.Arch
        assert (a.vit.preprocess, a.grounding.exclude_padding, a.itc_normalize_text, a.itm_fusion) == \
            ("official", False, False, "mul")
        assert (ev.score, cfg.Loss.contrastive_weight, a.vit.image_size) == ("match", 0.3, 384)
    if "zeroshot" not in config and "cls" not in config:
        assert cfg.Loss.name == "RetrievalFinetune" and ev.score == "match"
        assert cfg.Arch.name.endswith("ForRetrieval")
    if config.startswith("unicoder_vl/") and "zeroshot" not in config:
        assert (cfg.Loss.kind, cfg.Loss.match_head, cfg.Loss.lambda_t2i) == ("triplet_hardest", "vlm", 1.5)
    if config in ("unimo2/flickr30k_retrieval.yaml", "unimo2/coco_retrieval.yaml"):
        assert (cfg.Optimizer.lr, cfg.Loss.contrastive_weight, cfg.LRScheduler.decay_epochs) == (5e-6, 0.3, [120, 160])
