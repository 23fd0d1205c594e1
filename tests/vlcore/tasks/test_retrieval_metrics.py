"""Tests for vlcore.tasks.metrics.retrieval_recall on hand-computed score matrices."""
import numpy as np
import pytest

from vlcore.tasks.metrics import retrieval_recall

# 3 images x 6 captions, two captions per image.
CAPTION_IMAGE = [0, 0, 1, 1, 2, 2]
SCORES = np.array([
    #  c0    c1    c2    c3    c4    c5
    [0.10, 0.90, 0.50, 0.20, 0.30, 0.00],   # img0
    [0.80, 0.40, 0.30, 0.10, 0.70, 0.60],   # img1
    [0.20, 0.05, 0.30, 0.90, 0.25, 0.05],   # img2
])
# Text retrieval (row-wise; an image is found when ANY of its captions is in its top K):
#   img0: own c0=.10, c1=.90 -> best .90, no other caption >= .90          -> rank 0
#         (c0 alone would be rank 4: the "any caption" rule matters)
#   img1: own c2=.30, c3=.10 -> best .30; others .80 .40 .70 .60 all >= .30 -> rank 4
#   img2: own c4=.25, c5=.05 -> best .25; others >= .25: c2=.30, c3=.90       -> rank 2
TR_RANKS = [0, 4, 2]
# Image retrieval (column-wise; rank of the caption's image, ties count against it):
#   c0 (img0 .10): .80 .20 above     -> 2      c1 (img0 .90): none     -> 0
#   c2 (img1 .30): .50 above, img2 ties at .30 -> 2
#   c3 (img1 .10): .20 .90           -> 2      c4 (img2 .25): .30 .70  -> 2
#   c5 (img2 .05): .60 above, .00 below -> 1
IR_RANKS = [2, 0, 2, 2, 2, 1]


def recall(ranks, k):
    return 100.0 * np.mean(np.asarray(ranks) < k)


def test_hand_computed_small_case():
    out = retrieval_recall(SCORES, CAPTION_IMAGE, ks=(1, 2, 3))
    assert out["tr_r1"] == pytest.approx(100 / 3)
    assert out["tr_r2"] == pytest.approx(100 / 3)
    assert out["tr_r3"] == pytest.approx(200 / 3)
    assert out["ir_r1"] == pytest.approx(100 / 6)
    assert out["ir_r2"] == pytest.approx(200 / 6)   # 300/6 if the c2 tie were counted for it
    assert out["ir_r3"] == pytest.approx(100.0)
    assert out["rsum"] == pytest.approx(100 / 3 + 100 / 3 + 200 / 3 + 100 / 6 + 200 / 6 + 100)
    for k in (1, 2, 3):  # the tables above, read through the definition
        assert out[f"tr_r{k}"] == pytest.approx(recall(TR_RANKS, k))
        assert out[f"ir_r{k}"] == pytest.approx(recall(IR_RANKS, k))
    assert set(out) == {"tr_r1", "tr_r2", "tr_r3", "ir_r1", "ir_r2", "ir_r3", "rsum"}


def test_default_ks_on_12x12():
    """scores[i, j] = (j - i) mod 12 for j != i and 11.5 - i on the diagonal:
    row i has exactly i other captions above its own (values 12-i .. 11) and,
    since every column also holds the values 1..11 once off the diagonal,
    caption j has exactly j other images above its own. So both directions
    have ranks 0..11: R@1 = 1/12, R@5 = 5/12, R@10 = 10/12."""
    n = 12
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    scores = ((j - i) % n).astype(float)
    scores[np.arange(n), np.arange(n)] = 11.5 - np.arange(n)
    out = retrieval_recall(scores, np.arange(n))
    for k in (1, 5, 10):
        assert out[f"tr_r{k}"] == pytest.approx(100 * k / 12)
        assert out[f"ir_r{k}"] == pytest.approx(100 * k / 12)
    assert out["rsum"] == pytest.approx(2 * 100 * (1 + 5 + 10) / 12)


def test_ties_count_against_the_correct_item():
    # All scores equal: nothing is found at K=1 in either direction, all at K=2.
    out = retrieval_recall(np.full((2, 2), 0.5), [0, 1], ks=(1, 2))
    assert out["tr_r1"] == 0.0 and out["ir_r1"] == 0.0
    assert out["tr_r2"] == 100.0 and out["ir_r2"] == 100.0
    # A tie between two captions of the same image costs nothing ...
    out = retrieval_recall(np.array([[0.7, 0.7, 0.1], [0.0, 0.2, 0.9]]), [0, 0, 1], ks=(1,))
    assert out["tr_r1"] == 100.0
    # ... a tie with a caption of another image puts the image at rank 1.
    out = retrieval_recall(np.array([[0.7, 0.1, 0.7], [0.0, 0.2, 0.9]]), [0, 0, 1], ks=(1,))
    assert out["tr_r1"] == 50.0   # img0's best (.7) ties with img1's caption c2


def test_perfect_and_worst():
    n = 5
    out = retrieval_recall(np.eye(n), np.arange(n), ks=(1,))
    assert out["tr_r1"] == out["ir_r1"] == 100.0 and out["rsum"] == 200.0
    out = retrieval_recall(1 - np.eye(n), np.arange(n), ks=(1, 4, 5))
    assert out["tr_r1"] == out["ir_r1"] == 0.0
    assert out["tr_r4"] == out["ir_r4"] == 0.0  # own item last of 5
    assert out["tr_r5"] == out["ir_r5"] == 100.0


def test_invariant_to_caption_and_image_order():
    rng = np.random.default_rng(0)
    n_img, per = 7, 3
    cap_img = np.repeat(np.arange(n_img), per)
    scores = np.round(rng.random((n_img, n_img * per)), 1)  # coarse: many ties
    ref = retrieval_recall(scores, cap_img)
    pc = rng.permutation(len(cap_img))
    pi = rng.permutation(n_img)
    inv = np.argsort(pi)  # new index of old image
    out = retrieval_recall(scores[pi][:, pc], inv[cap_img[pc]])
    for k, v in ref.items():
        assert out[k] == pytest.approx(v), k


def test_shape_error():
    with pytest.raises(ValueError, match="caption_image"):
        retrieval_recall(SCORES, [0, 0, 1, 1, 2])
    with pytest.raises(ValueError):
        retrieval_recall(SCORES, np.zeros((6, 1), int))
