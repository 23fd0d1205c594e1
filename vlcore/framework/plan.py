"""What a training step costs, from the model itself: parameters, FLOPs per
input kind, the activations autograd keeps for the backward pass (with and
without recomputation), optimizer state, and the largest batch that fits a
memory budget. ``tools/plan.py`` prints it; the step benchmarks measure the
same quantities, and the docs compare the two.

How each figure is obtained:

- **Parameters**: the model built under ``paddle.LazyGuard`` (shapes only,
  no memory), summed per top-level sub-layer.
- **FLOPs**: one forward pass at batch 1 through the benchmarks' counter
  (:mod:`vlcore.framework.flops`); a step is 3x the forward, and FLOPs grow
  linearly with the batch.
- **Activations**: every tensor autograd saves for backward during a
  training-mode forward and loss (``paddle.autograd.saved_tensors_hooks``),
  each storage counted once and parameters excluded, at batch 1 and 2: the
  difference is the per-sample cost, the rest is fixed. Recomputation
  (``Arch.recompute``) is measured the same way, with the flag on. The 4-D
  ``[batch, heads, queries, keys]`` tensors are reported apart as
  attention maps: a fused attention kernel on a GPU (FlashAttention,
  ``flashmask_attention``) does not keep them.
- **Optimizer and gradients**: AdamW keeps two fp32 moments per parameter,
  and each parameter has an fp32 gradient.
- **Peak, from the model**: the process's resident memory before the model
  is built (the Python and Paddle runtime) + weights + gradients + moments +
  activations + the largest single saved tensor once more, for the backward
  pass's transient copies. It leaves out what the hooks do not see (the
  allocator's free lists, backward temporaries) and reads low: 7-12 % on
  UNIMO-2 base at batch 4.
- **Peak, measured**: two training steps (forward, backward, AdamW) at
  batch 1 and at a batch whose activations are at least 256 MB larger by
  the model's account (2 for the base models), each in a fresh process, and
  the process's peak resident memory (``ru_maxrss``) of each; the peak at
  any batch is the line through the two. This is the CPU figure to plan with; the difference
  from the model's account, per sample, is printed as "unaccounted".
"""
import resource
from dataclasses import asdict, dataclass, field
from typing import Dict

import paddle

GB = 1024 ** 3


