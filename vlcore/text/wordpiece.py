"""BERT's WordPiece tokenizer, for Unicoder-VL as its paper built it.

Unicoder-VL (Model section): "We tokenize each input text into WordPieces
... We also use the same vocabulary provided by BERT, which contains 30,522
tokens". A directory holding BERT's ``vocab.txt`` (one token per line, the
id is the line number) -- optionally with ``tokenizer_config.json`` -- or a
Hugging Face ``tokenizer.json`` of a WordPiece model is read here.

What BERT does (google-research/bert ``tokenization.py``: ``BasicTokenizer``
then ``WordpieceTokenizer``): drop control characters and turn whitespace
into spaces; put spaces around CJK ideographs; for uncased vocabularies,
lower-case and strip accents (NFD, then drop combining marks); split on
whitespace and punctuation; then greedy longest-match-first pieces per word,
continuation pieces prefixed ``##``, a word without a match (or longer than
``max_input_chars_per_word`` -- 200 in BERT's code, 100 in Hugging Face's and
in its ``tokenizer.json`` files) becomes ``[UNK]``. The Rust ``tokenizers``
package implements exactly these steps (``BertNormalizer``,
``BertPreTokenizer``, ``models.WordPiece``); this module configures it and
gives it the toolkit's tokenizer interface (``encode``, ``decode``,
``build_input``, ``word_start`` for whole-word masking and word n-gram
blocking, the special ids).

Cased or uncased: ``tokenizer_config.json``'s ``do_lower_case`` when
present, else uncased when no entry of ``vocab.txt`` has an upper-case
letter (``bert-base-uncased``), cased otherwise (``bert-base-cased``).
"""
import json
import os

import numpy as np

from vlcore.text.errors import TokenizerError

