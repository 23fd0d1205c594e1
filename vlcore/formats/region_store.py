"""The region-feature store: one LMDB environment keyed by image id.

Why LMDB: training reads one image's regions at a time, at random, from many
DataLoader worker processes; LMDB serves that from a memory-mapped B-tree
with no server, no index to build and no per-file overhead (millions of tiny
``.npz`` files are what bring shared file systems to their knees). Its write
transactions are atomic: a writer killed at any point leaves the last
committed state, never a half-written record, which is what makes extraction
resumable. A key can hold one value only, so a record cannot be duplicated.
Sharded writers (one per process) each write their own environment and
:func:`merge` combines them.

Layout on disk (a directory, LMDB's ``subdir`` layout)::

    STORE/data.mdb   STORE/lock.mdb

Two named databases: ``records`` (key = image id, UTF-8; value = one record,
below) and ``meta`` (key ``meta``: a JSON object with ``format``,
``format_version``, ``feature_dtype``, ``feature_dim`` and whatever the writer
added, e.g. the detector config and weights file).

One record (little-endian)::

    b"RFS1"  uint32 header_len  header (JSON, UTF-8)  zero pad to 8
    array 0 bytes  pad to 8   array 1 bytes  pad to 8  ...   uint32 crc32

``crc32`` (zlib) covers every byte before it. The header is
``{"id", "w", "h", "n", "arrays": [[name, numpy dtype str, shape], ...]}``.
Arrays, in this order (N = number of boxes):

=============  ===========================  =====================================
name           dtype, shape                 meaning
=============  ===========================  =====================================
boxes          float32 [N, 4]               x1, y1, x2, y2 in original image pixels
features       float16 or float32 [N, D]    mean-pooled RoI features (D = 2048)
obj_ids        int32 [N, k]                 top-k object classes, best first
                                            (0..C-1, the detector's foreground
                                            classes, Visual Genome's 1600)
obj_scores     float32 [N, k]               their probabilities
attr_ids       int32 [N, ka]                top-ka attributes (ka may be 0)
attr_scores    float32 [N, ka]
cls_probs      feature dtype [N, C+1]       optional: the full class distribution,
                                            foreground classes then background
                                            LAST (the detectron2 order)
=============  ===========================  =====================================

The max class of a box is ``obj_ids[:, 0]`` with score ``obj_scores[:, 0]``
(:attr:`RegionFeatures.max_class_ids`).

Opening a store (reader or writer) first checks that ``data.mdb`` holds
every page LMDB says the store uses: a truncated or damaged store is a
:class:`StoreError` naming it ("store X is truncated (N of M bytes)"), never
the SIGBUS that reading a memory-mapped page past the end of the file is.

Readers open the environment again in each process (LMDB handles must not
cross ``fork``), so a :class:`RegionStore` can be built in the parent and
used in forked DataLoader workers; it also pickles (for ``spawn``).
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from vlcore.formats import DamagedFileError

FORMAT = "vlcore.region_store"
FORMAT_VERSION = 1
MAGIC = b"RFS1"
_RECORDS, _META = b"records", b"meta"
_ORDER = ("boxes", "features", "obj_ids", "obj_scores", "attr_ids", "attr_scores", "cls_probs")
DEFAULT_MAP_SIZE = 1 << 40  # a sparse reservation on 64-bit Linux, not disk space


class StoreError(ValueError):
    """A missing, truncated or corrupt store or record; the message names the
    store and the key."""


class StoreDamagedError(StoreError, DamagedFileError):
    """The store as a whole is truncated or damaged (not one record)."""


@dataclass(frozen=True)
class RegionFeatures:
    image_id: str
    image_w: int
    image_h: int
    boxes: np.ndarray
    features: np.ndarray
    obj_ids: np.ndarray
    obj_scores: np.ndarray
    attr_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    attr_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    cls_probs: Optional[np.ndarray] = None

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def max_class_ids(self) -> np.ndarray:
        return self.obj_ids[:, 0] if self.obj_ids.shape[1] else np.full(self.num_boxes, -1, np.int32)

    @property
    def max_class_scores(self) -> np.ndarray:
        return self.obj_scores[:, 0] if self.obj_scores.shape[1] else np.zeros(self.num_boxes, np.float32)


def top_k(scores, k):
    """The compact form of per-box probabilities ``[N, C]``: indices (int32)
    and values (float32) of the ``k`` largest per row, best first (ties:
    lower index first)."""
    scores = np.asarray(scores)
    k = max(0, min(int(k), scores.shape[1] if scores.ndim == 2 else 0))
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int32)
    return idx, np.take_along_axis(scores, idx, axis=1).astype(np.float32)


def _lmdb():
    try:
        import lmdb
    except ImportError:  # pragma: no cover - exercised only without the dependency
        raise StoreError("the region store needs the 'lmdb' package: pip install lmdb") from None
    return lmdb


# ------------------------------------------------------ damaged environments
# LMDB memory-maps data.mdb and reads its pages through the map: a page that
# lies beyond the end of a truncated file is a SIGBUS (the process dies with
# exit 135 / -7 and prints nothing), not an error. So a store is checked
# against LMDB's own account of how much of the file it uses before any
# record is read. Sources (liblmdb 0.9 mdb.c as bundled by py-lmdb,
# github.com/jnwatson/py-lmdb lib/mdb.c; py-lmdb's Environment.info()/stat()
# docstrings in lmdb/cffi.py):
# - mdb_env_read_header reads the two meta pages with pread() before mapping
#   the file, so a file too short to hold them fails to open (MDB_INVALID)
#   instead of faulting -- except an EMPTY file, which LMDB takes for a new
#   environment (read-only: "Bad file descriptor"), hence the size check first;
# - a read transaction only follows page numbers below the meta page's
#   mm_last_pg + 1 (mdb_txn_renew0 sets mt_next_pgno, mdb_page_get refuses
#   the rest with MDB_PAGE_NOTFOUND), and mdb_env_info() reports that
#   mm_last_pg as ``last_pgno``, mdb_env_stat() the page size as ``psize``.
# So if data.mdb holds (last_pgno + 1) * psize bytes, no read can fault.
# A file LONGER than that is healthy: LMDB writes a transaction's pages
# (growing the file) before the meta page that makes them part of the store,
# and never shrinks the file; a writer appending while a reader checks only
# makes the file longer. The page size is the OS page size of the machine
# that created the store (mdb_env_open2: me_psize = me_os_psize), 4 KiB or
# more on every platform Paddle runs on, and the file starts with 2 meta pages.
_MIN_DATA_BYTES = 2 * 4096


def _data_file(path):
    return os.path.join(path, "data.mdb")


def _lmdb_reason(e, path):
    """py-lmdb's message without the path it starts with (ours names the store)."""
    text = str(e)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


