"""data_prep.make_shards: manifests and files into webdataset shards --
byte-identical for the same input, resumable after a kill, bad records
named -- and the same data trains UNIMO-2 to the same weights from shards
as from manifest + files."""
import filecmp
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from data_prep.make_shards import convert
from vlcore.data.shard_records import ShardRecords
from vlcore.formats.records import JsonlFile
from vlcore.framework.checkpoint import load_weights
from vlcore.framework.runlog import read_metrics

from helpers import ROOT, make_tiny_corpus, run_tool, tiny_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tiny_corpus(os.path.join(str(tmp_path_factory.mktemp("shards")), "demo"))


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "data_prep.make_shards", *args], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, **env), timeout=300)


def test_every_record_lands_in_order_and_reads_back(corpus, tmp_path):
    manifest = os.path.join(corpus, "pairs_train.jsonl")
    summary = convert(manifest, "pairs", str(tmp_path / "a"), shard_size=10, log=lambda m: None)
    records = JsonlFile(manifest)
    assert summary["shards"] == 5 and summary["this_run"] == {"samples": 48, "bad": 0, "shards_run": 5}
    shards = ShardRecords(summary["corpus"]["path"], "pairs")
    assert len(shards) == len(records) == 48
    for i in (0, 9, 10, 47):
        rec, got = records[i], shards[i]
        with open(os.path.join(corpus, rec["image"]), "rb") as f:
            assert got["image"].data == f.read()
        assert got["captions"] == rec["captions"] and shards.where(i).endswith(f":{i:09d}")
    # the same input, the same bytes (another directory, two workers)
    convert(manifest, "pairs", str(tmp_path / "b"), shard_size=10, workers=2, log=lambda m: None)
    names = sorted(n for n in os.listdir(tmp_path / "a") if n.endswith(".tar"))
    assert names == sorted(n for n in os.listdir(tmp_path / "b") if n.endswith(".tar"))
    assert all(filecmp.cmp(tmp_path / "a" / n, tmp_path / "b" / n, shallow=False) for n in names)


def test_a_killed_run_continues_with_the_missing_shards(corpus, tmp_path):
    manifest = os.path.join(corpus, "images_train.jsonl")
    args = ["--manifest", manifest, "--kind", "labelled", "--out", str(tmp_path / "k"), "--shard-size", "5"]
    killed = _cli(*args, DATA_PREP_KILL_AFTER_SHARDS="2")
    assert killed.returncode == -signal.SIGKILL
    done = sorted(n for n in os.listdir(tmp_path / "k") if n.endswith(".tar"))
    assert len(done) == 2 and not os.path.exists(tmp_path / "k" / "shards.json")
    again = _cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 of 5 shards already done, skipped" in again.stdout + again.stderr
    convert(manifest, "labelled", str(tmp_path / "ref"), shard_size=5, log=lambda m: None)
    for n in sorted(n for n in os.listdir(tmp_path / "ref") if n.endswith(".tar")):
        assert filecmp.cmp(tmp_path / "k" / n, tmp_path / "ref" / n, shallow=False), n


