"""Token shards: a text corpus (or the texts of a manifest) tokenized once,
stored so that training reads token ids instead of tokenizing on the fly.

Written by ``python -m data_prep.tokenize_shards``; read by
:class:`TokenShards` (and by the text corpora of the model packages when a
corpus ``path`` names an index file, see :func:`is_index`). Layout of the
output directory ``OUT``::

    tokens.layout.json                    the job (input, tokenizer, shard size); checked on resume
    tokens-00000-of-00004.offsets.npy     int64 [m + 1]: sequence j is ids[offsets[j]:offsets[j+1]]
    tokens-00000-of-00004.ids.npy         int32 [offsets[-1]]: the token ids, back to back
    tokens-00000-of-00004.rows.npy        int64 [m] (manifests only): input row of each sequence
    ...
    tokens.index.json                     written last, when every shard exists

``tokens.index.json``::

    {"format": "token_shards", "version": 1, "dtype": "int32",
     "source": {"kind": "text" | "manifest", "path": ..., "field": ..., "rows": N},
     "tokenizer": {"vocab_size": V, "sha256": {file name: digest, ...}},
     "shards": [{"ids": ..., "offsets": ..., "rows"?: ..., "sequences": m, "tokens": t}, ...],
     "sequences": total, "tokens": total}

Ids are the model's ids, exactly ``BPETokenizer.encode`` of each text with
no special tokens (``[CLS]``/``[SEP]`` are added at collation, and long
sequences are cut to a window then, as for raw text). For a text corpus,
sequence ``i`` is non-blank line ``i`` of the file (the indexing of
:class:`vlcore.formats.records.LineFile`); a line that could not be read (not
UTF-8) is stored as an empty sequence and reported as a bad record when
read, so the indices of all other lines stay aligned. For a manifest, each
string of the tokenized field (``captions``: every caption) is one sequence
and ``rows`` gives its record.

Every shard's ``.ids.npy`` is written (atomically) after its
``.offsets.npy``, so a shard whose ids file exists is complete; arrays are
memory-mapped when read (the page cache is shared between loader workers).
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from vlcore.formats import DamagedFileError
from vlcore.formats.sharded import shard_name

NAME = "tokens"
INDEX = f"{NAME}.index.json"
FORMAT, VERSION = "token_shards", 1


class TokenShardsError(ValueError):
    """Unusable token shards (names the file)."""


class TokenShardDamagedError(TokenShardsError, DamagedFileError):
    """A shard file that cannot be mapped (truncated or damaged)."""


def _map(path):
    """``np.load(path, mmap_mode="r")``; a truncated or damaged file is a
    TokenShardsError naming it (NumPy says "mmap length is greater than
    file size" without a name)."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        raise TokenShardDamagedError(f"{path}: unreadable token shard ({size} bytes; truncated?): {e}") from None


def shard_files(index: int, total: int) -> dict:
    return {part: shard_name(NAME, index, total, f"{part}.npy") for part in ("ids", "offsets", "rows")}


def tokenizer_fingerprint(tokenizer) -> dict:
    """What the ids depend on: the vocabulary files' digests and the size."""
    files = getattr(tokenizer, "files", None)
    if not files:
        raise TokenShardsError("the tokenizer does not record its files (build it with BPETokenizer.from_dir)")
    digests = {}
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[os.path.basename(path)] = h.hexdigest()
    return {"vocab_size": int(tokenizer.vocab_size), "sha256": digests}


def is_index(path: str) -> bool:
    """Whether ``path`` is a token-shards index (by name, then content)."""
    if not path.endswith(".index.json") or not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class TokenShards:
    """``len()`` and ``[i]`` (a list of token ids) over the sequences of a
    token-shards index; safe to pickle into loader workers."""

    def __init__(self, index_path: str):
        if os.path.isdir(index_path):
            index_path = os.path.join(index_path, INDEX)
        self.path = index_path
        try:
            with open(index_path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise TokenShardsError(f"{index_path}: no such file (did data_prep.tokenize_shards finish?)") from None
        except ValueError as e:
            raise TokenShardsError(f"{index_path}: not JSON ({e})") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise TokenShardsError(f"{index_path}: not a {FORMAT} v{VERSION} index "
                                   f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
        self.meta = meta
        self.tokenizer = meta["tokenizer"]
        root = os.path.dirname(os.path.abspath(index_path))
        self.shards = meta["shards"]
        self._files = [(os.path.join(root, s["ids"]), os.path.join(root, s["offsets"])) for s in self.shards]
        for ids_path, off_path in self._files:
            for p in (ids_path, off_path):
                if not os.path.isfile(p):
                    raise TokenShardsError(f"{index_path}: shard file {p} is missing")
        self.starts = np.concatenate([[0], np.cumsum([s["sequences"] for s in self.shards])]).astype(np.int64)
        if int(self.starts[-1]) != meta["sequences"]:
            raise TokenShardsError(f"{index_path}: shard sizes add up to {self.starts[-1]}, "
                                   f"index says {meta['sequences']}")
        self._arrays = {}

    def __len__(self):
        return int(self.starts[-1])

    def __getstate__(self):  # memory maps are reopened in each process
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    def _shard(self, k):
        arrays = self._arrays.get(k)
        if arrays is None:
            arrays = self._arrays[k] = tuple(_map(p) for p in self._files[k])
        return arrays

    def ids(self, i) -> np.ndarray:
        """Token ids of sequence ``i`` as an int32 array (a view of the map)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sequence {i} out of range ({n} sequences in {self.path})")
        i = int(i) % n
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        ids, offsets = self._shard(k)
        j = i - int(self.starts[k])
        return ids[int(offsets[j]):int(offsets[j + 1])]

    def __getitem__(self, i) -> list:
        return self.ids(i).tolist()

    def check_tokenizer(self, tokenizer, what="the training tokenizer"):
        """Raise unless the shards were made with ``tokenizer``'s files."""
        mine = tokenizer_fingerprint(tokenizer)
        if mine != self.tokenizer:
            raise TokenShardsError(f"{self.path}: tokenized with a different vocabulary than {what} "
                                   f"(shards: {self.tokenizer['sha256']}, vocab {self.tokenizer['vocab_size']}; "
                                   f"now: {mine['sha256']}, vocab {mine['vocab_size']}); re-run "
                                   "data_prep.tokenize_shards with this tokenizer")
