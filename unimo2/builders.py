"""Registers UNIMO-2 with the toolkit's builders (``Arch: {name: UNIMO2}``,
``Loss: {name: UNIMO2Pretrain}``, ``DataLoader.Train: {name: UNIMO2Corpora}``,
``DataLoader.Eval: {name: ZeroShotRetrieval}``)."""
import os

import numpy as np
import paddle

from vlcore import dist
from vlcore.data.workers import loader_worker_init
from vlcore.data.schedule import StepSchedule, phases_from_config
from vlcore.schema import ARCH, EVALUATOR, LOSS, TRAIN_DATA

from .config import RetrievalEvalConfig, UNIMO2ArchConfig, UNIMO2DataConfig, UNIMO2LossConfig
from .data import Corpus, PretrainBatches
from .model import UNIMO2ForPretraining
from .retrieval import ZeroShotRetrieval


@ARCH.register("UNIMO2", config=UNIMO2ArchConfig)
def build_unimo2(cfg, loss=None):
    return UNIMO2ForPretraining(cfg, loss if loss is not None else UNIMO2LossConfig())


def _resolve_arch(cfg, tokenizer):
    """``text.vocab_size: 0`` means "the tokenizer's size"; a tokenizer larger
    than the embedding table is an error before any work starts."""
    if cfg.text.vocab_size == 0:
        cfg.text.vocab_size = tokenizer.vocab_size
    elif tokenizer.vocab_size > cfg.text.vocab_size:
        raise ValueError(f"Arch.text.vocab_size={cfg.text.vocab_size} is smaller than the tokenizer "
                         f"({tokenizer.vocab_size} entries)")


build_unimo2.resolve = _resolve_arch

LOSS.register("UNIMO2Pretrain", config=UNIMO2LossConfig)(None)


class UNIMO2TrainData:
    """The corpora, the step schedule (curriculum + mixer) and the loader."""

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        if not cfg.corpora:
            raise ValueError("DataLoader.Train.corpora is empty")
        self.corpora = []
        for i, c in enumerate(cfg.corpora):
            if not os.path.isfile(c.path):
                raise FileNotFoundError(f"DataLoader.Train.corpora[{i}] ({c.name}): {c.path}: no such file")
            self.corpora.append(Corpus(c, i))
        sizes = {c.name: len(c) for c in self.corpora}
        phases = phases_from_config(cfg.curriculum, sizes, cfg.batch_size * ctx.world_size)
        self.schedule = StepSchedule(sizes, phases, ctx.total_micro_steps, cfg.batch_size, ctx.seed,
                                     ctx.rank, ctx.world_size)
        self.mlm = ctx.cfg.Loss.mlm if ctx.cfg.Loss is not None else UNIMO2LossConfig().mlm

    def describe(self):
        lines = [f"corpus {c.name!r}: {c.kind}, {len(c)} records ({c.records.path})" for c in self.corpora]
        counts = {n: int((self.schedule.corpus_of_step == i).sum()) for i, n in enumerate(self.schedule.names)}
        lines.append(f"steps per corpus: {counts}; global batch {self.cfg.batch_size * self.ctx.world_size} "
                     f"({self.cfg.batch_size} x {self.ctx.world_size} ranks), each rank reads its own shard")
        steps = self.schedule.corpus_of_step
        starts = {n: int(np.argmax(steps == i)) for i, n in enumerate(self.schedule.names) if (steps == i).any()}
        lines.append(f"first micro-step of each corpus (curriculum): {dict(sorted(starts.items(), key=lambda kv: kv[1]))}")
        return lines

    def loader(self, start_micro_step):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork
        ds = PretrainBatches(self.corpora, self.schedule, self.ctx.tokenizer, self.cfg, self.mlm,
                             self.ctx.cfg.Arch.vit.image_size, self.ctx.seed, self.ctx.rank,
                             start_micro_step, self.ctx.cfg.Global.strict_data)
        return paddle.io.DataLoader(ds, batch_size=None, num_workers=self.cfg.num_workers,
                                    use_shared_memory=False, worker_init_fn=loader_worker_init)


def _prepare_data(cfg, ctx):
    """Build the synthetic demo corpus if configured and missing (rank 0
    builds, the others wait)."""
    if cfg.demo.build_if_missing and cfg.demo_dir:
        if dist.is_main() and not os.path.isfile(os.path.join(cfg.demo_dir, "meta.json")):
            from data_prep.make_demo_corpus import build_demo_corpus
            d = cfg.demo
            ctx.logger.info("building the demo corpus in %s (first run only)", cfg.demo_dir)
            build_demo_corpus(cfg.demo_dir, seed=d.seed, num_pairs=d.num_pairs, num_images=d.num_images,
                              num_texts=d.num_texts, num_test=d.num_test, image_size=d.image_size,
                              vocab_size=d.vocab_size)
        dist.barrier()


@TRAIN_DATA.register("UNIMO2Corpora", config=UNIMO2DataConfig)
def build_train_data(cfg, ctx):
    return UNIMO2TrainData(cfg, ctx)


build_train_data.prepare = _prepare_data


@EVALUATOR.register("ZeroShotRetrieval", config=RetrievalEvalConfig)
def build_retrieval(cfg, ctx):
    if not os.path.isfile(cfg.path):
        raise FileNotFoundError(f"DataLoader.Eval.path: {cfg.path}: no such file")
    return ZeroShotRetrieval(cfg, ctx)
