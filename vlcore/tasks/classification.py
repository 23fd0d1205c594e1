"""Classification fine-tuning tasks, model-independent: what each task reads
from its manifest, its label space, targets, loss kind and metric; the data
side (a :class:`~vlcore.data.finetune.FinetuneTask`) and the evaluator.

Tasks (``task:`` in the config):

========== ========== ============ ===== ============================
task       manifest   inputs       loss  metric
========== ========== ============ ===== ============================
vqa        vqa        image + question  bce  official VQA accuracy
snli_ve    snli_ve    image + hypothesis ce  accuracy
sst2       text_cls   text_a       ce    accuracy
mnli       text_cls   text_a, text_b ce  accuracy (m / mm: two eval files)
cola       text_cls   text_a       ce    Matthews corr. (+ accuracy)
stsb       text_cls   text_a, text_b mse Pearson / Spearman
image_cls  labelled   image        ce    top-1 / top-5
========== ========== ============ ===== ============================

Label spaces: fixed for SNLI-VE and GLUE (overridable with ``labels``);
VQA answers and image classes come from ``label_file`` (one JSON string per
line) or, when it is empty, are built from the training manifest (VQA: the
frequent answers, :class:`vlcore.tasks.vqa_answers.AnswerVocab`; images: the
sorted label set) and written to ``Global.output_dir/labels.txt`` -- beside
the checkpoints, and named in the run's saved config.

A model package subclasses :class:`ClassificationTask` for its image input
(``load_image`` / ``collate_images``: pixels for UNIMO-2, region features
for UNIMO) and registers it with :func:`register_task`; its model returns
``logits(batch)``, ``[B, C]`` (``[B, 1]`` for regression). The evaluator
(``DataLoader.Eval: {name: Classification}``) is shared.
"""
import json
import os
from dataclasses import dataclass, field
from typing import List, Literal, NamedTuple, Optional

import numpy as np

from vlcore.data.demo import no_such_file
from vlcore.data.finetune import FinetuneTask
from vlcore.data.text import pad_ids
from vlcore.formats.manifests import VE_LABELS, ManifestError, validate
from vlcore.formats.records import JsonlFile, RecordError
from vlcore.framework import dist
from vlcore.framework.registry import EVALUATOR, TASK
from vlcore.tasks.metrics import accuracy, matthews_corr, pearson_spearman, topk_accuracy
from vlcore.tasks.vqa_answers import AnswerVocab, vqa_accuracy


class TaskSpec(NamedTuple):
    kind: str          # manifest kind
    text_keys: tuple   # record keys of the text input(s), in order
    image: bool        # reads the record's image
    loss: str          # ce | bce | mse
    metric: str        # vqa | acc | mcc | corr | topk
    labels: tuple = ()  # fixed label names; () = a label file / the training data


TASKS = {
    "vqa": TaskSpec("vqa", ("question",), True, "bce", "vqa"),
    "snli_ve": TaskSpec("snli_ve", ("hypothesis",), True, "ce", "acc", VE_LABELS),
    "sst2": TaskSpec("text_cls", ("text_a",), False, "ce", "acc", ("0", "1")),
    "mnli": TaskSpec("text_cls", ("text_a", "text_b"), False, "ce", "acc", ("contradiction", "entailment", "neutral")),
    "cola": TaskSpec("text_cls", ("text_a",), False, "ce", "mcc", ("0", "1")),
    "stsb": TaskSpec("text_cls", ("text_a", "text_b"), False, "mse", "corr"),
    "image_cls": TaskSpec("labelled", (), True, "ce", "topk"),
}


@dataclass
class ClsTaskConfig:
    """Shared fields of the model packages' task sections."""
    name: str = ""
    task: Literal["vqa", "snli_ve", "sst2", "mnli", "cola", "stsb", "image_cls"] = "snli_ve"
    labels: List[str] = field(default_factory=list)  # overrides the task's fixed label names
    label_file: str = ""          # VQA answers / image classes; "" = built from the training manifest
    min_answer_count: int = 9     # VQA vocabulary: answers of at least this many training questions
    max_answers: int = 3129       # ... at most this many
    max_text_len: int = 128       # tokens incl. [CLS]/[SEP]

    def __post_init__(self):
        if self.max_text_len < 4:
            raise ValueError(f"max_text_len={self.max_text_len} is too short")


