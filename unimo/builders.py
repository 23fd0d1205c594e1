"""Registers UNIMO / Unicoder-VL with the toolkit's builders (``Arch: {name:
UNIMO}``, ``Loss: {name: UNIMOPretrain}``, ``DataLoader.Train: {name:
UNIMOCorpora}``, ``DataLoader.Eval: {name: UNIMORetrieval}``)."""
import os

from data_prep.demo import ensure_demo
from vlcore.data.retrieval import require_retrieval_loss
from vlcore.data.train_data import ScheduledTrainData
from vlcore.framework.registry import ARCH, EVALUATOR, LOSS, TRAIN_DATA
from vlcore.framework.schema import vocab_size_resolver

from .config import UNIMOArchConfig, UNIMODataConfig, UNIMOLossConfig, UNIMORetrievalConfig
from .data import UNIMOBatches, make_corpus
from .pretrain import UNIMOForPretraining
from .retrieval import UNIMORetrieval


def _synthetic(cfg, kind, batch, **shapes):
    from .synthetic import synthetic_batch
    return synthetic_batch(cfg, kind, batch, **shapes)


@ARCH.register("UNIMO", config=UNIMOArchConfig,
               resolve=vocab_size_resolver("vocab_size"), synthetic=_synthetic)
def build_unimo(cfg, loss=None):
    return UNIMOForPretraining(cfg, loss if loss is not None else UNIMOLossConfig())


@ARCH.register("UNIMOForRetrieval", config=UNIMOArchConfig,
               resolve=vocab_size_resolver("vocab_size"))
def build_unimo_retrieval(cfg, loss=None):
    """UNIMO / Unicoder-VL retrieval fine-tuning (Loss: RetrievalFinetune)."""
    from .retrieval_finetune import UNIMOForRetrieval
    return UNIMOForRetrieval(cfg, require_retrieval_loss(loss, "Arch UNIMOForRetrieval"))


LOSS.register("UNIMOPretrain", config=UNIMOLossConfig)


class UNIMOTrainData(ScheduledTrainData):
    """Region-feature pairs and images, and text."""

    def make_corpus(self, corpus_cfg, index):
        if corpus_cfg.kind != "text" and not os.path.isdir(corpus_cfg.features):
            raise FileNotFoundError(f"DataLoader.Train.corpora[{index}] ({corpus_cfg.name}): "
                                    f"{corpus_cfg.features}: no region feature store")
        return make_corpus(corpus_cfg, index)

    def make_batches(self, start_micro_step):
        ctx = self.ctx
        loss = ctx.cfg.Loss if ctx.cfg.Loss is not None else UNIMOLossConfig()
        return UNIMOBatches(self.corpora, self.schedule, ctx.tokenizer, self.cfg, ctx.cfg.Arch, loss,
                            ctx.seed, ctx.rank, start_micro_step, ctx.cfg.Global.strict_data)


@TRAIN_DATA.register("UNIMOCorpora", config=UNIMODataConfig,
                     prepare=lambda cfg, ctx: ensure_demo(cfg.demo, cfg.demo_dir, ctx.logger, regions=True))
def build_train_data(cfg, ctx):
    return UNIMOTrainData(cfg, ctx)


@EVALUATOR.register("UNIMORetrieval", config=UNIMORetrievalConfig)
def build_retrieval(cfg, ctx):
    if not os.path.isfile(cfg.path):
        raise FileNotFoundError(f"DataLoader.Eval.path: {cfg.path}: no such file")
    if not os.path.isdir(cfg.features):
        raise FileNotFoundError(f"DataLoader.Eval.features: {cfg.features}: no region feature store")
    return UNIMORetrieval(cfg, ctx)
