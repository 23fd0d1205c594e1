"""Beam search against exhaustive enumeration on a tiny vocabulary, and the
properties of its constraints (min length, n-gram blocking, beam 1 = greedy)."""
import itertools

import numpy as np
import paddle
import pytest

from vlcore.text.generation import GenerationConfig, beam_search, expand_beams, length_penalty

V, EOS, BOS = 4, 3, 0


def _table(seed):
    # log-probabilities of the next token given the last two (BOS-padded):
    # the state (a token history) must follow its beam for this to work.
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(V, V, V))
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _step_fn(table):
    t = paddle.to_tensor(table.astype(np.float32))

    def step(ids, step_idx, state):
        hist = paddle.concat([state["hist"], ids], axis=1)
        a, b = hist[:, -2], hist[:, -1]
        return paddle.gather_nd(t, paddle.stack([a, b], axis=1)), {"hist": hist}
    return step


def _start_state(batch, beam):
    return expand_beams({"hist": paddle.full([batch, 1], BOS, dtype="int64")}, beam)


def _exhaustive(table, cfg, banned=()):
    """Every sequence the constraints allow, scored like the beam search."""
    out = []
    for n in range(1, cfg.max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if EOS in seq[:-1]:
                continue
            ended = seq[-1] == EOS
            if not ended and n < cfg.max_len:
                continue
            if ended and n - 1 < cfg.min_len:
                continue
            body = list(seq[:-1]) if ended else list(seq)
            if cfg.block_ngram and _has_repeat(list(seq), cfg.block_ngram):
                continue
            hist, lp = [BOS, BOS], 0.0
            for tok in seq:
                lp += table[hist[-2], hist[-1], tok]
                hist.append(tok)
            if set(body) & set(banned):
                continue
            out.append((lp / length_penalty(n, cfg.length_penalty, cfg.length_penalty_form), body))
    out.sort(key=lambda x: -x[0])
    return out


def _has_repeat(seq, n):
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("alpha,min_len,block", [(0.0, 0, 0), (0.6, 0, 0), (1.0, 2, 0), (0.6, 0, 3), (-0.5, 1, 0)])
def test_wide_beam_equals_exhaustive_search(alpha, min_len, block):
    tables = [_table(s) for s in (1, 2, 3)]
    cfg = GenerationConfig(beam_size=V ** 4, max_len=4, min_len=min_len, length_penalty=alpha,
                           block_ngram=block, block_unit="token", n_best=3)
    for table in tables:
        res = beam_search(_step_fn(table), _start_state(1, cfg.beam_size), 1, BOS, EOS, cfg)[0]
        ref = _exhaustive(table, cfg)
        assert [h.tokens for h in res] == [body for _, body in ref[:3]]
        np.testing.assert_allclose([h.score for h in res], [s for s, _ in ref[:3]], rtol=1e-5)


@pytest.mark.parametrize("alpha,min_len,banned", [(1.0, 0, ()), (0.5, 1, (1,)), (0.0, 2, (2,))])
def test_power_penalty_any_end_rule_and_banned_ids_equal_exhaustive_search(alpha, min_len, banned):
    # back-translation's rules: score / |Y| ** alpha, every live beam's end finishes, banned ids never appear
    cfg = GenerationConfig(beam_size=V ** 4, max_len=4, min_len=min_len, length_penalty=alpha,
                           length_penalty_form="power", end_rule="any", n_best=4)
    for table in (_table(4), _table(5)):
        res = beam_search(_step_fn(table), _start_state(1, cfg.beam_size), 1, BOS, EOS, cfg, banned=banned)[0]
        ref = _exhaustive(table, cfg, banned)
        assert [h.tokens for h in res] == [body for _, body in ref[:4]]
        np.testing.assert_allclose([h.score for h in res], [s for s, _ in ref[:4]], rtol=1e-5)


def test_any_end_rule_also_finishes_ends_ranked_below_the_beam():
    # with one beam both rules follow the same greedy non-end prefixes; "any" also finishes the
    # end of each prefix where the end token was not the top candidate, so its best is never worse
    gaps = []
    for seed in range(20):
        table = _table(10 + seed)
        best = {rule: beam_search(_step_fn(table), _start_state(1, 1), 1, BOS, EOS,
                                  GenerationConfig(beam_size=1, max_len=4, length_penalty=0.0, end_rule=rule)
                                  )[0][0].score for rule in ("ranked", "any")}
        gaps.append(best["any"] - best["ranked"])
    assert min(gaps) >= -1e-6 and max(gaps) > 0.1


def test_batched_search_matches_single_examples():
    # examples differ through their first token: prefix the history
    table = _table(7)
    cfg = GenerationConfig(beam_size=3, max_len=5, length_penalty=0.6, n_best=2)
    step = _step_fn(table)
    starts = [0, 1, 2]
    state = expand_beams({"hist": paddle.to_tensor(np.array([[s] for s in starts], np.int64))}, 3)
    batched = beam_search(step, state, 3, BOS, EOS, cfg)
    for i, s in enumerate(starts):
        single = beam_search(step, expand_beams({"hist": paddle.to_tensor(np.array([[s]], np.int64))}, 3),
                             1, BOS, EOS, cfg)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single]


