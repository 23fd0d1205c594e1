"""A damaged region store (truncated data.mdb, zeroed pages, a bad lock file)
ends with one line naming the store -- never with a SIGBUS. Every reader
runs in a subprocess: a signal shows there as a negative return code and
fails the test instead of killing pytest."""
import os
import shutil
import subprocess
import sys

import pytest

from vlcore.formats.region_store import RegionStore, RegionStoreWriter

from helpers import ROOT, make_tiny_corpus, make_tiny_regions, run_tool, tiny_unimo_config
from region_helpers import random_record

PAGE = 4096
MIN_BYTES = 2 * PAGE  # LMDB's two meta pages


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """A store of 24 records spread over many pages (records > 1 page)."""
    path = str(tmp_path_factory.mktemp("store") / "s")
    with RegionStoreWriter(path, commit_every=4) as w:
        for i in range(24):
            w.put(random_record(f"img{i:02d}", 20, dim=64, seed=i))
    return path


def _copy(healthy, tmp_path):
    dst = str(tmp_path / "damaged")
    shutil.copytree(healthy, dst)
    return dst


def _verify(store):
    env = dict(os.environ, VLCORE_NO_REEXEC="1", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "data_prep.extract_region_features", "verify", store],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _one_error_line(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)  # a signal would be negative
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0][len("error: "):]


@pytest.mark.parametrize("cut", ["0 bytes", "1 byte", "half a page", "one meta page", "mid-file",
                                 "last page missing", "last page cut short"])
def test_truncated_store_is_one_line_with_byte_counts(healthy, tmp_path, cut):
    store = _copy(healthy, tmp_path)
    data = os.path.join(store, "data.mdb")
    full = os.path.getsize(data)
    assert full > 20 * PAGE
    keep = {"0 bytes": 0, "1 byte": 1, "half a page": PAGE // 2, "one meta page": PAGE, "mid-file": full // 2,
            "last page missing": full - PAGE, "last page cut short": full - 100}[cut]
    os.truncate(data, keep)
    msg = _one_error_line(_verify(store))
    need = f"at least {MIN_BYTES}" if keep < MIN_BYTES else str(full)  # a written store uses all its pages
    assert msg == f"store {store} is truncated ({keep} of {need} bytes)"


def test_zeroed_meta_pages_are_one_line(healthy, tmp_path):
    for start in (0, PAGE):
        store = _copy(healthy, tmp_path / str(start))
        with open(os.path.join(store, "data.mdb"), "r+b") as f:
            f.seek(start)
            f.write(bytes(PAGE))
        msg = _one_error_line(_verify(store))
        assert msg.startswith(f"store {store} cannot be opened: damaged or not an LMDB store (MDB_INVALID"), msg


@pytest.mark.slow
def test_zeroed_data_pages_never_kill_the_reader(healthy, tmp_path):
    """The first pages after the metas zeroed in turn (the B-tree's early
    pages and record pages): the record a page held is reported bad (exit 1),
    or LMDB's own check fails and that is one line (exit 2), or the page was
    free (exit 0) -- but never a signal."""
    outcomes = {}
    for page in range(2, 14):
        store = _copy(healthy, tmp_path / str(page))
        with open(os.path.join(store, "data.mdb"), "r+b") as f:
            f.seek(page * PAGE)
            f.write(bytes(PAGE))
        r = _verify(store)
        assert r.returncode in (0, 1, 2), (page, r.returncode, r.stderr[-500:])
        if r.returncode == 2:
            assert _one_error_line(r).startswith(f"store {store} "), r.stderr
        elif r.returncode == 1:
            assert "24 records, 1 bad" in r.stdout and "img" in r.stdout, r.stdout
        outcomes[r.returncode] = outcomes.get(r.returncode, 0) + 1
        shutil.rmtree(store)
    assert outcomes.get(1) and outcomes.get(2), outcomes  # both kinds of damage occurred


_LOCKED_READ_AND_APPEND = """
import sys
from region_helpers import random_record
from vlcore.formats.region_store import RegionStore, RegionStoreWriter
s = RegionStore(sys.argv[1], lock=True)          # a reader that uses lock.mdb
n = len(s)
s.get("img03")
s.close()
with RegionStoreWriter(sys.argv[1]) as w:       # and a writer (always locks)
    w.put(random_record("appended", 5, dim=64))
print(n, len(RegionStore(sys.argv[1])))
"""


