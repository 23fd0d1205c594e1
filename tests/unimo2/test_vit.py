"""ViT position-embedding interpolation (Dosovitskiy et al.; UNIMO-2 Section 4:
224 px pre-training, 384 px fine-tuning with interpolated positions)."""
import numpy as np
import paddle
import pytest

from unimo2.vit import VisionTransformer, resize_pos_embed

A = -0.75  # cubic convolution coefficient of PyTorch/Paddle bicubic


def _cubic_weight(x):
    x = abs(x)
    if x <= 1:
        return (A + 2) * x ** 3 - (A + 3) * x ** 2 + 1
    if x < 2:
        return A * x ** 3 - 5 * A * x ** 2 + 8 * A * x - 4 * A
    return 0.0


def _bicubic_matrix(n_in, n_out, align_corners=False):
    """[n_out, n_in] linear map of 1-D bicubic resampling: half-pixel centres
    (align_corners=False), source index not clamped, tap indices clamped."""
    W = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = o * (n_in - 1) / (n_out - 1) if align_corners else (o + 0.5) * scale - 0.5
        i0 = int(np.floor(src))
        frac = src - i0
        for tap in range(-1, 3):
            idx = min(max(i0 + tap, 0), n_in - 1)
            W[o, idx] += _cubic_weight(tap - frac)
    return W


def ref_resize(pos, new, align_corners=False):
    """``pos``: [1, 1 + g*g, D] numpy -> [1, 1 + new*new, D] (separable bicubic)."""
    cls, grid = pos[:, :1], pos[0, 1:]
    g = int(round(np.sqrt(grid.shape[0])))
    grid = grid.reshape(g, g, -1)
    W = _bicubic_matrix(g, new, align_corners)
    out = np.einsum("oi,ijd->ojd", W, grid)        # rows
    out = np.einsum("pj,ojd->opd", W, out)         # columns
    return np.concatenate([cls, out.reshape(1, new * new, -1)], axis=1)


def test_bicubic_weights_sum_to_one():
    for n_in, n_out in [(4, 6), (6, 4), (14, 24)]:
        np.testing.assert_allclose(_bicubic_matrix(n_in, n_out).sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("old,new", [(4, 6), (6, 4), (3, 5)])
def test_resize_pos_embed_matches_bicubic_reference(old, new):
    rng = np.random.default_rng(old * 10 + new)
    pos = rng.standard_normal((1, 1 + old * old, 5)).astype("float32")
    out = resize_pos_embed(paddle.to_tensor(pos), new).numpy()
    assert out.shape == (1, 1 + new * new, 5)
    np.testing.assert_allclose(out, ref_resize(pos.astype(np.float64), new), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[:, 0], pos[:, 0])            # [CLS] untouched
    # the corner-aligned convention would be clearly different
    assert np.abs(out - ref_resize(pos.astype(np.float64), new, align_corners=True)).max() > 1e-2


def test_resize_pos_embed_identity_and_errors():
    pos = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 17, 4)).astype("float32"))
    np.testing.assert_array_equal(resize_pos_embed(pos, 4).numpy(), pos.numpy())
    with pytest.raises(ValueError):
        resize_pos_embed(paddle.zeros([1, 1 + 6, 4]), 3)          # 6 entries: not a square grid


def test_resize_keeps_gradient():
    pos = paddle.to_tensor(np.random.default_rng(1).standard_normal((1, 17, 3)).astype("float32"))
    pos.stop_gradient = False
    resize_pos_embed(pos, 6).sum().backward()
    grad = pos.grad.numpy()
    np.testing.assert_allclose(grad[0, 0], 1.0)                  # [CLS] copied once
    # each source cell receives the column sums of the bicubic map (outer product)
    W = _bicubic_matrix(4, 6)
    expected = np.outer(W.sum(0), W.sum(0)).reshape(-1)
    np.testing.assert_allclose(grad[0, 1:], np.repeat(expected[:, None], 3, 1), rtol=1e-5, atol=1e-5)


def _vit(image_size, patch_padding=0, seed=0):
    paddle.seed(seed)
    vit = VisionTransformer(image_size=image_size, patch_size=8, patch_padding=patch_padding, hidden_size=16,
                            num_layers=1, num_heads=2, init_std=0.5)
    vit.eval()
    return vit


def test_vit_interpolates_positions_on_the_fly():
    small = _vit(32)
    assert small.grid == 4 and small.pos_embed.shape == [1, 17, 16]
    pixels = paddle.to_tensor(np.random.default_rng(2).standard_normal((2, 3, 48, 48)).astype("float32"))
    with paddle.no_grad():
        out = small(pixels)
    assert out.shape == [2, 1 + 36, 16]
    # the same weights with pos_embed resized once, run at their native 48 px
    big = _vit(48, seed=1)
    state = {k: v for k, v in small.state_dict().items()}
    state["pos_embed"] = resize_pos_embed(small.pos_embed, 6).detach()
    big.set_state_dict(state)
    with paddle.no_grad():
        ref = big(pixels)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    # the interpolated positions matter (the comparison could fail)
    state["pos_embed"] = paddle.concat([small.pos_embed[:, :1], paddle.zeros([1, 36, 16])], axis=1)
    big.set_state_dict(state)
    with paddle.no_grad():
        assert np.abs(big(pixels).numpy() - out.numpy()).max() > 1e-2
    with pytest.raises(ValueError):
        small(paddle.zeros([1, 3, 32, 48]))


def test_patch_padding_keeps_grid():
    for size in (32, 48):
        vit = _vit(size, patch_padding=(8 - 1) // 2)
        assert vit.grid == size // 8
        with paddle.no_grad():
            out = vit(paddle.zeros([1, 3, size, size]))
        assert out.shape == [1, 1 + (size // 8) ** 2, 16]
    # on-the-fly interpolation with padding: 32 px model at 48 px
    vit = _vit(32, patch_padding=3)
    with paddle.no_grad():
        assert vit(paddle.zeros([1, 3, 48, 48])).shape == [1, 37, 16]
    # ViT-B/16 at 224 and 384 px with the official (P-1)//2 padding
    vit = VisionTransformer(image_size=224, patch_size=16, patch_padding=7, hidden_size=8, num_layers=1, num_heads=1)
    assert vit.grid == 14 and vit._grid(384) == 24
