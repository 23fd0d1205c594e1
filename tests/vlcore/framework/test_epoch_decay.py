"""scale_by_epoch_decay: UNIMO-2's stepwise fine-tuning schedule (Table 9)."""
import paddle
import pytest

from vlcore.framework.optim import build_optimizer, epoch_decay_steps
from vlcore.framework.schema import LRSchedulerConfig, OptimizerConfig


def lrs(sched_cfg, steps, steps_per_epoch=None, lr=4e-5):
    model = paddle.nn.Linear(2, 2)
    opt, sched = build_optimizer(OptimizerConfig(lr=lr), sched_cfg, model, steps, steps_per_epoch)
    out = []
    for _ in range(steps):
        out.append(opt.get_lr())
        sched.step()
    return out


def test_table9_vqa_schedule():
    # VQA: 4e-5, x0.1 after epoch 5, x0.01 after epoch 8 (of 12), 10 steps per epoch.
    cfg = LRSchedulerConfig(name="scale_by_epoch_decay", decay_epochs=[5, 8], decay_rate=0.1)
    got = lrs(cfg, 120, steps_per_epoch=10)
    want = [4e-5] * 50 + [4e-6] * 30 + [4e-7] * 40
    assert got == pytest.approx(want, rel=1e-9)


def test_fractional_steps_per_epoch_and_config_override():
    cfg = LRSchedulerConfig(name="scale_by_epoch_decay", decay_epochs=[1.0, 2.5], steps_per_epoch=3.75)
    assert epoch_decay_steps(cfg, steps_per_epoch=99) == [4, 9]  # round(3.75), round(9.375); config wins
    cfg.steps_per_epoch = 0
    assert epoch_decay_steps(cfg, steps_per_epoch=2.0) == [2, 5]


def test_warmup_then_steps():
    cfg = LRSchedulerConfig(name="scale_by_epoch_decay", decay_epochs=[2], warmup_steps=4, decay_rate=0.5)
    got = lrs(cfg, 8, steps_per_epoch=3, lr=1.0)
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5])


def test_errors():
    with pytest.raises(ValueError, match="needs decay_epochs"):
        LRSchedulerConfig(name="scale_by_epoch_decay")
    with pytest.raises(ValueError, match="increasing"):
        LRSchedulerConfig(name="scale_by_epoch_decay", decay_epochs=[3, 1])
    cfg = LRSchedulerConfig(name="scale_by_epoch_decay", decay_epochs=[1])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lrs(cfg, 2)
