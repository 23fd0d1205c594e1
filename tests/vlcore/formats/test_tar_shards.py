"""Webdataset tar shards read at random: keys and extensions as webdataset
splits them, the member index and its cache, truncated and compressed
shards, img2dataset's layout."""
import io
import json
import os
import tarfile
import time

import pytest

from vlcore.data.shard_records import ShardRecords
from vlcore.formats.records import RecordError
from vlcore.formats.tar_shards import ShardError, TarShards, expand, is_shards, load_index, split_name

from shard_helpers import img2dataset_shard, write_tar


def _tar(path, members, mode="w"):
    return write_tar(path, members, mode)


def _img2dataset_shard(path, shard, n):
    return img2dataset_shard(os.path.dirname(str(path)), shard, n)


def test_keys_split_at_the_first_dot_of_the_base_name():
    # webdataset tariterators.base_plus_ext: ^((?:.*/|)[^.]+)[.]([^/]*)$
    assert split_name("000010005.jpg") == ("000010005", "jpg")
    assert split_name("a/b.c/x.seg.PNG") == ("a/b.c/x", "seg.png")
    assert split_name("README") == (None, None) and split_name(".hidden") == (None, None)


def test_img2dataset_shards_by_pattern_and_directory(tmp_path):
    for s in range(3):
        _img2dataset_shard(tmp_path / f"{s:05d}.tar", s, 4)
    by_pattern = TarShards(str(tmp_path / "{00000..00002}.tar"))
    by_dir = TarShards(str(tmp_path))
    assert len(by_pattern) == len(by_dir) == 12 and by_pattern.keys == by_dir.keys
    assert by_dir.keys[5] == "000010001" and by_dir.where(5) == f"{tmp_path / '00001.tar'}:000010001"
    sample = by_dir[5]
    assert sorted(sample) == ["jpg", "json", "txt"] and sample["txt"].data == b"caption 1 1"
    assert sample["jpg"].data == b"\xff\xd8jpeg\x01" and sample["jpg"].where.endswith("00001.tar:000010001.jpg")
    rec = ShardRecords(str(tmp_path), "pairs")[5]
    assert rec["captions"] == ["caption 1 1"] and rec["image"].data == sample["jpg"].data
    assert is_shards(str(tmp_path)) and is_shards("x/{0..3}.tar") and not is_shards(str(tmp_path / "00000.parquet"))
    with pytest.raises(FileNotFoundError, match=r"00003.tar: no such shard \(and 2 more"):
        expand(str(tmp_path / "{00000..00005}.tar"))


def test_the_index_is_cached_and_rebuilt_when_the_shard_changes(tmp_path):
    path = _tar(tmp_path / "a.tar", [("k1.jpg", b"x"), ("k1.txt", b"one")])
    assert load_index(path)["samples"] == [["k1", {"jpg": [512, 1], "txt": [1536, 3]}]]
    assert os.path.isfile(path + ".index.json")
    cached = json.loads(open(path + ".index.json").read())
    assert cached["key"] == [os.path.getsize(path), os.stat(path).st_mtime_ns]
    _tar(tmp_path / "a.tar", [("k1.jpg", b"x"), ("k1.txt", b"one"), ("k2.jpg", b"y"), ("k2.txt", b"two")])
    assert [k for k, _ in load_index(path)["samples"]] == ["k1", "k2"]
    # a shard written just now is indexed but not cached (its mtime may not change with its next write)
    fresh = tmp_path / "fresh.tar"
    with tarfile.open(fresh, "w") as tar:
        info = tarfile.TarInfo("k.jpg")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"z"))
    assert len(TarShards(str(fresh))) == 1 and not os.path.exists(str(fresh) + ".index.json")


def test_a_truncated_shard_keeps_its_whole_samples(tmp_path):
    path = _tar(tmp_path / "t.tar", [(f"{k}.{e}", bytes(700)) for k in ("a", "b", "c") for e in ("jpg", "txt")])
    data = open(path, "rb").read()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:5 * 1536 + 512 + 100])  # inside c.txt's data
    old = time.time() - 10
    os.utime(cut, (old, old))
    shards = TarShards(str(cut))
    assert shards.keys == ["a", "b", "c"] and sorted(shards[2]) == ["jpg"]
    assert shards.truncated == [f"{cut}:c.txt"] and "1 truncated members left out" in shards.describe()
    with pytest.raises(RecordError, match=r"cut.tar:c: no caption"):
        ShardRecords(str(cut), "pairs")[2]
    with pytest.raises(ShardError, match=r"cut.tar:c.txt: truncated member \(1 in all; strict_data is on\)"):
        ShardRecords(str(cut), "pairs", strict=True)


def test_compressed_and_non_tar_files_are_refused(tmp_path):
    gz = _tar(tmp_path / "z.tar", [("k.jpg", b"x")], mode="w:gz")
    with pytest.raises(ShardError, match="z.tar: not an uncompressed tar file"):
        TarShards(gz)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ShardError, match="junk.tar: not an uncompressed tar file"):
        TarShards(str(tmp_path / "junk.tar"))


def test_what_each_kind_needs(tmp_path):
    path = _tar(tmp_path / "k.tar", [
        ("a.png", b"p"), ("a.json", json.dumps({"captions": ["one", "two"]}).encode()), ("a.txt", b"ignored"),
        ("b.jpg", b"j"), ("b.cls", b" cat \n"),
        ("c.txt", b"no image"),
        ("d.jpg", b"j"), ("d.json", b"{broken"),
        ("e.webp", b"w"), ("e.json", json.dumps({"caption": "from meta", "label": "dog"}).encode())])
    pairs, labelled = ShardRecords(path, "pairs"), ShardRecords(path, "labelled")
    assert pairs[0]["captions"] == ["one", "two"] and pairs[4]["captions"] == ["from meta"]
    assert labelled[1]["label"] == "cat" and labelled[4]["label"] == "dog"
    assert ShardRecords(path, "images")[1]["image"].data == b"j"
    with pytest.raises(RecordError, match=r"k.tar:b: no caption"):
        pairs[1]
    with pytest.raises(RecordError, match=r"k.tar:c: no image member"):
        pairs[2]
    with pytest.raises(RecordError, match=r"k.tar:d.json: not JSON"):
        pairs[3]
    with pytest.raises(RecordError, match=r"k.tar:a: no label"):
        labelled[0]


def test_shards_survive_pickling_into_workers(tmp_path):
    import pickle
    path = _img2dataset_shard(tmp_path / "00000.tar", 0, 3)
    shards = TarShards(path)
    shards[1]  # opens the file
    clone = pickle.loads(pickle.dumps(shards))
    assert clone._files == {} and clone[2]["txt"].data == b"caption 0 2"
