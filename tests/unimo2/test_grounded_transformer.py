"""Grounded Transformer (UNIMO-2 Section 3.1, Figure 2).

Sequence ``[image (M); grounded (K); text (N)]``: image tokens attend to image
and grounded tokens, grounded tokens to every real token, text tokens to
grounded and real text tokens. The block plan must equal full attention with
Figure 2's dense mask, and cross-modal information may only pass through the
grounded tokens.
"""
import numpy as np
import paddle
import pytest

from unimo2.grounded_transformer import FusionOutput, GroundedTransformer, grounded_attention_plan
from vlcore.layers import AttentionPlan

D, HEADS = 16, 2


def make_gt(num_layers=2, attention="grounded", seed=0):
    paddle.seed(seed)
    # init_std well above BERT's 0.02 so that attention is far from uniform
    # and every mixing path has a visible effect on the outputs.
    gt = GroundedTransformer(hidden_size=D, num_layers=num_layers, num_heads=HEADS, dropout=0.1,
                             attn_dropout=0.1, attention=attention, init_std=0.5)
    gt.eval()
    return gt


def rand(shape, seed):
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def bmask(rows):
    return paddle.to_tensor(np.array(rows, dtype=bool))


def cat(out: FusionOutput):
    return paddle.concat([p for p in out if p is not None], axis=1).numpy()


# ------------------------------------------------------------------ Figure 2 mask
def test_dense_mask_is_figure_2():
    # order: i0 i1 | g0 g1 | t0 t1 t2 ; item 0 all real, item 1 has g1 and t2 padded
    plan = grounded_attention_plan(2, 2, 3, 2, grounded_mask=bmask([[1, 1], [1, 0]]),
                                   text_mask=bmask([[1, 1, 1], [1, 1, 0]]))
    item0 = [
        [1, 1, 1, 1, 0, 0, 0],   # image rows: image + grounded
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1],   # grounded rows: everything real
        [1, 1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1],   # text rows: grounded + text
        [0, 0, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1, 1],
    ]
    item1 = [
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 1, 1, 0],
        [1, 1, 1, 0, 1, 1, 0],
        [0, 0, 1, 0, 1, 1, 0],
        [0, 0, 1, 0, 1, 1, 0],
        [0, 0, 1, 0, 1, 1, 0],
    ]
    expected = np.array([item0, item1], dtype=bool)[:, None]
    np.testing.assert_array_equal(plan.dense_mask().numpy(), expected)
    # without any padding, one [1, 1, L, L] mask with the same block pattern
    plan = grounded_attention_plan(2, 2, 3, 1)
    np.testing.assert_array_equal(plan.dense_mask().numpy(), np.array(item0, dtype=bool)[None, None])
    # full attention ("w/o G.T.") sees every real token from every row
    full = grounded_attention_plan(2, 2, 3, 2, bmask([[1, 1], [1, 0]]), bmask([[1, 1, 1], [1, 1, 0]]),
                                   attention="full")
    row0 = np.ones(7, bool)                                   # item 0: every key real
    row1 = np.array([1, 1, 1, 0, 1, 1, 0], bool)                # item 1: g1, t2 padded
    expected_full = np.stack([np.tile(row0, (7, 1)), np.tile(row1, (7, 1))])[:, None]
    np.testing.assert_array_equal(full.dense_mask().numpy(), expected_full)


def test_official_padding_mask_is_the_official_outer_product():
    """padded_queries_see_all: the official bias (q_mask^T k_mask - 1) * 1e4
    (NLP/UNIMO-2 unimo_grounded.py ``_gen_input``) puts -1e4 on every key of
    a padded text row, i.e. that row sees every key (the constant cancels in
    softmax); real rows keep Figure 2's pattern."""
    gmask, tmask = bmask([[1, 1], [1, 1]]), bmask([[1, 1, 1], [1, 1, 0]])
    plan = grounded_attention_plan(2, 2, 3, 2, grounded_mask=gmask, text_mask=tmask)
    qmask = paddle.concat([paddle.ones([2, 4], "bool"), tmask], axis=1)
    official = plan.padded_queries_see_all(qmask)
    dense, new = plan.dense_mask().numpy(), official.dense_mask().numpy()
    np.testing.assert_array_equal(new[0], dense[0])          # no padding: unchanged
    np.testing.assert_array_equal(new[1, 0, :6], dense[1, 0, :6])  # real rows unchanged
    assert new[1, 0, 6].all() and not dense[1, 0, 6].all()   # the padded row sees all 7 keys
    assert official.blocks[0] is plan.blocks[0] and official.blocks[1] is plan.blocks[1]
    # The layer computes what the masked reference computes with that mask.
    gt = make_gt(num_layers=2)
    x = rand([2, 7, D], 4)
    with paddle.no_grad():
        got = gt.encoder(x, official).numpy()
        ref = gt.encoder(x, AttentionPlan.masked(official.dense_mask())).numpy()
        old = gt.encoder(x, plan).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[:, :6], old[:, :6], rtol=1e-5, atol=1e-5)  # only the padded row moves
    assert np.abs(got[1, 6] - old[1, 6]).max() > 0.01


