"""Incremental decoding with key/value caches: the context (image and/or
source text) is encoded once, then each step feeds one token per beam
(:meth:`UNIMOModel.decode_step`); beam search is :mod:`vlcore.text.generation`,
greedy decoding its special case (one beam, no length penalty)."""
import numpy as np
import paddle

from vlcore.text.generation import GenerationConfig, beam_search, expand_beams, pad_hypotheses


def generate(model, lm_head, regions=None, text=None, cfg=None, bos_id=0, eos_id=2,
             start_position=None, word_start=None):
    """Beam search after the context; per example, ``cfg.n_best``
    :class:`vlcore.text.generation.Hypothesis` best first. Targets start at
    ``start_position`` (default: the position offset, as in fine-tuning)."""
    cfg = cfg or GenerationConfig()
    _, caches, context_mask = model.encode_context(regions, text)
    b = context_mask.shape[0]
    pos0 = start_position if start_position is not None else model.cfg.position_offset
    state = expand_beams({"caches": caches, "context_mask": context_mask}, cfg.beam_size)

    def step(ids, t, st):
        positions = paddle.full(ids.shape, pos0 + t, dtype="int64")
        hidden = model.decode_step(ids, positions, st["context_mask"], t, st["caches"])
        return lm_head(hidden[:, -1]), st

    return beam_search(step, state, b, bos_id, eos_id, cfg, word_start)


def generate_uncached(model, lm_head, regions=None, text=None, cfg=None, bos_id=0, eos_id=2, start_position=None,
                      word_start=None):
    """The same search re-encoding context and target at every step (no
    caches): the reference the cached decoder is tested and benchmarked
    against."""
    cfg = cfg or GenerationConfig()
    pos0 = start_position if start_position is not None else model.cfg.position_offset
    ctx = {"regions": regions, "text": text}
    b = (regions[0] if regions is not None else text[0]).shape[0]
    state = expand_beams({"ctx": ctx, "hist": paddle.zeros([b, 0], dtype="int64")}, cfg.beam_size)

    def step(ids, t, st):
        hist = paddle.concat([st["hist"], ids], axis=1)
        pos = paddle.arange(pos0, pos0 + t + 1, dtype="int64").unsqueeze(0).expand(hist.shape)
        enc = model(regions=st["ctx"]["regions"], text=st["ctx"]["text"],
                    target=(hist, paddle.ones(hist.shape, dtype="bool"), pos))
        return lm_head(enc.target[:, -1]), dict(st, hist=hist)

    return beam_search(step, state, b, bos_id, eos_id, cfg, word_start)


def greedy_generate(model, lm_head, regions=None, text=None, bos_id=0, eos_id=2, max_len=20, start_position=None):
    """Greedy decoding. Returns ``[B, T]`` ids (after ``bos_id``); a row's
    end token and what follows are ``eos_id``."""
    cfg = GenerationConfig(beam_size=1, max_len=max_len, length_penalty=0.0)
    hyps = generate(model, lm_head, regions, text, cfg, bos_id, eos_id, start_position)
    width = max(len(h[0].tokens) + (h[0].length > len(h[0].tokens)) for h in hyps)
    return paddle.to_tensor(pad_hypotheses(hyps, eos_id, max(1, width)).astype(np.int64))
