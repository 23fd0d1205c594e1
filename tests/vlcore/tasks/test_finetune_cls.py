"""Classification fine-tuning end to end on tiny models and the tiny demo's
task manifests: learning, label files, prediction files, metrics recomputed
with sklearn/scipy from the prediction files, epoch-based learning rates,
errors, and the command-line tools."""
import json
import os
from collections import Counter

import numpy as np
import pytest
import yaml
from scipy import stats
from sklearn.metrics import matthews_corrcoef

from vlcore.framework.checkpoint import load_weights
from vlcore.framework.runlog import read_metrics
from vlcore.tasks.vqa_answers import AnswerVocab, vqa_accuracy

from cls_helpers import cls_config, load, tiny_tasks
from helpers import run_tool


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tasks(tmp_path_factory.mktemp("cls"))


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _train(tmp_path, data, task, model="unimo2", steps=3, **extra):
    from vlcore.framework import run
    corpus, tasks = data
    out = tmp_path / f"out_{model}_{task}"
    cfg = load(cls_config(tmp_path, corpus, tasks, out, task, model=model, steps=steps, **extra))
    return run.train(cfg), out


def _evaluate(out, path, overrides=()):
    from vlcore.framework import run
    cfg = load(os.path.join(out, "config.yaml"), [f"DataLoader.Eval.path={path}", *overrides])
    return run.evaluate(cfg)


def _losses(out):
    return [r["loss"] for r in read_metrics(os.path.join(out, "metrics.jsonl")) if "loss" in r and "lr" in r]


def test_vqa_learns_saves_answer_vocab_and_writes_official_predictions(tmp_path, data):
    corpus, tasks = data
    # Epoch-based decay too: 96 questions / batch 8 = 12 steps per epoch.
    result, out = _train(tmp_path, data, "vqa", steps=16,
                         LRScheduler={"name": "scale_by_epoch_decay", "decay_epochs": [1.0], "decay_rate": 0.1})
    losses = _losses(out)
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:3]), losses
    lrs = {r["step"]: r["lr"] for r in read_metrics(os.path.join(out, "metrics.jsonl")) if "lr" in r}
    assert lrs[11] == pytest.approx(3e-3) and lrs[12] == pytest.approx(3e-4)  # lr of the next step
    # The answer vocabulary: built from the training answers, saved beside the checkpoints
    saved = yaml.safe_load(open(out / "config.yaml"))
    vocab = AnswerVocab.load(str(out / "labels.txt")).answers
    assert saved["DataLoader"]["Train"]["task"]["label_file"] == str(out / "labels.txt")
    assert saved["Arch"]["num_outputs"] == len(vocab)
    counts = Counter(a for q in _rows(os.path.join(tasks, "vqa_train.jsonl")) for a in {*q["answers"]})
    assert set(vocab) == {a for a, n in counts.items() if n >= 9} - {"two", "three", "one"}  # merged into digits
    # Validation: the official accuracy recomputed from the prediction file
    pred_file = out / "vqa_test_predictions.json"
    assert result["num_examples"] == 12
    preds = {p["question_id"]: p["answer"] for p in json.load(open(pred_file))}
    qs = _rows(os.path.join(tasks, "vqa_test.jsonl"))
    assert result["vqa_acc"] == pytest.approx(100 * np.mean([vqa_accuracy(preds[int(q["id"])], q["answers"])
                                                             for q in qs]))
    # test-dev: no answers -> only the prediction file, in the official format
    metrics = _evaluate(out, os.path.join(tasks, "vqa_testdev.jsonl"))
    assert set(metrics) == {"num_examples"}
    rows = json.load(open(out / "vqa_testdev_predictions.json"))
    assert [r["question_id"] for r in rows] == [int(q["id"]) for q in qs]
    assert all(set(r) == {"question_id", "answer"} and r["answer"] in vocab for r in rows)


def test_text_path_learns_beyond_the_majority_class(tmp_path, data):
    corpus, tasks = data
    _, out = _train(tmp_path, data, "sst2", steps=40)
    train_file = os.path.join(tasks, "sst2_train.jsonl")
    metrics = _evaluate(out, train_file)
    majority = max(Counter(r["label"] for r in _rows(train_file)).values()) / len(_rows(train_file))
    assert metrics["acc"] > 100 * majority + 10, (metrics, majority)