@contextlib.contextmanager
def _lmdb_errors(path, what):
    """LMDB's errors (a damaged B-tree: MDB_CORRUPTED, MDB_PAGE_NOTFOUND...)
    as one :class:`StoreError` naming the store and ``what`` was being read
    or written (a string, or a callable giving it)."""
    lmdb = _lmdb()
    try:
        yield
    except (lmdb.MapFullError, lmdb.NotFoundError):  # not damage: the writer grows the map;
        raise                                           # the caller says what is missing
    except lmdb.Error as e:
        what = what() if callable(what) else what
        raise StoreDamagedError(f"store {path} is damaged: LMDB failed {what} ({_lmdb_reason(e, path)})") from None


def _check_not_truncated(path, env):
    """Raise a :class:`StoreError` if data.mdb is shorter than the pages LMDB
    says the store uses (see the comment above)."""
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    have = os.path.getsize(_data_file(path))  # read AFTER the meta: a writer grows the file first
    if have < need:
        raise StoreDamagedError(f"store {path} is truncated ({have} of {need} bytes)")


def _check_meta_pages(path, empty_ok=False):
    """Raise a :class:`StoreDamagedError` if data.mdb cannot be read or is too
    short for LMDB's two meta pages (reading them through the map would
    fault); ``empty_ok``: an empty file is a new store (writers)."""
    try:
        have = os.path.getsize(_data_file(path))
    except OSError as e:
        raise StoreDamagedError(f"store {path}: cannot read data.mdb ({e.strerror})") from None
    if have < _MIN_DATA_BYTES and not (empty_ok and have == 0):
        raise StoreDamagedError(f"store {path} is truncated ({have} of at least {_MIN_DATA_BYTES} bytes)")


