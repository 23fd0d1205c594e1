"""Image-text retrieval evaluation shared by the model packages: exhaustive
cross-encoder scoring, the two-stage mode, COCO 1K folds.

- exhaustive: the cross-encoder scores every (image, caption) pair -- what
  the official code does, quadratic in the split size;
- two-stage (``k > 0``): a dual-encoder similarity matrix (cheap: one
  encoding per image and caption and a matrix product) shortlists, for every
  image, its top-k captions (text retrieval) and, for every caption, its
  top-k images (image retrieval); the cross-encoder scores only the union of
  those pairs. In a query's ranking the shortlisted candidates come first,
  ordered by the cross-encoder, the others after them in dual-encoder order,
  so R@K for K <= k is the re-ranked recall and K > k falls back to the
  dual encoder. With ``k >=`` the number of candidates every pair is
  shortlisted and the result equals the exhaustive one exactly.
- folds (``fold_size > 0``, COCO 1K): images are cut into consecutive folds
  of ``fold_size`` with their captions; every fold is a retrieval problem of
  its own (its own shortlists) and the ``fold_*`` metrics are the mean over
  folds (Karpathy's 5K test split -> 5 folds of 1000). The plain metrics
  are those of the whole split (COCO 5K).

The cross-encoder is a ``pair_scores(images, captions) -> scores`` function
of aligned index arrays (one score per pair); the pairs are split across
ranks.
"""
import logging
import sys
import time

import numpy as np
import paddle

from vlcore.framework import dist
from vlcore.tasks.metrics import retrieval_recall


def shortlists(dual, k):
    """Boolean ``[I, C]`` masks: ``tr`` = each image's top-k captions, ``ir`` =
    each caption's top-k images (ties broken by index, stable)."""
    n_img, n_cap = dual.shape
    tr = np.zeros(dual.shape, bool)
    ir = np.zeros(dual.shape, bool)
    kt, ki = min(k, n_cap), min(k, n_img)
    top_c = np.argsort(-dual, axis=1, kind="stable")[:, :kt]
    tr[np.arange(n_img)[:, None], top_c] = True
    top_i = np.argsort(-dual, axis=0, kind="stable")[:ki, :]
    ir[top_i, np.arange(n_cap)[None, :]] = True
    return tr, ir


def rerank(cross, dual, shortlisted):
    """Scores whose order within every query puts the shortlisted candidates
    first by ``cross`` and the rest after them by ``dual`` (order-preserving
    shifts: shortlisted >= 1 > -1 >= the rest)."""
    if shortlisted.all():
        return cross.astype(np.float64)
    out = np.empty(cross.shape, np.float64)
    a = cross[shortlisted].astype(np.float64)
    out[shortlisted] = a - a.min() + 1.0
    rest = dual[~shortlisted].astype(np.float64)
    out[~shortlisted] = rest - rest.max() - 1.0
    return out


def _folds(n_img, fold_size):
    if fold_size <= 0 or fold_size >= n_img:
        return []
    if n_img % fold_size:
        raise ValueError(f"fold_size={fold_size} does not divide the {n_img} images of the split")
    return [np.arange(s, s + fold_size) for s in range(0, n_img, fold_size)]


def _subsets(n_img, caption_image, fold_size):
    """(name, image indices, caption indices) of every evaluation set: the
    whole split, then each fold."""
    sets = [("all", np.arange(n_img), np.arange(len(caption_image)))]
    for f, imgs in enumerate(_folds(n_img, fold_size)):
        caps = np.flatnonzero((caption_image >= imgs[0]) & (caption_image <= imgs[-1]))
        sets.append((f"fold{f}", imgs, caps))
    return sets


