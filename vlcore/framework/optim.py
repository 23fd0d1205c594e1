"""AdamW and learning-rate schedules (``Optimizer`` / ``LRScheduler`` sections)."""
import math

import paddle


class WarmupDecay(paddle.optimizer.lr.LRScheduler):
    """Linear warmup, then linear / cosine decay (or constant) to
    ``min_lr_ratio * lr`` at ``total_steps``. Its state (``last_epoch``) is
    saved with the optimizer, so a resumed run continues the curve."""

    def __init__(self, lr, total_steps, warmup_steps=0, kind="linear", min_lr_ratio=0.0,
                 decay_steps=(), decay_rate=0.1):
        self.total, self.warmup, self.kind, self.floor = total_steps, warmup_steps, kind, min_lr_ratio
        self.decay_steps, self.decay_rate = list(decay_steps), decay_rate
        super().__init__(learning_rate=lr)

    def factor(self, step):
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        if self.kind == "scale_by_epoch_decay":  # Paddle's PiecewiseDecay over epoch boundaries
            return self.decay_rate ** sum(step >= b for b in self.decay_steps)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        shape = 1.0 - progress if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.floor + (1.0 - self.floor) * shape

    def get_lr(self):
        return self.base_lr * self.factor(self.last_epoch)


def no_decay_names(model):
    """Parameters exempt from weight decay: biases, LayerNorm weights and any
    vector/scalar (temperatures); matrices and embeddings decay."""
    names = set()
    for _, layer in model.named_sublayers(include_self=True):
        for pname, p in layer.named_parameters(include_sublayers=False):
            if isinstance(layer, paddle.nn.LayerNorm) or pname.endswith("bias") or len(p.shape) <= 1:
                names.add(p.name)
    return names


def epoch_decay_steps(sched_cfg, steps_per_epoch=None):
    """Optimizer steps at which scale_by_epoch_decay multiplies the lr by
    ``decay_rate``: ``round(epoch * steps_per_epoch)`` for each decay epoch."""
    spe = sched_cfg.steps_per_epoch or steps_per_epoch
    if not spe:
        raise ValueError("LRScheduler.name=scale_by_epoch_decay needs epochs: set LRScheduler.steps_per_epoch "
                         "or train on epoch-based data (DataLoader.Train.name: Finetune)")
    return [int(round(e * spe)) for e in sched_cfg.decay_epochs]


def build_optimizer(opt_cfg, sched_cfg, model, total_steps, steps_per_epoch=None):
    warmup = sched_cfg.warmup_steps or int(round(sched_cfg.warmup_ratio * total_steps))
    decay = epoch_decay_steps(sched_cfg, steps_per_epoch) if sched_cfg.name == "scale_by_epoch_decay" else ()
    scheduler = WarmupDecay(opt_cfg.lr, total_steps, warmup, sched_cfg.name, sched_cfg.min_lr_ratio,
                            decay, sched_cfg.decay_rate)
    exempt = no_decay_names(model)
    params = [p for p in model.parameters() if not p.stop_gradient]
    clip = paddle.nn.ClipGradByGlobalNorm(opt_cfg.grad_clip) if opt_cfg.grad_clip > 0 else None
    optimizer = paddle.optimizer.AdamW(
        learning_rate=scheduler, parameters=params, weight_decay=opt_cfg.weight_decay,
        beta1=opt_cfg.beta1, beta2=opt_cfg.beta2, epsilon=opt_cfg.epsilon, grad_clip=clip,
        apply_decay_param_fun=lambda name: name not in exempt)
    # Paddle creates a parameter's Adam moments at its first update, and a
    # restored optimizer refuses parameters missing from the checkpoint. With
    # a curriculum, heads first used after a checkpoint (VCL in phase 2) would
    # make resuming fail. Creating every moment now (zeros, beta powers at
    # their initial values -- exactly what lazy creation would give) keeps
    # training identical and makes every checkpoint complete.
    optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)
    return optimizer, scheduler