WORDPIECE_SPECIALS = {"cls": "[CLS]", "pad": "[PAD]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
CONTINUATION = "##"


class WordPieceTokenizer:
    """A WordPiece vocabulary with BERT's normalisation (see module doc)."""

    def __init__(self, tk, model_tokens, where, files):
        missing = [t for t in WORDPIECE_SPECIALS.values() if t not in model_tokens]
        if missing:
            raise TokenizerError(f"{where}: special tokens {missing} missing "
                                 f"(a BERT WordPiece vocabulary has {', '.join(WORDPIECE_SPECIALS.values())})")
        self._tk = tk
        self._batch = getattr(tk, "encode_batch_fast", tk.encode_batch)
        self.files = tuple(files)
        self.vocab_size = max(model_tokens.values()) + 1
        self.id_to_token = {i: t for t, i in model_tokens.items()}
        for role, tok in WORDPIECE_SPECIALS.items():
            setattr(self, f"{role}_id", model_tokens[tok])
        self.special_ids = {model_tokens[t] for t in WORDPIECE_SPECIALS.values()}
        self.image_id = None
        # a piece starts a word unless it continues one (##): spans and
        # n-gram blocking work on whole words
        self.word_start = np.zeros(self.vocab_size, dtype=bool)
        for i, t in self.id_to_token.items():
            self.word_start[i] = i in self.special_ids or not t.startswith(CONTINUATION)

    # ---- constructors -------------------------------------------------
    @classmethod
    def from_vocab(cls, vocab_txt, lowercase=None, max_input_chars_per_word=100):
        """BERT's ``vocab.txt``; ``lowercase`` None: from
        ``tokenizer_config.json`` beside it, else from the vocabulary."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
        vocab = read_wordpiece_vocab(vocab_txt)
        if lowercase is None:
            lowercase = _lowercase_setting(os.path.dirname(vocab_txt), vocab)
        try:
            tk = Tokenizer(models.WordPiece(vocab, unk_token=WORDPIECE_SPECIALS["unk"],
                                            continuing_subword_prefix=CONTINUATION,
                                            max_input_chars_per_word=max_input_chars_per_word))
        except Exception as e:
            raise TokenizerError(f"{vocab_txt}: not a WordPiece vocabulary the tokenizers library can read "
                                 f"({e})") from None
        # strip_accents=None follows lowercase, as BERT's BasicTokenizer does
        tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                   strip_accents=None, lowercase=lowercase)
        tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tk.decoder = decoders.WordPiece(prefix=CONTINUATION)
        return cls(tk, vocab, vocab_txt, (vocab_txt,))

    @classmethod
    def from_tokenizer_json(cls, path):
        """A Hugging Face ``tokenizer.json`` whose model is WordPiece, used as
        it is (its normaliser and pre-tokenizer are the published ones)."""
        from tokenizers import Tokenizer, decoders
        try:
            tk = Tokenizer.from_file(path)
        except Exception as e:
            raise TokenizerError(f"{path}: not a tokenizer.json the tokenizers library can read ({e})") from None
        model = json.loads(tk.to_str()).get("model", {})
        if model.get("type") != "WordPiece":
            raise TokenizerError(f"{path}: a {model.get('type')} tokenizer; only WordPiece tokenizer.json "
                                 f"files are read (BPE vocabularies: vocab.json + merges.txt)")
        tk.no_padding()
        tk.no_truncation()
        if tk.decoder is None:
            tk.decoder = decoders.WordPiece(prefix=model.get("continuing_subword_prefix", CONTINUATION))
        return cls(tk, tk.get_vocab(with_added_tokens=True), path, (path,))

    # ---- encoding -----------------------------------------------------
    def encode(self, text):
        """Token ids of ``text`` without special tokens."""
        return self._tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts):
        """Same as ``[encode(t) for t in texts]``, parallel in Rust."""
        return [e.ids for e in self._batch(list(texts), add_special_tokens=False)]

    def decode(self, ids, skip_special=True):
        """Text of ``ids``: ``##`` pieces joined to their word; specials
        dropped or, with ``skip_special=False``, rendered by their string."""
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} outside [0, {self.vocab_size})")
        if skip_special:
            ids = [i for i in ids if i not in self.special_ids]
        return self._tk.decode(ids, skip_special_tokens=False)

    def build_input(self, ids, max_len):
        """``[CLS] + ids + [SEP]``, truncating ids so the result fits max_len."""
        if max_len < 2:
            raise ValueError("max_len must be >= 2 to hold [cls] and [sep]")
        return [self.cls_id, *ids[:max_len - 2], self.sep_id]


def read_wordpiece_vocab(path):
    """``{token: line number}`` of a ``vocab.txt``; a repeated token or an
    empty line is an error naming the line."""
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            tok = line.rstrip("\n").rstrip("\r")
            if not tok:
                raise TokenizerError(f"{path}:{n + 1}: empty line (a WordPiece vocabulary has one token per line)")
            if tok in vocab:
                raise TokenizerError(f"{path}:{n + 1}: {tok!r} repeats line {vocab[tok] + 1}")
            vocab[tok] = n
    if not vocab:
        raise TokenizerError(f"{path}: empty vocabulary")
    return vocab


def is_wordpiece_vocab(path):
    """A ``vocab.txt`` of WordPieces (``[CLS]`` and ``##`` continuation
    pieces), as opposed to the official UNIMO ``vocab.txt`` (GPT-2 ids)."""
    try:
        with open(path, encoding="utf-8") as f:
            toks = {line.strip().split("\t")[0] for line in f}
    except (OSError, UnicodeDecodeError):
        return False
    return "[CLS]" in toks and any(t.startswith(CONTINUATION) for t in toks)


def _lowercase_setting(directory, vocab):
    cfg_path = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as f:
                value = json.load(f).get("do_lower_case")
        except (OSError, ValueError):
            value = None
        if isinstance(value, bool):
            return value
    return not any(any(c.isupper() for c in t) for t in vocab if t not in WORDPIECE_SPECIALS.values()
                   and not (t.startswith("[") and t.endswith("]")))
