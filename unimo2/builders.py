"""Registers UNIMO-2 with the toolkit's builders (``Arch: {name: UNIMO2}``,
``Loss: {name: UNIMO2Pretrain}``, ``DataLoader.Train: {name: UNIMO2Corpora}``,
``DataLoader.Eval: {name: ZeroShotRetrieval}``)."""
import os

from data_prep.demo import ensure_demo
from vlcore.data.images import DECODERS
from vlcore.data.retrieval import require_retrieval_loss
from vlcore.data.train_data import ScheduledTrainData
from vlcore.framework.registry import ARCH, EVALUATOR, LOSS, TRAIN_DATA
from vlcore.framework.schema import vocab_size_resolver

from .config import RetrievalEvalConfig, UNIMO2ArchConfig, UNIMO2DataConfig, UNIMO2LossConfig
from .data import Corpus, PretrainBatches
from .model import UNIMO2ForPretraining
from .retrieval import ZeroShotRetrieval


def _synthetic(cfg, kind, batch, **shapes):
    from .synthetic import synthetic_batch
    return synthetic_batch(cfg, kind, batch, **shapes)


@ARCH.register("UNIMO2", config=UNIMO2ArchConfig,
               resolve=vocab_size_resolver("text.vocab_size"), synthetic=_synthetic)
def build_unimo2(cfg, loss=None):
    return UNIMO2ForPretraining(cfg, loss if loss is not None else UNIMO2LossConfig())


@ARCH.register("UNIMO2ForRetrieval", config=UNIMO2ArchConfig,
               resolve=vocab_size_resolver("text.vocab_size"))
def build_unimo2_retrieval(cfg, loss=None):
    from .retrieval_finetune import UNIMO2ForRetrieval
    return UNIMO2ForRetrieval(cfg, require_retrieval_loss(loss, "Arch UNIMO2ForRetrieval"))


LOSS.register("UNIMO2Pretrain", config=UNIMO2LossConfig)


class UNIMO2TrainData(ScheduledTrainData):
    """Pairs, labelled images, images and text, read as pixels and tokens."""

    def make_corpus(self, corpus_cfg, index):
        return Corpus(corpus_cfg, index, DECODERS[self.ctx.cfg.Arch.vit.preprocess], self.ctx.cfg.Global.strict_data)

    def make_batches(self, start_micro_step):
        ctx = self.ctx
        mlm = ctx.cfg.Loss.mlm if ctx.cfg.Loss is not None else UNIMO2LossConfig().mlm
        return PretrainBatches(self.corpora, self.schedule, ctx.tokenizer, self.cfg, mlm,
                               ctx.cfg.Arch.vit.image_size, ctx.seed, ctx.rank, start_micro_step,
                               ctx.cfg.Global.strict_data, ctx.cfg.Arch.vit.preprocess)


def _prepare_data(cfg, ctx):
    ensure_demo(cfg.demo, cfg.demo_dir, ctx.logger)


@TRAIN_DATA.register("UNIMO2Corpora", config=UNIMO2DataConfig,
                     prepare=_prepare_data)
def build_train_data(cfg, ctx):
    return UNIMO2TrainData(cfg, ctx)


@EVALUATOR.register("ZeroShotRetrieval", config=RetrievalEvalConfig)
def build_retrieval(cfg, ctx):
    if not os.path.isfile(cfg.path):
        raise FileNotFoundError(f"DataLoader.Eval.path: {cfg.path}: no such file")
    return ZeroShotRetrieval(cfg, ctx)
