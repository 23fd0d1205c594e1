"""SpanBERT-style span masking (UNIMO-2 Section 3.2, UNIMO Section 3.2).

Spans of whole words are drawn until ``ratio`` of the tokens are selected;
span length (in words) ~ Geo(p), clipped at ``max_span``. Each selected span is
replaced as a unit: by [MASK] (80 %), by random tokens (10 %), or kept (10 %).
"""
import numpy as np


def word_spans(ids, word_start):
    """Split token ids into words: list of (start, end) token index ranges.
    ``word_start[id]`` is True for tokens that begin a word."""
    starts = [i for i, t in enumerate(ids) if i == 0 or word_start[t]]
    return list(zip(starts, starts[1:] + [len(ids)]))


def span_mask(ids, word_start, rng, mask_id, vocab_size, special_ids=(), ratio=0.15, p=0.2,
              max_span=10, replace_mask=0.8, replace_random=0.1, return_spans=False):
    """Mask ``ids`` (a sequence without [CLS]/[SEP]).

    Returns ``(masked_ids, positions, labels)``: the corrupted copy, the token
    positions selected for prediction and their original ids (with
    ``return_spans`` also the selected spans as ``(lo, hi)`` token ranges, in
    the order they were drawn).

    ``budget = max(1, round(ratio * len(ids)))`` tokens are selected in
    expectation. A span that would collide with an earlier one is moved, not
    redrawn: redrawing its length would favour short spans. The span that
    crosses the budget is cut to whole words (SpanBERT cuts it at the budget
    too), the word straddling the budget being kept with probability
    (tokens still missing) / (its tokens); drawing then stops. Only a first
    word longer than the whole budget overshoots it.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if n == 0:
        out = ids.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return (*out, []) if return_spans else out
    words = word_spans(ids.tolist(), word_start)
    nw = len(words)
    bounds = np.asarray([lo for lo, _ in words] + [n], dtype=np.int64)  # token start of each word, then n
    budget = max(1, int(round(n * ratio)))
    taken = np.zeros(nw, dtype=bool)  # per word
    count = 0
    spans = []
    for _ in range(10 * nw + 10):
        if count >= budget:
            break
        length = min(int(rng.geometric(p)), max_span, nw)
        busy = np.concatenate([[0], np.cumsum(taken)])
        free = np.flatnonzero(busy[length:] == busy[:-length])  # first words of free windows
        if free.size == 0:
            continue
        first = int(free[rng.integers(free.size)])
        last = first + length  # exclusive word index
        room = budget - count
        crossing = bounds[last] - bounds[first] > room
        if crossing:
            fits = bounds[first + 1:last + 1] - bounds[first] <= room
            last = first + int(fits.sum())
            if last < first + length:  # the word straddling the budget
                missing = room - (bounds[last] - bounds[first])
                if missing > 0 and rng.random() * (bounds[last + 1] - bounds[last]) < missing:
                    last += 1
            if last == first and not spans:
                last = first + 1  # at least one word to predict
            if last == first:
                break
        lo, hi = int(bounds[first]), int(bounds[last])
        taken[first:last] = True
        count += hi - lo
        spans.append((lo, hi))
        if crossing:
            break
    masked = ids.copy()
    specials = np.asarray(sorted(special_ids), dtype=np.int64)
    for lo, hi in spans:
        u = rng.random()
        if u < replace_mask:
            masked[lo:hi] = mask_id
        elif u < replace_mask + replace_random:
            draw = rng.integers(0, vocab_size, size=hi - lo)
            while specials.size and np.isin(draw, specials).any():
                bad = np.isin(draw, specials)
                draw[bad] = rng.integers(0, vocab_size, size=int(bad.sum()))
            masked[lo:hi] = draw
    chosen = np.zeros(n, dtype=bool)
    for lo, hi in spans:
        chosen[lo:hi] = True
    positions = np.flatnonzero(chosen).astype(np.int64)
    out = masked, positions, ids[positions]
    return (*out, spans) if return_spans else out
