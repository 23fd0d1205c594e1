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
              max_span=10, replace_mask=0.8, replace_random=0.1):
    """Mask ``ids`` (a sequence without [CLS]/[SEP]).

    Returns ``(masked_ids, positions, labels)``: the corrupted copy, the token
    positions selected for prediction and their original ids.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if n == 0:
        return ids.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64)
    words = word_spans(ids.tolist(), word_start)
    budget = max(1, int(round(n * ratio)))
    chosen = np.zeros(n, dtype=bool)
    spans = []
    tries = 0
    while chosen.sum() < budget and tries < 10 * len(words) + 10:
        tries += 1
        length = min(int(rng.geometric(p)), max_span, len(words))
        first = int(rng.integers(0, len(words) - length + 1))
        lo, hi = words[first][0], words[first + length - 1][1]
        if chosen[lo:hi].any():
            continue
        if chosen.sum() + (hi - lo) > budget and spans:
            # Overshooting the budget with a long span would bias short
            # sequences towards masking much more than ``ratio``.
            continue
        chosen[lo:hi] = True
        spans.append((lo, hi))
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
    positions = np.flatnonzero(chosen)
    return masked, positions.astype(np.int64), ids[positions]
