"""Grounded dictionary (UNIMO-2 Section 3.1, Eq. 1-3) against NumPy float64
references written from the paper's equations.

Conventions checked (documented in unimo2/grounding.py):
- Eq. 1: x_ij = sigmoid(eta * v_i . g_j), eta clipped to [min, max];
- Eq. 2: s_j = sum over the *real* tokens of x_ij (padding does not vote);
- the grounded tokens are the rows of G with the K largest s_j;
- Eq. 3: alpha * ||sg(v_i) - sum_j x_ij / sum_k x_ik g_j||^2
         + beta * ||sg(g_j) - sum_i x_ij / s_j v_i||^2,
  sums over j/k run over the top-K entries; the first term is averaged per
  element over the real tokens (n_real * D), the second over B * K * D.
"""
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from unimo2.grounding import GroundedDictionary, concat_modalities
from unimo2.model import UNIMO2Model

B, M, N, D, C, K = 2, 4, 7, 16, 12, 4
TEXT_LENGTHS = [7, 3]          # second caption has 4 padded positions
ETA = 3.0
ALPHA, BETA = 0.7, 0.25


# ------------------------------------------------------------------ references
def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # overflow-free logistic


def ref_topk(v, mask, G, eta, k=K, alpha=ALPHA, beta=BETA, v_sg=None, G_sg=None, idx=None):
    """Eq. 1-3 in float64. ``v``: [B, L, D] (all modalities concatenated),
    ``mask``: [B, L] (True = real token). ``v_sg``/``G_sg`` are the values
    used at the stop-gradient occurrences (sg(v_i) in term 1, sg(g_j) in term
    2); by default the same as ``v``/``G``. ``idx`` fixes the top-K choice."""
    v, G = np.asarray(v, np.float64), np.asarray(G, np.float64)
    v_sg = v if v_sg is None else v_sg
    G_sg = G if G_sg is None else G_sg
    w = np.asarray(mask, np.float64)
    bsz, _, dim = v.shape
    x = _sigmoid(eta * np.einsum("bld,cd->blc", v, G))                   # Eq. 1
    scores = (x * w[..., None]).sum(1)                                   # Eq. 2
    if idx is None:
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    g, g_sg = G[idx], G_sg[idx]                                          # [B, K, D]
    xk = np.take_along_axis(x, idx[:, None, :], axis=2)                  # [B, L, K]
    s = np.take_along_axis(scores, idx, axis=1)                          # [B, K] = s_j
    recon_v = np.einsum("blk,bkd->bld", xk / xk.sum(-1, keepdims=True), g)
    term1 = (w[..., None] * (v_sg - recon_v) ** 2).sum() / (w.sum() * dim)
    recon_g = np.einsum("blk,bld->bkd", xk * w[..., None] / s[:, None, :], v)
    term2 = ((g_sg - recon_g) ** 2).sum() / (bsz * k * dim)
    return SimpleNamespace(x=x, scores=scores, idx=idx, tokens=g, G=G, loss=alpha * term1 + beta * term2)


def topk_gap(scores, k=K):
    """Smallest gap between the K-th and (K+1)-th score of any row."""
    srt = -np.sort(-scores, axis=1)
    return (srt[:, k - 1] - srt[:, k]).min()


