"""Byte-level BPE tokenizer facade for UNIMO / UNIMO-2 (no paddle import).

The real work is done by HuggingFace ``tokenizers`` (Rust), which reproduces
GPT-2 / RoBERTa byte-level BPE exactly and is ~2 orders of magnitude faster
than the pure-Python tokenizers shipped with the original code.  This module
only adapts the two vocabulary layouts we must read:

(a) RoBERTa / GPT-2: ``vocab.json`` + ``merges.txt``; model ids = vocab.json ids.
(b) Official UNIMO release (``model_files/dict/``): ``encoder.json`` +
    ``vocab.bpe`` (plain GPT-2) and ``vocab.txt`` whose tokens are GPT-2 ids
    written in decimal.  Official pipeline: BPE -> GPT-2 id -> str(id) ->
    vocab.txt index; we do the last two steps with one numpy lookup table.

``ReferenceBPE`` is a deliberately simple pure-Python GPT-2 BPE used as the
test oracle and as the benchmark baseline.

Note: ``encode_batch`` runs on the Rust rayon pool (size: ``RAYON_NUM_THREADS``,
read once at first use).  If a process forks after that pool was used,
``tokenizers`` disables parallelism in the child and warns; set
``TOKENIZERS_PARALLELISM=false`` in data-loader workers to silence it.
"""
from __future__ import annotations

import functools
import glob
import io
import json
import os
import sys
import unicodedata

import numpy as np

from vlcore.text.errors import TokenizerError
from vlcore.text.wordpiece import WordPieceTokenizer, is_wordpiece_vocab

