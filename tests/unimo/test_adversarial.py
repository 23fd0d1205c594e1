"""Adversarial (VILLA-style PGD) fine-tuning of UNIMO: the off switch is
exact, the perturbation stays in its ball, the ascent raises the loss, and
the K-round loss, delta trajectory and parameter gradients match a NumPy
re-implementation on a tiny linear model (finite differences in float64)."""
import os

import numpy as np
import paddle
import pytest

from unimo.adversarial import AdversarialConfig, adversarial_loss, init_delta, project
from unimo.finetune_cls import UNIMOClsArchConfig, UNIMOForClassification
from vlcore.layers.classifier import ClsHeadConfig, classification_loss

B, T, R, F_DIM, H, C = 3, 5, 4, 16, 32, 3


def _batch(seed=0):
    rng = np.random.RandomState(seed)
    mask = np.ones([B, T], dtype="int64")
    mask[0, 3:] = 0                                  # padded text and regions
    rmask = np.ones([B, R], dtype="int64")
    rmask[1, 2:] = 0
    return {"features": paddle.to_tensor(rng.randn(B, R, F_DIM).astype("float32")),
            "locations": paddle.to_tensor(rng.rand(B, R, 5).astype("float32")),
            "region_mask": paddle.to_tensor(rmask),
            "ids": paddle.to_tensor(rng.randint(3, 50, size=[B, T]).astype("int64") * mask),
            "mask": paddle.to_tensor(mask),
            "targets": paddle.to_tensor(np.array([0, 2, 1], dtype="int64")),
            "loss_kind": "ce"}


def _model(**adv):
    paddle.seed(3)
    arch = UNIMOClsArchConfig(hidden_size=H, num_layers=1, num_heads=2, vocab_size=50, max_positions=40,
                              feature_dim=F_DIM, dropout=0.0, attn_dropout=0.0, num_outputs=C,
                              head=ClsHeadConfig(dropout=0.0), init_std=0.1,
                              adversarial=AdversarialConfig(**adv))
    return UNIMOForClassification(arch)


