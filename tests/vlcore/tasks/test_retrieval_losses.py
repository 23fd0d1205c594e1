"""Retrieval fine-tuning losses against NumPy references, negative sampling,
hard-negative selection, and the evaluation protocol (two-stage, COCO 1K
folds) on hand-made score matrices."""
import numpy as np
import paddle
import pytest

from vlcore.data.retrieval import layout_rows, sample_pair
from vlcore.tasks import retrieval_eval
from vlcore.tasks.metrics import retrieval_recall, topk_accuracy
from vlcore.tasks.retrieval_losses import (
    RetrievalLossConfig,
    circle_loss,
    hardest_triplet_loss,
    keep_hardest,
    retrieval_loss,
)


def np_circle(sp, sn, m, s):
    """The official circle_loss, written out in float64."""
    ap = np.maximum(1 + m - sp, 0)
    an = np.maximum(sn + m, 0)
    loss_p = np.exp(-s * ap * (sp - (1 - m))).sum(1)
    loss_n = np.exp(s * an * (sn - m)).sum(1)
    return np.log(1 + loss_n * loss_p).mean()


def test_circle_loss_value_and_gradient_match_numpy():
    rng = np.random.default_rng(0)
    sp, sn = rng.normal(size=[6, 1]), rng.normal(size=[6, 10]) * 2
    for m, s in [(0.2, 1.0), (0.25, 16.0)]:
        tp = paddle.to_tensor(sp, dtype="float64", stop_gradient=False)
        tn = paddle.to_tensor(sn, dtype="float64", stop_gradient=False)
        loss = circle_loss(tp, tn, m, s)
        np.testing.assert_allclose(float(loss), np_circle(sp, sn, m, s), rtol=1e-10)
        loss.backward()
        # The weights a_p, a_n are constants (stop_gradient in the official
        # code): d/d s_n = (1/B) * sigmoid-like factor * s * a_n * exp(.) ...
        ap, an = np.maximum(1 + m - sp, 0), np.maximum(sn + m, 0)
        lp = np.exp(-s * ap * (sp - (1 - m)))
        ln = np.exp(s * an * (sn - m))
        z = ln.sum(1, keepdims=True) * lp.sum(1, keepdims=True)
        common = z / (1 + z) / len(sp)
        np.testing.assert_allclose(tn.grad.numpy(), common * (s * an * ln) / ln.sum(1, keepdims=True), rtol=1e-8)
        np.testing.assert_allclose(tp.grad.numpy(), common * (-s * ap * lp) / lp.sum(1, keepdims=True), rtol=1e-8)


def test_hardest_triplet_matches_unicoder_eq_1_to_3():
    rng = np.random.default_rng(1)
    pos, img_neg, cap_neg = rng.normal(size=5), rng.normal(size=[5, 3]), rng.normal(size=[5, 3])
    gamma, l1, l2 = 0.5, 1.0, 1.5
    ref = 0.0
    for b in range(5):   # Eq. 1 restricted to the hardest sampled negative, Eq. 3 weights
        ref += l1 * max(0.0, gamma - pos[b] + max(cap_neg[b])) + l2 * max(0.0, gamma - pos[b] + max(img_neg[b]))
    t = lambda x: paddle.to_tensor(x, dtype="float64")  # noqa: E731
    got = hardest_triplet_loss(t(pos), t(img_neg), t(cap_neg), gamma, l1, l2)
    np.testing.assert_allclose(float(got), ref / 5, rtol=1e-12)


def test_retrieval_loss_splits_columns_in_reader_order():
    """Column 0 positive, then image negatives, then caption negatives: the
    triplet loss must use the image block for lambda_2 and the caption block
    for lambda_1."""
    cfg = RetrievalLossConfig(kind="triplet_hardest", image_negatives=2, caption_negatives=3,
                              lambda_i2t=1.0, lambda_t2i=0.0)
    scores = paddle.to_tensor([[1.0, 5.0, 5.0, 0.0, 0.0, 0.2]])  # image negatives are hard, captions easy
    loss, acc = retrieval_loss(scores, 2, cfg)
    assert float(loss) == pytest.approx(max(0, 0.5 - 1.0 + 0.2))  # only the caption block counts
    assert float(acc) == 0.0                                    # a negative outscores the positive
    cfg.lambda_i2t, cfg.lambda_t2i = 0.0, 1.0
    loss, _ = retrieval_loss(scores, 2, cfg)
    assert float(loss) == pytest.approx(0.5 - 1.0 + 5.0)


class _Index:
    def __init__(self, caps):
        self.captions = caps

    def other_image(self, image, rng):
        while True:
            j = int(rng.integers(len(self.captions)))
            if j != image:
                return j


def test_sampled_negatives_and_row_layout():
    index = _Index([["a", "b"], ["c"], ["d", "e", "f"], ["g"]])
    rng = np.random.default_rng(0)
    samples = [sample_pair(index, i, rng, 3, 2) for i in (0, 2, 2)]
    images, texts, ri, rt = layout_rows(samples)
    assert ri.shape == rt.shape == (3, 6)
    for b, (image, pos, neg_images, neg_caps) in enumerate(samples):
        assert pos[0] == image and all(j != image for j in neg_images) and all(j != image for j, _ in neg_caps)
        # column 0: the positive; image negatives keep the caption; caption negatives keep the image
        assert images[ri[b, 0]] == image and texts[rt[b, 0]] == pos
        assert all(texts[rt[b, k]] == pos for k in range(1, 4))
        assert [images[ri[b, k]] for k in range(1, 4)] == neg_images
        assert all(images[ri[b, k]] == image for k in range(4, 6))
        assert [texts[rt[b, k]] for k in range(4, 6)] == neg_caps
    assert len(set(images)) == len(images) and len(set(texts)) == len(texts)  # each encoded once