ROBERTA_SPECIALS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
UNIMO_SPECIALS = {"cls": "[CLS]", "pad": "[PAD]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
UNIMO_IMAGE_TOKEN = "madeupword0000"
ROBERTA_FILES = ("vocab.json", "merges.txt")
UNIMO_FILES = ("encoder.json", "vocab.bpe", "vocab.txt")
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Unicode White_Space property: what \s means for the `regex` module and for the
# Rust regex inside `tokenizers`.  Python's `re` \s additionally matches
# \x1c-\x1f (str.isspace), which would split text differently, so we spell it out.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table.

    Printable Latin-1 bytes map to themselves; the other 68 bytes (controls,
    space, 0x7f-0xa0, soft hyphen) are shifted to U+0100.. so that every BPE
    symbol is a visible character (space becomes 'Ġ', newline 'Ċ').
    """
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + shifted)
            shifted += 1
    return table


def _char_class(pred) -> str:
    """Regex class body of all code points whose category satisfies ``pred``."""
    out, start, prev = [], None, None
    for cp in range(sys.maxunicode + 2):
        ok = cp <= sys.maxunicode and pred(unicodedata.category(chr(cp)))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append(f"\\U{start:08x}-\\U{prev:08x}")
            start = None
        prev = cp
    return "".join(out)


@functools.lru_cache(maxsize=None)
def gpt2_split_pattern():
    """Compiled GPT-2 pre-tokenization regex.

    Uses the `regex` module when installed.  Otherwise builds an equivalent
    `re` pattern whose \\p{L}/\\p{N}/\\s classes are enumerated from
    ``unicodedata`` (exact up to Python's Unicode version; ~1 s to build once).
    """
    try:
        import regex
        return regex.compile(GPT2_SPLIT)
    except ImportError:
        import re
    L = _char_class(lambda c: c[0] == "L")
    N = _char_class(lambda c: c[0] == "N")
    S = _WHITE_SPACE
    return re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+"
                      rf"|[{S}]+(?![^{S}])|[{S}]+")


class ReferenceBPE:
    """Straightforward pure-Python GPT-2 byte-level BPE (oracle / baseline).

    vocab: token string -> id; merges: list of (left, right) in rank order.
    """

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab = vocab
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.byte_table = bytes_to_unicode()
        self.pattern = gpt2_split_pattern()
        self.cache: dict[str, list[str]] = {}  # the original GPT-2 code caches per word too

    @classmethod
    def from_files(cls, vocab_json: str, merges_txt: str) -> "ReferenceBPE":
        vocab = _read_token_ids(vocab_json)
        return cls(vocab, _read_merges(merges_txt, vocab, vocab_json))

    def bpe(self, word: str) -> list[str]:
        """Repeatedly merge the adjacent pair with the lowest rank (all its
        non-overlapping occurrences, left to right) until no pair is mergeable."""
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), len(self.ranks)), a, b) for a, b in zip(parts, parts[1:])]
            rank, a, b = min(ranked)
            if rank == len(self.ranks):
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def tokenize(self, text: str) -> list[str]:
        out = []
        for piece in self.pattern.findall(text):
            word = "".join(self.byte_table[b] for b in piece.encode("utf-8"))
            parts = self.cache.get(word)
            if parts is None:
                parts = self.cache[word] = self.bpe(word)
            out.extend(parts)
        return out

    def encode(self, text: str) -> list[int]:
        return [self.vocab[t] for t in self.tokenize(text)]


def pure_python_bpe_encode(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """One-shot convenience wrapper; build a ``ReferenceBPE`` for repeated use."""
    return ReferenceBPE(vocab, merges).encode(text)




# The vocabulary files are checked here, in Python, before `tokenizers`
# reads them: its errors name neither the file nor, for vocab.json, the
# entry. The rules are those of its reader (huggingface/tokenizers,
# tokenizers/src/models/bpe/model.rs: BPE::read_file,
# convert_merges_to_hashmap, BpeBuilder::build): vocab.json is a JSON
# object token -> non-negative integer id; in the merges file every line
# that does not start with "#version" is exactly two symbols separated by
# one space (BadMerges otherwise), and both symbols and their concatenation
# are vocabulary tokens (MergeTokenOutOfVocabulary otherwise). Stricter
# than that reader on purpose: an id that is not an integer (which it drops
# silently) and two tokens sharing an id (decode could not tell them apart)
# are errors too.
def _read_text(path: str, what: str) -> str:
    """The file as UTF-8 text; a file that is not names the byte offset."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TokenizerError(f"{path}:{line}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                             f"expected {what}") from None


def _read_token_ids(path: str) -> dict[str, int]:
    """A ``vocab.json`` / ``encoder.json``: a JSON object token -> id."""
    what = "a JSON object mapping each token to its integer id"
    text = _read_text(path, what)
    if not text.strip():
        raise TokenizerError(f"{path}: empty file; expected {what}")
    try:
        vocab = json.loads(text)
    except json.JSONDecodeError as e:
        cut = "" if text.rstrip().endswith(("}", "]")) else "; the file ends early (truncated?)"
        raise TokenizerError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno}){cut}") from None
    if not isinstance(vocab, dict):
        raise TokenizerError(f"{path}: a JSON {type(vocab).__name__}, expected {what}")
    if not vocab:
        raise TokenizerError(f"{path}: no tokens; expected {what}")
    owner = {}
    for token, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2 ** 32:
            raise TokenizerError(f"{path}: token {token!r} has id {i!r}; ids are integers 0 .. 2^32-1")
        if i in owner:
            raise TokenizerError(f"{path}: tokens {owner[i]!r} and {token!r} both have id {i}")
        owner[i] = token
    return vocab


def _read_merges(path: str, vocab: dict[str, int] | None = None,
                 vocab_path: str = "the vocabulary") -> list[tuple[str, str]]:
    """The merge rules of a ``merges.txt`` / ``vocab.bpe``, in rank order,
    checked as the `tokenizers` reader checks them (see above), each problem
    named by file and line. ``vocab``: also check that every symbol and
    merged token is in it."""
    text = _read_text(path, "merge rules, one 'left right' pair per line")
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the last line (BufRead::lines yields no empty line for it)
        lines.pop()
    merges = []
    for number, line in enumerate(lines, 1):
        line = line[:-1] if line.endswith("\r") else line
        if line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"{path}:{number}: malformed merge rule {line[:60]!r}; expected two symbols "
                                 "separated by one space")
        if vocab is not None:
            for token in (parts[0], parts[1], parts[0] + parts[1]):
                if token not in vocab:
                    raise TokenizerError(f"{path}:{number}: merge rule {line[:60]!r}: {token!r} is not a token "
                                         f"of {vocab_path}")
        merges.append((parts[0], parts[1]))
    return merges


