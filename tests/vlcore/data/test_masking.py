"""Tests for vlcore.data.masking: SpanBERT span masking of whole words.

Vocabulary of the synthetic sentences (V = 1000):
  0..4      special ids ([CLS], [PAD], [SEP], [UNK], [MASK]=4); never in a sentence
  5..499    word-start tokens
  500..999  continuation tokens (inside a word)
Every word is one start token followed by 0-2 continuation tokens, so words
have 1-3 tokens and the word split of a sentence is known independently of
``word_spans`` (it is generated, not parsed).
"""
import math

import numpy as np
import pytest

from vlcore.data.masking import span_mask, word_spans

V = 1000
MASK = 4
SPECIALS = {0, 1, 2, 3, 4}
WORD_START = np.zeros(V, dtype=bool)
WORD_START[5:500] = True
WORD_START[sorted(SPECIALS)] = True
P, MAX_SPAN = 0.2, 10


def make_sentence(rng, num_words):
    """Token ids and the (start, end) token range of every word."""
    lens = rng.integers(1, 4, size=num_words)
    ids = np.empty(int(lens.sum()), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    ids[:] = rng.integers(500, 1000, size=ids.size)           # continuation tokens
    ids[starts] = rng.integers(5, 500, size=num_words)         # word starts
    words = [(int(s), int(s + n)) for s, n in zip(starts, lens)]
    return ids, words


def clipped_geometric_pmf(p=P, cap=MAX_SPAN):
    """P(min(G, cap) = l) for G ~ Geo(p) on {1, 2, ...}."""
    q = 1 - p
    pmf = {l: p * q ** (l - 1) for l in range(1, cap)}
    pmf[cap] = q ** (cap - 1)
    return pmf


def test_clipped_geometric_reference():
    # Hand check of the reference itself: E[min(G, 10)] = sum_{k=0}^{9} 0.8^k = 5 (1 - 0.8^10).
    pmf = clipped_geometric_pmf()
    assert sum(pmf.values()) == pytest.approx(1.0)
    assert sum(l * w for l, w in pmf.items()) == pytest.approx(5 * (1 - 0.8 ** 10))
    assert 5 * (1 - 0.8 ** 10) == pytest.approx(4.463129088)


def test_word_spans_hand_cases():
    # 7 is a start, 600/601 continuations; a leading continuation still opens a word.
    assert word_spans([7, 600, 601, 8, 9, 600], WORD_START) == [(0, 3), (3, 4), (4, 6)]
    assert word_spans([600, 601, 7], WORD_START) == [(0, 2), (2, 3)]
    assert word_spans([7], WORD_START) == [(0, 1)]


def test_empty_input():
    for kwargs in ({}, {"return_spans": True}):
        out = span_mask([], WORD_START, np.random.default_rng(0), MASK, V, SPECIALS, **kwargs)
        masked, pos, lab = out[:3]
        assert masked.shape == pos.shape == lab.shape == (0,)
        assert pos.dtype == lab.dtype == np.int64
        if kwargs:
            assert out[3] == []


def _check_one(ids, words, masked, pos, lab, spans):
    """Structural invariants of one call; returns the per-token chosen flags."""
    n = len(ids)
    chosen = np.zeros(n, dtype=bool)
    chosen[pos] = True
    # positions: sorted, unique, in range; labels are the original ids there.
    assert np.all(np.diff(pos) > 0) and (pos.size == 0 or (pos[0] >= 0 and pos[-1] < n))
    np.testing.assert_array_equal(lab, ids[pos])
    # Only selected tokens may change.
    np.testing.assert_array_equal(masked[~chosen], ids[~chosen])
    # Spans: disjoint, on word boundaries, and their union is exactly `positions`.
    boundaries = {s for s, _ in words} | {n}
    cover = np.zeros(n, dtype=np.int64)
    for lo, hi in spans:
        assert 0 <= lo < hi <= n and lo in boundaries and hi in boundaries
        cover[lo:hi] += 1
    assert cover.max(initial=0) <= 1, "spans overlap"
    np.testing.assert_array_equal(cover.astype(bool), chosen)
    # No word is partially selected (checked against the generated word split).
    for s, e in words:
        assert chosen[s:e].all() or not chosen[s:e].any(), f"word {(s, e)} partially selected"
    return chosen


def test_fraction_whole_words_no_overlap():
    """Sentences of 20-60 words (20-180 tokens) at the default ratio 0.15.

    budget = round(0.15 n) >= 3 here, so a word (<= 3 tokens) never exceeds the
    budget on its own; the span crossing the budget is cut to whole words and
    the straddling word kept with probability missing/len, so every sentence
    selects budget +- 2 tokens and budget in expectation.
    """
    rng = np.random.default_rng(1234)
    tot_sel = tot_n = tot_budget = 0
    diffs = []
    for _ in range(1500):
        ids, words = make_sentence(rng, int(rng.integers(20, 61)))
        masked, pos, lab, spans = span_mask(ids, WORD_START, rng, MASK, V, SPECIALS, return_spans=True)
        _check_one(ids, words, masked, pos, lab, spans)
        budget = max(1, round(0.15 * len(ids)))
        assert abs(len(pos) - budget) <= 2, (len(ids), budget, len(pos))
        diffs.append(len(pos) - budget)
        tot_sel += len(pos)
        tot_n += len(ids)
        tot_budget += budget
    # E[selected - budget] = 0; each difference lies in [-2, 2] (SD <= 2), so the
    # mean of 1500 has SD <= 2/sqrt(1500) = 0.052; 0.2 is ~4 SD.
    assert abs(np.mean(diffs)) < 0.2
    # Overall fraction: rounding the budget moves it by <= 0.5/n per sentence
    # (n >= 20) and the test above bounds the rest, so 15 % +- 1 % is generous,
    # while masking one extra word per sentence (~2/90 tokens) would break it.
    assert abs(tot_sel / tot_n - 0.15) < 0.01
    assert abs(tot_sel / tot_budget - 1) < 0.02


def test_short_sentences_are_not_over_masked():
    """Captions are short: ~10 tokens must not get a whole Geo-length span
    (mean ~4 words) masked, only budget = max(1, round(0.15 n)) tokens, plus at
    most 2 when the one word that must be predicted has 3 tokens."""
    rng = np.random.default_rng(7)
    fractions = []
    for _ in range(2000):
        ids, words = make_sentence(rng, int(rng.integers(1, 13)))
        masked, pos, lab, spans = span_mask(ids, WORD_START, rng, MASK, V, SPECIALS, return_spans=True)
        _check_one(ids, words, masked, pos, lab, spans)
        budget = max(1, round(0.15 * len(ids)))
        assert 1 <= len(pos) <= budget + 2, (len(ids), budget, len(pos))
        fractions.append(len(pos) / len(ids))
    # 1-12 words of 1-3 tokens: budget/n <= 0.25 + rounding; the forced 3-token
    # word of a 1-word sentence is the worst case. Whole-span masking gives ~0.45.
    assert np.mean(fractions) < 0.3


def test_span_lengths_follow_clipped_geometric():
    """The spans drawn before the budget can bite have length min(Geo(0.2), 10).

    Sentences of 200 words (>= 200 tokens), ratio 0.5: budget >= 100 tokens,
    and a span has <= 10 words * 3 tokens = 30 tokens, so the first 3 spans
    (returned in drawing order) can neither cross the budget nor be cut; at most
    20 of 200 words are taken when they are placed, so a free window of any
    length <= 10 always exists and a colliding span is moved, keeping its
    length. Their lengths must therefore be exact draws. (Later spans are not
    used: the span crossing the budget is cut, as in SpanBERT.)
    """
    rng = np.random.default_rng(99)
    lengths = []
    for _ in range(1000):
        ids, words = make_sentence(rng, 200)
        start_of = {s: k for k, (s, _) in enumerate(words)}
        end_of = {e: k for k, (_, e) in enumerate(words)}
        _, _, _, spans = span_mask(ids, WORD_START, rng, MASK, V, SPECIALS, ratio=0.5, return_spans=True)
        assert len(spans) >= 3
        for lo, hi in spans[:3]:
            lengths.append(end_of[hi] - start_of[lo] + 1)  # in words
    lengths = np.asarray(lengths)
    pmf = clipped_geometric_pmf()
    mean = sum(l * w for l, w in pmf.items())
    var = sum(l * l * w for l, w in pmf.items()) - mean ** 2
    n = len(lengths)
    assert lengths.min() >= 1 and lengths.max() <= MAX_SPAN
    # 4 standard errors: SE(mean) = sqrt(var/n) ~ 0.058, SE(P1) = sqrt(.16/n) ~ 0.0073.
    assert abs(lengths.mean() - mean) < 4 * math.sqrt(var / n), (lengths.mean(), mean)
    assert abs(np.mean(lengths == 1) - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    assert abs(np.mean(lengths == MAX_SPAN) - pmf[MAX_SPAN]) < 4 * math.sqrt(pmf[MAX_SPAN] / n)


def test_span_lengths_clipped_by_sentence_length():
    """3-word sentences, ratio 1 (the budget is the whole sentence, so the
    first span is never cut): its length is min(Geo(0.2), 10, 3), i.e.
    P(1) = 0.2, P(2) = 0.16, P(3) = 0.64."""
    rng = np.random.default_rng(5)
    first = []
    for _ in range(1500):
        ids, words = make_sentence(rng, 3)
        masked, pos, lab, spans = span_mask(ids, WORD_START, rng, MASK, V, SPECIALS, ratio=1.0,
                                            return_spans=True)
        _check_one(ids, words, masked, pos, lab, spans)
        bounds = [s for s, _ in words] + [len(ids)]
        lo, hi = spans[0]
        first.append(bounds.index(hi) - bounds.index(lo))
    first = np.asarray(first)
    for length, prob in ((1, 0.2), (2, 0.16), (3, 0.64)):
        # 4 binomial SDs of 1500 draws: <= 4 * sqrt(.25/1500) = 0.052.
        assert abs(np.mean(first == length) - prob) < 0.052, (length, np.mean(first == length))


def test_80_10_10_per_span_and_no_special_replacements():
    """Each span is replaced as a unit: all [MASK], all random or all kept."""
    rng = np.random.default_rng(2024)
    kinds = {"mask": 0, "random": 0, "kept": 0}
    for _ in range(600):
        ids, words = make_sentence(rng, 120)
        masked, pos, lab, spans = span_mask(ids, WORD_START, rng, MASK, V, SPECIALS, return_spans=True)
        _check_one(ids, words, masked, pos, lab, spans)
        for lo, hi in spans:
            seg, orig = masked[lo:hi], ids[lo:hi]
            if np.all(seg == MASK):
                kinds["mask"] += 1
            elif np.array_equal(seg, orig):
                # A random span equal to the original has probability <= 1/995.
                kinds["kept"] += 1
            else:
                assert not np.any(seg == MASK), "a span mixes [MASK] and other tokens"
                assert not np.isin(seg, list(SPECIALS)).any()
                kinds["random"] += 1
    total = sum(kinds.values())
    assert total > 2500
    # Binomial SD (N ~ 2700): sqrt(.16/N) ~ 0.0077 for 80 %, sqrt(.09/N) ~ 0.0058 for 10 %; ~4 SD.
    assert abs(kinds["mask"] / total - 0.8) < 0.032
    assert abs(kinds["random"] / total - 0.1) < 0.025
    assert abs(kinds["kept"] / total - 0.1) < 0.025


def test_random_replacements_avoid_special_ids_in_tiny_vocab():
    """Vocabulary of 12 ids, 6 of them special (scattered): without
    redrawing, half the random tokens would be special."""
    vocab, specials, mask_id = 12, {0, 1, 2, 3, 7, 11}, 11
    ws = np.ones(vocab, dtype=bool)  # every token is a word
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(400):
        ids = rng.choice([4, 5, 6, 8, 9, 10], size=40)
        masked, pos, lab = span_mask(ids, ws, rng, mask_id, vocab, specials,
                                     replace_mask=0.0, replace_random=1.0)
        assert len(pos) == 6  # round(0.15 * 40), one-token words: exact
        np.testing.assert_array_equal(lab, ids[pos])
        assert not np.isin(masked[pos], list(specials)).any()
        seen.update(masked[pos].tolist())
    assert seen == {4, 5, 6, 8, 9, 10}  # every non-special id can be drawn


def test_deterministic_for_same_seed():
    ids, _ = make_sentence(np.random.default_rng(0), 50)
    a = span_mask(ids, WORD_START, np.random.default_rng(11), MASK, V, SPECIALS)
    b = span_mask(ids, WORD_START, np.random.default_rng(11), MASK, V, SPECIALS)
    c = span_mask(ids, WORD_START, np.random.default_rng(12), MASK, V, SPECIALS)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not (np.array_equal(a[1], c[1]) and np.array_equal(a[0], c[0]))