# ------------------------------------------------------------------ helpers
def make_data(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((B, M, D)) / np.sqrt(D) * 2
    text = rng.standard_normal((B, N, D)) / np.sqrt(D) * 2
    mask = np.arange(N)[None, :] < np.array(TEXT_LENGTHS)[:, None]
    G = rng.standard_normal((C, D)) / np.sqrt(D) * 2
    return image, text, mask, G


def make_gd(G, eta=ETA, dtype=None, **kw):
    kw = {"dict_size": C, "dim": D, "top_k": K, "alpha": ALPHA, "beta": BETA,
          "temperature_init": eta, "temperature_min": 0.5, "temperature_max": 50.0, **kw}
    gd = GroundedDictionary(**kw)
    dtype = dtype or paddle.get_default_dtype()
    gd.embedding.set_value(paddle.to_tensor(G, dtype=dtype))
    return gd


def t(x, dtype="float32", grad=False):
    out = paddle.to_tensor(np.asarray(x), dtype=dtype)
    out.stop_gradient = not grad
    return out


def check_against_ref(out, ref, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(out.scores.numpy(), ref.scores, rtol=rtol, atol=atol)
    idx = out.indices.numpy()
    assert idx.shape == ref.idx.shape
    for row, ref_row in zip(idx, ref.idx):
        assert set(row.tolist()) == set(ref_row.tolist())
    # grounded tokens are the dictionary rows of the returned indices
    assert out.tokens.shape == list(ref.tokens.shape)
    np.testing.assert_allclose(out.tokens.numpy(), ref.G[idx], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(out.loss), ref.loss, rtol=rtol, atol=atol)


@pytest.fixture
def float64():
    old = paddle.get_default_dtype()
    paddle.set_default_dtype("float64")
    try:
        yield
    finally:
        paddle.set_default_dtype(old)


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("kind", ["paired", "image", "text"])
def test_forward_matches_reference(kind):
    image, text, mask, G = make_data(0)
    gd = make_gd(G)
    if kind == "paired":
        inputs = [(t(image), None), (t(text), t(mask, "bool"))]
        v, vmask = np.concatenate([image, text], 1), np.concatenate([np.ones((B, M), bool), mask], 1)
    elif kind == "image":
        inputs = [(t(image), None)]
        v, vmask = image, np.ones((B, M), bool)
    else:
        inputs = [(t(text), t(mask, "bool"))]
        v, vmask = text, mask
    ref = ref_topk(v, vmask, G, ETA)
    assert topk_gap(ref.scores) > 1e-3, "test data should have well-separated top-K scores"
    out = gd(inputs)
    check_against_ref(out, ref)
    # Eq. 1 itself
    np.testing.assert_allclose(gd.similarity(t(v)).numpy(), ref.x, rtol=1e-5, atol=1e-6)
    # grounded tokens are exactly the rows of G picked by the indices
    np.testing.assert_allclose(out.tokens.numpy(), G[out.indices.numpy()].astype(np.float32), rtol=0, atol=0)
    assert out.token_mask is None


def test_concat_modalities_masks():
    image, text, mask, _ = make_data(0)
    feats, m = concat_modalities([(t(image), None), (t(text), t(mask, "bool"))])
    assert feats.shape == [B, M + N, D]
    np.testing.assert_array_equal(m.numpy(), np.concatenate([np.ones((B, M), bool), mask], 1))


# ------------------------------------------------------------------ padding
def _pad_attracting_text(text, mask, G, target):
    """Padded positions set so that every pad is very similar to entry
    ``target`` and dissimilar to all others (G has full row rank C < D)."""
    goal = -np.ones(C)
    goal[target] = 1.0
    u = np.linalg.lstsq(G, goal, rcond=None)[0] * (20.0 / ETA)   # G u = 20/eta * goal
    out = text.copy()
    out[~mask] = u
    return out


def test_padding_does_not_vote():
    image, text, mask, G = make_data(0)
    v = np.concatenate([image, text], 1)
    vmask = np.concatenate([np.ones((B, M), bool), mask], 1)
    base = ref_topk(v, vmask, G, ETA)
    # the entry with the lowest score in the padded row becomes the pads' favourite
    target = int(np.argmin(base.scores[1]))
    text2 = _pad_attracting_text(text, mask, G, target)
    assert not np.allclose(text2[~mask], text[~mask])

    gd = make_gd(G)
    out1 = gd([(t(image), None), (t(text), t(mask, "bool"))])
    out2 = gd([(t(image), None), (t(text2), t(mask, "bool"))])
    for a, b in [(out1.scores, out2.scores), (out1.tokens, out2.tokens), (out1.loss, out2.loss)]:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out1.indices.numpy(), out2.indices.numpy())
    assert target not in out2.indices.numpy()[1]

    # exclude_padding=False: the pads vote (every position counts as real)
    gd_votes = make_gd(G, exclude_padding=False)
    ones = np.ones_like(vmask)
    v2 = np.concatenate([image, text2], 1)
    ref_votes = ref_topk(v2, ones, G, ETA)
    assert topk_gap(ref_votes.scores) > 1e-3
    out3 = gd_votes([(t(image), None), (t(text2), t(mask, "bool"))])
    check_against_ref(out3, ref_votes)
    assert target in out3.indices.numpy()[1]                      # pads changed the choice
    assert np.abs(out3.scores.numpy() - out1.scores.numpy()).max() > 0.5
    assert abs(float(out3.loss) - float(out1.loss)) > 1e-4
    out4 = gd_votes([(t(image), None), (t(text), t(mask, "bool"))])
    assert np.abs(out4.scores.numpy() - out3.scores.numpy()).max() > 0.5


def test_model_ground_excludes_cls_and_padding():
    """UNIMO2Model.ground drops the [CLS] of image and text and the text padding."""
    image, text, mask, G = make_data(1)
    rng = np.random.default_rng(5)
    cls_i, cls_t = rng.standard_normal((B, 1, D)), rng.standard_normal((B, 1, D))
    image_full = np.concatenate([cls_i, image], 1)
    text_full = np.concatenate([cls_t, text], 1)
    mask_full = np.concatenate([np.ones((B, 1), bool), mask], 1)
    holder = SimpleNamespace(grounding=make_gd(G))
    out = UNIMO2Model.ground(holder, t(image_full), t(text_full), t(mask_full, "bool"))
    ref = ref_topk(np.concatenate([image, text], 1),
                   np.concatenate([np.ones((B, M), bool), mask], 1), G, ETA)
    check_against_ref(out, ref)
    # changing both [CLS] features and padded text changes nothing
    image_full2, text_full2 = image_full.copy(), text_full.copy()
    image_full2[:, 0] += 5.0
    text_full2[:, 0] -= 5.0
    text_full2[:, 1:][~mask] = 7.0
    out2 = UNIMO2Model.ground(holder, t(image_full2), t(text_full2), t(mask_full, "bool"))
    np.testing.assert_allclose(out2.scores.numpy(), out.scores.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(out2.loss), float(out.loss), rtol=1e-6)
    # text-only and image-only calls
    out_t = UNIMO2Model.ground(holder, None, t(text_full), t(mask_full, "bool"))
    check_against_ref(out_t, ref_topk(text, mask, G, ETA))
    out_i = UNIMO2Model.ground(holder, t(image_full))
    check_against_ref(out_i, ref_topk(image, np.ones((B, M), bool), G, ETA))


# ------------------------------------------------------------------ temperature
@pytest.mark.parametrize("raw,clipped", [(1000.0, 50.0), (-3.0, 0.5), (0.01, 0.5)])
def test_temperature_is_clipped(raw, clipped):
    image, text, mask, G = make_data(0)
    inputs = [(t(image), None), (t(text), t(mask, "bool"))]
    gd_raw, gd_clip = make_gd(G, eta=raw), make_gd(G, eta=clipped)
    assert gd_raw.eta().item() == pytest.approx(clipped)
    a, b = gd_raw(inputs), gd_clip(inputs)
    np.testing.assert_allclose(a.scores.numpy(), b.scores.numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(a.indices.numpy(), b.indices.numpy())
    np.testing.assert_allclose(float(a.loss), float(b.loss), rtol=0, atol=0)
    # the reference with the clipped value; an unclipped eta would differ
    v = np.concatenate([image, text], 1)
    vmask = np.concatenate([np.ones((B, M), bool), mask], 1)
    np.testing.assert_allclose(a.scores.numpy(), ref_topk(v, vmask, G, clipped).scores, rtol=2e-5, atol=2e-6)
    if raw > 0:
        with np.errstate(invalid="ignore"):          # only the scores are needed here
            unclipped = ref_topk(v, vmask, G, raw).scores
        assert np.abs(unclipped - ref_topk(v, vmask, G, clipped).scores).max() > 1e-2


# ------------------------------------------------------------------ gradients
def _fd(f, x, eps=1e-6):
    """Central finite differences of scalar ``f`` w.r.t. array ``x``."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def test_stop_gradients_match_eq3(float64):
    image, text, mask, G = make_data(2)
    v0 = np.concatenate([image, text], 1)
    vmask = np.concatenate([np.ones((B, M), bool), mask], 1)
    base = ref_topk(v0, vmask, G, ETA)
    assert topk_gap(base.scores) > 1e-3
    idx = base.idx

    gd = make_gd(G, dtype="float64")
    img_t, txt_t = t(image, "float64", grad=True), t(text, "float64", grad=True)
    out = gd([(img_t, None), (txt_t, t(mask, "bool"))])
    np.testing.assert_allclose(float(out.loss), base.loss, rtol=1e-10)
    out.loss.backward()
    grad_v = np.concatenate([img_t.grad.numpy(), txt_t.grad.numpy()], 1)
    grad_G = gd.embedding.grad.numpy()
    grad_eta = float(gd.temperature.grad.numpy()[0])

    # With sg: only the non-stopped occurrences vary.
    fd_v = _fd(lambda v: ref_topk(v, vmask, G, ETA, v_sg=v0, idx=idx).loss, v0.copy())
    fd_G = _fd(lambda g: ref_topk(v0, vmask, g, ETA, G_sg=G, idx=idx).loss, G.copy())
    fd_eta = _fd(lambda e: ref_topk(v0, vmask, G, float(e[0]), idx=idx).loss, np.array([ETA]))[0]
    np.testing.assert_allclose(grad_v, fd_v, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad_G, fd_G, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad_eta, fd_eta, rtol=1e-5, atol=1e-9)
    # padded text positions get no gradient at all
    assert np.all(txt_t.grad.numpy()[~mask] == 0)
    assert np.abs(grad_v).max() > 1e-3 and np.abs(grad_G).max() > 1e-3

    # Without the stop-gradients the gradients would be different: the test can fail.
    fd_v_nosg = _fd(lambda v: ref_topk(v, vmask, G, ETA, idx=idx).loss, v0.copy())
    fd_G_nosg = _fd(lambda g: ref_topk(v0, vmask, g, ETA, idx=idx).loss, G.copy())
    assert np.abs(fd_v_nosg - grad_v).max() > 100 * 1e-5 * np.abs(grad_v).max()
    assert np.abs(fd_G_nosg - grad_G).max() > 100 * 1e-5 * np.abs(grad_G).max()


# ------------------------------------------------------------------ one-to-one (VQ)
def test_one_to_one_mode():
    image, text, mask, G = make_data(3)
    gd = make_gd(G, mode="one_to_one")
    img_t, txt_t = t(image, grad=True), t(text, grad=True)
    out = gd([(img_t, None), (txt_t, t(mask, "bool"))])
    v = np.concatenate([image, text], 1)
    vmask = np.concatenate([np.ones((B, M), bool), mask], 1)
    dist = ((v[:, :, None, :] - G[None, None]) ** 2).sum(-1)         # [B, L, C]
    srt = np.sort(dist, -1)
    assert (srt[..., 1] - srt[..., 0]).min() > 1e-4                    # unique nearest entries
    idx = dist.argmin(-1)
    np.testing.assert_array_equal(out.indices.numpy(), idx)
    np.testing.assert_array_equal(out.token_mask.numpy(), vmask)
    np.testing.assert_allclose(out.tokens.numpy(), G[idx], rtol=1e-6, atol=1e-7)
    assert out.scores is None
    # loss: alpha * ||g - sg(v)||^2 + beta * ||sg(g) - v||^2 averaged over real elements
    w = vmask[..., None].astype(np.float64)
    denom = vmask.sum() * D
    mse = (w * (G[idx] - v) ** 2).sum() / denom
    np.testing.assert_allclose(float(out.loss), (ALPHA + BETA) * mse, rtol=1e-5)
    # gradients: v only through the commitment term, G only through the dictionary term
    out.loss.backward()
    grad_v = np.concatenate([img_t.grad.numpy(), txt_t.grad.numpy()], 1)
    np.testing.assert_allclose(grad_v, BETA * 2 * w * (v - G[idx]) / denom, rtol=1e-4, atol=1e-7)
    grad_G = np.zeros_like(G)
    np.add.at(grad_G, idx[vmask], (ALPHA * 2 * (G[idx] - v) / denom)[vmask])
    np.testing.assert_allclose(gd.embedding.grad.numpy(), grad_G, rtol=1e-4, atol=1e-7)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        GroundedDictionary(dict_size=4, dim=2, top_k=5)
    with pytest.raises(ValueError):
        GroundedDictionary(dict_size=4, dim=2, top_k=2, mode="nearest")
