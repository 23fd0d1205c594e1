"""The CPU fast paths of vlcore.layers -- attention with the key-padding mask
folded into the QK^T matmul, PCG64 dropout, GEMV bias gradients -- against
Paddle's own ``F.scaled_dot_product_attention`` / ``F.dropout`` /
``F.linear`` and a NumPy reference."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from vlcore.layers.attention import _cpu_attention
from vlcore.layers.dropout import Dropout, dropout
from vlcore.layers.linear import Linear, add_bias


def _np_attention(q, k, v, allowed):
    """softmax(QK^T/sqrt(d) masked) V; q,k,v [B,S,H,D]; allowed [B,1|H,Sq,Sk]."""
    qt, kt, vt = (a.transpose(0, 2, 1, 3).astype(np.float64) for a in (q, k, v))
    s = qt @ kt.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ vt).transpose(0, 2, 1, 3)


@pytest.mark.parametrize("with_dense", [False, True])
def test_folded_mask_attention_matches_reference_and_sdpa_gradients(with_dense):
    rng = np.random.default_rng(0)
    b, sq, sk, h, d = 3, 5, 7, 2, 4
    q, k, v = (rng.normal(size=(b, s, h, d)).astype("float32") for s in (sq, sk, sk))
    key_mask = np.ones([b, sk], bool)
    key_mask[0, 4:] = False
    key_mask[2, 1:3] = False
    dense = np.tril(np.ones([sq, sk], bool), k=2)[None, None] if with_dense else None
    allowed = key_mask[:, None, None, :] & (dense if with_dense else True)

    tq, tk, tv = (paddle.to_tensor(a, stop_gradient=False) for a in (q, k, v))
    out = _cpu_attention(tq, tk, tv, paddle.to_tensor(key_mask),
                         paddle.to_tensor(dense) if with_dense else None, 0.0)
    np.testing.assert_allclose(out.numpy(), _np_attention(q, k, v, allowed), rtol=1e-5, atol=1e-5)

    # gradients equal those of Paddle's composition with an additive mask
    w = paddle.to_tensor(rng.normal(size=out.shape).astype("float32"))
    grads = paddle.grad((out * w).sum(), [tq, tk, tv])
    rq, rk, rv = (paddle.to_tensor(a, stop_gradient=False) for a in (q, k, v))
    ref = F.scaled_dot_product_attention(rq, rk, rv, attn_mask=paddle.to_tensor(allowed))
    ref_grads = paddle.grad((ref * w).sum(), [rq, rk, rv])
    for g, r in zip(grads, ref_grads):
        assert np.isfinite(g.numpy()).all()
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)


def test_padded_keys_get_no_weight_and_no_gradient():
    rng = np.random.default_rng(1)
    q, k, v = (paddle.to_tensor(rng.normal(size=(1, 3, 1, 4)).astype("float32"), stop_gradient=False)
               for _ in range(3))
    mask = paddle.to_tensor(np.array([[True, True, False]]))
    out = _cpu_attention(q, k, v, mask, None, 0.0)
    # changing the padded key/value does not change the output
    k2 = k.detach().numpy().copy()
    v2 = v.detach().numpy().copy()
    k2[0, 2] += 100.0
    v2[0, 2] -= 50.0
    out2 = _cpu_attention(q, paddle.to_tensor(k2), paddle.to_tensor(v2), mask, None, 0.0)
    np.testing.assert_allclose(out.numpy(), out2.numpy(), rtol=1e-6)
    gk, gv = paddle.grad(out.sum(), [k, v])
    # Paddle's CPU softmax clamps exp() near exp(-64) ~ 1e-28 even for -inf
    # scores, so "no weight" means below that, as with F.scaled_dot_product_attention.
    assert np.abs(gk.numpy()[0, 2]).max() < 1e-20 and np.abs(gv.numpy()[0, 2]).max() < 1e-20
    assert np.abs(gk.numpy()[0, :2]).max() > 1e-3


def test_fast_dropout_statistics_scale_and_gradient():
    paddle.seed(3)
    x = paddle.ones([64, 1024 + 16])  # above the fast-path threshold
    x.stop_gradient = False
    y = dropout(x, 0.1)
    vals = np.unique(y.numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.9], rtol=1e-6)
    kept = (y.numpy() > 0).mean()
    assert abs(kept - 0.9) < 0.005, kept  # 66k draws: sd 0.0012
    (g,) = paddle.grad((y * 2).sum(), [x])
    np.testing.assert_allclose(g.numpy(), 2 * y.numpy(), rtol=1e-6)  # d/dx = keep * scale


def test_fast_dropout_follows_paddle_seed_and_rng_state():
    x = paddle.ones([300, 300])
    paddle.seed(7)
    a = dropout(x, 0.3).numpy()
    state = paddle.get_rng_state()
    b = dropout(x, 0.3).numpy()
    paddle.set_rng_state(state)
    b_again = dropout(x, 0.3).numpy()
    paddle.seed(7)
    a_again = dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, a_again)
    np.testing.assert_array_equal(b, b_again)  # resume / recompute replay
    assert (a != b).any()
    assert abs((a > 0).mean() - 0.7) < 0.01


def test_dropout_layer_is_identity_in_eval_and_small_inputs_use_paddle():
    layer = Dropout(0.5)
    x = paddle.ones([4, 4])
    layer.eval()
    assert layer(x) is x
    layer.train()
    y = layer(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert dropout(x, 0.0) is x


@pytest.mark.parametrize("frozen", ["none", "bias", "weight+input"])
def test_linear_gemv_bias_gradient_equals_f_linear(frozen):
    rng = np.random.default_rng(4)
    paddle.seed(0)
    layer = Linear(6, 5)
    x = paddle.to_tensor(rng.normal(size=(3, 4, 6)).astype("float32"), stop_gradient=(frozen == "weight+input"))
    layer.bias.stop_gradient = frozen == "bias"
    layer.weight.stop_gradient = frozen == "weight+input"
    w = paddle.to_tensor(rng.normal(size=(3, 4, 5)).astype("float32"))
    out = layer(x)
    ref = F.linear(x, layer.weight, layer.bias)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
    wanted = [t for t in (x, layer.weight, layer.bias) if not t.stop_gradient]
    got = paddle.grad((out * w).sum(), wanted)
    exp = paddle.grad((ref * w).sum(), wanted)
    for g, e in zip(got, exp):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
    if frozen == "none":  # the bias gradient is the column sum of dy
        np.testing.assert_allclose(got[2].numpy(), w.numpy().reshape(-1, 5).sum(0), rtol=1e-5)


def test_add_bias_under_no_grad_is_plain_addition():
    y, b = paddle.ones([2, 3]), paddle.create_parameter([3], "float32")
    with paddle.no_grad():
        out = add_bias(y, b)
    assert out.stop_gradient
    np.testing.assert_allclose(out.numpy(), (y + b).numpy())


def test_recompute_replays_the_fast_dropout_masks():
    """Recompute re-runs each layer's forward in the backward pass; the PCG64
    masks must be the same both times (they are seeded from Paddle's RNG,
    whose state recompute restores), or the gradients would be wrong."""
    from vlcore.layers import AttentionPlan, TransformerStack
    x_np = np.random.default_rng(5).normal(size=(4, 128, 128)).astype("float32")
    grads = []
    for recompute in (False, True):
        paddle.seed(0)
        stack = TransformerStack(2, 128, 2, recompute=recompute, dropout=0.2, attn_dropout=0.2)
        stack.train()
        x = paddle.to_tensor(x_np, stop_gradient=False)
        paddle.seed(1)
        out = stack(x, AttentionPlan.full(128))
        assert x.size * 1 >= 1 << 16  # the activations take the PCG64 path
        (out * out).sum().backward()
        grads.append([x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in stack.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
