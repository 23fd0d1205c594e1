"""The training engine on a toy model: gradient accumulation, the learning-
rate schedule, weight-decay exemptions and checkpoint files."""
import json
import logging
import os

import numpy as np
import paddle
import pytest

from vlcore.framework import checkpoint as ckpt
from vlcore.framework.engine import Trainer
from vlcore.framework.optim import WarmupDecay, build_optimizer, no_decay_names
from vlcore.framework.runlog import MetricsWriter
from vlcore.framework.schema import GlobalConfig, LRSchedulerConfig, OptimizerConfig, TrainConfig


class Toy(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 2)
        self.norm = paddle.nn.LayerNorm(2)
        self.scale = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, batch):
        y = self.norm(self.fc(batch["x"])) * self.scale
        return {"loss": ((y - batch["y"]) ** 2).mean()}


class ToyData:
    """Micro-step ``s`` reads rows ``[s*b, (s+1)*b)`` of a fixed dataset."""

    def __init__(self, x, y, batch):
        self.x, self.y, self.b = x, y, batch

    def loader(self, start):
        s = start
        while True:
            sl = slice(s * self.b, (s + 1) * self.b)
            yield {"x": paddle.to_tensor(self.x[sl]), "y": paddle.to_tensor(self.y[sl]), "step": s,
                   "batch_size": self.b, "corpus": "toy"}
            s += 1


def _train(tmp_path, accum, batch, steps=1, **global_kw):
    paddle.seed(0)
    model = Toy()
    cfg = TrainConfig(Global=GlobalConfig(output_dir=str(tmp_path), max_steps=steps, accum_steps=accum,
                                          log_interval=1, save_interval=1, progress_bar=False, visualdl=False,
                                          **global_kw),
                      Optimizer=OptimizerConfig(lr=0.1, grad_clip=0.0), LRScheduler=LRSchedulerConfig(name="constant"))
    opt, sched = build_optimizer(cfg.Optimizer, cfg.LRScheduler, model, steps)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    metrics = MetricsWriter(str(tmp_path), visualdl=False)
    Trainer(cfg, model, opt, sched, ToyData(x, y, batch), str(tmp_path), logging.getLogger("t"), metrics).fit()
    metrics.close()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_gradient_accumulation_equals_large_batch(tmp_path):
    # 4 micro-batches of 4 == one batch of 16 (equal-size means average).
    big = _train(tmp_path / "big", accum=1, batch=16)
    acc = _train(tmp_path / "acc", accum=4, batch=4)
    for k in big:
        np.testing.assert_allclose(acc[k], big[k], rtol=1e-5, atol=1e-6, err_msg=k)
    different = _train(tmp_path / "one", accum=1, batch=4)  # the check can fail
    assert any(not np.allclose(different[k], big[k]) for k in big)


def test_warmup_linear_schedule_values():
    s = WarmupDecay(1.0, total_steps=10, warmup_steps=2, kind="linear")
    lrs = []
    for _ in range(10):
        lrs.append(s.get_lr())
        s.step()
    np.testing.assert_allclose(lrs, [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    c = WarmupDecay(2.0, total_steps=4, warmup_steps=0, kind="cosine", min_lr_ratio=0.5)
    vals = []
    for _ in range(5):
        vals.append(c.get_lr())
        c.step()
    np.testing.assert_allclose(vals, [2.0, 2.0 * (0.5 + 0.5 * (1 + np.cos(np.pi / 4)) / 2),
                                      1.5, 2.0 * (0.5 + 0.5 * (1 + np.cos(3 * np.pi / 4)) / 2), 1.0])


def test_no_weight_decay_on_bias_norm_and_scalars():
    model = Toy()
    exempt = no_decay_names(model)
    assert model.fc.bias.name in exempt and model.norm.weight.name in exempt and model.scale.name in exempt
    assert model.fc.weight.name not in exempt


def test_checkpoints_keep_last_and_latest(tmp_path):
    _train(tmp_path, accum=1, batch=4, steps=5, keep_last=2)
    kept = [s for s, _ in ckpt.list_checkpoints(str(tmp_path))]
    assert kept == [4, 5]
    assert (tmp_path / "latest").read_text().strip() == "step_5"
    state = json.loads((tmp_path / "step_5" / "trainer_state.json").read_text())
    assert state["step"] == 5
    logged = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")]
    assert logged == [1, 2, 3, 4, 5]


def test_latest_survives_partial_writes(tmp_path):
    _train(tmp_path, accum=1, batch=4, steps=2)
    # A crash while writing step 3 leaves a temp dir; a stale pointer names it.
    os.makedirs(tmp_path / ".step_3.tmp-999")
    (tmp_path / ".step_3.tmp-999" / "model.safetensors").write_bytes(b"half")
    (tmp_path / "latest").write_text("step_3\n")
    assert ckpt.find_latest(str(tmp_path)) == str(tmp_path / "step_2")
    os.makedirs(tmp_path / "step_9")  # incomplete: no trainer_state.json
    assert ckpt.find_latest(str(tmp_path)) == str(tmp_path / "step_2")


def test_set_weights_refuses_mismatches():
    model = Toy()
    state = model.state_dict()
    state["fc.weight"] = paddle.zeros([4, 2])
    with pytest.raises(ValueError, match="fc.weight"):
        ckpt.set_weights(model, state, "somewhere")
    state = {k: v for k, v in Toy().state_dict().items() if k != "scale"}
    with pytest.raises(ValueError, match="missing: scale"):
        ckpt.set_weights(model, state, "somewhere")
    missing, _ = ckpt.set_weights(model, state, "somewhere", strict=False)
    assert missing == ["scale"]
