"""Batched beam search over any step function (model-agnostic).

The model side supplies ``step_fn(ids, step, state) -> (logits, state)``:
``ids`` are the last tokens ``[N, 1]`` (N = batch x beams), ``state`` any
nest of dicts/lists/tuples of tensors whose first axis is N (key/value
caches, context masks). After every step the surviving beams' rows are
gathered from it, so caches follow their hypotheses.

Scoring follows UNIMO's official decoder (``NLP/UNIMO/src/finetune/
seq2seq.py``): a hypothesis of ``|Y|`` generated tokens (its end token
included) with log-probability ``log P`` scores ``log P / lp(|Y|)``,
``lp(n) = ((5 + n) / 6) ** alpha`` (GNMT, Wu et al. 2016); ``alpha = 0``
is the plain log-probability. End tokens are forbidden before ``min_len``
tokens; at ``max_len`` tokens every live hypothesis is ended. With
``block_ngram = 3`` a token that would repeat a trigram of its own
hypothesis is forbidden: of tokens (``block_unit: token``), or of words
(``word``, the official ``block_trigram``: sub-tokens are grouped into words
by the tokenizer's word-start flags, and a candidate is blocked when the
trigram ending at its word -- complete or not -- occurred before).

Search: each step keeps the ``beam_size`` best live continuations per
example; an end token ranked within the first ``beam_size`` candidates
moves its hypothesis to the finished list. An example stops when it has
``n_best`` finished hypotheses and no live one can still beat the worst of
them: log-probabilities only fall, so ``logP_now / lp(L)`` at the most
favourable remaining length L bounds what a live beam can reach -- an exact
test, not a heuristic. With a beam as wide as the search space the result is
the exhaustive optimum; with ``beam_size = 1`` and ``alpha = 0`` it is
greedy decoding.

Two callers' rules differ and are options: ``length_penalty_form: power``
divides by ``|Y| ** alpha`` instead of the GNMT form, and ``end_rule: any``
finishes every live hypothesis's end continuation at each step (not only
ends ranked among the first ``beam_size`` candidates), so the n-best of a
beam as wide as the search space is the exhaustive n-best (back-translation,
:mod:`data_prep.rewrite.decode`). :func:`sample` draws from the same kind of
step function.
"""
from dataclasses import dataclass
from typing import Callable, List, Literal, NamedTuple

import numpy as np
import paddle


@dataclass
class GenerationConfig:
    beam_size: int = 5
    max_len: int = 20              # generated tokens, the end token included
    min_len: int = 0               # tokens before the end token may appear
    length_penalty: float = 0.6    # alpha of ((5 + |Y|) / 6) ** alpha; 0: raw log-probability
    block_ngram: int = 0           # 3: trigram blocking; 0: off
    block_unit: Literal["token", "word"] = "word"   # word: the official UNIMO blocking (needs word starts)
    n_best: int = 1                # hypotheses returned per example
    length_penalty_form: Literal["gnmt", "power"] = "gnmt"  # power: |Y| ** alpha
    end_rule: Literal["ranked", "any"] = "ranked"  # any: every live beam's end token finishes it

    def __post_init__(self):
        if self.beam_size < 1 or self.max_len < 1 or self.n_best < 1:
            raise ValueError("beam_size, max_len and n_best must be >= 1")
        if self.n_best > self.beam_size:
            raise ValueError(f"n_best={self.n_best} exceeds beam_size={self.beam_size}")
        if not 0 <= self.min_len < self.max_len:
            raise ValueError(f"min_len={self.min_len} must be in [0, max_len={self.max_len})")
        if self.block_ngram < 0 or self.block_ngram == 1:
            raise ValueError("block_ngram must be 0 (off) or >= 2")
        if self.length_penalty_form not in ("gnmt", "power"):
            raise ValueError(f"length_penalty_form must be gnmt or power, got {self.length_penalty_form!r}")
        if self.end_rule not in ("ranked", "any"):
            raise ValueError(f"end_rule must be ranked or any, got {self.end_rule!r}")