def test_keep_hardest_picks_most_similar_negatives():
    # 1 row: positive (img 0, txt 0); image negatives 1,2,3; caption negatives txt 1,2,3
    ri = np.array([[0, 1, 2, 3, 0, 0, 0]])
    rt = np.array([[0, 0, 0, 0, 1, 2, 3]])
    sim = np.zeros([4, 4])
    sim[2, 0], sim[3, 0], sim[1, 0] = 0.9, 0.5, 0.1   # image 2 is the hardest for caption 0
    sim[0, 3], sim[0, 1], sim[0, 2] = 0.8, 0.7, -1.0  # caption 3 then 1 for image 0
    ri2, rt2 = keep_hardest(ri, rt, sim, 3, 2)
    assert ri2.tolist() == [[0, 2, 3, 0, 0]]
    assert rt2.tolist() == [[0, 0, 0, 3, 1]]


def _random_problem(n_img=10, per=3, seed=0):
    rng = np.random.default_rng(seed)
    caption_image = np.repeat(np.arange(n_img), per)
    cross = rng.normal(size=[n_img, n_img * per])
    cross[caption_image, np.arange(len(caption_image))] += 1.5
    dual = cross + rng.normal(size=cross.shape)  # a noisier dual encoder
    return cross, dual, caption_image


def test_two_stage_with_k_all_equals_exhaustive_and_scores_only_shortlists():
    cross, dual, ci = _random_problem()
    calls = []

    def pair_scores(imgs, caps):
        calls.append(list(zip(imgs.tolist(), caps.tolist())))
        return cross[imgs, caps]
    exhaustive = retrieval_eval.evaluate(10, ci, pair_scores)
    n_pairs = cross.size
    assert sum(len(c) for c in calls) == n_pairs
    calls.clear()
    full = retrieval_eval.evaluate(10, ci, pair_scores, dual=dual, k=30)
    for m in ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum"):
        assert full[m] == exhaustive[m]
    calls.clear()
    k = 2
    two = retrieval_eval.evaluate(10, ci, pair_scores, dual=dual, k=k)
    scored = {p for c in calls for p in c}
    assert len(scored) == sum(len(c) for c in calls) == two["pairs_scored"]  # each pair once
    tr, ir = retrieval_eval.shortlists(dual, k)
    assert scored == set(zip(*np.nonzero(tr | ir)))                              # exactly the shortlists
    assert two["pairs_scored"] <= k * (cross.shape[0] + cross.shape[1])
    # R@1 of the re-ranked shortlist = the cross-encoder's top-1 among each query's top-k dual candidates
    tr_ref = np.mean([ci[np.flatnonzero(tr[i])[np.argmax(cross[i, tr[i]])]] == i for i in range(10)]) * 100
    assert two["tr_r1"] == pytest.approx(tr_ref)
    ir_ref = np.mean([np.flatnonzero(ir[:, c])[np.argmax(cross[ir[:, c], c])] == ci[c] for c in range(30)]) * 100
    assert two["ir_r1"] == pytest.approx(ir_ref)


def test_two_stage_beyond_k_falls_back_to_dual_order():
    cross, dual, ci = _random_problem(seed=3)
    k = 1
    two = retrieval_eval.evaluate(10, ci, lambda imgs, caps: cross[imgs, caps], dual=dual, k=k)
    # R@10 over 30 captions: the shortlisted caption first, then dual order
    tr, _ = retrieval_eval.shortlists(dual, k)
    hits = 0
    for i in range(10):
        order = [int(np.flatnonzero(tr[i])[0])] + [c for c in np.argsort(-dual[i], kind="stable") if not tr[i, c]]
        hits += any(ci[c] == i for c in order[:10])
    assert two["tr_r10"] == pytest.approx(100 * hits / 10)


def test_coco_1k_is_the_mean_over_folds():
    cross, _, ci = _random_problem(n_img=10, per=5, seed=2)
    result = retrieval_eval.evaluate(10, ci, lambda imgs, caps: cross[imgs, caps], fold_size=5)
    whole = retrieval_recall(cross, ci)
    assert result["tr_r1"] == whole["tr_r1"] and result["ir_r5"] == whole["ir_r5"]  # 5K = the whole split
    folds = [retrieval_recall(cross[:5, :25], ci[:25]), retrieval_recall(cross[5:, 25:], ci[25:] - 5)]
    for m in ("tr_r1", "tr_r5", "ir_r1", "ir_r10"):
        assert result[f"fold_{m}"] == pytest.approx((folds[0][m] + folds[1][m]) / 2)
    assert result["folds"] == 2
    # a fold is easier than the whole split: fewer distractors
    assert result["fold_rsum"] >= result["rsum"]
    with pytest.raises(ValueError, match="does not divide"):
        retrieval_eval.evaluate(10, ci, lambda imgs, caps: cross[imgs, caps], fold_size=3)


def test_topk_accuracy_hand_made():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.5, 0.5, 0.1]])
    labels = np.array([0, 0, 1])
    # row 0 correct at 1; row 1 label 0 ranked 3rd; row 2 tie with class 0 counts against
    assert topk_accuracy(scores, labels, (1, 2, 3)) == {"top1": pytest.approx(100 / 3),
                                                        "top2": pytest.approx(200 / 3), "top3": 100.0}