def test_small_beam_never_beats_exhaustive_and_is_sorted():
    table = _table(5)
    cfg = GenerationConfig(beam_size=2, max_len=5, length_penalty=0.6, n_best=2)
    res = beam_search(_step_fn(table), _start_state(1, 2), 1, BOS, EOS, cfg)[0]
    best = _exhaustive(table, cfg)[0][0]
    assert res[0].score <= best + 1e-6
    assert res[0].score >= res[1].score


def test_beam_one_without_penalty_is_greedy():
    for seed in range(6):
        table = _table(seed)
        cfg = GenerationConfig(beam_size=1, max_len=6, length_penalty=0.0)
        res = beam_search(_step_fn(table), _start_state(1, 1), 1, BOS, EOS, cfg)[0][0]
        hist, greedy = [BOS, BOS], []
        for _ in range(6):
            tok = int(np.argmax(table[hist[-2], hist[-1]]))
            if tok == EOS:
                break
            greedy.append(tok)
            hist.append(tok)
        assert res.tokens == greedy


def test_min_length_and_trigram_blocking_hold_on_a_repetitive_model():
    # A model that loves ending early and repeating "1 2 1 2 ...".
    table = np.full((V, V, V), -6.0)
    table[:, :, EOS] = -0.1
    table[:, :, 1] = -1.0
    table[:, 1, 2] = -0.05
    table[:, 2, 1] = -0.05
    cfg = GenerationConfig(beam_size=3, max_len=8, min_len=4, length_penalty=0.6, block_ngram=3, block_unit="token",
                           n_best=3)
    res = beam_search(_step_fn(table), _start_state(2, 3), 2, BOS, EOS, cfg)
    for hyps in res:
        assert hyps
        for h in hyps:
            assert len(h.tokens) >= 4
            assert not _has_repeat(h.tokens, 3)
    free = beam_search(_step_fn(table), _start_state(1, 3), 1, BOS, EOS,
                       GenerationConfig(beam_size=3, max_len=8, length_penalty=0.6))[0][0]
    assert len(free.tokens) < 4  # without the constraints the model does stop early


WORD_START = np.array([True, True, False, True])  # token 2 continues the word before it


def _words(seq):
    words = []
    for t in seq:
        if WORD_START[t] or not words:
            words.append([t])
        else:
            words[-1].append(t)
    return ["-".join(map(str, w)) for w in words]


def _word_blocked(body):
    """The official rule (TrigramBlocking.blocking_forward) on every prefix:
    its last word trigram must not be among the earlier ones."""
    for end in range(1, len(body) + 1):
        w = _words(body[:end])
        if len(w) > 3 and "_".join(w[-3:]) in {"_".join(w[e - 3:e]) for e in range(3, len(w))}:
            return True
    return False


def test_word_trigram_blocking_equals_exhaustive_search():
    # a model that loves the word "1" (four in a row repeat a word trigram);
    # token 2 extends the word before it
    table = _table(11)
    table[:, :, 1] += 5.0
    table = table - np.log(np.exp(table).sum(-1, keepdims=True))
    cfg = GenerationConfig(beam_size=V ** 6, max_len=6, length_penalty=0.6, block_ngram=3, block_unit="word",
                           n_best=3)
    res = beam_search(_step_fn(table), _start_state(1, cfg.beam_size), 1, BOS, EOS, cfg, word_start=WORD_START)[0]
    ref = [(s, b) for s, b in _exhaustive(table, GenerationConfig(beam_size=1, max_len=6, length_penalty=0.6))
           if not _word_blocked(b)]
    # this history model ties permutations with the same (context, token)
    # steps, so compare scores, and each output against its own reference score
    np.testing.assert_allclose([h.score for h in res], [s for s, _ in ref[:3]], rtol=1e-5)
    scores = {tuple(b): s for s, b in ref}
    for h in res:
        assert tuple(h.tokens) in scores and scores[tuple(h.tokens)] == pytest.approx(h.score, rel=1e-5)
    free = _exhaustive(table, GenerationConfig(beam_size=1, max_len=6, length_penalty=0.6))[:3]
    assert any(_word_blocked(b) for _, b in free)  # the constraint did change the answer
    with pytest.raises(ValueError, match="word starts"):
        beam_search(_step_fn(table), _start_state(1, 2), 1, BOS, EOS,
                    GenerationConfig(beam_size=2, block_ngram=3, block_unit="word"))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="min_len"):
        GenerationConfig(max_len=5, min_len=5)
    with pytest.raises(ValueError, match="n_best"):
        GenerationConfig(beam_size=2, n_best=3)