def test_plan_arguments():
    with pytest.raises(ValueError):
        grounded_attention_plan(2, 2, 3, 1, attention="sparse")
    with pytest.raises(ValueError):
        grounded_attention_plan(2, 0, 3, 1)
    assert len(grounded_attention_plan(2, 2, 3, 1).blocks) == 3
    # one modality missing: the grounded rule is full attention
    assert len(grounded_attention_plan(0, 2, 3, 1).blocks) == 1
    assert len(grounded_attention_plan(2, 2, 0, 1).blocks) == 1


# ------------------------------------------------------------------ block plan == masked reference
def test_block_plan_equals_masked_full_attention():
    b, m, k, n = 2, 3, 4, 5
    gt = make_gt(num_layers=2)
    image, grounded, text = rand([b, m, D], 1), rand([b, k, D], 2), rand([b, n, D], 3)
    gmask = bmask([[1, 1, 1, 1], [1, 0, 1, 0]])            # as one_to_one mode produces
    tmask = bmask([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with paddle.no_grad():
        out = gt(image, grounded, text, grounded_mask=gmask, text_mask=tmask)
        plan = grounded_attention_plan(m, k, n, b, grounded_mask=gmask, text_mask=tmask)
        x = paddle.concat([image, gt.dropout(gt.grounded_norm(grounded)), text], axis=1)
        ref = gt.encoder(x, AttentionPlan.masked(plan.dense_mask())).numpy()
        full = gt.encoder(x, AttentionPlan.full(m + k + n)).numpy()
    assert out.image.shape == [b, m, D] and out.grounded.shape == [b, k, D] and out.text.shape == [b, n, D]
    np.testing.assert_allclose(cat(out), ref, rtol=1e-5, atol=1e-5)
    # the mask matters (the comparison could fail)
    assert np.abs(full - ref).max() > 0.1


# ------------------------------------------------------------------ information flow
def test_modalities_only_meet_through_grounded_tokens():
    b, k = 2, 3
    grounded = rand([b, k, D], 10)
    img_a, img_b = rand([b, 4, D], 11), rand([b, 6, D], 12)
    txt_a, txt_b = rand([b, 5, D], 13), rand([b, 8, D], 14)
    mask_a = bmask([[1] * 5, [1, 1, 1, 0, 0]])
    mask_b = bmask([[1] * 8, [1] * 6 + [0, 0]])

    def run(gt, img, txt, mask):
        with paddle.no_grad():
            return gt(img, grounded, txt, text_mask=mask)

    # one layer: image outputs are a function of (image, grounded) only, text of (grounded, text)
    gt = make_gt(num_layers=1)
    a, b_txt, b_img = run(gt, img_a, txt_a, mask_a), run(gt, img_a, txt_b, mask_b), run(gt, img_b, txt_a, mask_a)
    np.testing.assert_allclose(a.image.numpy(), b_txt.image.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.text.numpy(), b_img.text.numpy(), rtol=1e-5, atol=1e-6)
    # the grounded tokens see both modalities
    assert np.abs(a.grounded.numpy() - b_txt.grounded.numpy()).max() > 0.1
    assert np.abs(a.grounded.numpy() - b_img.grounded.numpy()).max() > 0.1

    # with full attention ("w/o G.T.") the modalities see each other directly
    gt_full = make_gt(num_layers=1, attention="full")
    a, b_txt, b_img = (run(gt_full, img_a, txt_a, mask_a), run(gt_full, img_a, txt_b, mask_b),
                       run(gt_full, img_b, txt_a, mask_a))
    assert np.abs(a.image.numpy() - b_txt.image.numpy()).max() > 0.1
    assert np.abs(a.text.numpy() - b_img.text.numpy()).max() > 0.1

    # with two grounded layers, information crosses via the grounded tokens
    gt2 = make_gt(num_layers=2)
    a, b_txt = run(gt2, img_a, txt_a, mask_a), run(gt2, img_a, txt_b, mask_b)
    assert np.abs(a.image.numpy() - b_txt.image.numpy()).max() > 0.1


def test_extra_text_padding_changes_nothing():
    b, m, k, n, extra = 2, 3, 4, 5, 4
    gt = make_gt(num_layers=2)
    image, grounded, text = rand([b, m, D], 20), rand([b, k, D], 21), rand([b, n, D], 22)
    gmask = bmask([[1, 1, 1, 1], [1, 1, 0, 0]])
    tmask = np.array([[1] * 5, [1, 1, 1, 0, 0]], dtype=bool)
    text_long = paddle.concat([text, rand([b, extra, D], 23) * 10], axis=1)
    tmask_long = np.concatenate([tmask, np.zeros([b, extra], bool)], axis=1)
    with paddle.no_grad():
        short = gt(image, grounded, text, gmask, paddle.to_tensor(tmask))
        long = gt(image, grounded, text_long, gmask, paddle.to_tensor(tmask_long))
    np.testing.assert_allclose(long.image.numpy(), short.image.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(long.grounded.numpy(), short.grounded.numpy(), rtol=1e-5, atol=1e-5)
    real = tmask
    np.testing.assert_allclose(long.text.numpy()[:, :n][real], short.text.numpy()[real], rtol=1e-5, atol=1e-5)


def test_masked_grounded_tokens_are_invisible():
    """Grounded tokens with mask False (one_to_one mode on padding) are never
    attended to: their content does not reach any other position."""
    b, m, k, n = 2, 3, 4, 5
    gt = make_gt(num_layers=2)
    image, grounded, text = rand([b, m, D], 40), rand([b, k, D], 41), rand([b, n, D], 42)
    gmask = np.array([[1, 1, 1, 1], [1, 0, 1, 0]], dtype=bool)
    tmask = bmask([[1] * 5, [1, 1, 1, 1, 0]])
    grounded2 = paddle.where(paddle.to_tensor(gmask).unsqueeze(-1), grounded, rand([b, k, D], 43) * 5)
    with paddle.no_grad():
        a = gt(image, grounded, text, paddle.to_tensor(gmask), tmask)
        c = gt(image, grounded2, text, paddle.to_tensor(gmask), tmask)
        unmasked = gt(image, grounded2, text, None, tmask)
    np.testing.assert_allclose(c.image.numpy(), a.image.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c.text.numpy(), a.text.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c.grounded.numpy()[gmask], a.grounded.numpy()[gmask], rtol=1e-5, atol=1e-5)
    # without the mask the altered tokens are seen
    assert np.abs(unmasked.image.numpy() - a.image.numpy()).max() > 0.1


# ------------------------------------------------------------------ single modality
def test_image_only_and_text_only():
    b, m, k, n = 2, 3, 4, 5
    gt = make_gt(num_layers=2)
    image, grounded, text = rand([b, m, D], 30), rand([b, k, D], 31), rand([b, n, D], 32)
    tmask = bmask([[1] * 5, [1, 1, 0, 0, 0]])
    with paddle.no_grad():
        img_only = gt(image=image, grounded=grounded)
        txt_only = gt(grounded=grounded, text=text, text_mask=tmask)
        # text-only with the padded positions altered: real outputs unchanged
        text2 = paddle.where(tmask.unsqueeze(-1), text, paddle.full_like(text, 3.0))
        txt_only2 = gt(grounded=grounded, text=text2, text_mask=tmask)
    assert img_only.text is None and img_only.image.shape == [b, m, D] and img_only.grounded.shape == [b, k, D]
    assert txt_only.image is None and txt_only.text.shape == [b, n, D] and txt_only.grounded.shape == [b, k, D]
    assert np.isfinite(cat(img_only)).all() and np.isfinite(cat(txt_only)).all()
    real = tmask.numpy()
    np.testing.assert_allclose(txt_only2.text.numpy()[real], txt_only.text.numpy()[real], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(txt_only2.grounded.numpy(), txt_only.grounded.numpy(), rtol=1e-5, atol=1e-5)
    # image-only equals plain attention over [image; grounded]
    with paddle.no_grad():
        x = paddle.concat([image, gt.grounded_norm(grounded)], axis=1)
        ref = gt.encoder(x, AttentionPlan.full(m + k)).numpy()
    np.testing.assert_allclose(cat(img_only), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        gt()