class Hypothesis(NamedTuple):
    tokens: List[int]   # generated ids, without the end token
    score: float        # log P / lp(length)
    log_prob: float     # log P (the end token's probability included when it ended)
    length: int         # generated tokens counted by the penalty (end token included)


def log_softmax(logits):
    """``logits - logsumexp(logits)`` over the last axis, in float32 (differentiable).
    The one replacement of ``F.log_softmax`` in the toolkit: Paddle 3.3's CPU
    kernel is pathologically slow on wide rows (15 s for [20, 50265], 0.8 s
    at 8k entries, 2.4 s for [4, 32000], measured here), while logsumexp
    takes milliseconds."""
    logits = logits.astype("float32")
    return logits - paddle.logsumexp(logits, axis=-1, keepdim=True)


def length_penalty(length, alpha, form="gnmt"):
    """GNMT length normaliser ``((5 + length) / 6) ** alpha``; ``form="power"``:
    ``length ** alpha`` (a length of 0 counts as 1)."""
    if form == "power":
        return max(length, 1) ** alpha
    return ((5.0 + length) / 6.0) ** alpha


def gather_state(state, index):
    """Rows ``index`` (int64 tensor ``[N]``) of every tensor in a nest of
    dicts, lists and tuples; other leaves pass through unchanged."""
    if isinstance(state, paddle.Tensor):
        return paddle.gather(state, index, axis=0)
    if isinstance(state, dict):
        return {k: gather_state(v, index) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # namedtuple, e.g. nn.MultiHeadAttention.Cache
        return type(state)(*(gather_state(v, index) for v in state))
    if isinstance(state, (list, tuple)):
        return type(state)(gather_state(v, index) for v in state)
    return state


def expand_beams(state, beam_size):
    """Repeat every example's rows ``beam_size`` times (example-major)."""
    n = _first_dim(state)
    return gather_state(state, paddle.to_tensor(np.repeat(np.arange(n), beam_size)))


def _first_dim(state):
    if isinstance(state, paddle.Tensor):
        return state.shape[0]
    items = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else ()
    for v in items:
        n = _first_dim(v)
        if n is not None:
            return n
    return None


def _banned_ngrams(tokens, n):
    """Tokens that would complete an n-gram already in ``tokens``."""
    if len(tokens) < n - 1:
        return []
    prefix = tuple(tokens[len(tokens) - n + 1:])
    return [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix]


def _words(tokens, word_start):
    """Token ids grouped into words (tuples); the first token always opens one."""
    words = []
    for t in tokens:
        if word_start[t] or not words:
            words.append((t,))
        else:
            words[-1] = words[-1] + (t,)
    return words


def _banned_word_ngrams(tokens, n, word_start):
    """Tokens whose word n-gram (ending at the word the token opens or
    extends) already occurred earlier in ``tokens`` (official UNIMO
    ``TrigramBlocking``: earlier = not ending at the last word)."""
    words = _words(tokens, word_start)
    banned = []
    if len(words) >= n - 1:  # a new word: (w[-n+2:], (v,))
        prefix = tuple(words[len(words) - n + 1:])
        banned += [g[-1][0] for g in _ngrams(words, n) if g[:-1] == prefix and len(g[-1]) == 1
                   and word_start[g[-1][0]]]
    if len(words) >= n:  # the last word grows: (w[-n:-1], w[-1] + (v,))
        prefix, last = tuple(words[len(words) - n:-1]), words[-1]
        banned += [g[-1][-1] for g in _ngrams(words[:-1], n) if g[:-1] == prefix
                   and len(g[-1]) == len(last) + 1 and g[-1][:-1] == last and not word_start[g[-1][-1]]]
    return banned


def _ngrams(seq, n):
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def _banned_array(banned):
    return np.asarray(sorted(set(int(v) for v in banned)), np.int64)


def beam_search(step_fn: Callable, state, batch_size: int, bos_id: int, eos_id: int,
                cfg: GenerationConfig, word_start=None, banned=()) -> List[List[Hypothesis]]:
    """Decode ``batch_size`` examples; ``state`` has ``batch_size * beam_size``
    rows (see :func:`expand_beams`). ``word_start``: bool per vocabulary id
    (the tokenizer's ``word_start``), needed by word-level n-gram blocking.
    ``banned``: ids never generated (e.g. padding, ``<s>``, ``<unk>``; the
    end id too: every hypothesis then runs to ``max_len`` tokens).
    Returns, per example, up to ``n_best`` hypotheses, best first."""
    k, alpha, form = cfg.beam_size, cfg.length_penalty, cfg.length_penalty_form
    if cfg.block_ngram and cfg.block_unit == "word" and word_start is None:
        raise ValueError("block_unit: word needs the tokenizer's word starts (or use block_unit: token)")
    ban = _banned_array(banned)
    # Only beam 0 of each example is live at first (the others are copies).
    raw = np.full([batch_size, k], -np.inf)
    raw[:, 0] = 0.0
    seqs = [[[] for _ in range(k)] for _ in range(batch_size)]
    finished = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, bool)
    ids = np.full([batch_size * k], bos_id, np.int64)
    for step in range(cfg.max_len):
        logits, state = step_fn(paddle.to_tensor(ids.reshape([-1, 1])), step, state)
        logp = log_softmax(logits).numpy().astype(np.float64)
        vocab = logp.shape[-1]
        logp = logp.reshape([batch_size, k, vocab])
        if ban.size:
            logp[:, :, ban] = -np.inf
        if step < cfg.min_len:
            logp[:, :, eos_id] = -np.inf
        if cfg.block_ngram:
            for b in range(batch_size):
                for j in range(k):
                    blocked = (_banned_ngrams(seqs[b][j], cfg.block_ngram) if cfg.block_unit == "token" else
                               _banned_word_ngrams(seqs[b][j], cfg.block_ngram, word_start))
                    blocked = [v for v in blocked if v != eos_id]
                    if blocked:
                        logp[b, j, blocked] = -np.inf
        cand = raw[:, :, None] + logp                              # [B, K, V]
        last = step + 1 == cfg.max_len
        new_raw = np.full([batch_size, k], -np.inf)
        new_seqs = [[[] for _ in range(k)] for _ in range(batch_size)]
        origin = np.repeat(np.arange(batch_size)[:, None] * k, k, axis=1)  # default: row 0 of the example
        new_ids = np.full([batch_size, k], eos_id, np.int64)
        lp = length_penalty(step + 1, alpha, form)
        for b in range(batch_size):
            if done[b]:
                continue
            if cfg.end_rule == "any":  # every live beam's end finishes; the ranking sees no ends
                ends = cand[b, :, eos_id]
                for j in np.nonzero(np.isfinite(ends))[0]:
                    finished[b].append(Hypothesis(list(seqs[b][j]), ends[j] / lp, float(ends[j]), step + 1))
                cand[b, :, eos_id] = -np.inf
            flat = cand[b].reshape(-1)
            top = _top(flat, 2 * k)
            alive = 0
            for rank, c in enumerate(top):
                if not np.isfinite(flat[c]):
                    break
                j, tok = divmod(int(c), vocab)
                if tok == eos_id or last:
                    if rank < k:  # an end beyond the first K candidates is not among the K best
                        toks = seqs[b][j] if tok == eos_id else seqs[b][j] + [tok]
                        finished[b].append(Hypothesis(list(toks), flat[c] / lp, float(flat[c]), step + 1))
                    continue
                new_raw[b, alive], new_seqs[b][alive] = flat[c], seqs[b][j] + [tok]
                origin[b, alive], new_ids[b, alive] = b * k + j, tok
                alive += 1
                if alive == k:
                    break
            finished[b].sort(key=lambda h: -h.score)
            del finished[b][cfg.n_best:]
            done[b] = alive == 0 or (len(finished[b]) >= cfg.n_best and
                                     _cannot_improve(new_raw[b].max(), step + 1, cfg, finished[b][-1].score))
        raw, seqs, ids = new_raw, new_seqs, new_ids.reshape(-1)
        if done.all() or last:
            break
        state = gather_state(state, paddle.to_tensor(origin.reshape(-1)))
    return finished


