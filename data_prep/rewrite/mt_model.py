"""A Paddle Transformer translation model and its checkpoint directory.

Back-translation (:mod:`data_prep.rewrite.backtranslate`) needs a
source -> pivot and a pivot -> source model. No MT weights can be downloaded
here, so this is the format a user trains or converts a model into, and what
the tests train a tiny model into.

Checkpoint directory
--------------------
::

    model_dir/
      config.json      {"format": "paddle-seq2seq", "d_model": 512, "nhead": 8,
                        "num_encoder_layers": 6, "num_decoder_layers": 6,
                        "dim_feedforward": 2048, "max_length": 256,
                        "normalize_before": true, "tokenizer": "words"}
      model.safetensors  the state dict of :class:`Seq2SeqTransformer`
                       (``model.pdparams``, a Paddle pickle, in directories
                       written by earlier versions: still read, safely)
      source_vocab.txt, target_vocab.txt     (tokenizer "words")
      source_tokenizer/, target_tokenizer/   (tokenizer "bpe": vlcore BPE files,
                                              RoBERTa or UNIMO layout)

``words`` vocabularies have one token per line, the line number (0-based)
being its id; they must contain ``<pad>``, ``<s>``, ``</s>`` and ``<unk>``.
Text is split on whitespace (so a pre-tokenised or subword-joined corpus
fits). ``bpe`` uses :class:`vlcore.text.tokenizer.BPETokenizer` (``<s>``/``</s>``
or ``[CLS]``/``[SEP]`` as begin/end of sentence).

The network is the standard encoder-decoder (``paddle.nn.Transformer``),
embeddings scaled by sqrt(d_model) plus sinusoidal positions, the output
projection tied to the target embedding. These are the conventions
CTranslate2's Transformer spec uses, so a model in this layout can be
exported to it (:mod:`data_prep.rewrite.ct2_export`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from vlcore.formats import weights_file

CONFIG, WEIGHTS, LEGACY_WEIGHTS = "config.json", "model.safetensors", "model.pdparams"
FORMAT = "paddle-seq2seq"
WORD_SPECIALS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


class CheckpointError(ValueError):
    """A translation model directory that cannot be loaded (names the file)."""


@dataclasses.dataclass
class MTConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    nhead: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    max_length: int = 256
    normalize_before: bool = True
    dropout: float = 0.1
    tokenizer: str = "words"
    format: str = FORMAT

    @classmethod
    def from_json(cls, path: str) -> "MTConfig":
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (not a translation model directory)") from None
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: malformed JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path}: expected a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise CheckpointError(f"{path}: unknown key(s) {unknown}; known: {sorted(fields)}")
        for key, value in raw.items():
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[fields[key].type]
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise CheckpointError(f"{path}: key '{key}' must be {fields[key].type}, got {value!r}")
        for key in ("src_vocab_size", "tgt_vocab_size"):
            if key not in raw:
                raise CheckpointError(f"{path}: missing key '{key}'")
        cfg = cls(**raw)
        if cfg.format != FORMAT:
            raise CheckpointError(f"{path}: 'format' must be {FORMAT!r}, got {cfg.format!r}")
        if cfg.tokenizer not in ("words", "bpe"):
            raise CheckpointError(f"{path}: 'tokenizer' must be 'words' or 'bpe', got {cfg.tokenizer!r}")
        if cfg.d_model % cfg.nhead or cfg.d_model % 2:
            raise CheckpointError(f"{path}: d_model {cfg.d_model} must be even and divisible by nhead {cfg.nhead}")
        return cfg


# ------------------------------------------------------------ vocabularies
class WordVocab:
    """Whitespace tokens, ids = line numbers of a vocabulary file."""

    def __init__(self, tokens, where="<vocab>"):
        self.tokens = list(tokens)
        self.index = {}
        for i, t in enumerate(self.tokens):
            if not t or any(c.isspace() for c in t):
                raise CheckpointError(f"{where}:{i + 1}: empty token or token with whitespace {t!r}")
            if t in self.index:
                raise CheckpointError(f"{where}:{i + 1}: token {t!r} repeated (first on line {self.index[t] + 1})")
            self.index[t] = i
        for role, tok in WORD_SPECIALS.items():
            if tok not in self.index:
                raise CheckpointError(f"{where}: special token {tok!r} ({role}) missing")
            setattr(self, f"{role}_id", self.index[tok])
        self.special_ids = {self.index[t] for t in WORD_SPECIALS.values()}

    @classmethod
    def from_file(cls, path):
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: vocabulary file missing")
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f if line.rstrip("\n")], path)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.tokens) + "\n")

    def __len__(self):
        return len(self.tokens)

    def encode(self, text):
        return [self.index.get(t, self.unk_id) for t in text.split()]

    def decode(self, ids):
        return " ".join(self.tokens[i] for i in ids if i not in self.special_ids)


class BPEVocab:
    """:class:`vlcore.text.tokenizer.BPETokenizer` with the roles the model needs."""

    def __init__(self, directory):
        from vlcore.text.tokenizer import BPETokenizer
        if not os.path.isdir(directory):
            raise CheckpointError(f"{directory}: tokenizer directory missing")
        self.tk = BPETokenizer.from_dir(directory)
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (
            self.tk.pad_id, self.tk.cls_id, self.tk.sep_id, self.tk.unk_id)
        self.special_ids = set(self.tk.special_ids)

    def __len__(self):
        return self.tk.vocab_size

    def encode(self, text):
        return self.tk.encode(text)

    def decode(self, ids):
        return self.tk.decode(ids).strip()


# ------------------------------------------------------------------ model
def sinusoid_table(length, dim):
    """Positions x dim: sin in the first half, cos in the second (the
    tensor2tensor layout CTranslate2 computes)."""
    half = dim // 2
    inv = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def _build_model_class():
    import paddle
    import paddle.nn as nn

    class Seq2SeqTransformer(nn.Layer):
        def __init__(self, cfg: MTConfig, pad_id: int = 0):
            super().__init__()
            self.cfg, self.pad_id = cfg, pad_id
            init = paddle.ParamAttr(initializer=nn.initializer.Normal(std=cfg.d_model ** -0.5))
            self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.d_model, weight_attr=init)
            self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model, weight_attr=init)
            self.transformer = nn.Transformer(cfg.d_model, cfg.nhead, cfg.num_encoder_layers,
                                              cfg.num_decoder_layers, cfg.dim_feedforward, cfg.dropout,
                                              normalize_before=cfg.normalize_before)
            self.out_bias = self.create_parameter([cfg.tgt_vocab_size], is_bias=True)
            self.register_buffer("pos", paddle.to_tensor(sinusoid_table(cfg.max_length + 2, cfg.d_model)),
                                 persistable=False)
            self.scale = math.sqrt(cfg.d_model)

        def src_mask(self, src):
            """Additive attention mask hiding source padding: [B, 1, 1, S]."""
            return ((src == self.pad_id).astype("float32") * -1e9).unsqueeze([1, 2])

        def embed(self, table, ids, offset=0):
            return table(ids) * self.scale + self.pos[offset:offset + ids.shape[1]]

        def encode(self, src):
            mask = self.src_mask(src)
            return self.transformer.encoder(self.embed(self.src_embed, src), mask), mask

        def logits(self, h):
            return paddle.matmul(h, self.tgt_embed.weight, transpose_y=True) + self.out_bias

        def forward(self, src, tgt_in):
            """Teacher-forced logits [B, T, V] of the next token after each of tgt_in."""
            memory, mask = self.encode(src)
            causal = self.transformer.generate_square_subsequent_mask(tgt_in.shape[1])
            h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory, causal, mask)
            return self.logits(h)

        def step(self, last, t, memory, mask, cache):
            """Logits [N, V] of the token after position ``t`` (``last``
            [N, 1] holds token t), updating the incremental cache. (The
            decoders normalise with vlcore.text.generation.log_softmax: Paddle 3.3.1's
            CPU log_softmax kernel took 2.4 s for a [4, 32000] input here.)"""
            h, cache = self.transformer.decoder(self.embed(self.tgt_embed, last, t), memory, None, mask, cache)
            return self.logits(h[:, -1]), cache

    return Seq2SeqTransformer


_MODEL_CLASS = None


def Seq2SeqTransformer(cfg: MTConfig, pad_id: int = 0):
    """Build the model (the class is defined lazily: importing this module
    must not import Paddle, the CTranslate2 and file translators do without)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is None:
        _MODEL_CLASS = _build_model_class()
    return _MODEL_CLASS(cfg, pad_id)