def _grads(model, batch):
    model.clear_gradients()
    out = model(batch)
    out["loss"].backward()
    return out, {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def test_off_is_the_plain_path_exactly():
    batch = _batch()
    plain = _model()                     # default: steps 0
    plain.train()
    out0, g0 = _grads(plain, batch)
    assert set(out0) == {"loss", "acc"}
    # zero deltas through the perturbation hooks change nothing, bit for bit
    zt, zv = paddle.zeros([B, T, H]), paddle.zeros([B, R, F_DIM])
    np.testing.assert_array_equal(plain.logits(batch, zt, zv).numpy(), plain.logits(batch).numpy())
    # K rounds with no movement (init 0, step 0): each round adds 3 clean
    # losses / K and zero KL, so loss and gradients are 3x the plain ones
    adv = _model(steps=2, init_mag=0.0, step_size=0.0)
    adv.train()
    out1, g1 = _grads(adv, batch)
    np.testing.assert_allclose(float(out1["loss"]), 3 * float(out0["loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(out1["clean_loss"]), float(out0["loss"]), rtol=1e-6)
    assert g0.keys() == g1.keys()
    for name in g0:
        np.testing.assert_allclose(g1[name], 3 * g0[name], rtol=1e-4, atol=1e-7, err_msg=name)
    # evaluation never perturbs
    adv.eval()
    np.testing.assert_allclose(float(adv(batch)["loss"]), float(out0["loss"]), rtol=1e-6)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_perturbation_stays_in_the_ball(norm):
    paddle.seed(0)
    batch = _batch()
    model = _model()
    model.eval()
    loss_fn = lambda lg: classification_loss(lg, batch["targets"], "ce")  # noqa: E731
    eps = 0.3
    for k in range(1, 5):
        # start outside the ball and step far: projection must hold anyway
        cfg = AdversarialConfig(steps=k, step_size=5.0, epsilon=eps, init_mag=2.0, norm=norm)
        deltas = {"text": init_delta(batch["mask"], H, cfg), "image": init_delta(batch["region_mask"], F_DIM, cfg)}
        masks = {"text": batch["mask"], "image": batch["region_mask"]}
        _, info = adversarial_loss(lambda t, v: model.logits(batch, t, v), loss_fn, deltas, masks, cfg)
        for m, d in list(deltas.items()) + [(f"final_{m}", d) for m, d in info["deltas"].items()]:
            x = d.numpy().reshape(B, -1)
            size = np.abs(x).max(1) if norm == "linf" else np.linalg.norm(x, axis=1)
            assert (size <= eps * (1 + 1e-5)).all(), (k, m, size)
        # padding never gets perturbed
        assert np.abs(info["deltas"]["text"].numpy()[0, 3:]).max() == 0
        assert np.abs(info["deltas"]["image"].numpy()[1, 2:]).max() == 0
    # unbounded (epsilon 0): the official-style l2 init has norm <= init_mag
    cfg = AdversarialConfig(steps=1, epsilon=0.0, init_mag=0.4)
    d = init_delta(batch["mask"], H, cfg).numpy().reshape(B, -1)
    assert (np.linalg.norm(d, axis=1) <= 0.4 + 1e-6).all() and (np.linalg.norm(d, axis=1) > 0.05).all()


def test_ascent_raises_the_loss():
    paddle.seed(1)
    batch = _batch(1)
    model = _model()
    model.eval()
    loss_fn = lambda lg: classification_loss(lg, batch["targets"], "ce")  # noqa: E731
    cfg = AdversarialConfig(steps=4, step_size=0.05, epsilon=0.4, init_mag=0.0)
    masks = {"text": batch["mask"], "image": batch["region_mask"]}
    deltas = {"text": paddle.zeros([B, T, H]), "image": paddle.zeros([B, R, F_DIM])}
    _, info = adversarial_loss(lambda t, v: model.logits(batch, t, v), loss_fn, deltas, masks, cfg)
    with paddle.no_grad():
        clean = float(loss_fn(model.logits(batch))[0])
        text = float(loss_fn(model.logits(batch, text_delta=info["deltas"]["text"]))[0])
        image = float(loss_fn(model.logits(batch, image_delta=info["deltas"]["image"]))[0])
    assert text > clean and image > clean, (clean, text, image)
    # a random direction of the same size does much less than the ascent
    paddle.seed(2)
    rnd = paddle.randn([B, T, H]) * batch["mask"].astype("float32").unsqueeze(-1)
    rnd = project(rnd * 100, cfg)
    with paddle.no_grad():
        rand_text = float(loss_fn(model.logits(batch, text_delta=rnd))[0])
    assert text - clean > abs(rand_text - clean)


# ------------------------------------------------ NumPy reference, linear model
def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_logits(A, Bm, b, t, v):
    return t.mean(1) @ A + v.mean(1) @ Bm + b


def _np_ce(z, y):
    return -np.log(_softmax(z)[np.arange(len(y)), y]).mean()


def _np_skl(p, q):
    lp, lq = np.log(_softmax(p)), np.log(_softmax(q))
    return ((np.exp(lp) * (lp - lq)).sum(-1) + (np.exp(lq) * (lq - lp)).sum(-1)).mean()


def _np_project(d, eps, norm):
    if norm == "linf":
        return np.clip(d, -eps, eps)
    n = np.linalg.norm(d.reshape(len(d), -1), axis=1).reshape(-1, 1, 1)
    return d * np.minimum(eps / np.maximum(n, 1e-12), 1.0)


def _np_reference(A, Bm, b, t, v, y, dt, dv, mt, mv, cfg):
    """Deltas by hand-derived gradients; then the K-round total as a function
    of the parameters with those (constant) deltas."""
    k, seq = cfg.steps, []
    for _ in range(k):
        seq.append((dt, dv))
        new = []
        for d, m, W, which in ((dt, mt, A, "t"), (dv, mv, Bm, "v")):
            z = _np_logits(A, Bm, b, t + d, v) if which == "t" else _np_logits(A, Bm, b, t, v + d)
            dz = (_softmax(z) - np.eye(z.shape[1])[y]) / len(y) / k          # d(CE/k)/dlogits
            g = np.repeat((dz @ W.T)[:, None, :], d.shape[1], 1) / d.shape[1]  # mean over positions
            if cfg.norm == "linf":
                step = np.sign(g)
            else:
                step = g / np.maximum(np.linalg.norm(g.reshape(len(g), -1), axis=1), 1e-8).reshape(-1, 1, 1)
            new.append(_np_project((d + cfg.step_size * step) * m[..., None], cfg.epsilon, cfg.norm))
        dt, dv = new

    def total(A, Bm, b):
        out = 0.0
        for st, sv in seq:
            zc = _np_logits(A, Bm, b, t, v)
            zt, zv = _np_logits(A, Bm, b, t + st, v), _np_logits(A, Bm, b, t, v + sv)
            out += (_np_ce(zc, y) + _np_ce(zt, y) + _np_ce(zv, y)) / k
            if cfg.kl:
                out += _np_skl(zc, zt) + _np_skl(zc, zv)
        return out
    return total, (dt, dv)


@pytest.mark.parametrize("norm,kl", [("l2", True), ("linf", True), ("l2", False)])
def test_matches_numpy_reference_on_linear_model(norm, kl):
    rng = np.random.RandomState(4)
    A, Bm, b = rng.randn(6, C), rng.randn(7, C), rng.randn(C)
    t, v = rng.randn(B, T, 6), rng.randn(B, R, 7)
    y = np.array([2, 0, 1])
    mt, mv = np.ones([B, T]), np.ones([B, R])
    mt[2, 4:] = 0
    mv[0, 1:] = 0
    cfg = AdversarialConfig(steps=3, step_size=0.3, epsilon=0.5, init_mag=0.4, norm=norm, kl=kl)
    paddle.seed(7)
    dt0 = init_delta(paddle.to_tensor(mt), 6, cfg).astype("float64")
    dv0 = init_delta(paddle.to_tensor(mv), 7, cfg).astype("float64")

    pA, pB, pb = (paddle.to_tensor(x, stop_gradient=False) for x in (A, Bm, b))
    pt, pv, py = paddle.to_tensor(t), paddle.to_tensor(v), paddle.to_tensor(y)

    def logits_fn(dt, dv):
        tt = pt if dt is None else pt + dt
        vv = pv if dv is None else pv + dv
        return tt.mean(1) @ pA + vv.mean(1) @ pB + pb

    loss_fn = lambda z: classification_loss(z, py, "ce")  # noqa: E731
    masks = {"text": paddle.to_tensor(mt), "image": paddle.to_tensor(mv)}
    total, info = adversarial_loss(logits_fn, loss_fn, {"text": dt0, "image": dv0}, masks, cfg)
    total.backward()

    ref_total, (rdt, rdv) = _np_reference(A, Bm, b, t, v, y, dt0.numpy(), dv0.numpy(), mt, mv, cfg)
    np.testing.assert_allclose(info["deltas"]["text"].numpy(), rdt, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(info["deltas"]["image"].numpy(), rdv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(float(total), ref_total(A, Bm, b), rtol=1e-10)
    # central finite differences of the NumPy total, deltas held constant
    h = 1e-6
    for name, x, grad in (("A", A, pA.grad), ("B", Bm, pB.grad), ("b", b, pb.grad)):
        fd = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            args = {"A": A.copy(), "B": Bm.copy(), "b": b.copy()}
            args[name][i] += h
            up = ref_total(args["A"], args["B"], args["b"])
            args[name][i] -= 2 * h
            fd[i] = (up - ref_total(args["A"], args["B"], args["b"])) / (2 * h)
        np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5, atol=1e-7, err_msg=name)


def test_config_official_values_and_errors(tmp_path):
    from vlcore.framework.config import ConfigError

    from cls_helpers import load
    from helpers import ROOT as root
    cfg = load(os.path.join(root, "configs/unimo/snli_ve.yaml"))
    adv = cfg.Arch.adversarial
    assert (adv.steps, adv.step_size, adv.epsilon, adv.init_mag, adv.norm, adv.kl) == (4, 0.05, 0.4, 0.4, "l2", True)
    with pytest.raises((ConfigError, ValueError), match="adversarial.norm"):
        load(os.path.join(root, "configs/unimo/snli_ve.yaml"), ["Arch.adversarial.norm=l1"])


def test_training_runs_with_adversarial(tmp_path):
    from vlcore.framework import run
    from vlcore.framework.runlog import read_metrics

    from cls_helpers import cls_config, load, tiny_tasks
    corpus, tasks = tiny_tasks(tmp_path / "data")
    out = tmp_path / "out"
    conf = cls_config(tmp_path, corpus, tasks, out, "snli_ve", model="unimo", steps=2)
    run.train(load(conf, ["Arch.adversarial.steps=2"]))
    rows = [r for r in read_metrics(str(out / "metrics.jsonl")) if "clean_loss" in r]
    assert len(rows) == 2
    assert all(np.isfinite(r["loss"]) and r["adv_text_loss"] > 0 and r["adv_image_loss"] > 0 for r in rows)