# ---------------------------------------------------------------- labels
def _labels_from_manifest(cfg, path, strict=False, logger=None):
    """Labels of every good record; bad records are skipped (training skips
    them too) and counted, or stop the run with ``strict``."""
    spec = TASKS[cfg.task]
    records = JsonlFile(path)
    key = "answers" if cfg.task == "vqa" else "label"
    rows, bad = [], []
    for i in range(len(records)):
        try:
            rec = records[i]
            validate(spec.kind, rec, f"{path}:{records.line_number(i)}", (key,))
        except (ManifestError, RecordError) as e:
            if strict:
                raise RecordError(str(e)) from None
            bad.append(str(e))
            continue
        rows.append(rec[key])
    if bad and logger is not None:
        logger.warning("labels of %s: skipped %d bad record(s), first: %s", path, len(bad), bad[0])
    if cfg.task == "vqa":
        return AnswerVocab.build(rows, cfg.min_answer_count, cfg.max_answers).answers
    return sorted(set(rows))


def resolve_labels(cfg, ctx, train_path=None):
    """The label names of the task (``[]`` for regression). With neither
    fixed labels nor ``label_file``, builds them from ``train_path`` and
    saves them to ``Global.output_dir/labels.txt`` (then ``cfg.label_file``
    points there, so the saved config and later evaluations find them)."""
    spec = TASKS[cfg.task]
    if spec.loss == "mse":
        return []
    if cfg.labels:
        return list(cfg.labels)
    if spec.labels:
        return list(spec.labels)
    if cfg.label_file:
        return AnswerVocab.load(cfg.label_file).answers
    if train_path is None:
        raise ValueError(f"task {cfg.task}: label_file is empty and there is no training manifest to build "
                         "the labels from (set DataLoader.Train.task.label_file)")
    labels = _labels_from_manifest(cfg, train_path, ctx.cfg.Global.strict_data, ctx.logger)
    if not labels:
        raise ValueError(f"{train_path}: no {cfg.task} labels kept (min_answer_count={cfg.min_answer_count})")
    out = os.path.join(ctx.cfg.Global.output_dir, "labels.txt")
    if dist.is_main():
        AnswerVocab(labels).save(out)
    dist.barrier()
    cfg.label_file = out
    if ctx.logger is not None:
        ctx.logger.info("%s labels: %d built from %s, saved to %s", cfg.task, len(labels), train_path, out)
    return labels


def set_num_outputs(arch_cfg, n, source):
    """``Arch.num_outputs``: 0 means "the task's"; another value must agree."""
    if arch_cfg.num_outputs == 0:
        arch_cfg.num_outputs = n
    elif arch_cfg.num_outputs != n:
        raise ValueError(f"Arch.num_outputs={arch_cfg.num_outputs} but {source} has {n} labels")


def prepare_train(task_cfg, data_cfg, ctx):
    """``DataLoader.Train: Finetune`` prepare hook: labels -> Arch.num_outputs."""
    if not os.path.isfile(data_cfg.path):
        raise no_such_file("DataLoader.Train.path", data_cfg.path)
    labels = resolve_labels(task_cfg, ctx, data_cfg.path)
    set_num_outputs(ctx.cfg.Arch, max(1, len(labels)), f"task {task_cfg.task}")


