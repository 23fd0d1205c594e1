"""Epoch-based training data for fine-tuning: one JSONL task manifest.

``DataLoader.Train: {name: Finetune, path: train.jsonl, batch_size: 32,
task: {name: <a task in TASK>, ...task options}}``.

The order of examples is the pre-training schedule with one corpus
(:class:`vlcore.data.schedule.StepSchedule`): a stream of seeded epoch
permutations of the manifest, cut into global batches, rank ``r`` of ``W``
taking slice ``r`` of each. Within an epoch the ranks' shards are disjoint
and together cover the manifest; a batch may straddle two epochs (so every
example is read exactly once per epoch, none dropped); micro-step ``s``'s
batch depends only on (seed, s, rank), so a resumed run reads the same data
as an uninterrupted one. Bad records are skipped and replaced like in
pre-training (:class:`vlcore.data.batches.StepBatches`).

A task (registered in :data:`TASK`) turns records into samples and
samples into a batch::

    class MyTask(FinetuneTask):
        required = ("image", "label")          # manifest keys checked on read
        def load(self, record, where, rng):    # -> a sample; RecordError(where...) if bad
        def collate(self, samples, rngs, batch_seed):  # -> dict of arrays

and may give a ``prepare(task_cfg, data_cfg, ctx)`` hook in its registration
(``TASK.register(name, config=..., prepare=...)``), run before the tokenizer
and the model are built: e.g. the VQA answer vocabulary, which sets the
model's number of outputs.
"""
import math
import os
from dataclasses import dataclass

from vlcore.data.batches import StepBatches
from vlcore.data.demo import no_such_file
from vlcore.data.schedule import Phase, StepSchedule
from vlcore.data.workers import step_loader
from vlcore.formats.manifests import ManifestError, validate
from vlcore.formats.records import JsonlFile, RecordError
from vlcore.framework.registry import TASK, TRAIN_DATA

# builder(task_cfg, ctx) -> FinetuneTask; the config class has a ``name``.


class FinetuneTask:
    """Base class of a task's data side (see the module docstring).
    ``kind``: the manifest kind (:mod:`vlcore.formats.manifests`) every record
    is validated against; ``required``: keys that must be present (for a
    kind: its optional keys needed here, e.g. VQA training's ``answers``)."""
    kind = None
    required = ()

    def load(self, record, where, rng):
        raise NotImplementedError

    def collate(self, samples, rngs, batch_seed):
        raise NotImplementedError


class ManifestCorpus:
    """The manifest as a corpus of :class:`StepBatches`: ``load(i, rng)``
    reads record ``i`` and hands it to the task."""
    name = kind = "train"

    def __init__(self, path, task):
        self.records = JsonlFile(path, required=() if task.kind else task.required)
        self.task = task

    def __len__(self):
        return len(self.records)

    def load(self, i, rng):
        record = self.records[i]
        where = f"{self.records.path}:{self.records.line_number(i)}"
        if self.task.kind:
            try:
                validate(self.task.kind, record, where, self.task.required)
            except ManifestError as e:  # a bad input: skipped (or fatal in strict mode)
                raise RecordError(str(e)) from None
        return self.task.load(record, where, rng)


class EpochBatches(StepBatches):
    """Per-step batches of the manifest, collated by the task."""

    def collate(self, corpus, samples, rngs, batch_seed):
        return corpus.task.collate(samples, rngs, batch_seed)


@dataclass
class FinetuneDataConfig:
    name: str = "Finetune"
    path: str = ""                # JSONL manifest of the training split
    task: TASK = None    # what the records are and how they batch
    batch_size: int = 32          # per rank and micro-step
    num_workers: int = 0

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if self.task is None:
            raise ValueError("task is missing (e.g. task: {name: VQA})")


class FinetuneTrainData:
    """What the engine needs: ``describe()``, ``loader(start_micro_step)``
    and, for epoch-based learning-rate schedules, ``steps_per_epoch``
    (optimizer steps per pass over the manifest, fractional)."""

    def __init__(self, cfg, ctx, task=None):
        if not cfg.path or not os.path.isfile(cfg.path):
            raise no_such_file("DataLoader.Train.path", cfg.path)
        self.cfg, self.ctx = cfg, ctx
        self.task = task if task is not None else TASK.build(cfg.task, ctx=ctx)
        self.corpus = ManifestCorpus(cfg.path, self.task)
        n = len(self.corpus)
        if n == 0:
            raise ValueError(f"DataLoader.Train.path: {cfg.path}: no records")
        self.global_batch = cfg.batch_size * ctx.world_size
        accum = ctx.cfg.Global.accum_steps if ctx.cfg is not None else 1
        self.steps_per_epoch = n / (self.global_batch * accum)
        self.schedule = StepSchedule({self.corpus.name: n}, [Phase({self.corpus.name: 1.0})],
                                     ctx.total_micro_steps, cfg.batch_size, ctx.seed, ctx.rank, ctx.world_size)

    def describe(self):
        n, max_steps = len(self.corpus), self.ctx.total_micro_steps
        accum = self.ctx.cfg.Global.accum_steps if self.ctx.cfg is not None else 1
        return [f"fine-tuning data: {self.cfg.path} ({n} records, task {self.cfg.task.name})",
                f"global batch {self.global_batch} ({self.cfg.batch_size} x {self.ctx.world_size} ranks), "
                f"{self.steps_per_epoch:.2f} optimizer steps per epoch; {max_steps // accum} steps = "
                f"{max_steps // accum / self.steps_per_epoch:.2f} epochs; each rank reads its own shard"]

    def make_batches(self, start_micro_step):
        return EpochBatches([self.corpus], self.schedule, self.ctx.seed, self.ctx.rank, start_micro_step,
                            self.ctx.cfg.Global.strict_data if self.ctx.cfg is not None else False)

    def loader(self, start_micro_step):
        return step_loader(self.make_batches(start_micro_step), self.cfg.num_workers)


def steps_for_epochs(epochs, num_records, global_batch, accum_steps=1):
    """Optimizer steps of ``epochs`` passes (for configs: max_steps)."""
    return math.ceil(epochs * num_records / (global_batch * accum_steps))


def _prepare(cfg, ctx):
    prepare = TASK.hook(cfg.task.name, "prepare")
    if prepare is not None:
        prepare(cfg.task, cfg, ctx)


@TRAIN_DATA.register("Finetune", config=FinetuneDataConfig, prepare=_prepare)
def build_finetune_data(cfg, ctx):
    return FinetuneTrainData(cfg, ctx)