def _open_checked(path, what, new_ok=False, **lmdb_kwargs):
    """``lmdb.open(path, **lmdb_kwargs)`` of a store that is not truncated or
    otherwise unreadable (:class:`StoreError` naming the store otherwise).
    ``new_ok``: a missing or empty data.mdb is a new store (writers)."""
    lmdb = _lmdb()
    if os.path.exists(_data_file(path)):
        _check_meta_pages(path, empty_ok=new_ok)
    elif not new_ok:
        raise StoreError(f"{path}: not a region store (no data.mdb)")
    try:
        env = lmdb.open(path, **lmdb_kwargs)
    except lmdb.Error as e:
        how = f" {what}" if what else ""
        raise StoreDamagedError(f"store {path} cannot be opened{how}: damaged or not an LMDB store "
                                f"({_lmdb_reason(e, path)})") from None
    try:
        _check_not_truncated(path, env)
    except BaseException:
        env.close()
        raise
    return env


# --------------------------------------------------------------------- codec
def _pad8(n):
    return (-n) % 8


def _no_attrs_as_rows(a, n, dtype):
    """"No attributes" may come as any empty array; store it as ``[n, 0]``."""
    if np.size(a) == 0 and not (np.ndim(a) == 2 and np.shape(a)[0] == n):
        return np.zeros((max(n, 0), 0), dtype)
    return a


