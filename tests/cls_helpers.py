"""Tiny classification fine-tuning runs on task manifests derived from the
tiny demo corpus (data_prep/make_demo_tasks.py)."""
import os

import yaml

from helpers import make_tiny_corpus, make_tiny_regions


def tiny_tasks(base_dir):
    """The tiny demo corpus (with region features) and its task manifests."""
    from data_prep.make_demo_tasks import build
    corpus = make_tiny_regions(make_tiny_corpus(os.path.join(str(base_dir), "corpus")))
    tasks = os.path.join(corpus, "tasks")
    if not os.path.isfile(os.path.join(tasks, "image_cls_test.jsonl")):
        build(corpus, tasks, seed=0, quiet=True)
    return corpus, tasks


def cls_config(tmp_path, corpus, tasks, out, task, model="unimo2", steps=4, name=None, eval_split="test", **extra):
    """A config dict for fine-tuning ``task`` with a tiny UNIMO-2 / UNIMO."""
    task_section = {"task": task, "max_text_len": 24}
    if model == "unimo2":
        arch = {"name": "UNIMO2ForClassification", "hidden_size": 32,
                "vit": {"image_size": 16, "patch_size": 8, "num_layers": 1, "num_heads": 2},
                "text": {"vocab_size": 0, "max_positions": 40, "num_layers": 1, "num_heads": 2,
                         "dropout": 0.0, "attn_dropout": 0.0},
                "grounding": {"dict_size": 16, "top_k": 4},
                "fusion": {"num_layers": 1, "num_heads": 2, "dropout": 0.0, "attn_dropout": 0.0},
                "head": {"dropout": 0.0}, "init_std": 0.1}
        task_section.update(name="UNIMO2Classification", image_root=corpus)
    else:
        arch = {"name": "UNIMOForClassification", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                "vocab_size": 0, "max_positions": 40, "feature_dim": 16, "dropout": 0.0, "attn_dropout": 0.0,
                "head": {"dropout": 0.0}, "init_std": 0.1}
        task_section.update(name="UNIMOClassification", features=os.path.join(corpus, "regions"),
                            key="image_id" if task in ("vqa", "snli_ve") else "id")
    cfg = {
        "Global": {"output_dir": str(out), "tokenizer_dir": os.path.join(corpus, "vocab"), "max_steps": steps,
                   "log_interval": 1, "save_interval": steps, "keep_last": 1, "progress_bar": False,
                   "visualdl": False, "plot_curves": False, "seed": 5},
        "Arch": arch,
        "Optimizer": {"lr": 3e-3, "weight_decay": 0.0, "grad_clip": 0.0},
        "LRScheduler": {"name": "constant"},
        "DataLoader": {
            "Train": {"name": "Finetune", "path": os.path.join(tasks, f"{task}_train.jsonl"), "batch_size": 8,
                      "num_workers": 0, "task": task_section},
            "Eval": {"name": "Classification", "path": os.path.join(tasks, f"{task}_{eval_split}.jsonl"),
                     "batch_size": 16}},
    }
    for section, values in extra.items():
        cfg[section].update(values)
    path = os.path.join(str(tmp_path), name or f"{model}_{task}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def load(path, overrides=()):
    import unimo.finetune_cls  # noqa: F401
    import unimo2.finetune_cls  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.schema import TrainConfig
    return load_config(TrainConfig, path, list(overrides))
