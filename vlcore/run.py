"""Build a run from a validated config and execute it (train or evaluate).

``tools/train.py`` and ``tools/eval.py`` are thin wrappers around
:func:`train` and :func:`evaluate`; everything model-specific comes from the
registries in ``vlcore.schema``.
"""
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import paddle

from . import checkpoint as ckpt
from . import dist
from .config import dump_yaml
from .convert_utils import load_init_from
from .engine import Trainer
from .env import describe_cpu_defaults
from .optim import build_optimizer
from .runlog import MetricsWriter, setup_logger
from .schema import ARCH, EVALUATOR, TRAIN_DATA


@dataclass
class BuildContext:
    """What data and evaluation builders may need besides their own section."""
    cfg: Any
    logger: Any
    tokenizer: Optional[Any] = None
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    total_micro_steps: int = 0


def _device(choice):
    if choice == "cpu" or (choice == "auto" and not paddle.is_compiled_with_cuda()):
        paddle.set_device("cpu")
        return "cpu"
    if not paddle.is_compiled_with_cuda():
        raise RuntimeError("Global.device=gpu but this Paddle build has no CUDA support")
    dev = f"gpu:{paddle.distributed.ParallelEnv().dev_id}"
    paddle.set_device(dev)
    return dev


def _load_tokenizer(cfg, logger):
    if not cfg.Global.tokenizer_dir:
        raise ValueError("Global.tokenizer_dir is empty: point it at vocab.json + merges.txt "
                         "(or the official UNIMO encoder.json + vocab.bpe + vocab.txt)")
    from .tokenizer import BPETokenizer
    tok = BPETokenizer.from_dir(cfg.Global.tokenizer_dir)
    logger.info("tokenizer: %s (%d entries)", cfg.Global.tokenizer_dir, tok.vocab_size)
    return tok


def _prepare(cfg, mode):
    """Device, fleet, logging and the data/tokenizer the model's size depends on."""
    dist.init()
    device = _device(cfg.Global.device)
    main = dist.is_main()
    out = cfg.Global.output_dir
    logger = setup_logger(out if mode == "train" else None, main)
    logger.info("%s: world size %d, device %s; %s", mode, dist.world_size(), device, describe_cpu_defaults())
    ctx = BuildContext(cfg, logger, rank=dist.rank(), world_size=dist.world_size(), seed=cfg.Global.seed,
                       total_micro_steps=cfg.Global.max_steps * cfg.Global.accum_steps)
    if mode == "train":
        if cfg.DataLoader.Train is None:
            raise ValueError("DataLoader.Train is missing: nothing to train on")
        # The data builder may create data (the demo corpus) that the
        # tokenizer lives in, so it runs first, in two stages.
        prepare = getattr(TRAIN_DATA.get(cfg.DataLoader.Train.name), "prepare", None)
        if prepare is not None:
            prepare(cfg.DataLoader.Train, ctx)
    elif cfg.DataLoader.Eval is not None:
        prepare = getattr(EVALUATOR.get(cfg.DataLoader.Eval.name), "prepare", None)
        if prepare is not None:
            prepare(cfg.DataLoader.Eval, ctx)
    ctx.tokenizer = _load_tokenizer(cfg, logger)
    resolve = getattr(ARCH.get(cfg.Arch.name), "resolve", None)
    if resolve is not None:  # e.g. vocab_size: 0 -> the tokenizer's size
        resolve(cfg.Arch, ctx.tokenizer)
    return device, logger, ctx


def seed_everything(seed):
    """Same initial weights on every rank and in every run with this seed."""
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def _build_model(cfg, logger):
    seed_everything(cfg.Global.seed)
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    n = sum(int(p.size) for p in model.parameters())
    logger.info("model %s: %.2fM parameters", cfg.Arch.name, n / 1e6)
    if cfg.Global.init_from:
        # A toolkit checkpoint and/or converted sources (KIND:PATH, e.g. the
        # paper's vit-paddleclas:... + roberta-paddlenlp:...); see vlcore.convert_utils.
        state, reports = load_init_from(cfg.Global.init_from, cfg.Arch.name, model, cfg.Arch)
        for report in reports:
            for line in report.lines() if report is not None else ():
                logger.info("init_from %s", line)
        missing, unexpected = ckpt.set_weights(model, state, cfg.Global.init_from, strict=False)
        logger.info("initialised from %s (%d missing, %d unexpected keys)", cfg.Global.init_from,
                    len(missing), len(unexpected))
    return model


def build_model(cfg):
    """The configured model with its seeded initialisation, outside a run
    (conversion, export); ``Arch`` sizes that follow the tokenizer are
    resolved from ``Global.tokenizer_dir``."""
    resolve = getattr(ARCH.get(cfg.Arch.name), "resolve", None)
    if resolve is not None and cfg.Global.tokenizer_dir:
        from .tokenizer import BPETokenizer
        resolve(cfg.Arch, BPETokenizer.from_dir(cfg.Global.tokenizer_dir))
    seed_everything(cfg.Global.seed)
    return ARCH.build(cfg.Arch, loss=cfg.Loss)


def train(cfg):
    device, logger, ctx = _prepare(cfg, "train")
    out = cfg.Global.output_dir
    if dist.is_main():
        os.makedirs(out, exist_ok=True)
        dump_yaml(cfg, os.path.join(out, "config.yaml"))
    model = _build_model(cfg, logger)
    train_data = TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx)
    for line in train_data.describe():
        logger.info("%s", line)
    evaluator = EVALUATOR.build(cfg.DataLoader.Eval, ctx=ctx) if cfg.DataLoader.Eval is not None else None
    optimizer, scheduler = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, cfg.Global.max_steps,
                                           getattr(train_data, "steps_per_epoch", None))
    model = dist.wrap_model(model)
    metrics = MetricsWriter(out, enabled=dist.is_main(), visualdl=cfg.Global.visualdl, logger=logger)
    try:
        result = Trainer(cfg, model, optimizer, scheduler, train_data, out, logger, metrics,
                         evaluator, device).fit()
    finally:
        metrics.close()
    if result is not None and dist.is_main():
        _write_json(os.path.join(out, "eval_metrics.json"), result)
        logger.info("wrote %s", os.path.join(out, "eval_metrics.json"))
    return result


def evaluate(cfg, output=None):
    if cfg.DataLoader.Eval is None:
        raise ValueError("DataLoader.Eval is missing: nothing to evaluate")
    device, logger, ctx = _prepare(cfg, "eval")
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    source = cfg.Global.checkpoint or cfg.Global.output_dir
    ckpt.set_weights(model, ckpt.load_weights(source), source)
    logger.info("evaluating weights from %s", source)
    model.eval()
    with paddle.no_grad():
        result = EVALUATOR.build(cfg.DataLoader.Eval, ctx=ctx)(model)
    if dist.is_main():
        output = output or os.path.join(cfg.Global.output_dir, "eval_metrics.json")
        _write_json(output, dict(result, checkpoint=source))
        logger.info("%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
        logger.info("wrote %s", output)
    return result


def _write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)
