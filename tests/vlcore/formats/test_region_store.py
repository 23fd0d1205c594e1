"""The region store: round trip, integrity errors naming the key, verify,
merge, and use from forked worker processes."""
import multiprocessing
import os
import pickle

import lmdb
import numpy as np
import pytest

from vlcore.formats.region_store import (
    RegionFeatures,
    RegionStore,
    RegionStoreWriter,
    StoreError,
    decode,
    encode,
    merge,
)

from region_helpers import random_record


def _write(path, recs, **kw):
    with RegionStoreWriter(str(path), commit_every=2, **kw) as w:
        for r in recs:
            w.put(r)


def test_round_trip_fp16_and_fp32(tmp_path):
    recs = [random_record(f"img{i}", n, seed=i) for i, n in enumerate([3, 0, 5])]
    _write(tmp_path / "s16", recs)
    _write(tmp_path / "s32", recs, feature_dtype="float32")
    for name, dt in (("s16", np.float16), ("s32", np.float32)):
        store = RegionStore(str(tmp_path / name))
        assert len(store) == 3 and sorted(store.keys()) == ["img0", "img1", "img2"]
        assert "img1" in store and "nope" not in store
        for r in recs:
            got = store.get(r.image_id)
            assert (got.image_w, got.image_h, got.num_boxes) == (100, 80, r.num_boxes)
            assert got.features.dtype == dt and got.boxes.dtype == np.float32
            np.testing.assert_array_equal(got.boxes, r.boxes)
            np.testing.assert_array_equal(got.features, r.features.astype(dt))
            np.testing.assert_array_equal(got.obj_ids, r.obj_ids)
            np.testing.assert_array_equal(got.attr_scores, r.attr_scores)
            np.testing.assert_array_equal(got.cls_probs, r.cls_probs.astype(dt))
            np.testing.assert_array_equal(got.max_class_ids, r.obj_ids[:, 0])
        assert store.meta["feature_dtype"] == np.dtype(dt).name and store.meta["feature_dim"] == 16
        assert store.verify().ok
        with pytest.raises(KeyError, match="nope"):
            store.get("nope")


def test_record_without_attributes_or_probs(tmp_path):
    r = random_record("a", 4, probs=False)
    r = RegionFeatures(r.image_id, r.image_w, r.image_h, r.boxes, r.features, r.obj_ids, r.obj_scores)
    got = decode(encode(r), "a")
    assert got.attr_ids.shape == (4, 0) and got.cls_probs is None


def test_bad_shapes_are_refused():
    r = random_record("a", 3)
    bad = RegionFeatures("a", 1, 1, r.boxes, r.features[:2], r.obj_ids, r.obj_scores)
    with pytest.raises(StoreError, match="'a'.*features"):
        encode(bad)


def _corrupt(path, key, how):
    env = lmdb.open(str(path), max_dbs=2, subdir=True)
    db = env.open_db(b"records")
    with env.begin(write=True, db=db) as txn:
        raw = bytearray(txn.get(key.encode()))
        if how == "truncate":
            raw = raw[:len(raw) // 2]
        else:
            raw[len(raw) // 2] ^= 0xFF
        txn.put(key.encode(), bytes(raw))
    env.close()


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupt_record_names_key_and_verify_reports_it(tmp_path, how):
    path = tmp_path / "s"
    _write(path, [random_record(f"img{i}", 3, seed=i) for i in range(4)])
    _corrupt(path, "img2", how)
    store = RegionStore(str(path))
    assert store.get("img1").num_boxes == 3          # the others still read
    with pytest.raises(StoreError, match=r"record 'img2'.*(checksum|truncated)"):
        store.get("img2")
    report = store.verify()
    assert not report.ok and report.count == 4 and [k for k, _ in report.bad] == ["img2"]
    assert "img2" in str(report)


def test_writer_commits_on_close_and_refuses_other_dtype(tmp_path):
    path = str(tmp_path / "s")
    w = RegionStoreWriter(path, commit_every=100)
    w.put(random_record("a", 2))
    assert "a" in w and len(w) == 1
    w.close()
    assert len(RegionStore(path)) == 1
    with pytest.raises(StoreError, match="float16"):
        RegionStoreWriter(path, feature_dtype="float32")


def test_merge_disjoint_duplicate_and_conflict(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    _write(a, [random_record("x", 2, seed=1), random_record("y", 3, seed=2)])
    _write(b, [random_record("z", 1, seed=3), random_record("y", 3, seed=2)])   # y identical
    res = merge([a, b], str(tmp_path / "m"))
    assert res["copied"] == 3 and res["skipped_identical"] == 1
    m = RegionStore(str(tmp_path / "m"))
    assert sorted(m.keys()) == ["x", "y", "z"] and m.verify().ok
    assert m.get_raw("y") == RegionStore(a).get_raw("y")
    _write(c, [random_record("y", 3, seed=9)])                                   # y differs
    with pytest.raises(StoreError, match="'y' differs"):
        merge([a, c], str(tmp_path / "m2"))
    _write(str(tmp_path / "f32"), [random_record("q", 1)], feature_dtype="float32")
    with pytest.raises(StoreError, match="different features"):
        merge([a, str(tmp_path / "f32")], str(tmp_path / "m3"))


def _child_read(store, key, queue):
    queue.put(float(store.get(key).features.astype(np.float32).sum()))


def test_reader_works_in_forked_children_and_pickles(tmp_path):
    path = str(tmp_path / "s")
    rec = random_record("k", 4)
    _write(path, [rec])
    store = RegionStore(path)
    want = float(store.get("k").features.astype(np.float32).sum())   # opened in the parent first
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child_read, args=(store, "k", q)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
    assert got == [want, want]
    clone = pickle.loads(pickle.dumps(store))
    assert clone._env is None and clone.get("k").num_boxes == 4


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a region store"):
        RegionStore(str(tmp_path))
    assert os.path.isdir(tmp_path)
