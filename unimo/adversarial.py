"""Adversarial fine-tuning of UNIMO (VILLA-style PGD on the embeddings), as
the official SNLI-VE fine-tuning does it (NLP/UNIMO
``src/finetune/visual_entailment.py``, ``script/visual_entailment/SNLI-VE``:
``adv_step=4, adv_lr=0.05, norm_type=l2, adv_max_norm=0.4, adv_init_mag=0.4``).

One training step runs ``steps`` (K) rounds; round k does three forward
passes -- clean, text perturbed by ``delta_t``, image perturbed by
``delta_v`` -- and adds

    (CE_clean + CE_text + CE_image) / K + SKL(clean, text) + SKL(clean, image)

to the step's loss (SKL: symmetric KL of the logits, SMART/VILLA; the KL
terms are *not* divided by K, as in the official code). After each round
each delta takes one PGD ascent step on its own CE, with the gradient taken
with ``paddle.grad`` on the delta only (parameters get nothing from it), and
the deltas are constants for the parameter gradient (VILLA/FreeLB). The
returned loss is one graph over all K rounds, so the engine's single
``backward()`` accumulates the gradients of every round (FreeLB's
accumulation) and nothing in the engine changes.

Where the deltas go: the text delta is added to the summed word + position
+ segment embeddings before their LayerNorm (official: ``emb_out +
text_adv_delta`` before ``pre_encoder``); the image delta to the raw region
features before the feature FC (official: ``image_embedding +
image_adv_delta``). Here the [IMG] feature is the mean of the regions,
computed from the perturbed features (the official reader supplies it as an
input row that gets its own delta entry).

Init: uniform(-1, 1) on real positions, scaled by ``init_mag /
sqrt(len * dim)`` per example (official ``init_delta``). Step (l2): ``delta
+= step_size * g / ||g||`` per example. Projection: the official code
compares the *gradient's* norm with ``adv_max_norm`` (``delta_norm`` there
is the gradient norm), which does not bound the perturbation; here the
delta's own per-example norm is projected onto the ``epsilon`` ball (0: no
bound), so ``||delta|| <= epsilon`` always holds. ``linf``: sign step and
clipping to ``[-epsilon, epsilon]`` (the official code has only l2).
"""
from dataclasses import dataclass

import paddle
import paddle.nn.functional as F


@dataclass
class AdversarialConfig:
    steps: int = 0             # K ascent rounds per training step; 0: off (plain loss)
    step_size: float = 0.05    # adv_lr
    epsilon: float = 0.4       # adv_max_norm: per-example bound of ||delta||; 0: unbounded
    init_mag: float = 0.4      # adv_init_mag
    norm: str = "l2"           # l2 | linf
    kl: bool = True            # add the symmetric KL of clean vs perturbed logits
    text: bool = True          # perturb the text embeddings
    image: bool = True         # perturb the region features

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"Arch.adversarial.steps: {self.steps} < 0")
        if self.norm not in ("l2", "linf"):
            raise ValueError(f"Arch.adversarial.norm: {self.norm!r} is not l2 or linf")
        for key in ("step_size", "epsilon", "init_mag"):
            if getattr(self, key) < 0:
                raise ValueError(f"Arch.adversarial.{key}: {getattr(self, key)} < 0")


def _per_example_norm(x):
    return paddle.sqrt((x.reshape([x.shape[0], -1]) ** 2).sum(1)).reshape([-1] + [1] * (x.ndim - 1))


def project(delta, cfg):
    """Onto the ``epsilon`` ball of ``cfg.norm`` (per example)."""
    if cfg.epsilon <= 0:
        return delta
    if cfg.norm == "linf":
        return paddle.clip(delta, -cfg.epsilon, cfg.epsilon)
    norm = _per_example_norm(delta)
    return delta * paddle.clip(cfg.epsilon / paddle.clip(norm, min=1e-12), max=1.0)


def init_delta(mask, dim, cfg):
    """``mask [B, N]`` (1 on real positions) -> ``[B, N, dim]`` random start."""
    m = mask.astype("float32").unsqueeze(-1)
    u = paddle.uniform([mask.shape[0], mask.shape[1], dim], min=-1.0, max=1.0) * m
    if cfg.norm == "linf":
        delta = u * cfg.init_mag
    else:
        length = paddle.clip(m.sum([1, 2], keepdim=True) * dim, min=1.0)
        delta = u * (cfg.init_mag / paddle.sqrt(length))
    return project(delta, cfg)


def ascend(delta, grad, mask, cfg):
    """One PGD step up the loss, masked to real positions, then projected."""
    if cfg.norm == "linf":
        step = paddle.sign(grad)
    else:
        step = grad / paddle.clip(_per_example_norm(grad), min=1e-8)
    delta = (delta + cfg.step_size * step) * mask.astype(delta.dtype).unsqueeze(-1)
    return project(delta, cfg)


def symmetric_kl(p_logits, q_logits):
    """Mean over the batch of KL(p||q) + KL(q||p) of the softmaxes (official
    ``kl_divergence_with_logits``)."""
    lp, lq = F.log_softmax(p_logits, -1), F.log_softmax(q_logits, -1)
    p, q = lp.exp(), lq.exp()
    return ((p * (lp - lq)).sum(-1) + (q * (lq - lp)).sum(-1)).mean()


def adversarial_loss(logits_fn, loss_fn, deltas, masks, cfg):
    """The K-round loss above.

    ``logits_fn(text_delta, image_delta)`` -> logits (either delta may be
    None: unperturbed); ``loss_fn(logits)`` -> (loss, acc-or-None);
    ``deltas``/``masks``: dicts with keys ``text`` / ``image`` for the
    perturbed modalities (initial deltas, e.g. from :func:`init_delta`).
    Returns ``(total, info)``; ``info`` has the last round's clean loss,
    accuracy and adversarial losses and the final deltas."""
    k = cfg.steps
    deltas = {m: d.detach() for m, d in deltas.items()}
    total, info = 0.0, {}
    for _ in range(k):
        clean_logits = logits_fn(None, None)
        clean, acc = loss_fn(clean_logits)
        total = total + clean / k
        info.update(clean_loss=clean, acc=acc)
        updates = {}
        for m, delta in deltas.items():
            delta.stop_gradient = False
            logits = logits_fn(delta, None) if m == "text" else logits_fn(None, delta)
            adv, _ = loss_fn(logits)
            total = total + adv / k
            if cfg.kl:
                total = total + symmetric_kl(clean_logits, logits)
            info[f"adv_{m}_loss"] = adv
            # the delta's own gradient only; the graph stays for the engine's backward
            (grad,) = paddle.grad(adv / k, delta, retain_graph=True)
            updates[m] = ascend(delta.detach(), grad.detach(), masks[m], cfg).detach()
        deltas = updates
    info["deltas"] = deltas
    return total, info
