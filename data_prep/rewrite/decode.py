"""Batched beam search (n-best) and sampling for :mod:`data_prep.rewrite.mt_model`.

Beam search keeps ``beam_size`` live hypotheses per source. At every step
each live hypothesis ending in ``</s>`` becomes a finished hypothesis (all of
them, not only those that make the top-k), and the best ``beam_size``
non-final continuations stay live. A source is done once it has ``n_best``
finished hypotheses and no live one can still beat the n-th: raw scores only
decrease, so ``score / (max_len + 1) ** length_penalty`` bounds what a live
hypothesis can reach. Hypotheses reaching ``max_len`` tokens are finished
without ``</s>``. With ``beam_size`` >= the number of possible prefixes the
search is exhaustive, which is how the tests check it.

Scores are sums of token log-probabilities (float64 on the host), divided by
``length ** length_penalty`` (length counts ``</s>``). Tokens in ``banned``
(padding, ``<s>``, ``<unk>``) are never generated.
"""
from __future__ import annotations

import numpy as np


def log_softmax(logits):
    """Row-wise log-softmax in float64 of a Paddle tensor, on the host."""
    x = logits.numpy().astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


def _pad(seqs, pad_id):
    S = max(1, max(len(s) for s in seqs))
    out = np.full((len(seqs), S), pad_id, np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def _reorder(cache, index):
    """Gather the incremental (self-attention) caches of the rows ``index``;
    the static (cross-attention) caches are equal for all beams of a source
    and stay as they are."""
    import paddle
    out = []
    for inc, static in cache:
        out.append((type(inc)(paddle.gather(inc.k, index), paddle.gather(inc.v, index)), static))
    return out


def _start(model, src_seqs, copies):
    """Encode, repeat each source ``copies`` times; returns memory, mask, cache."""
    import paddle
    src = paddle.to_tensor(_pad(src_seqs, model.pad_id))
    memory, mask = model.encode(src)
    rows = paddle.to_tensor(np.repeat(np.arange(len(src_seqs)), copies))
    memory, mask = paddle.gather(memory, rows), paddle.gather(mask, rows)
    return memory, mask, model.transformer.decoder.gen_cache(memory)


def beam_search(model, src_seqs, bos_id, eos_id, banned=(), beam_size=4, n_best=1, max_len=64,
                length_penalty=0.0, min_len=0):
    """For each source (a list of ids): up to ``n_best`` ``(ids, score)``,
    best first (ids exclude ``<s>`` and ``</s>``); ``</s>`` is not allowed
    before ``min_len`` tokens."""
    import paddle
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best ({n_best}) must be between 1 and beam_size ({beam_size})")
    B, K = len(src_seqs), beam_size
    if B == 0:
        return []
    with paddle.no_grad():
        memory, mask, cache = _start(model, src_seqs, K)
        scores = np.full((B, K), -np.inf)
        scores[:, 0] = 0.0  # one live beam at the start; the copies are dead
        tokens = np.zeros((B * K, 0), np.int64)
        last = np.full((B * K, 1), bos_id, np.int64)
        finished = [[] for _ in range(B)]  # (normalized score, ids)
        done = np.zeros(B, bool)
        ban = np.asarray(sorted(set(banned) - {eos_id}), np.int64)
        for t in range(max_len + 1):
            if t == max_len:  # length limit: the live hypotheses finish as they are
                for b in np.nonzero(~done)[0]:
                    for k in np.nonzero(np.isfinite(scores[b]))[0]:
                        finished[b].append((scores[b, k] / max(t, 1) ** length_penalty, tokens[b * K + k].tolist()))
                break
            logits, cache = model.step(paddle.to_tensor(last), t, memory, mask, cache)
            logp = log_softmax(logits)
            if ban.size:
                logp[:, ban] = -np.inf
            V = logp.shape[1]
            cand = scores[:, :, None] + logp.reshape(B, K, V)
            ends = cand[:, :, eos_id]
            norm = (t + 1) ** length_penalty
            if t < min_len:
                ends = np.full_like(ends, -np.inf)
            for b, k in zip(*np.nonzero(np.isfinite(ends) & ~done[:, None])):
                finished[b].append((ends[b, k] / norm, tokens[b * K + k].tolist()))
            cand[:, :, eos_id] = -np.inf
            flat = cand.reshape(B, K * V)
            top = np.argpartition(-flat, K - 1, axis=1)[:, :K]
            # best first, ties by index, so the result does not depend on argpartition
            order = np.lexsort((top, -np.take_along_axis(flat, top, 1)), axis=1)
            top = np.take_along_axis(top, order, 1)
            scores = np.take_along_axis(flat, top, 1)
            beam, tok = top // V, top % V
            rows = (np.arange(B)[:, None] * K + beam).reshape(-1)
            tokens = np.concatenate([tokens[rows], tok.reshape(-1, 1)], axis=1)
            last = tok.reshape(-1, 1)
            bound = scores[:, 0] / (max_len + 1) ** length_penalty
            for b in np.nonzero(~done)[0]:
                fin = finished[b]
                if not np.isfinite(scores[b, 0]):
                    done[b] = True
                elif len(fin) >= n_best:
                    nth = sorted((s for s, _ in fin), reverse=True)[n_best - 1]
                    done[b] = bound[b] <= nth
            scores[done] = -np.inf
            if done.all():
                break
            cache = _reorder(cache, paddle.to_tensor(rows))
    out = []
    for fin in finished:
        fin.sort(key=lambda x: -x[0])  # stable: equal scores keep their order of finishing
        out.append([(ids, float(s)) for s, ids in fin[:n_best]])
    return out


def sample(model, src_seqs, bos_id, eos_id, banned=(), num_samples=2, max_len=64, topk=0,
           temperature=1.0, rng=None, min_len=0):
    """For each source ``num_samples`` ``(ids, log-prob)`` drawn from the
    model (restricted to the ``topk`` most likely tokens if > 0, logits
    divided by ``temperature``); NumPy ``rng`` makes it reproducible."""
    import paddle
    rng = rng if rng is not None else np.random.default_rng(0)
    B, N = len(src_seqs), num_samples
    if B == 0:
        return []
    with paddle.no_grad():
        memory, mask, cache = _start(model, src_seqs, N)
        rows = B * N
        seqs = [[] for _ in range(rows)]
        logprob = np.zeros(rows)
        alive = np.ones(rows, bool)
        last = np.full((rows, 1), bos_id, np.int64)
        ban = np.asarray(sorted(set(banned) - {eos_id}), np.int64)
        for t in range(max_len):
            logits, cache = model.step(paddle.to_tensor(last), t, memory, mask, cache)
            logp = log_softmax(logits)
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
                    alive[r] = False
                else:
                    seqs[r].append(int(tok[r]))
            if not alive.any():
                break
            last = tok.reshape(-1, 1)
    return [[(seqs[b * N + j], float(logprob[b * N + j])) for j in range(N)] for b in range(B)]