def encode(rec: RegionFeatures, feature_dtype="float16") -> bytes:
    """Serialise one record (features and ``cls_probs`` cast to ``feature_dtype``)."""
    n = rec.boxes.shape[0] if np.ndim(rec.boxes) == 2 else -1
    attr_ids = _no_attrs_as_rows(rec.attr_ids, n, np.int32)
    attr_scores = _no_attrs_as_rows(rec.attr_scores, n, np.float32)
    arrays = {"boxes": np.asarray(rec.boxes, np.float32),
              "features": np.asarray(rec.features, feature_dtype),
              "obj_ids": np.asarray(rec.obj_ids, np.int32), "obj_scores": np.asarray(rec.obj_scores, np.float32),
              "attr_ids": np.asarray(attr_ids, np.int32), "attr_scores": np.asarray(attr_scores, np.float32)}
    if rec.cls_probs is not None:
        arrays["cls_probs"] = np.asarray(rec.cls_probs, feature_dtype)
    where = f"record {rec.image_id!r}"
    if arrays["boxes"].ndim != 2 or arrays["boxes"].shape[1] != 4:
        raise StoreError(f"{where}: boxes must be [N, 4], got {list(arrays['boxes'].shape)}")
    for name, a in arrays.items():
        if a.ndim != 2 or a.shape[0] != n:
            raise StoreError(f"{where}: {name} must be [{n}, *] (one row per box), got {list(a.shape)}")
    for a, b in (("obj_ids", "obj_scores"), ("attr_ids", "attr_scores")):
        if arrays[a].shape != arrays[b].shape:
            raise StoreError(f"{where}: {a} {list(arrays[a].shape)} and {b} {list(arrays[b].shape)} differ")
    header = json.dumps({"id": rec.image_id, "w": int(rec.image_w), "h": int(rec.image_h), "n": int(n),
                         "arrays": [[k, arrays[k].dtype.str, list(arrays[k].shape)] for k in _ORDER if k in arrays]},
                        separators=(",", ":")).encode()
    parts = [MAGIC, struct.pack("<I", len(header)), header, b"\0" * _pad8(8 + len(header))]
    for k in _ORDER:
        if k in arrays:
            raw = np.ascontiguousarray(arrays[k]).tobytes()
            parts += [raw, b"\0" * _pad8(len(raw))]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def decode(buf, key="?", where="") -> RegionFeatures:
    """Parse and check one record; :class:`StoreError` names ``where`` and ``key``."""
    buf = memoryview(buf)
    name = f"{where}: record {key!r}" if where else f"record {key!r}"
    if len(buf) < 12 or bytes(buf[:4]) != MAGIC:
        raise StoreError(f"{name}: not a region record (bad magic or {len(buf)} bytes)")
    (stored_crc,) = struct.unpack("<I", buf[-4:])
    if zlib.crc32(buf[:-4]) != stored_crc:
        raise StoreError(f"{name}: checksum mismatch (corrupt or truncated record, {len(buf)} bytes)")
    (hlen,) = struct.unpack("<I", buf[4:8])
    try:
        header = json.loads(bytes(buf[8:8 + hlen]))
    except ValueError:
        raise StoreError(f"{name}: unreadable header") from None
    pos = 8 + hlen + _pad8(8 + hlen)
    arrays = {}
    for aname, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        size = int(np.prod(shape)) * dt.itemsize
        if pos + size > len(buf) - 4:
            raise StoreError(f"{name}: truncated at array {aname!r}")
        arrays[aname] = np.frombuffer(buf, dtype=dt, count=int(np.prod(shape)), offset=pos).reshape(shape)
        pos += size + _pad8(size)
    if header.get("id") != key and key != "?":
        raise StoreError(f"{name}: holds image id {header.get('id')!r}")
    return RegionFeatures(image_id=header["id"], image_w=header["w"], image_h=header["h"], **arrays)


