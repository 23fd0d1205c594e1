"""Beam search (n-best) and sampling of :mod:`data_prep.rewrite.mt_model`
translations: the model bound to the toolkit's one decoder,
:mod:`vlcore.text.generation` (Paddle is imported only when decoding, the
CTranslate2 and file translators do without).

Back-translation's rules, kept as they were: a hypothesis of ``|Y|`` tokens
(``</s>`` counted) scores ``log P / |Y| ** length_penalty``
(``length_penalty_form: power``); at every step each live hypothesis ending
in ``</s>`` is finished (``end_rule: any``), so a beam as wide as the search
space gives the exhaustive n-best, which is how the tests check it;
hypotheses reaching ``max_len`` tokens finish without ``</s>``. Tokens in
``banned`` (padding, ``<s>``, ``<unk>``) are never generated.
"""
from __future__ import annotations

import numpy as np


def _pad(seqs, pad_id):
    S = max(1, max(len(s) for s in seqs))
    out = np.full((len(seqs), S), pad_id, np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def _step_fn(model, src_seqs, copies):
    """Encode, repeat each source ``copies`` times; returns the step function
    and its state, the incremental (self-attention) caches. The encoder
    memory and the static (cross-attention) caches are equal for all copies
    of a source, so they stay out of the state the decoder reorders."""
    import paddle
    src = paddle.to_tensor(_pad(src_seqs, model.pad_id))
    memory, mask = model.encode(src)
    rows = paddle.to_tensor(np.repeat(np.arange(len(src_seqs)), copies))
    memory, mask = paddle.gather(memory, rows), paddle.gather(mask, rows)
    cache = model.transformer.decoder.gen_cache(memory)
    static = [s for _, s in cache]

    def step(last, t, incremental):
        logits, new = model.step(last, t, memory, mask, list(zip(incremental, static)))
        return logits, [inc for inc, _ in new]

    return step, [inc for inc, _ in cache]


def beam_search(model, src_seqs, bos_id, eos_id, banned=(), beam_size=4, n_best=1, max_len=64,
                length_penalty=0.0, min_len=0):
    """For each source (a list of ids): up to ``n_best`` ``(ids, score)``,
    best first (ids exclude ``<s>`` and ``</s>``); ``</s>`` is not allowed
    before ``min_len`` tokens."""
    import paddle

    from vlcore.text.generation import GenerationConfig
    from vlcore.text.generation import beam_search as search
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best ({n_best}) must be between 1 and beam_size ({beam_size})")
    if not src_seqs:
        return []
    banned = set(banned) - {eos_id}
    if min_len >= max_len:  # </s> never allowed: every hypothesis is max_len tokens
        banned, min_len = banned | {eos_id}, 0
    cfg = GenerationConfig(beam_size=beam_size, n_best=n_best, max_len=max_len, min_len=min_len,
                           length_penalty=length_penalty, length_penalty_form="power", end_rule="any",
                           block_ngram=0)
    with paddle.no_grad():
        step, state = _step_fn(model, src_seqs, beam_size)
        res = search(step, state, len(src_seqs), bos_id, eos_id, cfg, banned=banned)
    return [[(h.tokens, float(h.score)) for h in hyps] for hyps in res]


def sample(model, src_seqs, bos_id, eos_id, banned=(), num_samples=2, max_len=64, topk=0,
           temperature=1.0, rng=None, min_len=0):
    """For each source ``num_samples`` ``(ids, log-prob)`` drawn from the
    model (restricted to the ``topk`` most likely tokens if > 0, logits
    divided by ``temperature``); NumPy ``rng`` makes it reproducible."""
    import paddle

    from vlcore.text.generation import sample as draw
    if not src_seqs:
        return []
    with paddle.no_grad():
        step, state = _step_fn(model, src_seqs, num_samples)
        res = draw(step, state, len(src_seqs), bos_id, eos_id, num_samples, max_len, min_len=min_len,
                   topk=topk, temperature=temperature, rng=rng, banned=set(banned) - {eos_id})
    return [[(h.tokens, h.log_prob) for h in hyps] for hyps in res]
