"""Tiny retrieval fine-tuning configs (UNIMO / Unicoder-VL and UNIMO-2) on
the tiny demo corpus, shared by the retrieval tests and the command-line tests."""
import os

import yaml

from vlcore.framework.config import load_config
from vlcore.framework.schema import TrainConfig

from helpers import ROOT


def write_config(tmp_path, name, cfg):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return load_config(TrainConfig, path, [])


def unimo_cfg(tmp_path, corpus, out, steps, lr, base="unimo/retrieval_demo.yaml", loss=None, name="u.yaml",
              train="toy8.jsonl", **eval_opts):
    regions = os.path.join(corpus, "regions")
    return write_config(tmp_path, name, {
        "_base_": os.path.join(ROOT, "configs", base),
        "Global": {"output_dir": str(out), "tokenizer_dir": os.path.join(corpus, "vocab"), "max_steps": steps,
                   "save_interval": 1000, "log_interval": 10, "init_from": "", "progress_bar": False,
                   "visualdl": False, "plot_curves": False, "seed": 3},
        "Arch": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "feature_dim": 16, "cmcl_dim": 16},
        "Loss": dict({"image_negatives": 3, "caption_negatives": 3}, **(loss or {})),
        "Optimizer": {"lr": lr},
        "LRScheduler": {"name": "constant"},
        "DataLoader": {"Train": {"path": os.path.join(corpus, train), "batch_size": 8, "num_workers": 0,
                                 "task": {"features": regions}},
                       "Eval": dict({"path": os.path.join(corpus, train), "features": regions, "batch_size": 64,
                                     "score": "match"}, **eval_opts)}})


def unimo2_cfg(tmp_path, corpus, out, steps, lr, name="u2.yaml", train="toy8.jsonl", **eval_opts):
    return write_config(tmp_path, name, {
        "_base_": os.path.join(ROOT, "configs", "unimo2/retrieval_demo.yaml"),
        "Global": {"output_dir": str(out), "tokenizer_dir": os.path.join(corpus, "vocab"), "max_steps": steps,
                   "save_interval": 1000, "log_interval": 10, "init_from": "", "progress_bar": False,
                   "visualdl": False, "plot_curves": False, "seed": 3},
        "Arch": {"hidden_size": 32, "vit": {"image_size": 16, "patch_size": 8, "num_layers": 1, "num_heads": 2},
                 "text": {"num_layers": 1, "num_heads": 2}, "grounding": {"dict_size": 16, "top_k": 4},
                 "fusion": {"num_layers": 1, "num_heads": 2}, "proj_dim": 16},
        "Loss": {"image_negatives": 2, "caption_negatives": 2, "hard_keep": 1},
        "Optimizer": {"lr": lr},
        "LRScheduler": {"name": "constant"},
        "DataLoader": {"Train": {"path": os.path.join(corpus, train), "batch_size": 4, "num_workers": 0},
                       "Eval": dict({"path": os.path.join(corpus, train), "batch_size": 16, "score": "match"},
                                    **eval_opts)}})