# -------------------------------------------------------------------- writer
class RegionStoreWriter:
    """Append records to a store (created if missing), committing every
    ``commit_every`` records in one transaction; ``close()`` (or leaving the
    ``with`` block, even by an exception) commits the rest. A record written
    twice keeps the last value. Features are cast to ``feature_dtype``, which
    must match an existing store's."""

    def __init__(self, path, map_size=DEFAULT_MAP_SIZE, commit_every=64, feature_dtype="float16", meta=None):
        if np.dtype(feature_dtype) not in (np.float16, np.float32):
            raise StoreError(f"{path}: feature_dtype must be float16 or float32, not {feature_dtype}")
        self.path, self.commit_every = str(path), max(1, int(commit_every))
        self._map_size = int(map_size)
        os.makedirs(self.path, exist_ok=True)
        # An empty (or absent) data.mdb is a new store: LMDB writes its meta pages.
        self.env = _open_checked(self.path, "for writing", new_ok=True, map_size=self._map_size, subdir=True,
                                 max_dbs=2, readahead=False)
        with _lmdb_errors(self.path, "opening its databases"):
            self._db = self.env.open_db(_RECORDS)
            self._meta_db = self.env.open_db(_META)
        with _lmdb_errors(self.path, "reading its meta record"), self.env.begin() as txn:
            old = txn.get(b"meta", db=self._meta_db)
        if old is not None:
            self.meta = json.loads(old)
            if self.meta.get("feature_dtype") != np.dtype(feature_dtype).name:
                raise StoreError(f"{self.path}: store holds {self.meta.get('feature_dtype')} features, "
                                 f"cannot append {np.dtype(feature_dtype).name}")
        else:
            self.meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                         "feature_dtype": np.dtype(feature_dtype).name, "feature_dim": None, **(meta or {})}
            self._put_meta()
        self.feature_dtype = np.dtype(self.meta["feature_dtype"])
        self._pending = {}  # key bytes -> record bytes, in put order

    def _put_meta(self):
        self._write([(b"meta", json.dumps(self.meta, sort_keys=True).encode())], db=self._meta_db)

    def get_raw(self, image_id) -> Optional[bytes]:
        """The record bytes of ``image_id`` (pending or committed), or None.
        (LMDB forbids opening one environment twice in a process, so code
        that writes a store reads it through its writer.)"""
        key = str(image_id).encode()
        if key in self._pending:
            return self._pending[key]
        with _lmdb_errors(self.path, f"reading record {str(image_id)!r}"), self.env.begin(db=self._db) as txn:
            return txn.get(key)

    def __contains__(self, image_id):
        return self.get_raw(image_id) is not None

    def __len__(self):
        with _lmdb_errors(self.path, "counting its records"), self.env.begin() as txn:
            committed = txn.stat(self._db)["entries"]
            return committed + sum(1 for k in self._pending if txn.get(k, db=self._db) is None)

    def keys(self) -> List[str]:
        with _lmdb_errors(self.path, "listing its keys"), self.env.begin(db=self._db) as txn:
            done = [bytes(k).decode() for k in txn.cursor().iternext(keys=True, values=False)]
        seen = set(done)
        return done + [k.decode() for k in self._pending if k.decode() not in seen]

    def put(self, rec: RegionFeatures):
        dim = int(np.shape(rec.features)[1]) if np.ndim(rec.features) == 2 else None
        if self.meta.get("feature_dim") is None and dim is not None and rec.boxes.shape[0]:
            self.meta["feature_dim"] = dim
            self._put_meta()
        elif dim is not None and rec.boxes.shape[0] and dim != self.meta["feature_dim"]:
            raise StoreError(f"{self.path}: record {rec.image_id!r} has {dim}-d features, "
                             f"the store {self.meta['feature_dim']}-d")
        self.put_raw(rec.image_id, encode(rec, self.feature_dtype))

    def put_raw(self, image_id, raw: bytes):
        """Store an already encoded record (copying between stores)."""
        self._pending[str(image_id).encode()] = raw
        if len(self._pending) >= self.commit_every:
            self.flush()

    def flush(self):
        if self._pending:
            self._write(list(self._pending.items()), db=self._db)
            self._pending = {}

    def _write(self, items, db):
        lmdb = _lmdb()
        while True:
            try:
                with _lmdb_errors(self.path, f"writing {len(items)} records"), \
                        self.env.begin(write=True, db=db) as txn:
                    for k, v in items:
                        txn.put(k, v)
                return
            except lmdb.MapFullError:  # the transaction was aborted: grow and redo it
                self._map_size *= 2
                self.env.set_mapsize(self._map_size)

    def close(self):
        if self.env is not None:
            self.flush()
            self.env.close()
            self.env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -------------------------------------------------------------------- reader
