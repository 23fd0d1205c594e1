"""Pluggable translators for back-translation.

A translator maps a list of texts to, per text, a list of ``(translation,
score)`` best first (``score`` is a log-probability, or None when unknown).
Chosen by a spec string:

* ``paddle:DIR`` - a :mod:`data_prep.rewrite.mt_model` checkpoint directory,
  decoded here by batched beam search or sampling;
* ``ct2:DIR`` - a CTranslate2 model directory (``model.bin``, e.g. a
  converted OPUS-MT model), when the ``ctranslate2`` package is installed.
  Tokens: ``source.spm``/``target.spm`` in DIR are used with
  ``sentencepiece`` (OPUS-MT models; copy them beside ``model.bin``),
  otherwise text is split on whitespace (models exported by
  :mod:`data_prep.rewrite.ct2_export` from a ``words`` checkpoint);
* ``file:PATH`` - precomputed translations: TSV lines ``source<TAB>translation``
  (several lines of one source are its n-best, in file order) or, for a
  ``.jsonl`` file, ``{"source": ..., "translations": [...]}`` per line.
  A text missing from the file gets no translation (counted in ``missing``).

A bare path is recognised by its content (``config.json`` of format
``paddle-seq2seq``, ``model.bin``, or a file).
"""
from __future__ import annotations

import os

import numpy as np

from vlcore.formats.jsonl import parse_line

DECODE_DEFAULTS = dict(mode="beam", beam_size=4, max_len=64, min_len=1, length_penalty=0.0, topk=0,
                       temperature=1.0, batch_size=32, seed=0)  # min_len 1: an empty translation is no positive


class TranslatorError(ValueError):
    """A translator that cannot be built or a translations file that cannot be read."""


def parse_spec(spec: str):
    kind, sep, path = spec.partition(":")
    if sep and kind in ("paddle", "ct2", "file"):
        return kind, path
    path = spec
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "model.bin")):
            return "ct2", path
        if os.path.isfile(os.path.join(path, "config.json")):
            return "paddle", path
        raise TranslatorError(f"{path}: neither a Paddle checkpoint (config.json) nor a CTranslate2 "
                              f"model (model.bin)")
    if os.path.isfile(path):
        return "file", path
    raise TranslatorError(f"{spec}: no such file or directory (spec: paddle:DIR, ct2:DIR or file:PATH)")


def build_translator(spec: str, **decode):
    kind, path = parse_spec(spec)
    opts = {**DECODE_DEFAULTS, **decode}
    if kind == "paddle":
        return PaddleTranslator(path, **opts)
    if kind == "ct2":
        return CT2Translator(path, **opts)
    return FileTranslator(path)


