"""What a model package's ``DataLoader.Train`` builder returns to the engine:
the corpora, the step schedule (curriculum + mixer) and a loader that starts
at any micro-step."""
import os

import numpy as np

from vlcore.data.schedule import StepSchedule, phases_from_config
from vlcore.data.workers import step_loader
from vlcore.formats.tar_shards import is_shards


class ScheduledTrainData:
    """Subclasses provide ``make_corpus(corpus_cfg, index)`` and
    ``make_batches(start_micro_step) -> StepBatches``."""

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        if not cfg.corpora:
            raise ValueError("DataLoader.Train.corpora is empty")
        self.corpora = []
        for i, c in enumerate(cfg.corpora):
            if not (os.path.isfile(c.path) or is_shards(c.path) or "{" in c.path):  # a file, a dir or pattern of shards
                raise FileNotFoundError(f"DataLoader.Train.corpora[{i}] ({c.name}): {c.path}: no such file")
            try:
                self.corpora.append(self.make_corpus(c, i))
            except FileNotFoundError as e:  # a shard of a pattern
                raise FileNotFoundError(f"DataLoader.Train.corpora[{i}] ({c.name}): {e}") from None
        sizes = {c.name: len(c) for c in self.corpora}
        phases = phases_from_config(cfg.curriculum, sizes, cfg.batch_size * ctx.world_size)
        self.schedule = StepSchedule(sizes, phases, ctx.total_micro_steps, cfg.batch_size, ctx.seed,
                                     ctx.rank, ctx.world_size)

    def make_corpus(self, corpus_cfg, index):
        raise NotImplementedError

    def make_batches(self, start_micro_step):
        raise NotImplementedError

    def describe(self):
        lines = [f"corpus {c.name!r}: {c.kind}, {len(c)} records ({c.cfg.path})" +
                 (f": {c.records.describe()}" if hasattr(c.records, "describe") else "") for c in self.corpora]
        steps = self.schedule.corpus_of_step
        counts = {n: int((steps == i).sum()) for i, n in enumerate(self.schedule.names)}
        lines.append(f"steps per corpus: {counts}; global batch {self.cfg.batch_size * self.ctx.world_size} "
                     f"({self.cfg.batch_size} x {self.ctx.world_size} ranks), each rank reads its own shard")
        starts = {n: int(np.argmax(steps == i)) for i, n in enumerate(self.schedule.names) if (steps == i).any()}
        firsts = dict(sorted(starts.items(), key=lambda kv: kv[1]))
        lines.append(f"first micro-step of each corpus (curriculum): {firsts}")
        return lines

    def loader(self, start_micro_step):
        return step_loader(self.make_batches(start_micro_step), self.cfg.num_workers)