@dataclass
class VerifyReport:
    path: str
    count: int = 0
    bad: List[Tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.bad

    def __str__(self):
        head = f"{self.path}: {self.count} records, {len(self.bad)} bad"
        return "\n".join([head] + [f"  {k}: {why}" for k, why in self.bad[:50]]
                         + ([f"  ... {len(self.bad) - 50} more"] if len(self.bad) > 50 else []))


class RegionStore:
    """Read-only random access by image id. ``lock=False`` (default) assumes
    no writer is active on the store, which is the case for training; pass
    ``lock=True`` to read a store that is being written.

    Constructing one opens and checks the store (:func:`_open_checked`): a
    truncated or unreadable store is a :class:`StoreError` here, in the
    process that names it, rather than a signal in a DataLoader worker. LMDB
    errors while reading (a damaged B-tree) are :class:`StoreError` too,
    naming the store and the key."""

    def __init__(self, path, lock=False):
        self.path, self.lock = str(path), bool(lock)
        if not os.path.isfile(_data_file(self.path)):
            raise StoreError(f"{self.path}: not a region store (no data.mdb)")
        self._env = self._pid = None
        self._meta = None
        self._open()

    def _open(self):
        if self._env is None or self._pid != os.getpid():
            self._env, self._dbs = _shared_env(self.path, self.lock)
            self._pid = os.getpid()
        return self._env

    @contextlib.contextmanager
    def _reading(self, what, db=0):
        """A read transaction on database ``db`` (0 records, 1 meta). The file
        is checked again first (two stats and LMDB's page count, microseconds):
        a store truncated after it was opened -- by another process, while
        training reads it -- is then an error too, not a SIGBUS; only a
        truncation racing this very read can still fault."""
        env = self._open()
        _check_meta_pages(self.path)
        _check_not_truncated(self.path, env)
        with _lmdb_errors(self.path, what):
            with env.begin(db=self._dbs[db]) as txn:
                yield txn

    def __getstate__(self):
        return {"path": self.path, "lock": self.lock, "_env": None, "_pid": None, "_meta": self._meta}

    @property
    def meta(self) -> dict:
        if self._meta is None:
            with self._reading("reading its meta record", db=1) as txn:
                raw = txn.get(b"meta")
            try:
                self._meta = json.loads(raw) if raw else {}
            except ValueError:
                raise StoreError(f"store {self.path}: unreadable meta record ({len(raw)} bytes)") from None
        return self._meta

    def __len__(self):
        with self._reading("counting its records") as txn:
            return txn.stat(self._dbs[0])["entries"]

    def keys(self) -> Iterator[str]:
        for key, _ in self._iterate(values=False):
            yield key

    def __contains__(self, image_id):
        return self.get_raw(image_id) is not None

    def get_raw(self, image_id) -> Optional[bytes]:
        with self._reading(f"reading record {str(image_id)!r}") as txn:
            return txn.get(str(image_id).encode())

    def get(self, image_id) -> RegionFeatures:
        """The record of ``image_id`` (KeyError if absent, StoreError if
        corrupt). Its arrays are read-only views of the record's bytes: copy
        (or convert) before writing into them."""
        raw = self.get_raw(image_id)
        if raw is None:
            raise KeyError(f"{self.path}: no record for image id {image_id!r}")
        return decode(raw, str(image_id), self.path)

    def items(self) -> Iterator[Tuple[str, bytes]]:
        """``(image id, raw record)`` in key order (for copying and checking)."""
        return self._iterate(values=True)

    def _iterate(self, values):
        n = [0]
        with self._reading(lambda: f"reading past its first {n[0]} records") as txn:
            for item in txn.cursor().iternext(keys=True, values=values):
                n[0] += 1
                yield (bytes(item[0]).decode(), bytes(item[1])) if values else (bytes(item).decode(), None)

    def verify(self) -> VerifyReport:
        """Decode every record (checksum, structure, id) and report the bad ones."""
        report = VerifyReport(self.path, meta=dict(self.meta))
        if report.meta.get("format") != FORMAT:
            report.bad.append(("<meta>", f"not a {FORMAT} store (meta {report.meta!r:.80})"))
        for key, raw in self.items():
            report.count += 1
            try:
                rec = decode(raw, key, self.path)
                dim = report.meta.get("feature_dim")
                if rec.num_boxes and dim and rec.features.shape[1] != dim:
                    raise StoreError(f"{rec.features.shape[1]}-d features, store says {dim}")
            except StoreError as e:
                report.bad.append((key, str(e).split(": ", 2)[-1]))
        return report

    def close(self):
        if self._env is not None and self._pid == os.getpid():
            _release_env(self.path)
        self._env = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass


# One environment per store and process, shared by every RegionStore on it:
# py-lmdb refuses to open a path twice in a process, and a train and an eval
# dataset may well read the same store. Entries inherited over fork are
# replaced: LMDB handles must not be used in a child.
_ENVS = {}  # realpath -> [pid, env, dbs, users]


def _shared_env(path, lock):
    key = os.path.realpath(path)
    entry = _ENVS.get(key)
    if entry is not None and entry[0] != os.getpid():
        # the parent's handle: closing the child's copy only unmaps it here
        # (readers opened without locks hold none) and frees the path for reopening
        entry[1].close()
        entry = None
    if entry is None:
        lmdb = _lmdb()
        env = _open_checked(path, "", readonly=True, lock=lock, subdir=True, max_dbs=2, readahead=False,
                            meminit=False)
        try:
            with _lmdb_errors(path, "opening its databases"):
                dbs = (env.open_db(_RECORDS, create=False), env.open_db(_META, create=False))
        except lmdb.NotFoundError:
            env.close()
            raise StoreError(f"{path}: not a region store (an LMDB environment without "
                             f"{_RECORDS.decode()!r} and {_META.decode()!r} databases)") from None
        except StoreError:
            env.close()
            raise
        entry = _ENVS[key] = [os.getpid(), env, dbs, 0]
    entry[3] += 1
    return entry[1], entry[2]


def _release_env(path):
    key = os.path.realpath(path)
    entry = _ENVS.get(key)
    if entry is not None and entry[0] == os.getpid():
        entry[3] -= 1
        if entry[3] <= 0:
            entry[1].close()
            del _ENVS[key]


def merge(sources: Iterable[str], dest: str, map_size=DEFAULT_MAP_SIZE, commit_every=256) -> dict:
    """Copy every record of ``sources`` into ``dest`` (created or appended to),
    checking each on the way. A key present twice with identical bytes is
    copied once; with different bytes it is an error naming the key. Returns
    ``{"copied", "skipped_identical", "per_source"}``."""
    sources = [str(s) for s in sources]
    if os.path.realpath(dest) in {os.path.realpath(s) for s in sources}:
        raise StoreError(f"{dest}: cannot merge a store into itself")
    stores = [RegionStore(s) for s in sources]
    dtypes = {s.meta.get("feature_dtype") for s in stores}
    dims = {s.meta.get("feature_dim") for s in stores} - {None}
    if len(dtypes) > 1 or len(dims) > 1:
        raise StoreError("cannot merge stores with different features: "
                         + ", ".join(f"{s.path} ({s.meta.get('feature_dtype')}, {s.meta.get('feature_dim')}-d)"
                                     for s in stores))
    dtype = dtypes.pop() if dtypes else "float16"
    meta = {k: v for k, v in (stores[0].meta if stores else {}).items()
            if k not in ("format", "format_version", "feature_dtype", "feature_dim")}
    copied = skipped = 0
    per_source = {}
    with RegionStoreWriter(dest, map_size=map_size, commit_every=commit_every, feature_dtype=dtype,
                           meta=meta) as out:
        if dims and out.meta.get("feature_dim") is None:
            out.meta["feature_dim"] = next(iter(dims))
            out._put_meta()
        elif dims and out.meta.get("feature_dim") not in dims:
            raise StoreError(f"{dest}: holds {out.meta['feature_dim']}-d features, sources {sorted(dims)}-d")
        for store in stores:
            n = 0
            for key, raw in store.items():
                decode(raw, key, store.path)  # refuse to propagate a corrupt record
                existing = out.get_raw(key)
                if existing is not None:
                    if bytes(existing) != raw:
                        raise StoreError(f"{store.path}: record {key!r} differs from the one already in {dest}")
                    skipped += 1
                    continue
                out.put_raw(key, raw)
                copied += 1
                n += 1
            per_source[store.path] = n
            store.close()
    return {"copied": copied, "skipped_identical": skipped, "per_source": per_source}
