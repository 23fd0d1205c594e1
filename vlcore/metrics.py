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
