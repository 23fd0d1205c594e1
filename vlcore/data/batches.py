"""A map-style dataset whose item ``i`` is the whole batch of training step
``start_step + i``, so a DataLoader with ``batch_size=None`` prefetches steps
in worker processes and a resumed run restarts at any step.

Model packages subclass :class:`StepBatches` and implement
``collate(corpus, samples, rngs) -> dict``; corpora implement ``load(i, rng)``
(raising :class:`~vlcore.formats.records.RecordError` or
:class:`~vlcore.data.images.ImageError` for bad input) and ``__len__``.
"""
import traceback

import numpy as np
import paddle

from vlcore.data.images import ImageError
from vlcore.formats import DamagedFileError
from vlcore.formats.records import RecordError

_MAX_SUBSTITUTES = 16
# Bad inputs a corpus may report; they are skipped (or fatal in strict mode).
BAD_INPUT = (ImageError, RecordError, KeyError)
# A damaged data file (a truncated store or shard) is not skipped -- there is
# nothing to skip to -- but, like a bad input, reported in one line.


class StepBatches(paddle.io.Dataset):
    """Per-sample RNGs are derived from (seed, step, rank, position): a batch
    is the same whichever worker builds it and however often."""

    def __init__(self, corpora, schedule, seed=0, rank=0, start_step=0, strict=False):
        self.corpora = {c.name: c for c in corpora}
        self.schedule = schedule
        self.seed, self.rank, self.start_step, self.strict = seed, rank, start_step, strict

    def __len__(self):
        return self.schedule.total_steps - self.start_step

    def _load(self, corpus, index, rng, skipped):
        """Load ``index`` or, if it is bad, deterministic substitutes."""
        n = len(corpus)
        for attempt in range(_MAX_SUBSTITUTES):
            i = (int(index) + attempt * 7919) % n
            try:
                return corpus.load(i, rng)
            except BAD_INPUT as e:
                if self.strict:
                    raise
                skipped.append(str(e).strip("'\""))
        raise RuntimeError(f"{_MAX_SUBSTITUTES} consecutive bad records in corpus {corpus.name!r}; "
                           f"last: {skipped[-1]}")

    def __getitem__(self, i):
        # Paddle's DataLoader can hang instead of re-raising an exception
        # from the loading thread/worker; hand it over as data instead and
        # let the trainer raise it in the main process.
        try:
            return self._batch(self.start_step + i)
        except Exception as e:  # noqa: BLE001 -- re-raised by the trainer
            bad_input = isinstance(e, BAD_INPUT + (DamagedFileError,))
            # (Paddle's loader drops a batch that holds no array at all.)
            return {"error": str(e).strip("'\"") if bad_input else f"{type(e).__name__}: {e}",
                    "step": self.start_step + i, "traceback": "" if bad_input else traceback.format_exc(),
                    "_": np.zeros(1, np.int8)}

    def _batch(self, step):
        name, indices = self.schedule.indices(step)
        corpus = self.corpora[name]
        rngs = [np.random.default_rng([self.seed, step, self.rank, j]) for j in range(len(indices))]
        skipped = []
        samples = [self._load(corpus, idx, rng, skipped) for idx, rng in zip(indices, rngs)]
        batch_seed = int(np.random.default_rng([self.seed, step, self.rank, 1 << 20]).integers(1 << 62))
        batch = self.collate(corpus, samples, rngs, batch_seed)
        batch.update(step=step, corpus=name, skipped=skipped, batch_size=len(samples), seed=batch_seed)
        return batch

    def collate(self, corpus, samples, rngs, batch_seed):
        raise NotImplementedError