def batched_pair_scorer(model, score, arch, batch_size, match, margin_logits):
    """``(images, captions) -> scores`` of aligned index arrays, scored
    ``batch_size`` pairs at a time by the cross-encoder: ``score: match`` is the
    fine-tuned match head (``match(images, captions) -> [P]`` tensor; an error
    naming ``arch`` if ``model`` has none), any other the pre-trained matching
    head's margin ``logit[1] - logit[0]`` (``margin_logits(images, captions) -> [P, 2]``)."""
    if score == "match" and not hasattr(model, "match_scores"):
        raise ValueError(f"score: match needs a retrieval fine-tuned model (Arch {arch}), "
                         f"got {type(model).__name__}")

    def one_batch(images, captions):
        if score == "match":
            return match(images, captions).numpy()
        logits = margin_logits(images, captions)
        return (logits[:, 1] - logits[:, 0]).numpy()

    def scores(images, captions):
        out = [one_batch(images[s:s + batch_size], captions[s:s + batch_size])
               for s in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)
    # what score_pairs reports while it runs, and the step it calls this with
    scores.what = f"{arch} cross-encoder ({'fine-tuned match head' if score == 'match' else f'{score} margin'})"
    scores.batch_size = batch_size
    return scores


def score_pairs(needed, pair_scores):
    """Cross-encoder scores of the pairs marked in ``needed [I, C]`` (NaN
    elsewhere). The pairs, in row-major order, are cut into one contiguous
    slice per rank and scored by ``pair_scores(images [P], captions [P]) ->
    [P]`` in flat batches (a query with few candidates does not make a small
    batch of its own); the slices are gathered on every rank. A scorer from
    :func:`batched_pair_scorer` is a long phase: it is announced in the log
    and shows a progress bar on a terminal (:func:`_score_slice`)."""
    rows, cols = np.nonzero(needed)
    world, me = dist.world_size(), dist.rank()
    per = -(-len(rows) // world) if len(rows) else 0
    mine = slice(min(me * per, len(rows)), min((me + 1) * per, len(rows)))
    part = np.zeros(per, np.float32)
    if hasattr(pair_scores, "what") and dist.is_main():
        logging.getLogger("vlcore").info(
            "scoring %d image-text pairs with the %s%s", len(rows), pair_scores.what,
            f", {mine.stop - mine.start} on this rank of {world}" if world > 1 else "")
    if mine.stop > mine.start:
        part[:mine.stop - mine.start] = _score_slice(rows[mine], cols[mine], pair_scores)
    if world > 1:
        part = dist.all_gather_nograd(paddle.to_tensor(part)).numpy()
    out = np.full(needed.shape, np.nan, np.float32)
    out[rows, cols] = part[:len(rows)]
    return out


def _score_slice(images, captions, pair_scores):
    """``pair_scores`` over this rank's pairs; a batched cross-encoder is
    called one batch at a time (the batches it would make itself) under a
    tqdm bar when rank 0's stderr is a terminal (as the training loop's bar:
    redirected to a file, a bar is a wall of carriage returns)."""
    if not hasattr(pair_scores, "what"):  # a cheap lookup (dual-encoder similarities)
        return pair_scores(images, captions)
    bar = None
    if dist.is_main() and sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(images), desc="scoring pairs", unit="pair", dynamic_ncols=True, leave=False)
    step, out = pair_scores.batch_size, []
    try:
        for s in range(0, len(images), step):
            out.append(pair_scores(images[s:s + step], captions[s:s + step]))
            if bar is not None:
                bar.update(len(out[-1]))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(out)