def _read_unimo_vocab(path: str) -> dict[str, int]:
    """The official UNIMO ``vocab.txt``: ``token`` (id = line index) or
    ``token<TAB>id`` per line, the rules of the official ``load_vocab``."""
    text = _read_text(path, "one 'token' or 'token<TAB>id' per line")
    vocab = {}
    for num, line in enumerate(io.StringIO(text, newline=None)):  # the lines of a file opened in text mode
        items = line.strip().split("\t")
        if len(items) > 2:
            raise TokenizerError(f"{path}:{num + 1}: expected 'token' or 'token<TAB>index', got {len(items)} "
                                 "tab-separated fields")
        if len(items) == 2:
            try:
                vocab[items[0].strip()] = int(items[1])
            except ValueError:
                raise TokenizerError(f"{path}:{num + 1}: index {items[1]!r} of token {items[0]!r} is not an "
                                     "integer") from None
        else:
            vocab[items[0].strip()] = num
    if not vocab:
        raise TokenizerError(f"{path}: empty file; expected one 'token' or 'token<TAB>id' per line")
    return vocab


def _require(*paths: str) -> None:
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"tokenizer file not found: {p}")


def _is_word_start(tok: str, byte_decoder: dict[str, int]) -> bool:
    """Starts with a whitespace byte (Ġ=space, Ċ=newline, ...), or decodes to
    punctuation/symbol characters only (Unicode P*/S*, covers string.punctuation)."""
    raw = bytes(byte_decoder[c] for c in tok)
    if raw[:1] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
        return True
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # a fragment of a multi-byte character
        return False
    return bool(text) and all(unicodedata.category(ch)[0] in "PS" for ch in text)


