"""Which corpus and which samples every training step reads.

The whole schedule is a pure function of (seed, step, rank): the corpus of
step ``s`` is drawn once, up front, from the curriculum's ratios with a seeded
generator; the samples are the next ``batch_size`` positions of that corpus's
stream of seeded epoch permutations, with rank ``r`` of ``W`` taking slice
``r`` of each global batch (every rank reads its own shard). A resumed run
therefore needs nothing but the step number to continue with exactly the
same data, whatever the number of loader workers.
"""
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional

import numpy as np


@dataclass
class CurriculumPhase:
    """Sampling ratios (by corpus name) until ``until_step`` (exclusive), or
    for ``until_epoch`` passes over the phase's corpora (sum of their sizes
    over the global batch); the last phase has neither and runs to the end."""
    ratios: Dict[str, float] = field(default_factory=dict)
    until_step: int = 0
    until_epoch: float = 0.0


@dataclass
class Phase:
    ratios: Dict[str, float]
    until_step: Optional[int] = None  # exclusive end; None = to the end


def phases_from_config(curriculum, corpus_sizes, global_batch):
    """Turn CurriculumPhase configs into absolute step boundaries.

    ``until_epoch`` E means E passes over the data of the phase's corpora
    (those with a positive ratio): ``E * sum(N_c) / global_batch`` steps.
    """
    phases, start = [], 0
    if not curriculum:
        return [Phase({name: float(n) for name, n in corpus_sizes.items()})]  # proportional to size
    for i, ph in enumerate(curriculum):
        ratios = {k: float(v) for k, v in ph.ratios.items() if v > 0}
        end = None
        if ph.until_step:
            end = ph.until_step
        elif ph.until_epoch:
            items = sum(corpus_sizes[k] for k in ratios)
            end = start + math.ceil(ph.until_epoch * items / global_batch)
        if end is None and i != len(curriculum) - 1:
            raise ValueError(f"curriculum[{i}] needs until_step or until_epoch (only the last phase may omit both)")
        phases.append(Phase(ratios, end))
        if end is not None:
            start = end
    return phases


class StepSchedule:
    def __init__(self, corpus_sizes: Dict[str, int], phases: List[Phase], total_steps: int,
                 batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.names = list(corpus_sizes)
        self.sizes = dict(corpus_sizes)
        for name, n in self.sizes.items():
            if n <= 0:
                raise ValueError(f"corpus {name!r} is empty")
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self.total_steps = total_steps
        self.corpus_of_step = np.empty(total_steps, dtype=np.int16)
        rng = np.random.default_rng([seed, 0x5EED])
        start = 0
        for ph in phases:
            end = total_steps if ph.until_step is None else min(ph.until_step, total_steps)
            if end <= start:
                continue
            ids = [self.names.index(k) for k in ph.ratios]
            p = np.asarray([ph.ratios[k] for k in ph.ratios], dtype=np.float64)
            self.corpus_of_step[start:end] = rng.choice(ids, size=end - start, p=p / p.sum())
            start = end
        if start < total_steps:
            raise ValueError(f"the curriculum ends at step {start} but training runs {total_steps} steps")
        # batches_before[s]: how many earlier steps read the same corpus.
        self.batches_before = np.zeros(total_steps, dtype=np.int64)
        for c in range(len(self.names)):
            where = np.flatnonzero(self.corpus_of_step == c)
            self.batches_before[where] = np.arange(len(where))

    def corpus(self, step):
        return self.names[int(self.corpus_of_step[step])]

    def phase_switches(self):
        """Steps at which the set of sampled corpora changes (for the log)."""
        return [s for s in range(1, self.total_steps) if self.corpus_of_step[s] != self.corpus_of_step[s - 1]]

    @lru_cache(maxsize=4)
    def _permutation(self, corpus, epoch):
        return np.random.default_rng([self.seed, self.names.index(corpus), epoch]).permutation(self.sizes[corpus])

    def indices(self, step):
        """``(corpus_name, sample_indices)`` this rank reads at ``step``."""
        name = self.corpus(step)
        n = self.sizes[name]
        first = (int(self.batches_before[step]) * self.world + self.rank) * self.batch_size
        pos = np.arange(first, first + self.batch_size)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(pos // n):
            sel = pos // n == epoch
            out[sel] = self._permutation(name, int(epoch))[pos[sel] % n]
        return name, out

    def epoch_of(self, step):
        """Fractional epoch of the corpus read at ``step`` (for the log)."""
        name = self.corpus(step)
        return (int(self.batches_before[step]) + 1) * self.world * self.batch_size / self.sizes[name]