@pytest.mark.parametrize("model,task", [
    ("unimo2", "snli_ve"), ("unimo2", "mnli"), ("unimo2", "cola"), ("unimo2", "stsb"), ("unimo2", "image_cls"),
    ("unimo", "vqa"), ("unimo", "snli_ve"), ("unimo", "cola"), ("unimo", "stsb"),
])
def test_metrics_match_sklearn_scipy_on_the_prediction_file(tmp_path, data, model, task):
    corpus, tasks = data
    result, out = _train(tmp_path, data, task, model=model, steps=2)
    gold = {r["id"]: r for r in _rows(os.path.join(tasks, f"{task}_test.jsonl"))}
    if task == "vqa":
        preds = json.load(open(out / "vqa_test_predictions.json"))
        ref = 100 * np.mean([vqa_accuracy(p["answer"], gold[str(p["question_id"])]["answers"]) for p in preds])
        assert result["vqa_acc"] == pytest.approx(ref)
        return
    rows = _rows(out / f"{task}_test_predictions.jsonl")
    assert [r["id"] for r in rows] == list(gold) and result["num_examples"] == len(gold)
    pred, label = [r["prediction"] for r in rows], [gold[r["id"]]["label"] for r in rows]
    if task == "stsb":
        assert result["pearson"] == pytest.approx(stats.pearsonr(pred, label)[0], abs=1e-6)
        assert result["spearman"] == pytest.approx(stats.spearmanr(pred, label)[0], abs=1e-6)
        return
    assert result["acc"] == pytest.approx(100 * np.mean([p == str(g) for p, g in zip(pred, label)]))
    if task == "cola":
        assert result["mcc"] == pytest.approx(matthews_corrcoef(label, pred), abs=1e-9)
    if task == "image_cls":
        assert {"top1", "top5", "unknown_labels"} <= set(result) and result["top1"] == pytest.approx(result["acc"])


def test_pretraining_poolers_seed_the_head(tmp_path, data):
    """A UNIMO-2 pre-training checkpoint initialises the backbone and, via
    the ITM head's poolers (official pooled_fc_*), the head's poolers."""
    import logging

    import paddle

    from unimo2.config import UNIMO2ArchConfig, UNIMO2LossConfig
    from unimo2.model import UNIMO2ForPretraining
    from vlcore.framework.run import _build_model
    corpus, tasks = data
    cfg = load(cls_config(tmp_path, corpus, tasks, tmp_path / "o", "sst2"), ["Arch.num_outputs=2"])
    cfg.Arch.text.vocab_size = 300
    pre_arch = UNIMO2ArchConfig(**{k: getattr(cfg.Arch, k) for k in UNIMO2ArchConfig.__dataclass_fields__
                                   if k != "name"})
    paddle.seed(11)
    pre = UNIMO2ForPretraining(pre_arch, UNIMO2LossConfig())
    paddle.save(pre.state_dict(), str(tmp_path / "pre.pdparams"))
    cfg.Global.init_from = str(tmp_path / "pre.pdparams")
    model = _build_model(cfg, logging.getLogger("t"))
    np.testing.assert_array_equal(model.head.pool_text.weight.numpy(), pre.itm_head.pool_text.weight.numpy())
    np.testing.assert_array_equal(model.model.text.word_embed.weight.numpy(),
                                  pre.model.text.word_embed.weight.numpy())


def test_bad_label_and_mismatched_outputs_are_named(tmp_path, data):
    from vlcore.framework import run
    from vlcore.framework.engine import DataError
    corpus, tasks = data
    bad = tmp_path / "bad.jsonl"
    rows = _rows(os.path.join(tasks, "snli_ve_train.jsonl"))[:8]
    rows[2]["label"] = "maybe"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load(cls_config(tmp_path, corpus, tasks, tmp_path / "o1", "snli_ve"),
               [f"DataLoader.Train.path={bad}", "Global.strict_data=true"])
    with pytest.raises(DataError, match=r"bad.jsonl:3.*'label'"):
        run.train(cfg)
    cfg = load(cls_config(tmp_path, corpus, tasks, tmp_path / "o2", "snli_ve"), ["Arch.num_outputs=4"])
    with pytest.raises(ValueError, match="num_outputs=4 but task snli_ve has 3 labels"):
        run.train(cfg)


