"""data_prep.from_img2dataset: img2dataset's output directory as a corpus
entry; unfinished shards (no _stats.json) left out and named."""
import os

import yaml

from data_prep.from_img2dataset import main, shard_pattern
from vlcore.data.shard_records import ShardRecords

from shard_helpers import img2dataset_shard


def test_finished_shards_become_a_corpus_entry(tmp_path, capsys):
    for shard, stats in ((0, True), (1, False), (2, True), (3, True)):
        img2dataset_shard(tmp_path, shard, 5, stats=stats)
    assert main([str(tmp_path), "--name", "cc", "--index", "--out", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "1 shards without _stats.json (interrupted downloads), left out: 00001.tar" in out
    entry = yaml.safe_load(open(tmp_path / "c.yaml"))[0]
    assert entry == {"name": "cc", "kind": "pairs", "path": f"{tmp_path}/{{00000,00002,00003}}.tar"}
    text = open(tmp_path / "c.yaml").read()
    assert "# 3 shards, 15 of 21 images downloaded (6 failed to download, 0 to resize); 15 samples indexed" in text
    records = ShardRecords(entry["path"], "pairs")
    assert len(records) == 15 and records[5]["captions"] == ["caption 2 0"]
    assert os.path.isfile(tmp_path / "00002.tar.index.json")
    assert main([str(tmp_path), "--partial"]) == 0
    assert f'path: "{tmp_path}/{{00000..00003}}.tar"' in capsys.readouterr().out


def test_patterns_and_errors(tmp_path, capsys):
    assert shard_pattern("/d", [7], 5) == "/d/00007.tar"
    assert shard_pattern("/d", [0, 1, 2], 5) == "/d/{00000..00002}.tar"
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path}: no NNNNN.tar shards (is it img2dataset's "
                                               f"output with --output_format webdataset?)")
    img2dataset_shard(tmp_path, 0, 2, stats=False)
    assert main([str(tmp_path)]) == 2
    assert "no finished shard (none has its _stats.json)" in capsys.readouterr().err