def _top(x, n):
    """Indices of the ``n`` largest entries, best first (ties by index among them); a
    partition first (O(K*V), not a sort of K*V)."""
    if n < x.size:
        idx = np.argpartition(-x, n - 1)[:n]
    else:
        idx = np.arange(x.size)
    return idx[np.lexsort((idx, -x[idx]))]


def _cannot_improve(best_raw, length, cfg, worst_finished):
    """Can a live beam with log-probability ``best_raw`` after ``length``
    tokens still end above ``worst_finished``? Its log-probability only
    falls; the penalty is monotonic in length, so the bound is at one of the
    two ends of the remaining lengths."""
    if not np.isfinite(best_raw):
        return True
    lengths = (length + 1, cfg.max_len)
    bound = max(best_raw / length_penalty(n, cfg.length_penalty, cfg.length_penalty_form) for n in lengths)
    return bound <= worst_finished


def sample(step_fn: Callable, state, batch_size: int, bos_id: int, eos_id: int, num_samples: int,
           max_len: int, min_len: int = 0, topk: int = 0, temperature: float = 1.0, rng=None,
           banned=()) -> List[List[Hypothesis]]:
    """Draw ``num_samples`` outputs per example from the step function's
    distribution (restricted to the ``topk`` most likely tokens if > 0, logits
    divided by ``temperature``); ``state`` has ``batch_size * num_samples``
    rows (:func:`expand_beams`), never reordered. Up to ``max_len`` tokens,
    ``eos_id`` not before ``min_len``; NumPy ``rng`` makes it reproducible.
    Returns per example ``num_samples`` hypotheses in drawing order, scored
    by their model log-probability (the end token's included)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    rows = batch_size * num_samples
    seqs = [[] for _ in range(rows)]
    logprob = np.zeros(rows)
    alive = np.ones(rows, bool)
    ended = np.zeros(rows, bool)
    last = np.full((rows, 1), bos_id, np.int64)
    ban = _banned_array(banned)
    for t in range(max_len):
        logits, state = step_fn(paddle.to_tensor(last), t, state)
        logp = log_softmax(logits).numpy().astype(np.float64)
        if ban.size:
            logp[:, ban] = -np.inf
        if t < min_len:
            logp[:, eos_id] = -np.inf
        z = logp / temperature
        if topk and topk < z.shape[1]:
            kth = -np.partition(-z, topk - 1, axis=1)[:, topk - 1:topk]
            z[z < kth] = -np.inf
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(rows)[:, None]
        tok = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)
        for r in np.nonzero(alive)[0]:
            logprob[r] += logp[r, tok[r]]
            if tok[r] == eos_id:
                alive[r], ended[r] = False, True
            else:
                seqs[r].append(int(tok[r]))
        if not alive.any():
            break
        last = tok.reshape(-1, 1)
    return [[Hypothesis(seqs[r], float(logprob[r]), float(logprob[r]), len(seqs[r]) + int(ended[r]))
             for r in range(b * num_samples, (b + 1) * num_samples)] for b in range(batch_size)]


def pad_hypotheses(results, pad_id, width=None):
    """Best hypothesis per example as a ``[B, T]`` int64 array padded with ``pad_id``."""
    best = [r[0].tokens if r else [] for r in results]
    width = width or max(1, max(len(t) for t in best))
    out = np.full([len(best), width], pad_id, np.int64)
    for i, t in enumerate(best):
        out[i, :len(t)] = t[:width]
    return out
