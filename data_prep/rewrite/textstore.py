"""Random access to all captions of a job from any worker process.

TF-IDF workers need the text and id of any caption of the corpus (the
neighbours of a caption can be anywhere), so the captions are written once
into flat files that every worker memory-maps (the page cache is shared):

    texts.bin / texts.idx.npy     UTF-8 captions back to back, int64 offsets
    rids.bin / rids.idx.npy       record ids, the same way
    cap_record.npy, cap_k.npy     record (= image) index and caption index k
    cap_hash.npy                  int64 hash of each caption's normalised text
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from vlcore.formats.rewrites import normalize_text
from vlcore.formats.sharded import atomic_path


def text_hash(text: str) -> int:
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _save(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


class _Strings:
    """Append-only writer, then mmap reader, of a list of strings."""

    def __init__(self, directory, name):
        self.bin = os.path.join(directory, name + ".bin")
        self.idx = os.path.join(directory, name + ".idx.npy")

    def write(self, strings):
        offsets = [0]
        with atomic_path(self.bin) as tmp, open(tmp, "wb") as f:
            for s in strings:
                b = s.encode("utf-8")
                f.write(b)
                offsets.append(offsets[-1] + len(b))
        _save(self.idx, np.asarray(offsets, dtype=np.int64))

    def open(self):
        self.offsets = np.load(self.idx, mmap_mode="r")
        self.data = np.memmap(self.bin, dtype=np.uint8, mode="r") if self.offsets[-1] else np.zeros(0, np.uint8)
        return self

    def __getitem__(self, i):
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.data[a:b].tobytes().decode("utf-8")

    def __len__(self):
        return len(self.offsets) - 1


class CaptionStore:
    def __init__(self, directory):
        self.dir = directory
        self.texts = _Strings(directory, "texts")
        self.rids = _Strings(directory, "rids")

    def build(self, index, log=print):
        """Write the store for every caption of a :class:`CaptionIndex`;
        returns the list of texts (the vectorizer needs them once)."""
        from tqdm import tqdm
        os.makedirs(self.dir, exist_ok=True)
        texts, rids, rec, ks, hashes = [], [], [], [], []
        bar = tqdm(index.records(0, index.num_records), total=index.num_records, desc="read captions",
                   unit="rec", disable=None)
        for r, (rid, caps) in enumerate(bar):
            rids.append(rid)
            for k, text in enumerate(caps):
                if isinstance(text, str) and text.strip():
                    texts.append(text)
                    rec.append(r)
                    ks.append(k)
                    hashes.append(text_hash(text))
        self.texts.write(texts)
        self.rids.write(rids)
        _save(os.path.join(self.dir, "cap_record.npy"), np.asarray(rec, dtype=np.int64))
        _save(os.path.join(self.dir, "cap_k.npy"), np.asarray(ks, dtype=np.int32))
        _save(os.path.join(self.dir, "cap_hash.npy"), np.asarray(hashes, dtype=np.int64))
        return texts

    def open(self):
        self.texts.open()
        self.rids.open()
        load = lambda n: np.load(os.path.join(self.dir, n), mmap_mode="r")  # noqa: E731
        self.record, self.k, self.hash = load("cap_record.npy"), load("cap_k.npy"), load("cap_hash.npy")
        # first caption position of every record: captions of record r are first[r]:first[r+1]
        self.first = np.searchsorted(self.record, np.arange(len(self.rids) + 1))
        return self

    def caption_id(self, i) -> str:
        return f"{self.rids[int(self.record[i])]}#{int(self.k[i])}"

    def __len__(self):
        return len(self.record)