@pytest.mark.parametrize("lock", ["missing", "garbage", "empty"])
def test_bad_lock_file_is_rebuilt_by_lmdb(healthy, tmp_path, lock):
    """lock.mdb holds only reader slots, no data: LMDB re-initialises one
    that no live process holds. Readers with locks and writers still work."""
    store = _copy(healthy, tmp_path)
    path = os.path.join(store, "lock.mdb")
    if lock == "missing":
        os.remove(path)
    else:
        with open(path, "wb") as f:
            f.write(os.urandom(3 * PAGE) if lock == "garbage" else b"")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    r = subprocess.run([sys.executable, "-c", _LOCKED_READ_AND_APPEND, store], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["24", "25"], (r.returncode, r.stdout, r.stderr[-1000:])


def test_longer_file_is_healthy(healthy, tmp_path):
    """A file larger than the pages in use is not truncation (LMDB may
    grow it ahead of the meta page; it never shrinks it)."""
    store = _copy(healthy, tmp_path)
    data = os.path.join(store, "data.mdb")
    os.truncate(data, os.path.getsize(data) + 10 * PAGE)
    r = _verify(store)
    assert r.returncode == 0 and "24 records, 0 bad" in r.stdout, r.stderr


_APPEND = """
import sys
from region_helpers import random_record
from vlcore.formats.region_store import RegionStoreWriter
with RegionStoreWriter(sys.argv[1], commit_every=1) as w:
    for i in range(int(sys.argv[2])):
        w.put(random_record(f"new{i:04d}", 20, dim=64, seed=i))
"""


def test_store_growing_under_a_reader_gives_no_false_alarm(healthy, tmp_path):
    """An extractor appends (one commit per record) while readers open and
    check the store again and again: never 'truncated'."""
    store = _copy(healthy, tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    writer = subprocess.Popen([sys.executable, "-c", _APPEND, store, "300"], env=env, stderr=subprocess.PIPE)
    opened, seen = 0, set()
    try:
        while writer.poll() is None or opened == 0:
            s = RegionStore(store, lock=True)      # opens and checks the file size against the pages in use
            seen.add(len(s))
            s.get("img03")
            s.close()
            opened += 1
    finally:
        err = writer.communicate(timeout=120)[1]
    assert writer.returncode == 0, err
    assert len(seen) > 1, seen                     # the reader did see the store grow
    s = RegionStore(store)
    assert len(s) == 324 and s.verify().ok
    s.close()


@pytest.mark.slow
def test_unimo_training_on_truncated_store_stops_with_one_line(tmp_path):
    d = make_tiny_regions(make_tiny_corpus(str(tmp_path / "demo")))
    data = os.path.join(d, "regions", "data.mdb")
    full = os.path.getsize(data)
    os.truncate(data, full // 2)
    cfg = tiny_unimo_config(tmp_path, d, tmp_path / "out", Global={"max_steps": 2})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower() or "Traceback" in ln]
    assert errors == [f"error: store {os.path.join(d, 'regions')} is truncated ({full // 2} of {full} bytes)"], \
        r.stderr[-2000:]


def test_merge_from_or_into_truncated_store_is_one_line(healthy, tmp_path):
    """Writers check too: appending to a truncated store (a resumed
    extraction, a merge into it) would otherwise fault in LMDB's write path."""
    bad = _copy(healthy, tmp_path)
    data = os.path.join(bad, "data.mdb")
    full = os.path.getsize(data)
    os.truncate(data, full - PAGE)
    env = dict(os.environ, VLCORE_NO_REEXEC="1", PYTHONPATH=ROOT)
    for out, src in ((str(tmp_path / "new"), bad), (bad, healthy)):
        r = subprocess.run([sys.executable, "-m", "data_prep.extract_region_features", "merge", "--out", out, src],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert _one_error_line(r) == f"store {bad} is truncated ({full - PAGE} of {full} bytes)"
    assert os.path.getsize(data) == full - PAGE  # nothing was written into the damaged store


def test_store_truncated_while_a_reader_has_it_open(healthy, tmp_path):
    """Another process truncates data.mdb after the reader opened it (the
    check at open passed): the next read is a StoreError naming the store,
    not a SIGBUS (the subprocess would die with -7)."""
    store = _copy(healthy, tmp_path)
    code = ("import os, sys\n"
            "from vlcore.formats.region_store import RegionStore, StoreError\n"
            f"s = RegionStore({store!r})\n"
            "s.get('img00')\n"
            f"os.truncate(os.path.join({store!r}, 'data.mdb'), os.path.getsize(os.path.join({store!r}, 'data.mdb')) // 2)\n"
            "try:\n"
            "    [s.get(f'img{i:02d}') for i in range(24)]\n"
            "except StoreError as e:\n"
            "    print(e); sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, VLCORE_NO_REEXEC="1", PYTHONPATH=ROOT))
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert f"store {store} is truncated (" in r.stdout


def test_damaged_store_in_the_loader_is_one_line_not_skipped():
    """A store found truncated while batches are built (by a loader worker)
    is neither skipped record by record nor reported with a traceback: the
    batch carries the store's one-line message, which the trainer raises."""
    from types import SimpleNamespace

    from vlcore.data.batches import StepBatches
    from vlcore.formats.region_store import StoreDamagedError
    calls = []

    class Corpus:
        name = "pairs"

        def __len__(self):
            return 10

        def load(self, i, rng):
            calls.append(i)
            raise StoreDamagedError("store /data/regions is truncated (4096 of 65536 bytes)")

    sched = SimpleNamespace(total_steps=1, indices=lambda step: ("pairs", [0, 1]))
    batch = StepBatches([Corpus()], sched)[0]
    assert batch["error"] == "store /data/regions is truncated (4096 of 65536 bytes)"
    assert batch["traceback"] == "" and len(calls) == 1  # not retried on 16 substitutes