def _by_length(seqs, batch_size):
    """Batches of indices of similar length (less padding), longest first."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class PaddleTranslator:
    def __init__(self, directory, mode, beam_size, max_len, min_len, length_penalty, topk, temperature,
                 batch_size, seed):
        from data_prep.rewrite.mt_model import load_model
        self.model, self.cfg, self.src, self.tgt = load_model(directory)
        self.mode, self.beam_size, self.length_penalty = mode, beam_size, length_penalty
        self.max_len, self.min_len = min(max_len, self.cfg.max_length), min_len
        self.topk, self.temperature, self.batch_size = topk, temperature, batch_size
        self.rng = np.random.default_rng(seed)
        self.banned = sorted({self.tgt.pad_id, self.tgt.bos_id, self.tgt.unk_id})
        self.missing = 0

    def translate(self, texts, n=1):
        from data_prep.rewrite.decode import beam_search, sample
        seqs = [self.src.encode(t)[:self.cfg.max_length] for t in texts]
        out = [None] * len(texts)
        for idx in _by_length(seqs, self.batch_size):
            batch = [seqs[i] for i in idx]
            if self.mode == "beam":
                res = beam_search(self.model, batch, self.tgt.bos_id, self.tgt.eos_id, self.banned,
                                  beam_size=max(self.beam_size, n), n_best=n, max_len=self.max_len,
                                  length_penalty=self.length_penalty, min_len=self.min_len)
            else:
                res = sample(self.model, batch, self.tgt.bos_id, self.tgt.eos_id, self.banned, num_samples=n,
                             max_len=self.max_len, topk=self.topk, temperature=self.temperature, rng=self.rng,
                             min_len=self.min_len)
            for i, hyps in zip(idx, res):
                out[i] = [(self.tgt.decode(ids), score) for ids, score in hyps]
        return out


class CT2Translator:
    def __init__(self, directory, mode, beam_size, max_len, min_len, length_penalty, topk, temperature,
                 batch_size, seed):
        try:
            import ctranslate2
        except ImportError:
            raise TranslatorError(f"ct2:{directory}: the 'ctranslate2' package is not installed "
                                  f"(pip install ctranslate2), or use a paddle: or file: translator") from None
        if not os.path.isfile(os.path.join(directory, "model.bin")):
            raise TranslatorError(f"{directory}: no model.bin (not a CTranslate2 model directory)")
        ctranslate2.set_random_seed(seed)
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        self.tr = ctranslate2.Translator(directory, device="cpu", inter_threads=1, intra_threads=threads)
        self.mode, self.beam_size, self.max_len, self.length_penalty = mode, beam_size, max_len, length_penalty
        self.min_len = min_len
        self.topk, self.temperature, self.batch_size = topk, temperature, batch_size
        self.sp_src = self.sp_tgt = None
        spm = [os.path.join(directory, f) for f in ("source.spm", "target.spm")]
        if all(os.path.isfile(p) for p in spm):
            try:
                import sentencepiece
            except ImportError:
                raise TranslatorError(f"{directory}: has source.spm/target.spm but the 'sentencepiece' "
                                      f"package is not installed") from None
            self.sp_src, self.sp_tgt = (sentencepiece.SentencePieceProcessor(model_file=p) for p in spm)
        self.missing = 0

    def _tokens(self, text):
        return self.sp_src.encode(text, out_type=str) if self.sp_src else text.split()

    def _detok(self, tokens):
        return self.sp_tgt.decode(tokens) if self.sp_tgt else " ".join(tokens)

    def translate(self, texts, n=1):
        toks = [self._tokens(t) for t in texts]
        if self.mode == "beam":
            opts = dict(beam_size=max(self.beam_size, n), num_hypotheses=n, length_penalty=self.length_penalty)
        else:  # one hypothesis per copy of the source, each sampled
            opts = dict(beam_size=1, num_hypotheses=1, sampling_topk=self.topk or 0,
                        sampling_temperature=self.temperature)
            toks = [t for t in toks for _ in range(n)]
        res = self.tr.translate_batch(toks, max_batch_size=self.batch_size, batch_type="examples",
                                      max_decoding_length=self.max_len, return_scores=True,
                                      min_decoding_length=self.min_len, disable_unk=True, **opts)
        hyps = [[(self._detok(h), float(s)) for h, s in zip(r.hypotheses, r.scores)] for r in res]
        if self.mode != "beam":
            hyps = [[h for r in hyps[i:i + n] for h in r] for i in range(0, len(hyps), n)]
        return hyps


class FileTranslator:
    def __init__(self, path):
        if not os.path.isfile(path):
            raise TranslatorError(f"{path}: translations file missing")
        self.path, self.table, self.missing = path, {}, 0
        jsonl = path.endswith(".jsonl")
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                if jsonl:
                    obj = parse_line(line, where, TranslatorError)
                    try:
                        src, outs = obj["source"], obj["translations"]
                        if not isinstance(src, str) or not isinstance(outs, list) or \
                                not all(isinstance(o, str) for o in outs):
                            raise TypeError("'source' must be a string and 'translations' a list of strings")
                    except (ValueError, KeyError, TypeError) as e:
                        raise TranslatorError(f"{where}: not a translations record ({type(e).__name__}: {e})") from None
                else:
                    parts = line.split("\t")
                    if len(parts) != 2:
                        raise TranslatorError(f"{where}: expected 'source<TAB>translation', got {len(parts)} field(s)")
                    src, outs = parts[0], [parts[1]]
                self.table.setdefault(src.strip(), []).extend(o for o in outs if o.strip())

    def translate(self, texts, n=1):
        out = []
        for t in texts:
            hyps = self.table.get(t.strip())
            if hyps is None:
                self.missing += 1
                hyps = []
            out.append([(h, None) for h in hyps[:n]])
        return out
