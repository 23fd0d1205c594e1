"""The training loop. Model-agnostic: the model's ``forward(batch)`` returns a
dict of scalar losses with the total under ``"loss"``.

Determinism: the data of every micro-step is a pure function of (seed, step,
rank) (see ``vlcore.data.schedule``), and Paddle's generator is re-seeded
from (seed, step, rank) before every micro-step, so dropout and in-model
sampling do not depend on history. A run resumed from a checkpoint (model,
optimizer, scheduler, step) therefore repeats the uninterrupted run exactly.
"""
import contextlib
import os
import signal
import sys
import time
import zlib

import paddle

from vlcore.framework import checkpoint as ckpt
from vlcore.framework import dist

# Test hook: SIGKILL ourselves right after this optimizer step (before any
# checkpoint of it), to test resuming from a real crash.
KILL_AT_STEP_ENV = "VLCORE_TEST_KILL_AT_STEP"
_MAX_LOGGED_SKIPS = 20


class DataError(RuntimeError):
    """The data pipeline failed (strict mode, or a bug in a loader)."""


def step_seed(seed, micro_step, rank):
    return zlib.crc32(f"{seed}/{micro_step}/{rank}".encode()) & 0x7FFFFFFF


class _Meter:
    """Per-key running sums (tensors, so logging does not sync every step)."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, out):
        for k, v in out.items():
            if isinstance(v, paddle.Tensor) and v.size == 1:
                self.sums[k] = self.sums.get(k, 0.0) + v.detach().astype("float32").reshape([])
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self):
        return {k: float(self.sums[k]) / self.counts[k] for k in self.sums}


def to_device(batch, device):
    if not device.startswith("gpu"):
        return batch
    return {k: (v.cuda() if isinstance(v, paddle.Tensor) else v) for k, v in batch.items()}


class Trainer:
    def __init__(self, cfg, model, optimizer, scheduler, train_data, output_dir, logger, metrics,
                 evaluator=None, device="cpu"):
        self.cfg, self.g = cfg, cfg.Global
        self.model = model                  # possibly DataParallel-wrapped
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_data, self.evaluator = train_data, evaluator
        self.output_dir, self.log, self.metrics, self.device = output_dir, logger, metrics, device
        self.skipped = 0
        self.amp_dtype, self.scaler = self._setup_amp()

    # ------------------------------------------------------------ helpers
    def _setup_amp(self):
        amp = self.g.amp
        if amp == "off":
            return None, None
        if not self.device.startswith("gpu"):
            self.log.warning("Global.amp=%s requested, but AMP needs a GPU: training in fp32 on %s",
                             amp, self.device)
            return None, None
        dtype = "float16" if amp == "fp16" else "bfloat16"
        scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if amp == "fp16" else None
        self.log.info("AMP on: %s (O1)", dtype)
        return dtype, scaler

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level="O1", dtype=self.amp_dtype)

    def _state(self, step):
        state = {"skipped_records": self.skipped, "world_size": dist.world_size()}
        if self.scaler is not None:
            state["grad_scaler"] = {k: float(v) if hasattr(v, "__float__") else v
                                    for k, v in self.scaler.state_dict().items()}
        return state

    def resume(self):
        """Optimizer step to start from (0 for a fresh run). ``metrics.jsonl``
        loses the records of later steps, which this run is about to repeat."""
        start = self._restore()
        if dist.is_main():
            dropped = self.metrics.rewind(start)
            if dropped:
                self.log.info("metrics.jsonl: dropped %d records of steps after %d (from an interrupted run; "
                              "they are about to be repeated)", dropped, start)
        return start

    def _restore(self):
        how = self.g.resume
        if not how:
            return 0
        if how != "auto":  # an explicit checkpoint: damage is an error naming the file
            return self._load(how)
        candidates = ckpt.checkpoint_dirs(self.output_dir)
        for path in candidates:
            try:
                return self._load(path)
            except ckpt.CheckpointError as e:
                self.log.warning("resume=auto: skipping damaged checkpoint %s: %s", path, e)
        self.log.info("resume=auto: no %scheckpoint in %s, starting from step 0",
                      "intact " if candidates else "", self.output_dir)
        return 0

    def _load(self, path):
        if not ckpt.verify(path):
            self.log.info("%s has no %s (written by an earlier version): loading it unverified", path, ckpt.MANIFEST)
        state = ckpt.load_checkpoint(path, dist.unwrap(self.model), self.optimizer, check=False)
        self.skipped = state.get("skipped_records", 0)
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        if state.get("world_size", 1) != dist.world_size():
            self.log.warning("checkpoint was written with %s ranks, resuming with %s: the data order "
                             "differs from the interrupted run", state.get("world_size"), dist.world_size())
        self.log.info("resumed from %s (step %d)", path, state["step"])
        return int(state["step"])

    def _note_skipped(self, batch):
        for msg in batch.get("skipped", []):
            self.skipped += 1
            if self.skipped <= _MAX_LOGGED_SKIPS or self.skipped % 1000 == 0:
                self.log.warning("skipped bad record (%d so far): %s", self.skipped, msg)

    def save(self, step):
        if dist.is_main():
            path = ckpt.save_checkpoint(self.output_dir, step, dist.unwrap(self.model), self.optimizer,
                                        self._state(step))
            self.log.info("saved checkpoint %s", path)
            removed = ckpt.remove_old_checkpoints(self.output_dir, self.g.keep_last, step)
            if removed:
                self.log.info("keep_last=%d: deleted %s", self.g.keep_last,
                              ", ".join(os.path.basename(p) for p in removed))
        dist.barrier()

    def evaluate(self, step):
        if self.evaluator is None:
            return None
        model = dist.unwrap(self.model)
        model.eval()
        with paddle.no_grad():
            result = self.evaluator(model)
        model.train()
        if dist.is_main():
            self.log.info("eval @ step %d: %s", step,
                          " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
            self.metrics.write(dict(step=step, split="eval", **result), prefix="eval")
        return result

    # ------------------------------------------------------------ the loop
    def fit(self):
        g = self.g
        start = self.resume()
        if start >= g.max_steps:
            self.log.info("already trained to step %d (max_steps=%d)", start, g.max_steps)
            return self.evaluate(start)
        batches = iter(self.train_data.loader(start * g.accum_steps))
        kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)
        meter, window_samples, t0 = _Meter(), 0, time.perf_counter()
        bar = None
        # A bar redirected to a file is a wall of carriage returns; the log
        # lines say the same there.
        if g.progress_bar and dist.is_main() and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=g.max_steps, initial=start, unit="step", dynamic_ncols=True, leave=False)
        self.model.train()
        for step in range(start, g.max_steps):
            for a in range(g.accum_steps):
                micro = step * g.accum_steps + a
                batch = next(batches)
                if "error" in batch:
                    if batch.get("traceback"):  # a bug, not a bad input: show where
                        self.log.error("data pipeline traceback:\n%s", batch["traceback"])
                    raise DataError(f"data loading failed at micro-step {batch['step']}: {batch['error']}")
                if batch["step"] != micro:
                    raise RuntimeError(f"data loader out of order: expected micro-step {micro}, got {batch['step']}")
                self._note_skipped(batch)
                window_samples += int(batch["batch_size"])
                paddle.seed(step_seed(g.seed, micro, dist.rank()))
                sync = a == g.accum_steps - 1 or not hasattr(self.model, "no_sync")
                with contextlib.nullcontext() if sync else self.model.no_sync():
                    with self._autocast():
                        out = self.model(to_device(batch, self.device))
                    loss = out["loss"] / g.accum_steps
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                meter.add(out)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            # None, not zeros: a parameter unused in this step (e.g. the ViT
            # in a text-only step) must not be moved by Adam's momentum --
            # otherwise whether it moves would depend on whether this
            # process ever computed its gradient, and a resumed run would
            # differ from an uninterrupted one.
            self.optimizer.clear_grad(set_to_zero=False)
            self.scheduler.step()
            done = step + 1
            if bar is not None:
                bar.update(1)
            if done % g.log_interval == 0 or done == g.max_steps:
                self._log_window(done, meter, window_samples, time.perf_counter() - t0, batch["corpus"], bar)
                meter, window_samples, t0 = _Meter(), 0, time.perf_counter()
            if kill_at and done == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if done % g.save_interval == 0 or done == g.max_steps:
                self.save(done)
            if g.eval_interval and done % g.eval_interval == 0 and done != g.max_steps:
                self.evaluate(done)
        if bar is not None:
            bar.close()
        self._check_ranks_in_sync()
        return self.evaluate(g.max_steps)

    def _log_window(self, step, meter, samples, seconds, corpus, bar):
        """Mean losses of the steps since the last log line, over all ranks."""
        record = {k: round(dist.all_reduce_mean(v), 6) for k, v in meter.means().items()}
        record.update(step=step, lr=self.optimizer.get_lr(),
                      samples_per_s=round(samples * dist.world_size() / seconds, 3),
                      skipped=dist.all_reduce_sum_int(self.skipped), corpus=corpus)
        if not dist.is_main():
            return
        self.metrics.write(record)
        msg = " ".join(f"{k}={v:.4f}" for k, v in record.items() if isinstance(v, float) and k != "lr")
        self.log.info("step %d/%d lr=%.3e %s", step, self.g.max_steps, record["lr"], msg)
        if bar is not None:
            bar.set_postfix(loss=f"{record.get('loss', float('nan')):.3f}", sps=f"{record['samples_per_s']:.1f}")

    def _check_ranks_in_sync(self):
        if dist.world_size() <= 1:
            return
        sums = dist.parameter_checksums(dist.unwrap(self.model))
        if any(s != sums[0] for s in sums):
            raise RuntimeError(f"data-parallel ranks diverged: parameter checksums {sums}")
        self.log.info("parameters identical on all %d ranks (checksum %.6e)", len(sums), sums[0][1])
