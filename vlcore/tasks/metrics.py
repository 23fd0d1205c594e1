"""Evaluation metrics shared by the model packages."""
import numpy as np


def retrieval_recall(scores, caption_image, ks=(1, 5, 10)):
    """Recall@K of image-text retrieval, the Flickr30k/COCO protocol.

    ``scores``: ``[num_images, num_captions]`` (higher = better match);
    ``caption_image[c]``: the image index caption ``c`` describes.

    - text retrieval (TR, image -> text): an image counts as found at K when
      *any* of its captions is among its top K captions;
    - image retrieval (IR, text -> image): a caption counts when its image is
      among its top K images.

    Returns ``tr_r{k}``, ``ir_r{k}`` (percent) and ``rsum``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    caption_image = np.asarray(caption_image)
    n_img, n_cap = scores.shape
    if caption_image.shape != (n_cap,):
        raise ValueError(f"caption_image has shape {caption_image.shape}, expected ({n_cap},)")
    # Rank of the best-ranked correct caption for every image. Ties count
    # against the correct item (stable sort on the negated score would favour
    # lower indices; a ``>`` count is order-independent).
    own = caption_image[None, :] == np.arange(n_img)[:, None]              # [I, C]
    best_own = np.where(own, scores, -np.inf).max(axis=1)                   # [I]
    tr_rank = (np.where(own, -np.inf, scores) >= best_own[:, None]).sum(axis=1)
    # Rank of its image for every caption.
    correct = scores[caption_image, np.arange(n_cap)]                       # [C]
    ir_rank = (scores >= correct[None, :]).sum(axis=0) - 1
    out = {}
    for k in ks:
        out[f"tr_r{k}"] = float(100.0 * np.mean(tr_rank < k))
    for k in ks:
        out[f"ir_r{k}"] = float(100.0 * np.mean(ir_rank < k))
    out["rsum"] = float(sum(out[f"tr_r{k}"] + out[f"ir_r{k}"] for k in ks))
    return out


def topk_accuracy(scores, labels, ks=(1, 5)):
    """Top-K accuracy (percent) of ``scores [N, classes]`` against integer
    ``labels [N]``; ties count against the correct class, as in
    :func:`retrieval_recall`. Returns ``top{k}``."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}, expected ({scores.shape[0]},)")
    correct = scores[np.arange(len(labels)), labels]
    rank = (scores >= correct[:, None]).sum(axis=1) - 1
    return {f"top{k}": float(100.0 * np.mean(rank < k)) for k in ks}


# ---------------------------------------------------------------- classification
def accuracy(pred, labels):
    """Percent of ``pred == labels``."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or pred.size == 0:
        raise ValueError(f"accuracy: {pred.shape} predictions vs {labels.shape} labels")
    return float(100.0 * np.mean(pred == labels))


def matthews_corr(pred, labels):
    """Matthews correlation coefficient (CoLA), multi-class form (Gorodkin);
    0 when a prediction or label column is constant (sklearn's convention)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    classes = np.union1d(pred, labels)
    c = np.zeros([len(classes)] * 2, np.float64)           # confusion [true, pred]
    np.add.at(c, (np.searchsorted(classes, labels), np.searchsorted(classes, pred)), 1)
    t, p, n, correct = c.sum(1), c.sum(0), c.sum(), np.trace(c)
    cov_tp = correct * n - t @ p
    cov_pp, cov_tt = n * n - p @ p, n * n - t @ t
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_pp * cov_tt))


def _ranks(x):
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    sx = x[order]
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or sx[i] != sx[start]:
            ranks[order[start:i]] = (start + i + 1) / 2.0
            start = i
    return ranks


def pearson_spearman(pred, labels):
    """STS-B: Pearson and Spearman correlations (and their mean)."""
    pred, labels = np.asarray(pred, np.float64), np.asarray(labels, np.float64)
    if pred.shape != labels.shape or pred.size < 2:
        raise ValueError(f"correlation needs >= 2 paired values, got {pred.shape} and {labels.shape}")

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        d = np.sqrt((a * a).sum() * (b * b).sum())
        return float((a * b).sum() / d) if d > 0 else 0.0
    p, s = corr(pred, labels), corr(_ranks(pred), _ranks(labels))
    return {"pearson": p, "spearman": s, "corr": (p + s) / 2}


def mean_interval(values, level=0.95):
    """``(mean, half_width)`` of the ``level`` confidence interval of the
    mean of ``values`` (Student's t with n - 1 degrees of freedom: a few
    seeds are a small sample, and the normal 1.96 would understate the
    interval, e.g. 2.78 standard errors for n = 5); one value: half-width 0."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_interval of no values")
    if x.size < 2:
        return float(x[0]), 0.0
    from scipy import stats
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * float(x.std(ddof=1)) / np.sqrt(x.size)
    return float(x.mean()), half