# ------------------------------------------------------------ directory io
def load_vocabs(directory, cfg):
    if cfg.tokenizer == "words":
        return (WordVocab.from_file(os.path.join(directory, "source_vocab.txt")),
                WordVocab.from_file(os.path.join(directory, "target_vocab.txt")))
    return (BPEVocab(os.path.join(directory, "source_tokenizer")),
            BPEVocab(os.path.join(directory, "target_tokenizer")))


def save_model(directory, model, src_vocab, tgt_vocab):
    """Write a checkpoint directory (``words`` vocabularies are written;
    for ``bpe`` copy the tokenizer directories in yourself)."""
    from vlcore.formats.sharded import atomic_open, atomic_path
    os.makedirs(directory, exist_ok=True)
    if model.cfg.tokenizer == "words":
        src_vocab.save(os.path.join(directory, "source_vocab.txt"))
        tgt_vocab.save(os.path.join(directory, "target_vocab.txt"))
    with atomic_path(os.path.join(directory, WEIGHTS)) as tmp:
        weights_file.save(tmp, model.state_dict())
    with atomic_open(os.path.join(directory, CONFIG)) as f:  # last: its presence means complete
        json.dump(dataclasses.asdict(model.cfg), f, indent=1)


def load_model(directory):
    """``(model in eval mode, cfg, source vocab, target vocab)``."""
    cfg = MTConfig.from_json(os.path.join(directory, CONFIG))
    src_vocab, tgt_vocab = load_vocabs(directory, cfg)
    for side, vocab, size in (("source", src_vocab, cfg.src_vocab_size), ("target", tgt_vocab, cfg.tgt_vocab_size)):
        if len(vocab) != size:
            raise CheckpointError(f"{directory}: {side} vocabulary has {len(vocab)} tokens, "
                                  f"config.json says {size}")
    model = Seq2SeqTransformer(cfg, pad_id=src_vocab.pad_id)
    path = os.path.join(directory, WEIGHTS)
    if not os.path.isfile(path) and os.path.isfile(os.path.join(directory, LEGACY_WEIGHTS)):
        path = os.path.join(directory, LEGACY_WEIGHTS)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: weights missing")
    try:
        state = weights_file.load(path)  # arrays only; no code from the file
    except weights_file.WeightsFileError as e:
        raise CheckpointError(str(e)) from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    bad = sorted(k for k in own if k in state and list(state[k].shape) != list(own[k].shape))
    if missing or bad:
        raise CheckpointError(f"{path}: does not fit config.json (missing {missing[:3]}, "
                              f"wrong shape {[(k, list(state[k].shape)) for k in bad[:3]]})")
    model.set_state_dict(state)
    model.eval()
    return model, cfg, src_vocab, tgt_vocab