# ---------------------------------------------------------------- data side
class ClassificationTask(FinetuneTask):
    """Records -> samples -> batches of token ids, image inputs and targets.
    ``with_targets=False`` reads test splits (no labels)."""

    def __init__(self, cfg, ctx, labels, with_targets=True):
        self.cfg, self.spec, self.tok = cfg, TASKS[cfg.task], ctx.tokenizer
        self.kind = self.spec.kind
        self.labels = list(labels)
        self.label_index = {name: i for i, name in enumerate(self.labels)}
        self.vocab = AnswerVocab(self.labels) if cfg.task == "vqa" else None
        self.with_targets = with_targets
        self.required = (("answers",) if cfg.task == "vqa" else ("label",)) if with_targets else ()

    # --- hooks of the model package
    def load_image(self, record, where):
        raise NotImplementedError

    def collate_images(self, images):
        raise NotImplementedError

    # --- text
    def encode_text(self, record):
        """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``, longest first
        truncated to ``max_text_len`` (the official UNIMO reader's pair format)."""
        texts = [record.get(k) or "" for k in self.spec.text_keys]
        toks = [self.tok.encode(t) for t in texts if t]
        room = self.cfg.max_text_len - 1 - len(toks)
        while sum(len(t) for t in toks) > room:
            max(toks, key=len).pop()
        ids = [self.tok.cls_id]
        for t in toks:
            ids += [*t, self.tok.sep_id]
        return ids

    # --- targets
    def target(self, record, where):
        spec = self.spec
        if spec.loss == "bce":
            return self.vocab.targets(record["answers"])
        label = record["label"]
        if spec.loss == "mse":
            try:
                return float(label)
            except (TypeError, ValueError):
                raise RecordError(f"{where}: 'label' must be a number for {self.cfg.task}, got {label!r}") from None
        name = str(label)
        if name not in self.label_index:
            raise RecordError(f"{where}: label {name!r} is not one of the {len(self.labels)} {self.cfg.task} labels"
                              + (f" {self.labels}" if len(self.labels) <= 10 else ""))
        return self.label_index[name]

    def load(self, record, where, rng):
        sample = {"id": record["id"]}
        if self.spec.text_keys:
            sample["ids"] = self.encode_text(record)
        if self.spec.image:
            sample["image"] = self.load_image(record, where)
        if self.with_targets:
            sample["target"] = self.target(record, where)
        return sample

    def collate(self, samples, rngs=None, batch_seed=0):
        batch = {"loss_kind": self.spec.loss}
        if self.spec.text_keys:
            ids = pad_ids([s["ids"] for s in samples], self.tok.pad_id)
            batch.update(ids=ids, mask=ids != self.tok.pad_id)
        if self.spec.image:
            batch.update(self.collate_images([s["image"] for s in samples]))
        if self.with_targets:
            t = [s["target"] for s in samples]
            batch["targets"] = (np.stack(t).astype(np.float32) if self.spec.loss == "bce"
                                else np.asarray(t, np.float32) if self.spec.loss == "mse"
                                else np.asarray(t, np.int64))
        return batch


def register_task(name, config_cls, task_cls):
    """``DataLoader.Train.task: {name: <name>}`` (and ``DataLoader.Eval.task``)
    builds ``task_cls(cfg, ctx, labels, with_targets)``."""
    @TASK.register(name, config=config_cls, prepare=prepare_train)
    def build(cfg, ctx, with_targets=True):
        return task_cls(cfg, ctx, resolve_labels(cfg, ctx), with_targets)
    return build


# ---------------------------------------------------------------- metrics
def task_metrics(task, logits, records):
    """Metrics of ``logits [N, C]`` against the records' labels (percent for
    accuracies, raw for correlations) and the predicted labels."""
    spec = task.spec
    if spec.loss == "mse":
        preds = logits[:, 0].astype(np.float64)
        out = pearson_spearman(preds, [float(r["label"]) for r in records]) if records else {}
        return out, preds.tolist()
    pred_idx = logits.argmax(1)
    preds = [task.labels[i] for i in pred_idx]
    if not records:
        return {}, preds                                   # a test split
    if spec.metric == "vqa":
        scores = [vqa_accuracy(p, r["answers"]) for p, r in zip(preds, records)]
        return {"vqa_acc": float(100.0 * np.mean(scores))}, preds
    labels = np.asarray([task.label_index.get(str(r["label"]), -1) for r in records])
    out = {"acc": accuracy(pred_idx, labels)}
    if spec.metric == "mcc":
        out["mcc"] = matthews_corr(pred_idx, labels)
    if spec.metric == "topk":
        # a class never seen in training counts as a miss at every k
        known = labels >= 0
        ks = (1, min(5, logits.shape[1]))
        top = topk_accuracy(logits[known], labels[known], ks) if known.any() else {f"top{k}": 0.0 for k in ks}
        out.update({k: v * known.mean() for k, v in top.items()})
        out["unknown_labels"] = int((~known).sum())
    return out, preds


