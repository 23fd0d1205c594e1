"""Build a run from a validated config and execute it (train or evaluate).

``tools/train.py`` and ``tools/eval.py`` are thin wrappers around
:func:`train` and :func:`evaluate`; everything model-specific comes from the
registries in ``vlcore.framework.schema``.
"""
import contextlib
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import paddle

from vlcore.formats.sharded import atomic_open
from vlcore.framework import checkpoint as ckpt
from vlcore.framework import dist, rundir
from vlcore.framework.config import ConfigError, dump_yaml, names_list
from vlcore.framework.engine import Trainer
from vlcore.framework.env import describe_cpu_defaults
from vlcore.framework.init_from import load_init_from
from vlcore.framework.optim import build_optimizer
from vlcore.framework.registry import ARCH, EVALUATOR, TRAIN_DATA
from vlcore.framework.runlog import MetricsWriter, read_metrics, setup_logger


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
    from vlcore.text.tokenizer import load_tokenizer
    tok = load_tokenizer(cfg.Global.tokenizer_dir)
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
        prepare = TRAIN_DATA.hook(cfg.DataLoader.Train.name, "prepare")
        if prepare is not None:
            prepare(cfg.DataLoader.Train, ctx)
    elif cfg.DataLoader.Eval is not None:
        prepare = EVALUATOR.hook(cfg.DataLoader.Eval.name, "prepare")
        if prepare is not None:
            prepare(cfg.DataLoader.Eval, ctx)
    ctx.tokenizer = _load_tokenizer(cfg, logger)
    resolve = ARCH.hook(cfg.Arch.name, "resolve")
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
        # paper's vit-paddleclas:... + roberta-paddlenlp:...); see vlcore.convert.
        state, reports = load_init_from(cfg.Global.init_from, cfg.Arch.name, model, cfg.Arch)
        for report in reports:
            for line in report.lines() if report is not None else ():
                logger.info("init_from %s", line)
        missing, unexpected = ckpt.set_weights(model, state, cfg.Global.init_from, strict=False)
        _log_init_keys(logger, cfg.Global.init_from, missing, unexpected)
    return model


def _log_init_keys(logger, source, missing, unexpected, limit=8):
    """Name the keys ``init_from`` did not set (missing) or that the model
    has no place for (unexpected); long lists in full at debug level."""
    def part(keys, what):
        return f"{len(keys)} {what}" + (f" ({names_list(keys, limit)})" if keys else "")
    logger.info("initialised from %s: %s, %s keys", source, part(missing, "missing"), part(unexpected, "unexpected"))
    for keys, what in ((missing, "missing"), (unexpected, "unexpected")):
        if len(keys) > limit:
            logger.debug("init_from %s: all %d %s keys: %s", source, len(keys), what, ", ".join(keys))


def build_model(cfg):
    """The configured model with its seeded initialisation, outside a run
    (conversion, export); ``Arch`` sizes that follow the tokenizer are
    resolved from ``Global.tokenizer_dir``."""
    resolve = ARCH.hook(cfg.Arch.name, "resolve")
    if resolve is not None and cfg.Global.tokenizer_dir:
        from vlcore.text.tokenizer import load_tokenizer
        resolve(cfg.Arch, load_tokenizer(cfg.Global.tokenizer_dir))
    seed_everything(cfg.Global.seed)
    return ARCH.build(cfg.Arch, loss=cfg.Loss)


def train(cfg):
    """Train under an exclusive lock on ``Global.output_dir`` (rank 0 takes it:
    the other ranks of the run share the directory); a second run on the
    same directory stops at once with a RunLockedError naming the holder."""
    out = cfg.Global.output_dir
    dist.init()
    lock, note = None, None
    if dist.is_main():
        _make_output_dir(out)
        lock = rundir.RunLock(out)
        note = lock.acquire()
    try:
        return _train(cfg, out, note)
    finally:
        if lock is not None:
            lock.release()


def _make_output_dir(out):
    try:
        os.makedirs(out, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:  # the path or a parent is a file
        raise ConfigError(f"Global.output_dir: cannot create {out!r} ({e.strerror})") from None
    except OSError as e:
        if rundir.is_disk_full(e):
            raise rundir.DiskFullError(out) from None
        raise


def _train(cfg, out, lock_note):
    device, logger, ctx = _prepare(cfg, "train")
    if dist.is_main():
        if lock_note:
            logger.warning("%s", lock_note)
        removed = rundir.remove_stale_temps(out)
        if removed:
            logger.info("removed leftovers of interrupted writers in %s: %s", out, ", ".join(removed))
        _write_config(cfg, os.path.join(out, "config.yaml"))
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
    if cfg.Global.plot_curves and dist.is_main():
        _draw_curves(out, logger)
    return result


def _draw_curves(out, logger):
    """``curves.png`` of the run (tools/plot.py draws the same on demand). A
    picture that cannot be drawn is a warning: the training it shows is done."""
    from vlcore.viz.curves import plot_runs
    path = os.path.join(out, "curves.png")
    try:
        plot_runs({os.path.basename(os.path.normpath(out)): read_metrics(os.path.join(out, "metrics.jsonl"))}, path)
    except (ValueError, OSError, ImportError) as e:
        logger.warning("could not draw %s: %s", path, e)
        return
    logger.info("wrote %s", path)


def _write_config(cfg, path):
    """config.yaml beside the checkpoints (dump_yaml writes ``path.tmp`` and
    renames it; a full disk must not leave the temp file behind)."""
    try:
        with rundir.writing(path):
            dump_yaml(cfg, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(path + ".tmp")
        raise


def evaluate(cfg, output=None):
    if cfg.DataLoader.Eval is None:
        raise ValueError("DataLoader.Eval is missing: nothing to evaluate")
    device, logger, ctx = _prepare(cfg, "eval")
    model = ARCH.build(cfg.Arch, loss=cfg.Loss)
    source = cfg.Global.checkpoint or cfg.Global.output_dir
    ckpt.set_weights(model, ckpt.load_weights(source), source)
    logger.info("evaluating weights from %s", source)
    model.eval()
    evaluator = EVALUATOR.build(cfg.DataLoader.Eval, ctx=ctx)
    with paddle.no_grad():
        result = evaluator(model)
    if dist.is_main():
        output = output or os.path.join(cfg.Global.output_dir, "eval_metrics.json")
        _write_json(output, dict(result, checkpoint=source))
        logger.info("%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
        logger.info("wrote %s", output)
        if hasattr(evaluator, "draw_sheet"):  # retrieval: a few queries and their top results, as a picture
            sheet = os.path.splitext(output)[0] + "_sheet.png"
            try:
                evaluator.draw_sheet(sheet, f"{source}: {result.get('score', '')} scores")
                logger.info("wrote %s", sheet)
            except (ValueError, OSError, ImportError) as e:  # the metrics are written; the picture is extra
                logger.warning("could not draw %s: %s", sheet, e)
    return result


def _write_json(path, obj):
    """Atomic; a full disk leaves the previous file (if any) and no temp file."""
    with rundir.writing(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_open(path) as f:
            json.dump(obj, f, indent=1)