@pytest.mark.slow
def test_cli_train_then_eval_writes_predictions(tmp_path, data):
    corpus, tasks = data
    out = tmp_path / "cli"
    conf = cls_config(tmp_path, corpus, tasks, out, "snli_ve", steps=2)
    res = run_tool(["tools/train.py", "-c", conf], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    os.remove(out / "snli_ve_test_predictions.jsonl")
    res = run_tool(["tools/eval.py", "-c", str(out / "config.yaml"), "-o", f"Global.checkpoint={out / 'step_2'}"],
                   timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.load(open(out / "eval_metrics.json"))
    assert metrics["num_examples"] == 18 and 0 <= metrics["acc"] <= 100
    assert len(_rows(out / "snli_ve_test_predictions.jsonl")) == 18


def test_unknown_task_is_a_config_error(tmp_path, data):
    from vlcore.framework.config import ConfigError
    corpus, tasks = data
    conf = cls_config(tmp_path, corpus, tasks, tmp_path / "o", "snli_ve")
    with pytest.raises(ConfigError, match="DataLoader.Train.task.task.*nope"):
        load(conf, ["DataLoader.Train.task.task=nope"])


def _official_vqa(path, subtype, n_images, with_annotations, rng):
    """VQA v2 questions (+ annotations) JSON in the official schema, about
    the tiny corpus's images (pair_<image_id>.png)."""
    questions, annotations = [], []
    for image_id in range(n_images):
        for k, (question, pool) in enumerate([("What color is it?", ["red", "blue", "Red", "red."]),
                                              ("How many shapes?", ["2", "two", "3"])]):
            qid = image_id * 1000 + k
            questions.append({"image_id": image_id, "question": question, "question_id": qid})
            answers = [pool[int(rng.integers(len(pool)))] for _ in range(10)]
            annotations.append({"question_type": question.split()[0].lower(), "answer_type": "other",
                                "multiple_choice_answer": answers[0], "image_id": image_id, "question_id": qid,
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                            for i, a in enumerate(answers)]})
    common = {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": subtype}
    json.dump(dict(common, task_type="Open-Ended", questions=questions), open(path / f"{subtype}_q.json", "w"))
    if with_annotations:
        json.dump(dict(common, annotations=annotations), open(path / f"{subtype}_a.json", "w"))
    return [q["question_id"] for q in questions]


def test_official_formats_end_to_end(tmp_path, data):
    """VQA v2 JSON and a GLUE TSV written by hand in the official formats,
    converted by data_prep.convert, fine-tuned, evaluated."""
    from data_prep.convert.__main__ import main as convert
    from vlcore.framework import run
    corpus, tasks = data
    rng = np.random.default_rng(0)
    _official_vqa(tmp_path, "train2014", 8, True, rng)
    test_ids = _official_vqa(tmp_path, "test2015", 3, False, rng)
    pattern = ["--image-pattern", "images/pair_{image_id:06d}.png"]
    assert convert(["vqa", "--src", str(tmp_path / "train2014_q.json"), "--annotations",
                    str(tmp_path / "train2014_a.json"), "--out", str(tmp_path / "vqa_train.jsonl")] + pattern) == 0
    assert convert(["vqa", "--src", str(tmp_path / "test2015_q.json"), "--out",
                    str(tmp_path / "vqa_test-dev.jsonl")] + pattern) == 0
    out = tmp_path / "vqa_out"
    cfg = load(cls_config(tmp_path, corpus, tasks, out, "vqa", steps=2),
               [f"DataLoader.Train.path={tmp_path / 'vqa_train.jsonl'}", "DataLoader.Train.task.min_answer_count=1",
                f"DataLoader.Eval.path={tmp_path / 'vqa_test-dev.jsonl'}"])
    run.train(cfg)
    vocab = AnswerVocab.load(str(out / "labels.txt")).answers
    assert set(vocab) <= {"red", "blue", "2", "3"}          # "Red", "red." and "two" normalised away
    rows = json.load(open(out / "vqa_test-dev_predictions.json"))
    assert [r["question_id"] for r in rows] == test_ids and all(r["answer"] in vocab for r in rows)
    # GLUE STS-B TSV -> regression
    tsv = tmp_path / "STS-B" / "train.tsv"
    tsv.parent.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    lines = [f"{i}\tmain\tMSRvid\t2012\t{i:04d}\tnone\tnone\ta red circle {i}\ta blue square\t{i % 5}.000\n"
             for i in range(12)]
    tsv.write_text(header + "".join(lines))
    assert convert(["glue", "--task", "stsb", "--src", str(tsv), "--out", str(tmp_path / "stsb.jsonl")]) == 0
    out = tmp_path / "stsb_out"
    cfg = load(cls_config(tmp_path, corpus, tasks, out, "stsb", steps=2, name="stsb_official.yaml"),
               [f"DataLoader.Train.path={tmp_path / 'stsb.jsonl'}", f"DataLoader.Eval.path={tmp_path / 'stsb.jsonl'}"])
    metrics = run.train(cfg)
    preds = [r["prediction"] for r in _rows(out / "stsb_predictions.jsonl")]
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(preds, [i % 5 for i in range(12)])[0], abs=1e-6)


def _fresh_names(fn, *args):
    """Paddle names parameters by a per-process counter and keys optimizer
    state by those names: separate processes (real runs) start from the same
    counter, runs inside one test process must too."""
    import paddle
    with paddle.utils.unique_name.guard():
        return fn(*args)


def test_resumed_fine_tuning_equals_uninterrupted(tmp_path, data):
    """2 steps, stop, resume to 4 == 4 steps straight (data order, dropout,
    Adam state, scale_by_epoch_decay position)."""

    from vlcore.framework import run
    corpus, tasks = data
    sched = {"name": "scale_by_epoch_decay", "decay_epochs": [0.25], "decay_rate": 0.5}  # 48 / 8 = 6 steps/epoch
    head = {"head": {"dropout": 0.2}}
    straight = load(cls_config(tmp_path, corpus, tasks, tmp_path / "a", "sst2", steps=4, name="a.yaml",
                               LRScheduler=sched, Arch=head), ["Global.save_interval=2"])
    _fresh_names(run.train, straight)
    first = load(cls_config(tmp_path, corpus, tasks, tmp_path / "b", "sst2", steps=2, name="b.yaml",
                            LRScheduler=sched, Arch=head), ["Global.save_interval=2"])
    _fresh_names(run.train, first)
    resumed = load(cls_config(tmp_path, corpus, tasks, tmp_path / "b", "sst2", steps=4, name="c.yaml",
                              LRScheduler=sched, Arch=head), ["Global.save_interval=2", "Global.resume=auto"])
    _fresh_names(run.train, resumed)
    a = load_weights(str(tmp_path / "a" / "step_4"))
    b = load_weights(str(tmp_path / "b" / "step_4"))
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_infer_answer_subcommand(tmp_path, data):
    """tools/infer.py answer: the run's labels ranked for one question, the
    same logits as the evaluator's."""
    from types import SimpleNamespace

    from vlcore.tasks import infer
    corpus, tasks = data
    _, out = _train(tmp_path, data, "vqa", steps=2)
    cfg = load(str(out / "config.yaml"))
    model, ctx, _ = infer.load_model(cfg)
    q = _rows(os.path.join(tasks, "vqa_test.jsonl"))[0]
    args = SimpleNamespace(image=os.path.join(corpus, q["image"]), question=q["question"], text="", text_b="",
                           features="", top=3)
    handler = infer.commands()["answer"].handler_for("UNIMO2ForClassification")
    result = handler(model, ctx, args)
    vocab = AnswerVocab.load(str(out / "labels.txt")).answers
    assert result["answer"] in vocab and len(result["ranking"]) == 3
    probs = [r["prob"] for r in result["ranking"]]
    assert probs == sorted(probs, reverse=True) and result["ranking"][0]["label"] == result["answer"]
    # the evaluator answered the same question the same way
    preds = {p["question_id"]: p["answer"] for p in json.load(open(out / "vqa_test_predictions.json"))}
    assert preds[int(q["id"])] == result["answer"]
    with pytest.raises(ValueError, match="--image is required"):
        handler(model, ctx, SimpleNamespace(**dict(vars(args), image="")))


def test_answer_vocab_skips_bad_records_unless_strict(tmp_path, data):
    from vlcore.formats.records import RecordError
    from vlcore.framework import run
    corpus, tasks = data
    rows = _rows(os.path.join(tasks, "vqa_train.jsonl"))
    bad = tmp_path / "vqa_bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"id": "x", "answers": {}}\n' +
                   "".join(json.dumps(r) + "\n" for r in rows[3:]))
    cfg = load(cls_config(tmp_path, corpus, tasks, tmp_path / "o", "vqa", steps=1),
               [f"DataLoader.Train.path={bad}"])
    run.train(cfg)
    assert AnswerVocab.load(str(tmp_path / "o" / "labels.txt")).answers  # built from the good records
    cfg = load(cls_config(tmp_path, corpus, tasks, tmp_path / "o2", "vqa", steps=1),
               [f"DataLoader.Train.path={bad}", "Global.strict_data=true"])
    with pytest.raises(RecordError, match="vqa_bad.jsonl:4"):
        run.train(cfg)
