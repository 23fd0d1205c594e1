"""Pre-training losses (single process) against NumPy references."""
import numpy as np
import paddle

from unimo2.objectives import choose_negatives, contrastive_loss, mlm_loss, nt_xent_loss
from vlcore.layers.heads import MLMHead


def _normalise(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def ref_nt_xent(z, tau):
    """SimCLR NT-Xent: rows [view1; view2]; row i's positive is the other view
    of the same image, the softmax runs over all 2B-1 other rows."""
    n2 = z.shape[0]
    n = n2 // 2
    sim = z @ z.T / tau
    sim[np.arange(n2), np.arange(n2)] = -np.inf
    pos = (np.arange(n2) + n) % n2
    logp = _log_softmax(sim)
    return -logp[np.arange(n2), pos].mean(), (sim.argmax(1) == pos).mean()


def ref_info_nce(a, b, tau, groups=None):
    """Symmetric InfoNCE; with ``groups``, other items of the row's group are
    not negatives (left out of the softmax)."""
    n = a.shape[0]
    out = []
    for x, y in [(a, b), (b, a)]:
        logits = x @ y.T / tau
        if groups is not None:
            g = np.asarray(groups)
            excluded = (g[:, None] == g[None, :]) & ~np.eye(n, dtype=bool)
            logits = np.where(excluded, -np.inf, logits)
        out.append(-_log_softmax(logits)[np.arange(n), np.arange(n)].mean())
    return (out[0] + out[1]) / 2


def test_nt_xent_matches_simclr():
    rng = np.random.default_rng(0)
    z = _normalise(rng.standard_normal((6, 8)))            # B = 3 images, 2 views each
    for tau in (0.1, 0.5):
        loss, acc = nt_xent_loss(paddle.to_tensor(z.astype("float32")), tau)
        ref_loss, ref_acc = ref_nt_xent(z, tau)
        np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
        np.testing.assert_allclose(float(acc), ref_acc)
    # views that agree give a small loss and full accuracy
    base = _normalise(rng.standard_normal((3, 8)))
    z2 = _normalise(np.concatenate([base, base + 0.01 * rng.standard_normal((3, 8))]))
    loss, acc = nt_xent_loss(paddle.to_tensor(z2.astype("float32")), 0.1)
    np.testing.assert_allclose(float(loss), ref_nt_xent(z2, 0.1)[0], rtol=1e-4)
    assert float(acc) == 1.0


def test_contrastive_loss_matches_symmetric_info_nce():
    rng = np.random.default_rng(1)
    a = _normalise(rng.standard_normal((6, 8)))
    b = _normalise(rng.standard_normal((6, 8)))
    pa, pb = paddle.to_tensor(a.astype("float32")), paddle.to_tensor(b.astype("float32"))
    loss, acc = contrastive_loss(pa, pb, 0.2)
    np.testing.assert_allclose(float(loss), ref_info_nce(a, b, 0.2), rtol=1e-5)
    np.testing.assert_allclose(float(acc), ((a @ b.T).argmax(1) == np.arange(6)).mean())
    # a learnable temperature tensor of shape [1] works the same
    loss_t, _ = contrastive_loss(pa, pb, paddle.to_tensor([0.2], dtype="float32"))
    np.testing.assert_allclose(float(loss_t), float(loss), rtol=1e-6)


def test_contrastive_loss_groups_exclude_same_group_negatives():
    rng = np.random.default_rng(2)
    groups = [0, 0, 1, 2, 2, 3]          # e.g. two captions of image 0 and of image 2
    a = _normalise(rng.standard_normal((6, 8)))
    b = _normalise(rng.standard_normal((6, 8)))
    b[1] = _normalise(a[0] + 0.05 * rng.standard_normal(8))   # a same-group "negative" very close to a[0]
    pa, pb = paddle.to_tensor(a.astype("float32")), paddle.to_tensor(b.astype("float32"))
    loss, _ = contrastive_loss(pa, pb, 0.1, paddle.to_tensor(np.array(groups, dtype="int64")))
    ref = ref_info_nce(a, b, 0.1, groups)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    # the groups rule matters here
    assert abs(ref - ref_info_nce(a, b, 0.1)) > 1e-2
    # gradient flows to both sides
    pa.stop_gradient = pb.stop_gradient = False
    loss, _ = contrastive_loss(pa, pb, 0.1, paddle.to_tensor(np.array(groups, dtype="int64")))
    loss.backward()
    assert np.isfinite(pa.grad.numpy()).all() and np.abs(pb.grad.numpy()).max() > 0


def test_choose_negatives_other_group_and_hardest():
    groups = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    for seed in range(20):
        out = choose_negatives(groups, np.random.default_rng(seed))
        assert (groups[out] != groups).all()
    # random mode reaches more than one partner
    picks = {int(choose_negatives(groups, np.random.default_rng(s))[0]) for s in range(30)}
    assert len(picks) > 1
    # hardest: argmax of similarity over other groups, even when a same-group item is more similar
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((8, 8))
    sim[groups[:, None] == groups[None, :]] = 100.0
    expected = np.where(groups[:, None] != groups[None, :], sim, -np.inf).argmax(1)
    np.testing.assert_array_equal(choose_negatives(groups, np.random.default_rng(1), sim), expected)


def test_choose_negatives_single_group_fallback():
    groups = np.array([5, 5, 5, 5])
    for seed in range(10):
        out = choose_negatives(groups, np.random.default_rng(seed))
        assert (out != np.arange(4)).all() and ((out >= 0) & (out < 4)).all()
    sim = np.random.default_rng(3).standard_normal((4, 4))
    sim[np.arange(4), np.arange(4)] = 100.0
    expected = np.where(np.eye(4, dtype=bool), -np.inf, sim).argmax(1)
    np.testing.assert_array_equal(choose_negatives(groups, np.random.default_rng(0), sim), expected)
    np.testing.assert_array_equal(choose_negatives(np.array([7]), np.random.default_rng(0)), [0])


def test_mlm_loss():
    rng = np.random.default_rng(4)
    # no masked position in the batch, through the same path as the model
    # (gather of the masked positions, tied-embedding MLM head): zero loss,
    # no NaN, and backward runs and gives zero gradients
    paddle.seed(0)
    embed = paddle.nn.Embedding(11, 8)
    head = MLMHead(8, embed.weight)
    text_hidden = paddle.to_tensor(rng.standard_normal((2, 5, 8)).astype("float32"))
    text_hidden.stop_gradient = False
    hidden = paddle.gather(text_hidden.reshape([-1, 8]), paddle.zeros([0], dtype="int64"))
    loss, acc = mlm_loss(head(hidden), paddle.zeros([0], dtype="int64"))
    assert float(loss) == 0.0 and float(acc) == 0.0
    loss.backward()
    for grad in (text_hidden.grad, embed.weight.grad):
        assert grad is None or (grad.numpy() == 0).all()
    # a few positions: mean cross-entropy and accuracy
    logits = rng.standard_normal((5, 11))
    labels = rng.integers(0, 11, 5)
    labels[0] = logits[0].argmax()
    loss, acc = mlm_loss(paddle.to_tensor(logits.astype("float32")), paddle.to_tensor(labels))
    np.testing.assert_allclose(float(loss), -_log_softmax(logits)[np.arange(5), labels].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(acc), (logits.argmax(1) == labels).mean())
