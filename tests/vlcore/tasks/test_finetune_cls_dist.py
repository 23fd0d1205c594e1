"""Classification fine-tuning on 2 processes (gloo on CPU): each rank reads
its own shard, parameters stay identical, and the rank-split evaluation
gathers to exactly what one process computes on the same checkpoint."""
import json
import os

import pytest

from cls_helpers import cls_config, tiny_tasks
from helpers import run_tool, train_on_two_ranks

pytestmark = [pytest.mark.slow, pytest.mark.dist]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tasks(tmp_path_factory.mktemp("cls_dist"))


def test_two_ranks_train_and_sharded_eval(tmp_path, data):
    corpus, tasks = data
    out = tmp_path / "out"
    conf = cls_config(tmp_path, corpus, tasks, out, "snli_ve", steps=3,
                      DataLoader={"Train": {"name": "Finetune", "path": os.path.join(tasks, "snli_ve_train.jsonl"),
                                            "batch_size": 4, "num_workers": 0,
                                            "task": {"name": "UNIMO2Classification", "task": "snli_ve",
                                                     "max_text_len": 24, "image_root": corpus}},
                                  # 18 test records in batches of 4: 5 batches over 2 ranks, the last one short
                                  "Eval": {"name": "Classification", "path": os.path.join(tasks, "snli_ve_test.jsonl"),
                                           "batch_size": 4}})
    train_on_two_ranks(tmp_path, conf)
    dist_metrics = json.load(open(out / "eval_metrics.json"))
    dist_preds = open(out / "snli_ve_test_predictions.jsonl").read()
    res = run_tool(["tools/eval.py", "-c", str(out / "config.yaml"), "-o", f"Global.checkpoint={out / 'step_3'}",
                    "-o", f"DataLoader.Eval.predictions={tmp_path / 'single_preds.jsonl'}"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    single_metrics = json.load(open(out / "eval_metrics.json"))
    assert single_metrics["acc"] == dist_metrics["acc"] and single_metrics["num_examples"] == 18
    assert open(tmp_path / "single_preds.jsonl").read() == dist_preds


def test_two_ranks_adversarial_training(tmp_path, data):
    """UNIMO's VILLA-style adversarial SNLI-VE fine-tuning calls paddle.grad
    for the perturbations inside the forward pass; under DataParallel the
    ranks must still finish every step with identical parameters."""
    import yaml
    corpus, tasks = data
    out = tmp_path / "out"
    conf = cls_config(tmp_path, corpus, tasks, out, "snli_ve", model="unimo", steps=3)
    cfg = yaml.safe_load(open(conf))
    cfg["Arch"]["adversarial"] = {"steps": 2, "step_size": 0.05, "epsilon": 0.4, "init_mag": 0.4, "kl": True}
    cfg["DataLoader"]["Train"]["batch_size"] = 4
    yaml.safe_dump(cfg, open(conf, "w"))
    train_on_two_ranks(tmp_path, conf)
    rows = [json.loads(line) for line in open(out / "metrics.jsonl") if "adv_text_loss" in line]
    assert len(rows) == 3 and all(r["adv_text_loss"] > 0 and r["adv_image_loss"] > 0 for r in rows)
