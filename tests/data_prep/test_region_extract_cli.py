"""The extraction command line: a sharded run killed with SIGKILL and resumed
loses and duplicates nothing; given boxes; unreadable images; errors in one
line; merge / verify / TSV subcommands."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest

from data_prep import image_sources, region_extraction
from data_prep.detector.config import DetectorConfig
from data_prep.detector.model import BottomUpAttention
from data_prep.detector.weights import build_detector
from data_prep.extract_region_features import main
from vlcore.formats import weights_file
from vlcore.formats.region_store import RegionStore

from helpers import ROOT
from region_helpers import make_images, tiny_config_file


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("extract")
    make_images(str(d / "imgs"), [(64, 80)] * 8, seed=4)
    cfg_path = tiny_config_file(str(d), min_boxes=4, max_boxes=6)
    paddle.seed(5)
    weights_file.save(str(d / "w.safetensors"), BottomUpAttention(DetectorConfig.load(cfg_path)).state_dict())
    return d, cfg_path, str(d / "w.safetensors")


def _cli(args, **env):
    e = dict(os.environ, OMP_NUM_THREADS="1", VLCORE_NO_REEXEC="1", **env)
    return subprocess.run([sys.executable, "-m", "data_prep.extract_region_features", *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=300)


def _silent(*_a, **_k):
    pass


@pytest.mark.slow
def test_killed_sharded_run_resumes_without_loss_or_duplicates(data, tmp_path):
    d, cfg_path, weights = data
    out = str(tmp_path / "feats")
    common = ["--images", str(d / "imgs"), "--out", out, "--weights", weights, "--detector-config", cfg_path,
              "--commit-every", "2", "--no-progress"]
    # shard 0 (4 images) dies after storing 3: one committed batch of 2 survives, the third is lost
    r = _cli(common + ["--shard", "0/2"], **{region_extraction.KILL_ENV: "3"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    shard0 = out + ".shard-00000-of-00002"
    s0 = RegionStore(shard0)
    assert len(s0) == 2 and s0.verify().ok
    s0.close()
    r = _cli(common + ["--shard", "0/2"])
    assert r.returncode == 0, r.stderr
    assert "4 images listed, 2 already done, 2 to extract" in r.stderr
    r = _cli(common + ["--shard", "1/2"])
    assert r.returncode == 0, r.stderr
    r = _cli(["merge", "--out", out])
    assert r.returncode == 0 and "8 records copied" in r.stdout, r.stderr
    r = _cli(["verify", out])
    assert r.returncode == 0 and "8 records, 0 bad" in r.stdout

    # the same images extracted in one uninterrupted run, in this process
    cfg = DetectorConfig.load(cfg_path)
    items = image_sources.list_images(str(d / "imgs"))
    ref = str(tmp_path / "ref")
    region_extraction.run(items, ref, build_detector(weights, cfg), weights_path=weights, progress=False, log=_silent)
    merged, want = RegionStore(out), RegionStore(ref)
    assert sorted(merged.keys()) == sorted(want.keys()) == sorted(it.image_id for it in items)
    for key in want.keys():
        a, b = merged.get(key), want.get(key)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.obj_ids, b.obj_ids)
        assert merged.get_raw(key) == want.get_raw(key)   # bit for bit: same computation, same bytes
    # re-running a finished shard does nothing
    r = _cli(common + ["--shard", "1/2"])
    assert r.returncode == 0 and "4 already done, 0 to extract" in r.stderr


def test_given_boxes_unreadable_images_and_strict(data, tmp_path, capsys):
    d, cfg_path, weights = data
    imgs = tmp_path / "imgs"
    make_images(str(imgs), [(60, 70), (70, 60), (64, 64)], seed=2)
    (imgs / "broken.jpg").write_bytes(b"not an image")
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text(json.dumps({"id": "img000", "boxes": [[1, 2, 30, 40], [10, 10, 60, 50]]}) + "\n"
                     + json.dumps({"id": "img001", "boxes": [[0, 0, 70, 60]]}) + "\n"
                     + json.dumps({"id": "broken", "boxes": [[0, 0, 5, 5]]}) + "\n")
    out = str(tmp_path / "given")
    rc = main(["--images", str(imgs), "--out", out, "--weights", weights, "--detector-config", cfg_path,
               "--boxes", str(boxes), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "skipped (no given boxes): img002" in err and "skipped unreadable image:" in err and "broken.jpg" in err
    store = RegionStore(out)
    assert sorted(store.keys()) == ["img000", "img001"]
    rec = store.get("img000")
    np.testing.assert_array_equal(rec.boxes, [[1, 2, 30, 40], [10, 10, 60, 50]])
    assert rec.features.shape == (2, DetectorConfig.load(cfg_path).head_channels)
    assert (rec.image_w, rec.image_h) == (70, 60)
    assert store.meta["settings"]["given_boxes"] is True
    rc = main(["--images", str(imgs), "--out", str(tmp_path / "strict"), "--weights", weights,
               "--detector-config", cfg_path, "--strict", "--no-progress"])
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error")]
    assert rc == 2 and len(lines) == 1 and "broken.jpg: cannot decode image" in lines[0]


def test_input_errors_are_one_line(data, tmp_path, capsys):
    d, cfg_path, weights = data

    def run(*args):
        rc = main(list(args))
        err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error")]
        return rc, err

    rc, err = run("--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--weights", weights)
    assert rc == 2 and len(err) == 1 and "nope: no such file or directory" in err[0]
    other = tiny_config_file(str(tmp_path), anchor_sizes=[16, 32])   # 6 anchors: the RPN head does not fit
    rc, err = run("--images", str(d / "imgs"), "--out", str(tmp_path / "o"), "--weights", weights,
                  "--detector-config", other)
    assert rc == 2 and len(err) == 1 and "wrong shape" in err[0] and "objectness_logits" in err[0]
    lst = tmp_path / "list.txt"
    lst.write_text("a.png\tid1\tx\n")
    rc, err = run("--images", str(lst), "--out", str(tmp_path / "o"), "--random-weights")
    assert rc == 2 and "list.txt:1: expected 'path' or 'path<TAB>id'" in err[0]
    rc, err = run("--images", str(d / "imgs"), "--out", str(tmp_path / "o"), "--random-weights", "--shard", "2/2")
    assert rc == 2 and "shard 2/2" in err[0]


def test_image_lists(tmp_path):
    paths = make_images(str(tmp_path / "a" / "b"), [(20, 20)] * 2)
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [{"id": 7, "file_name": "a/b/img000.png"},
                                           {"id": 9, "file_name": "a/b/img001.png"}]}))
    karpathy = tmp_path / "k.json"
    karpathy.write_text(json.dumps({"images": [{"filepath": "a/b", "filename": "img001.png", "cocoid": 3},
                                               {"filename": "a/b/img000.png"}]}))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "p1", "image": "a/b/img000.png", "captions": []}\n')
    assert [(i.image_id, i.path) for i in image_sources.list_images(str(coco))] == [("7", paths[0]), ("9", paths[1])]
    assert [i.image_id for i in image_sources.list_images(str(karpathy))] == ["3", "img000"]
    assert [i.path for i in image_sources.list_images(str(manifest))] == [paths[0]]
    assert [i.image_id for i in image_sources.list_images(str(tmp_path / "a"))] == ["b/img000", "b/img001"]
    dup = tmp_path / "dup.txt"
    dup.write_text(f"{paths[0]}\tx\n{paths[1]}\tx\n")
    with pytest.raises(image_sources.SourceError, match="'x' names two files"):
        image_sources.list_images(str(dup))
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"id": "q", "boxes": [[5, 5, 1, 9]]}\n')
    with pytest.raises(image_sources.SourceError, match=r"b.jsonl:1: id 'q': box 0 .* x1 < x2"):
        image_sources.read_boxes(str(bad))


def test_tsv_and_verify_subcommands(data, tmp_path, capsys):
    d, cfg_path, weights = data
    out = str(tmp_path / "s")
    assert main(["--images", str(d / "imgs"), "--out", out, "--weights", weights, "--detector-config", cfg_path,
                 "--full-probs", "--float32", "--no-progress"]) == 0
    assert main(["export-tsv", "--store", out, "--out", str(tmp_path / "f.tsv")]) == 0
    # the tiny detector's widths are not UNIMO's 2048 / 1601: each line is skipped and named,
    # or (--strict) the first one stops the import
    imp = ["import-tsv", "--tsv", str(tmp_path / "f.tsv"), "--float32"]
    assert main(imp + ["--out", str(tmp_path / "x")]) == 0
    err = capsys.readouterr()
    assert "skipped: " in err.err and "f.tsv:1: image_embeddings has" in err.err and "'bad_lines': 8" in err.out
    assert main(imp + ["--out", str(tmp_path / "y"), "--strict"]) == 2
    assert main(imp + ["--out", str(tmp_path / "back"), "--feature-dim", "0", "--num-probs", "0"]) == 0
    assert main(["export-tsv", "--store", str(tmp_path / "back"), "--out", str(tmp_path / "g.tsv")]) == 0
    assert (tmp_path / "g.tsv").read_bytes() == (tmp_path / "f.tsv").read_bytes()
    a, b = RegionStore(out), RegionStore(str(tmp_path / "back"))
    for key in a.keys():
        np.testing.assert_array_equal(a.get(key).features, b.get(key).features)
        np.testing.assert_array_equal(a.get(key).obj_ids, b.get(key).obj_ids)
    assert main(["verify", out]) == 0