def test_bad_records_are_named_and_left_out_or_stop_the_run(corpus, tmp_path):
    lines = open(os.path.join(corpus, "pairs_train.jsonl")).read().splitlines()[:6]
    bad = json.loads(lines[2])
    bad["image"] = "images/missing.png"
    lines[2] = json.dumps(bad)
    lines[4] = json.dumps({"id": "x", "image": json.loads(lines[4])["image"], "captions": []})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    os.symlink(os.path.join(corpus, "images"), tmp_path / "images")
    r = _cli("--manifest", str(manifest), "--out", str(tmp_path / "o"), "--shard-size", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert f"left out: {manifest}:3: image {tmp_path / 'images' / 'missing.png'}: No such file or directory" in out
    assert f"left out: {manifest}:5: 'captions' must be a non-empty list" in out
    assert len(ShardRecords(str(tmp_path / "o"), "pairs")) == 4
    r = _cli("--manifest", str(manifest), "--out", str(tmp_path / "s"), "--shard-size", "4", "--strict")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(f"error: {manifest}:3: image ")
    r = _cli("--manifest", os.path.join(corpus, "pairs_train.jsonl"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "holds shards of a different 'shards' job" in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_shards_train_exactly_like_manifest_and_files(corpus, tmp_path):
    pairs = convert(os.path.join(corpus, "pairs_train.jsonl"), "pairs", str(tmp_path / "p"), shard_size=16,
                    log=lambda m: None)["corpus"]["path"]
    images = str(tmp_path / "i")
    convert(os.path.join(corpus, "images_train.jsonl"), "labelled", images, shard_size=7, log=lambda m: None)
    runs = {}
    for name, paths in (("files", None), ("shards", (pairs, images, images))):
        cfg = tiny_config(tmp_path, corpus, tmp_path / name, name=f"{name}.yaml")
        if paths:
            import yaml
            data = yaml.safe_load(open(cfg))
            for c, path in zip(data["DataLoader"]["Train"]["corpora"], paths):
                c["path"] = path
            yaml.safe_dump(data, open(cfg, "w"), sort_keys=False)  # the curriculum ratios keep their order
        r = run_tool(["tools/train.py", "-c", cfg, "-o", "DataLoader.Train.num_workers=1"])
        assert r.returncode == 0, r.stderr[-3000:]
        runs[name] = (load_weights(str(tmp_path / name)), read_metrics(str(tmp_path / name / "metrics.jsonl")), r)
    assert "samples in 3 shards" in runs["shards"][2].stdout + runs["shards"][2].stderr
    (wa, ma, _), (wb, mb, _) = runs["files"], runs["shards"]
    assert [r["loss"] for r in ma if "loss" in r] == [r["loss"] for r in mb if "loss" in r]
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.slow
def test_bad_members_are_skipped_and_counted_or_named_in_strict_mode(corpus, tmp_path):
    import io
    import tarfile
    out = str(tmp_path / "p")
    convert(os.path.join(corpus, "pairs_train.jsonl"), "pairs", out, shard_size=48, log=lambda m: None)
    good = os.path.join(out, "shards-00000-of-00001.tar")
    with tarfile.open(good) as src, tarfile.open(os.path.join(out, "zz-bad.tar"), "w") as dst:
        for info in src:
            data = src.extractfile(info).read()
            key = info.name.split(".")[0]
            if key == "000000003" and info.name.endswith(".png"):
                data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 20          # a corrupt image
            if key == "000000007" and not info.name.endswith(".png"):
                continue                                             # no caption at all
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    os.remove(good)
    cfg = tiny_config(tmp_path, corpus, tmp_path / "run", Global={"max_steps": 12, "log_interval": 12},
                      DataLoader={"Train": {"batch_size": 8, "corpora": [{"name": "pairs", "kind": "pairs",
                                                                          "path": out}],
                                            "curriculum": [{"ratios": {"pairs": 1}}]}})
    r = run_tool(["tools/train.py", "-c", cfg])
    assert r.returncode == 0, r.stderr[-3000:]
    skipped = sum(rec.get("skipped", 0) for rec in read_metrics(str(tmp_path / "run" / "metrics.jsonl")))
    assert skipped >= 2, skipped   # 12 steps x 8 of 48 samples: both bad ones are drawn
    log = r.stdout + r.stderr
    assert "zz-bad.tar:000000003.png: cannot decode image" in log and "zz-bad.tar:000000007: no caption" in log
    r = run_tool(["tools/train.py", "-c", cfg, "-o", "Global.strict_data=true",
                  f"Global.output_dir={tmp_path / 'strict'}"])
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "zz-bad.tar:00000000" in last and "Traceback" not in r.stderr, r.stderr[-2000:]