def evaluate(n_img, caption_image, pair_scores, dual=None, k=0, fold_size=0, compare_exhaustive=False,
             examples=None):
    """Recall metrics of the split (and its folds); see the module docstring.
    ``dual`` ``[I, C]`` is required for ``k > 0``. ``examples``: a dict that
    receives a few queries of the whole split with their top results
    (:func:`example_queries`), for a retrieval sheet."""
    caption_image = np.asarray(caption_image)
    sets = _subsets(n_img, caption_image, fold_size)
    result = {}
    if k > 0:
        if dual is None:
            raise ValueError("two-stage retrieval (two_stage_k > 0) needs a dual-encoder similarity")
        t0 = time.perf_counter()
        needed = np.zeros([n_img, len(caption_image)], bool)
        lists = []
        for name, imgs, caps in sets:
            tr, ir = shortlists(dual[np.ix_(imgs, caps)], k)
            lists.append((tr, ir))
            needed[np.ix_(imgs, caps)] |= tr | ir
        cross = score_pairs(needed, pair_scores)
        per_set = []
        for (name, imgs, caps), (tr, ir) in zip(sets, lists):
            sub_cross, sub_dual = cross[np.ix_(imgs, caps)], dual[np.ix_(imgs, caps)]
            ci = caption_image[caps] - imgs[0]
            r_tr = retrieval_recall(rerank(sub_cross, sub_dual, tr), ci)
            r_ir = retrieval_recall(rerank(sub_cross, sub_dual, ir), ci)
            per_set.append({**{m: v for m, v in r_tr.items() if m.startswith("tr_")},
                            **{m: v for m, v in r_ir.items() if m.startswith("ir_")}})
            if examples is not None and name == "all":
                examples.update(example_queries(rerank(sub_cross, sub_dual, tr), rerank(sub_cross, sub_dual, ir), ci))
        result.update(_combine(per_set))
        result.update(two_stage_k=k, pairs_scored=int(needed.sum()), pairs_total=int(needed.size),
                      seconds=round(time.perf_counter() - t0, 3))
        if compare_exhaustive:
            ex = evaluate(n_img, caption_image, pair_scores, fold_size=fold_size)
            result.update({f"exhaustive_{m}": v for m, v in ex.items()})
        return result
    t0 = time.perf_counter()
    cross = score_pairs(np.ones([n_img, len(caption_image)], bool), pair_scores)
    per_set = [retrieval_recall(cross[np.ix_(imgs, caps)], caption_image[caps] - imgs[0])
               for _, imgs, caps in sets]
    if examples is not None:
        examples.update(example_queries(cross, cross, caption_image))
    result.update(_combine(per_set))
    result.update(pairs_scored=int(cross.size), seconds=round(time.perf_counter() - t0, 3))
    return result


def example_queries(tr, ir, caption_image, queries=6, top=5):
    """A few queries of each direction, spread evenly over the split, with
    their ``top`` results and where the right answer ranks (1-based):
    ``{"ir": [(caption, [images], rank of its image)], "tr": [(image,
    [captions], rank of its first caption)]}``. ``tr`` / ``ir``: ``[I, C]``
    scores ranking the captions of each image / the images of each caption."""
    caption_image = np.asarray(caption_image)
    n_img, n_cap = tr.shape
    out = {"ir": [], "tr": []}
    for c in np.unique(np.linspace(0, n_cap - 1, min(queries, n_cap)).round().astype(int)):
        order = np.argsort(-ir[:, c], kind="stable")
        rank = int(np.flatnonzero(order == caption_image[c])[0]) + 1
        out["ir"].append((int(c), order[:top].tolist(), rank))
    for i in np.unique(np.linspace(0, n_img - 1, min(queries, n_img)).round().astype(int)):
        order = np.argsort(-tr[i], kind="stable")
        rank = int(np.flatnonzero(caption_image[order] == i)[0]) + 1
        out["tr"].append((int(i), order[:top].tolist(), rank))
    return out


def draw_sheet(path, examples, image_paths, captions, caption_image, title=""):
    """The retrieval sheet of :func:`example_queries` (images read from
    ``image_paths``; one that cannot be read is drawn grey)."""
    from vlcore.data.images import ImageError, read_rgb
    from vlcore.viz.sheets import retrieval_sheet

    def load(i):
        try:
            return read_rgb(image_paths[i])
        except (ImageError, OSError):
            return None
    return retrieval_sheet(examples, load, captions, np.asarray(caption_image), path, title)


def _combine(per_set):
    """Metrics of the whole split, plus ``fold_*`` means when there are folds."""
    out = {m: float(v) for m, v in per_set[0].items()}
    out["rsum"] = float(sum(v for m, v in per_set[0].items() if m.startswith(("tr_", "ir_"))))
    if len(per_set) > 1:
        folds = per_set[1:]
        for m in per_set[0]:
            if m.startswith(("tr_", "ir_")):
                out[f"fold_{m}"] = float(np.mean([f[m] for f in folds]))
        out["fold_rsum"] = float(sum(v for m, v in out.items() if m.startswith(("fold_tr_", "fold_ir_"))))
        out["folds"] = len(folds)
    return out