def rss_bytes():
    """The current resident set of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def count_parameters(build):
    """``{sub-layer: parameters}`` of ``build()`` constructed without
    allocating its weights."""
    with paddle.LazyGuard():
        model = build()
    out = {}
    for name, p in model.named_parameters():
        if name.startswith("model."):  # a pre-training wrapper's encoder: show its parts
            name = name[len("model."):]
        top = name.split(".", 1)[0]
        out[top] = out.get(top, 0) + int(p.size)
    return out


def forward_flops(model, batch):
    from vlcore.framework.flops import FlopCounter
    counter = FlopCounter()
    with counter.count():
        with paddle.no_grad():
            model(batch)
    return counter.flops


def saved_for_backward(model, batch, heads):
    """Bytes autograd keeps from a training-mode forward of ``batch``:
    ``{"total", "attention_maps", "largest"}``; each storage once,
    parameters excluded."""
    seen = {}

    def pack(t):
        if not t.persistable:
            shape = list(t.shape)
            nbytes = int(t.numel()) * t.element_size()
            key = (t.data_ptr(), nbytes)
            if key not in seen:
                seen[key] = (nbytes, len(shape) == 4 and shape[1] == heads)
        return t
    model.train()
    with paddle.autograd.saved_tensors_hooks(pack, lambda t: t):
        loss = model(batch)["loss"]
    del loss
    sizes = list(seen.values())
    return {"total": sum(n for n, _ in sizes), "attention_maps": sum(n for n, a in sizes if a),
            "largest": max((n for n, _ in sizes), default=0)}


@dataclass
class KindPlan:
    kind: str
    objectives: str
    text_len: int
    forward_gflop_per_sample: float
    step_gflop_per_sample: float
    # activation bytes: fixed + per sample; with recompute
    act_fixed: float
    act_per_sample: float
    act_attention_per_sample: float
    act_largest_per_sample: float
    act_fixed_recompute: float = 0.0
    act_per_sample_recompute: float = 0.0
    # measured peak RSS of whole steps: {recompute: (fixed, per sample)}
    measured: Dict[str, list] = field(default_factory=dict)

    def activations(self, batch, recompute=False, fused_attention=False):
        fixed, per = ((self.act_fixed_recompute, self.act_per_sample_recompute) if recompute
                      else (self.act_fixed, self.act_per_sample))
        if fused_attention and not recompute:
            per -= self.act_attention_per_sample
        return fixed + per * batch


@dataclass
class Plan:
    config: str
    parameters: Dict[str, int]
    runtime_bytes: float
    kinds: Dict[str, KindPlan] = field(default_factory=dict)

    @property
    def n_params(self):
        return sum(self.parameters.values())

    def state_bytes(self, optimizer_bytes_per_param=8, weight_bytes=4, grad_bytes=4):
        """Weights + gradients + optimizer state (CPU fp32 AdamW: 4 + 4 + 8
        bytes per parameter)."""
        return self.n_params * (weight_bytes + grad_bytes + optimizer_bytes_per_param)

    def model_peak(self, kind, batch, recompute=False):
        """The peak as the model accounts for it (see the module doc)."""
        k = self.kinds[kind]
        return (self.runtime_bytes + self.state_bytes() + k.activations(batch, recompute)
                + k.act_largest_per_sample * batch)

    def peak(self, kind, batch, recompute=False):
        """The predicted peak resident bytes of a CPU fp32 training step:
        the line through the measured peaks when there are some, else the
        model's account."""
        line = self.kinds[kind].measured.get(_key(recompute))
        if line:
            return line[0] + line[1] * batch
        return self.model_peak(kind, batch, recompute)

    def max_batch(self, kind, memory_bytes, recompute=False):
        """The largest batch whose predicted peak fits ``memory_bytes`` (0:
        not even one sample)."""
        fixed = self.peak(kind, 0, recompute)
        per = self.peak(kind, 1, recompute) - fixed
        return max(0, int((memory_bytes - fixed) // per)) if per > 0 else 0

    def unaccounted_per_sample(self, kind, recompute=False):
        """Measured minus accounted bytes per sample (None unmeasured)."""
        if not self.kinds[kind].measured.get(_key(recompute)):
            return None
        measured = self.peak(kind, 1, recompute) - self.peak(kind, 0, recompute)
        return measured - (self.model_peak(kind, 1, recompute) - self.model_peak(kind, 0, recompute))

    def to_dict(self):
        d = asdict(self)
        d["n_params"] = self.n_params
        return d


def _key(recompute):
    return "recompute" if recompute else "plain"


def measure_step_peak(cfg, build_optimizer_for, build, synthetic, kind, batch, recompute, steps=2):
    """Peak RSS (bytes) of ``steps`` training steps at ``batch`` in this
    process (call it in a fresh one)."""
    model = build(recompute)
    opt = build_optimizer_for(model)
    model.train()
    b = synthetic(kind, batch)
    for _ in range(steps):
        model(b)["loss"].backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _linear(at1, at2):
    """(fixed, per sample) of a quantity measured at batch 1 and 2."""
    per = at2 - at1
    return at1 - per, per


def account(build, synthetic, kind, heads, recompute):
    """One input kind's account, meant for a fresh process (a forward pass
    leaves the allocator's high-water mark behind): the runtime's resident
    bytes before the model, forward FLOPs at batch 1 and the saved-tensor
    accounts at batch 1 and 2."""
    runtime = rss_bytes()
    model = build(recompute)
    out = {"runtime": runtime, "flops": forward_flops(model, synthetic(kind, 1))}
    for b in (1, 2):
        out[f"saved_{b}"] = saved_for_backward(model, synthetic(kind, b), heads)
    return out


def kind_plan(kind, objectives, text_len, plain, recomputed):
    """A :class:`KindPlan` from the accounts of :func:`account` without and
    with recomputation."""
    s1, s2 = plain["saved_1"], plain["saved_2"]
    fixed, per = _linear(s1["total"], s2["total"])
    k = KindPlan(kind, objectives, text_len, plain["flops"] / 1e9, 3 * plain["flops"] / 1e9, fixed, per,
                 _linear(s1["attention_maps"], s2["attention_maps"])[1],
                 max(s2["largest"] - s1["largest"], s1["largest"]))
    k.act_fixed_recompute, k.act_per_sample_recompute = _linear(recomputed["saved_1"]["total"],
                                                                recomputed["saved_2"]["total"])
    return k