class BPETokenizer:
    """GPT-2 byte-level BPE over either vocabulary layout (see module doc)."""

    def __init__(self, bpe_vocab_json: str, merges_path: str, model_tokens: dict[str, int],
                 specials: dict[str, str], gpt2_to_model: np.ndarray | None, extra_specials=(),
                 model_vocab_path: str = ""):
        """Use the constructors below: they check the files first.
        ``model_vocab_path``: the file ``model_tokens`` come from (messages)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        missing = [t for t in specials.values() if t not in model_tokens]
        if missing:
            raise TokenizerError(f"{model_vocab_path or bpe_vocab_json}: special tokens {missing} missing "
                                 f"(this layout needs {', '.join(specials.values())})")
        try:
            self._tk = Tokenizer(models.BPE.from_file(bpe_vocab_json, merges_path))
        except Exception as e:  # anything the checks above did not anticipate: still name the files
            raise TokenizerError(f"{bpe_vocab_json} + {merges_path}: not a BPE vocabulary the tokenizers "
                                 f"library can read ({e})") from None
        self._tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self._tk.decoder = decoders.ByteLevel()
        self._batch = getattr(self._tk, "encode_batch_fast", self._tk.encode_batch)  # skips offsets
        self.gpt2_to_model = gpt2_to_model  # None for layout (a): model id == BPE id
        self.vocab_size = max(model_tokens.values()) + 1
        self.id_to_token = {i: t for t, i in model_tokens.items()}
        for role, tok in specials.items():
            setattr(self, f"{role}_id", model_tokens[tok])
        self.special_ids = {model_tokens[t] for t in (*specials.values(), *extra_specials)}
        self.image_id = model_tokens.get(UNIMO_IMAGE_TOKEN)
        # model id -> BPE id (-1 = special / not a BPE token), used by decode()
        self._model_to_bpe = np.full(self.vocab_size, -1, dtype=np.int64)
        if gpt2_to_model is None:
            ids = np.array(sorted(set(model_tokens.values()) - self.special_ids), dtype=np.int64)
            self._model_to_bpe[ids] = ids
        else:
            known = gpt2_to_model != self.unk_id
            self._model_to_bpe[gpt2_to_model[known]] = np.nonzero(known)[0]
        bpe_tok = self._tk.get_vocab()
        bpe_tok = {i: t for t, i in bpe_tok.items()}
        byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self.word_start = np.zeros(self.vocab_size, dtype=bool)
        for mid in self.id_to_token:
            bid = self._model_to_bpe[mid]
            self.word_start[mid] = mid in self.special_ids or (
                bid >= 0 and _is_word_start(bpe_tok[bid], byte_decoder))

    # ---- constructors -------------------------------------------------
    @classmethod
    def from_roberta(cls, vocab_json: str, merges_txt: str) -> "BPETokenizer":
        _require(vocab_json, merges_txt)
        vocab = _read_token_ids(vocab_json)
        _read_merges(merges_txt, vocab, vocab_json)
        tk = cls(vocab_json, merges_txt, vocab, ROBERTA_SPECIALS, None, model_vocab_path=vocab_json)
        tk.files = (vocab_json, merges_txt)  # what the ids depend on (token shards check it)
        return tk

    @classmethod
    def from_unimo(cls, encoder_json: str, vocab_bpe: str, vocab_txt: str) -> "BPETokenizer":
        _require(encoder_json, vocab_bpe, vocab_txt)
        encoder = _read_token_ids(encoder_json)
        _read_merges(vocab_bpe, encoder, encoder_json)
        n_gpt2 = max(encoder.values()) + 1
        vocab = _read_unimo_vocab(vocab_txt)
        missing = [t for t in UNIMO_SPECIALS.values() if t not in vocab]
        if missing:
            raise TokenizerError(f"{vocab_txt}: special tokens {missing} missing "
                                 f"(this layout needs {', '.join(UNIMO_SPECIALS.values())})")
        table = np.full(n_gpt2, vocab[UNIMO_SPECIALS["unk"]], dtype=np.int64)
        for gid in range(n_gpt2):
            table[gid] = vocab.get(str(gid), table[gid])
        extra = [t for t in vocab if not (t.isascii() and t.isdigit())]  # [CLS], madeupword0000..
        tk = cls(encoder_json, vocab_bpe, vocab, UNIMO_SPECIALS, table, extra, model_vocab_path=vocab_txt)
        tk.files = (encoder_json, vocab_bpe, vocab_txt)
        return tk

    @classmethod
    def from_dir(cls, path: str) -> "BPETokenizer":
        """Layout (b) if all its files exist, else layout (a).  Names may carry
        a prefix, as in the official ``roberta_base_en.vocab.txt`` (or
        ``<prefix>-vocab.json`` as written by ``save_model(dir, prefix)``)."""
        def find(name):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
            hits = sorted({*glob.glob(os.path.join(glob.escape(path), "*." + name)),
                           *glob.glob(os.path.join(glob.escape(path), "*-" + name))})
            if len(hits) > 1:
                raise ValueError(f"ambiguous tokenizer files in {path!r}: {hits}")
            return hits[0] if hits else None
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer directory {path!r}: "
                                    f"{'not a directory' if os.path.exists(path) else 'no such directory'}")
        unimo = [find(n) for n in UNIMO_FILES]
        if all(unimo):
            return cls.from_unimo(*unimo)
        roberta = [find(n) for n in ROBERTA_FILES]
        if all(roberta):
            return cls.from_roberta(*roberta)
        raise FileNotFoundError(
            f"no tokenizer vocabulary in {path!r}: expected {' + '.join(ROBERTA_FILES)} "
            f"(RoBERTa layout) or {' + '.join(UNIMO_FILES)} (UNIMO layout)")

    # ---- encoding -----------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        ids = self._tk.encode(text, add_special_tokens=False).ids
        return ids if self.gpt2_to_model is None else self.gpt2_to_model[ids].tolist()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Same as ``[encode(t) for t in texts]`` but parallel in Rust."""
        encs = self._batch(list(texts), add_special_tokens=False)
        out = [e.ids for e in encs]
        if self.gpt2_to_model is None:
            return out
        flat = self.gpt2_to_model[np.fromiter((i for ids in out for i in ids), dtype=np.int64)].tolist()
        res, pos = [], 0
        for ids in out:
            res.append(flat[pos:pos + len(ids)])
            pos += len(ids)
        return res

    def decode(self, ids, skip_special: bool = True) -> str:
        """Inverse of encode; specials are dropped or rendered by their string."""
        pieces, run = [], []
        for i in map(int, ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} outside [0, {self.vocab_size})")
            bid = int(self._model_to_bpe[i])
            if bid >= 0:
                run.append(bid)
                continue
            if run:
                pieces.append(self._tk.decode(run, skip_special_tokens=False))
                run = []
            if not skip_special and i in self.id_to_token:
                pieces.append(self.id_to_token[i])
        if run:
            pieces.append(self._tk.decode(run, skip_special_tokens=False))
        return "".join(pieces)

    def build_input(self, ids: list[int], max_len: int) -> list[int]:
        """``[cls] + ids + [sep]``, truncating ids so the result fits max_len."""
        if max_len < 2:
            raise ValueError("max_len must be >= 2 to hold [cls] and [sep]")
        return [self.cls_id, *ids[:max_len - 2], self.sep_id]