def train_on_pairs(pairs, cfg: MTConfig, src_vocab, tgt_vocab, steps=300, batch_size=32, lr=3e-3,
                   seed=0, log=None):
    """Train a model on ``[(source text, target text), ...]`` with teacher
    forcing (Adam, linear warm-up). Small-scale: the tests and toy pivots;
    a real MT model is trained elsewhere and converted to the layout."""
    import paddle
    import paddle.nn.functional as F
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    model = Seq2SeqTransformer(cfg, pad_id=src_vocab.pad_id)
    sched = paddle.optimizer.lr.LinearWarmup(lr, warmup_steps=max(1, steps // 10), start_lr=0.0, end_lr=lr)
    opt = paddle.optimizer.Adam(sched, parameters=model.parameters())
    enc = [(src_vocab.encode(s)[:cfg.max_length], tgt_vocab.encode(t)[:cfg.max_length]) for s, t in pairs]
    model.train()
    for step in range(steps):
        batch = [enc[i] for i in rng.integers(0, len(enc), batch_size)]
        S = max(len(s) for s, _ in batch)
        T = max(len(t) for _, t in batch) + 1
        src = np.full((batch_size, S), src_vocab.pad_id, np.int64)
        tin = np.full((batch_size, T), tgt_vocab.pad_id, np.int64)
        tout = np.full((batch_size, T), -100, np.int64)
        for i, (s, t) in enumerate(batch):
            src[i, :len(s)] = s
            tin[i, :len(t) + 1] = [tgt_vocab.bos_id, *t]
            tout[i, :len(t) + 1] = [*t, tgt_vocab.eos_id]
        logits = model(paddle.to_tensor(src), paddle.to_tensor(tin))
        loss = F.cross_entropy(logits.reshape([-1, cfg.tgt_vocab_size]), paddle.to_tensor(tout.reshape(-1)),
                               ignore_index=-100)
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        if log and (step % 100 == 0 or step == steps - 1):
            log(f"step {step}: loss {float(loss):.4f}")
    model.eval()
    return model