# ---------------------------------------------------------------- evaluator
@dataclass
class ClsEvalConfig:
    name: str = "Classification"
    path: str = ""                 # JSONL manifest (labels optional: test splits only get predictions)
    batch_size: int = 64
    task: Optional[TASK] = None  # default: DataLoader.Train.task
    # "" = <Global.output_dir>/<manifest name>_predictions.json[l] (val and
    # test-dev, MNLI m and mm do not overwrite each other)
    predictions: str = ""


class ClassificationEvaluator:
    """``__call__(model) -> metrics``; writes the predictions file. Batches
    are split across ranks and the logits gathered."""

    def __init__(self, cfg, ctx):
        if not os.path.isfile(cfg.path):
            raise no_such_file("DataLoader.Eval.path", cfg.path)
        task_cfg = eval_task_config(cfg, ctx)
        self.cfg, self.ctx = cfg, ctx
        self.records = JsonlFile(cfg.path)
        first = self.records[0] if len(self.records) else {}
        key = "answers" if task_cfg.task == "vqa" else "label"
        self.task = TASK.get(task_cfg.name)(task_cfg, ctx, with_targets=False)
        self.has_labels = key in first
        self.out = cfg.predictions or os.path.join(
            ctx.cfg.Global.output_dir, _stem(cfg.path) + "_predictions.json" + ("" if task_cfg.task == "vqa" else "l"))

    def _record(self, i):
        rec = self.records[i]
        where = f"{self.records.path}:{self.records.line_number(i)}"
        try:
            validate(self.task.kind, rec, where, self.task.required)
        except ManifestError as e:
            raise RecordError(str(e)) from None
        return rec, where

    def _batch_logits(self, model, lo, hi):
        import paddle
        samples = []
        for i in range(lo, hi):
            rec, where = self._record(i)
            samples.append(self.task.load(rec, where, None))
        batch = self.task.collate(samples)
        batch = {k: (paddle.to_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in batch.items()}
        return model.logits(batch).astype("float32").numpy()

    def __call__(self, model):
        n, bs = len(self.records), self.cfg.batch_size
        if n == 0:
            raise ValueError(f"{self.cfg.path}: no records to evaluate")
        n_out = max(1, len(self.task.labels))
        n_batches = -(-n // bs)
        rows = dist.sharded_rows(n_batches, bs * n_out, lambda b: np.pad(
            self._batch_logits(model, b * bs, min(n, b * bs + bs)).reshape(-1),
            (0, bs * n_out - (min(n, b * bs + bs) - b * bs) * n_out)))
        logits = rows.reshape(n_batches * bs, n_out)[:n]
        records = [self._record(i)[0] for i in range(n)]
        metrics, preds = task_metrics(self.task, logits, records if self.has_labels else [])
        if dist.is_main():
            self._write(records, preds)
        metrics["num_examples"] = n
        return metrics

    def _write(self, records, preds):
        os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
        tmp = f"{self.out}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            if self.task.cfg.task == "vqa":  # the official result format (test-dev / test-std uploads)
                json.dump([{"question_id": _question_id(r["id"]), "answer": p} for r, p in zip(records, preds)], f)
            else:
                for r, p in zip(records, preds):
                    row = {"id": r["id"], "prediction": p}
                    if "label" in r:
                        row["label"] = r["label"]
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out)


def _stem(path):
    name = os.path.basename(path)
    return name[:-len(".jsonl")] if name.endswith(".jsonl") else os.path.splitext(name)[0]


def _question_id(qid):
    """VQA question ids are integers in the official files; the manifest
    keeps them as strings."""
    try:
        return int(qid)
    except (TypeError, ValueError):
        return qid


def eval_task_config(cfg, ctx):
    task_cfg = cfg.task if cfg.task is not None else getattr(ctx.cfg.DataLoader.Train, "task", None)
    if task_cfg is None:
        raise ValueError("DataLoader.Eval.task is missing (and there is no DataLoader.Train.task to use)")
    return task_cfg


def _prepare_eval(cfg, ctx):
    """tools/eval.py: ``Arch.num_outputs`` from the labels before the model is built."""
    task_cfg = eval_task_config(cfg, ctx)
    if ctx.cfg.Arch.num_outputs == 0:
        set_num_outputs(ctx.cfg.Arch, max(1, len(resolve_labels(task_cfg, ctx))), f"task {task_cfg.task}")


@EVALUATOR.register("Classification", config=ClsEvalConfig, prepare=_prepare_eval)
def build_evaluator(cfg, ctx):
    return ClassificationEvaluator(cfg, ctx)


# ---------------------------------------------------------------- tools/infer.py
_CLS_ARCHS = ("UNIMO2ForClassification", "UNIMOForClassification")


def _infer_arguments(p):
    p.add_argument("--image", default="", help="image file (UNIMO-2) or its key in the region store (UNIMO)")
    p.add_argument("--question", default="", help="VQA: the question")
    p.add_argument("--text", default="", help="SNLI-VE: the hypothesis; GLUE: the first text")
    p.add_argument("--text-b", default="", help="GLUE pair tasks: the second text")
    p.add_argument("--features", default="", help="UNIMO: region store (default: the task's features)")
    p.add_argument("--top", type=int, default=5, help="how many labels to list")


def _infer(model, ctx, args):
    """One example through the run's task: its labels ranked by the model."""
    import copy

    import paddle
    task_cfg = copy.deepcopy(ctx.cfg.DataLoader.Train.task if ctx.cfg.DataLoader.Train is not None else None)
    if task_cfg is None:
        raise ValueError("the config has no DataLoader.Train.task (use the run's config.yaml)")
    spec = TASKS[task_cfg.task]
    if hasattr(task_cfg, "image_root"):
        task_cfg.image_root = ""        # --image is a path as given on the command line
    if args.features and hasattr(task_cfg, "features"):
        task_cfg.features = args.features
    record = {"id": "cli", "image": args.image, "image_id": args.image, "question": args.question,
              "hypothesis": args.text, "text_a": args.text or args.question, "text_b": args.text_b}
    if spec.image and not args.image:
        raise ValueError(f"{task_cfg.task}: --image is required")
    if spec.text_keys and not record[spec.text_keys[0]]:
        raise ValueError(f"{task_cfg.task}: --{'question' if task_cfg.task == 'vqa' else 'text'} is required")
    task = TASK.get(task_cfg.name)(task_cfg, ctx, with_targets=False)
    batch = task.collate([task.load(record, "command line", None)])
    batch = {k: (paddle.to_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in batch.items()}
    logits = model.logits(batch).astype("float32").numpy()[0]
    if spec.loss == "mse":
        return {"task": task_cfg.task, "score": float(logits[0])}
    probs = 1 / (1 + np.exp(-logits)) if spec.loss == "bce" else np.exp(logits - logits.max()) / np.exp(
        logits - logits.max()).sum()
    order = np.argsort(-probs, kind="stable")[:max(1, args.top)]
    return {"task": task_cfg.task, "answer": task.labels[order[0]],
            "ranking": [{"label": task.labels[i], "prob": float(probs[i])} for i in order]}


def _register_infer():
    from vlcore.tasks.infer import register
    register("answer", archs=_CLS_ARCHS, help="answer a question about an image / classify (VQA, SNLI-VE, "
             "GLUE, image classification)", arguments=_infer_arguments)(_infer)


_register_infer()