def train_bpe(texts, vocab_size: int, out_dir: str, min_frequency: int = 2) -> BPETokenizer:
    """Train a byte-level BPE and save it in RoBERTa layout.

    Specials come first (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4), then the
    256 byte symbols, then merges.  Output is identical for identical input.
    """
    from tokenizers import ByteLevelBPETokenizer
    tk = ByteLevelBPETokenizer(add_prefix_space=False)
    specials = [ROBERTA_SPECIALS[k] for k in ("cls", "pad", "sep", "unk", "mask")]
    tk.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                           show_progress=False, special_tokens=specials)
    os.makedirs(out_dir, exist_ok=True)
    tk.save_model(out_dir)
    return BPETokenizer.from_roberta(os.path.join(out_dir, "vocab.json"),
                                     os.path.join(out_dir, "merges.txt"))


def load_tokenizer(path: str):
    """The tokenizer ``Global.tokenizer_dir`` holds, by its files: the
    official UNIMO layout (``encoder.json`` + ``vocab.bpe`` + ``vocab.txt``),
    RoBERTa's (``vocab.json`` + ``merges.txt``), a Hugging Face
    ``tokenizer.json`` of a WordPiece model, or BERT's WordPiece
    ``vocab.txt`` (:mod:`vlcore.text.wordpiece`, Unicoder-VL's)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizer directory {path!r}: "
                                f"{'not a directory' if os.path.exists(path) else 'no such directory'}")
    tokenizer_json = os.path.join(path, "tokenizer.json")
    vocab_txt = os.path.join(path, "vocab.txt")
    if os.path.isfile(vocab_txt) and is_wordpiece_vocab(vocab_txt):
        if os.path.isfile(tokenizer_json):  # the published pipeline, as it is
            return WordPieceTokenizer.from_tokenizer_json(tokenizer_json)
        return WordPieceTokenizer.from_vocab(vocab_txt)
    bpe_files = [n for n in (*ROBERTA_FILES, *UNIMO_FILES) if os.path.isfile(os.path.join(path, n))]
    if os.path.isfile(tokenizer_json) and not bpe_files:
        return WordPieceTokenizer.from_tokenizer_json(tokenizer_json)  # refuses a non-WordPiece model
    return BPETokenizer.from_dir(path)  # the BPE layouts (also prefixed names), or an error naming them
