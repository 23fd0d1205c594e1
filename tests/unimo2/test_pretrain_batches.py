"""Tests for unimo2.data: corpora, collation, MLM fields, bad-record handling,
on a tiny corpus in the real on-disk formats (data_prep.make_demo_corpus)."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from data_prep.make_demo_corpus import build_demo_corpus
from unimo2.config import CorpusConfig, MLMConfig, UNIMO2DataConfig
from unimo2.data import Corpus, PretrainBatches
from vlcore.data.schedule import Phase, StepSchedule
from vlcore.text.tokenizer import BPETokenizer

B = 4          # per-step batch
S = 32         # model image size (the demo images are 64 px)
KINDS = {"pairs": "pairs_train.jsonl", "labelled": "images_train.jsonl",
         "images": "images_train.jsonl", "text": "text_train.txt"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("pb") / "demo"
    build_demo_corpus(str(out), seed=0, num_pairs=16, num_images=8, num_texts=20, num_test=4, quiet=True)
    return str(out)


@pytest.fixture(scope="module")
def tok(demo):
    return BPETokenizer.from_dir(os.path.join(demo, "vocab"))


def copy_demo(demo, tmp_path):
    dst = str(tmp_path / "demo")
    shutil.copytree(demo, dst, ignore=shutil.ignore_patterns("*.offsets.npy"))
    return dst


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def make_batches(tok, root, kind, name=None, paths=None, strict=False, seed=0, total=8, **data_kw):
    """PretrainBatches over a single corpus of ``kind`` (every step reads it)."""
    name = name or kind
    path = (paths or {}).get(kind, os.path.join(root, KINDS[kind]))
    corpus = Corpus(CorpusConfig(name=name, kind=kind, path=path), 0)
    sched = StepSchedule({name: len(corpus)}, [Phase({name: 1.0})], total, batch_size=B, seed=seed)
    ds = PretrainBatches([corpus], sched, tok, UNIMO2DataConfig(**data_kw), MLMConfig(), S, seed=seed,
                         strict=strict)
    return ds, sched, corpus


def finished(ds, step):
    """Batch ``step`` as training sees it: the worker's output (uint8 pixels)
    passed through ``finish`` in the main process, tensors as arrays."""
    batch = ds.finish(ds[step])
    return {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in batch.items()}


def expected_pixels(path):
    """Independent reference: PNG -> RGB -> area-resized -> (x/255 - .5)/.5, CHW."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    rgb = cv2.resize(bgr[..., ::-1].copy(), (S, S), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((rgb / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


def check_text_fields(batch, tok):
    """[CLS] ... [SEP] pad..., mask, and the MLM positions/labels/ids."""
    ids, mlm_ids, mask = batch["ids"], batch["mlm_ids"], batch["mask"]
    b, L = ids.shape
    assert ids.dtype == mlm_ids.dtype == np.int64 and mask.dtype == np.bool_
    assert mlm_ids.shape == mask.shape == (b, L)
    np.testing.assert_array_equal(mask, ids != tok.pad_id)
    assert np.all(ids[:, 0] == tok.cls_id)
    lengths = []
    for r in range(b):
        seps = np.flatnonzero(ids[r] == tok.sep_id)
        assert len(seps) == 1, ids[r]
        k = int(seps[0])
        assert np.all(ids[r, k + 1:] == tok.pad_id) and not np.isin(ids[r, 1:k], list(tok.special_ids)).any()
        lengths.append(k)
    assert max(lengths) == L - 1  # padded to the longest row, no more

    pos, lab = batch["mlm_positions"], batch["mlm_labels"]
    assert pos.dtype == lab.dtype == np.int64 and pos.shape == lab.shape
    assert len(np.unique(pos)) == len(pos)
    rows, cols = pos // L, pos % L
    for r in range(b):
        assert np.any(rows == r), f"row {r} has nothing to predict"
    # Only real inner tokens: never [CLS] (col 0), [SEP] or padding.
    assert np.all(cols >= 1)
    assert np.all(cols < np.asarray(lengths)[rows])
    np.testing.assert_array_equal(lab, ids.reshape(-1)[pos])
    # Corruption happens only at the predicted positions, never with a special id other than [MASK].
    flat_ids, flat_m = ids.reshape(-1), mlm_ids.reshape(-1)
    other = np.setdiff1d(np.arange(b * L), pos)
    np.testing.assert_array_equal(flat_m[other], flat_ids[other])
    changed = flat_m[pos]
    assert np.all((changed == tok.mask_id) | ~np.isin(changed, list(tok.special_ids)))
    # Whole words only: a word is all-selected or not selected.
    sel = np.zeros(b * L, bool)
    sel[pos] = True
    sel = sel.reshape(b, L)
    for r in range(b):
        k = lengths[r]
        starts = [i for i in range(1, k) if i == 1 or tok.word_start[ids[r, i]]] + [k]
        for s, e in zip(starts, starts[1:]):
            assert sel[r, s:e].all() or not sel[r, s:e].any()
    return lengths


# ---------------------------------------------------------------- pairs
def test_pairs_batch(demo, tok):
    ds, sched, corpus = make_batches(tok, demo, "pairs")
    records = read_jsonl(os.path.join(demo, KINDS["pairs"]))
    assert len(ds) == 8
    for step in (0, 5):
        batch = finished(ds, step)
        assert "error" not in batch
        assert batch["kind"] == "pairs" and batch["corpus"] == "pairs" and batch["step"] == step
        assert batch["skipped"] == [] and batch["batch_size"] == B
        px = batch["pixels"]
        assert px.shape == (B, 3, S, S) and px.dtype == np.float32
        assert px.min() >= -1.0 and px.max() <= 1.0
        _, idx = sched.indices(step)
        lengths = check_text_fields(batch, tok)
        for r, i in enumerate(idx):
            rec = records[i]
            np.testing.assert_allclose(px[r], expected_pixels(os.path.join(demo, rec["image"])), atol=1e-5)
            text = tok.decode(batch["ids"][r, 1:lengths[r]])
            assert text in rec["captions"]
        groups = batch["groups"]
        assert groups.dtype == np.int64 and len(set(groups.tolist())) == B  # distinct images


def test_pairs_mlm_rate(demo, tok):
    """Over a few steps the predicted share of caption tokens is ~15 %, not a
    whole Geo-length span (~40 % of a 10-token caption)."""
    ds, _, _ = make_batches(tok, demo, "pairs", total=16)
    n_pred = n_tok = 0
    for step in range(16):
        batch = ds[step]
        n_pred += len(batch["mlm_positions"])
        n_tok += int(batch["mask"].sum()) - 2 * B
    # 64 captions of ~8-12 tokens: budget round(0.15 n) is 1-2 tokens (10-20 %),
    # one forced word (<= 3 tokens) at most for the shortest ones.
    assert 0.08 < n_pred / n_tok < 0.25, n_pred / n_tok


def test_deterministic(demo, tok):
    ds1, _, _ = make_batches(tok, demo, "pairs")
    ds2, _, _ = make_batches(tok, demo, "pairs")
    for step in (0, 3):
        a, b, c = ds1[step], ds1[step], ds2[step]
        for other in (b, c):
            assert a.keys() == other.keys()
            for k, v in a.items():
                if isinstance(v, np.ndarray):
                    np.testing.assert_array_equal(v, other[k], err_msg=k)
                else:
                    assert v == other[k], k
    x, y = ds1[0], ds1[1]
    assert not np.array_equal(x["pixels"], y["pixels"])


# ---------------------------------------------------------------- text / images / labelled
def test_text_batch(demo, tok):
    ds, sched, _ = make_batches(tok, demo, "text")
    with open(os.path.join(demo, KINDS["text"]), encoding="utf-8") as f:
        lines = [l.rstrip("\r\n") for l in f if l.strip()]
    batch = ds[2]
    assert batch["kind"] == "text" and "pixels" not in batch and batch["skipped"] == []
    lengths = check_text_fields(batch, tok)
    _, idx = sched.indices(2)
    for r, i in enumerate(idx):
        assert tok.decode(batch["ids"][r, 1:lengths[r]]) == lines[i]


def test_text_window_of_long_document(tmp_path, tok):
    """A document longer than max_text_len_corpus is cut to a window of
    consecutive tokens (which one depends on the step's generator)."""
    words = " ".join(f"w{i}" for i in range(300))
    path = tmp_path / "long.txt"
    path.write_text((words + "\n") * 4, encoding="utf-8")
    full = tok.encode(words)
    ds, _, _ = make_batches(tok, str(tmp_path), "text", paths={"text": str(path)}, max_text_len_corpus=50)
    batch = ds[0]
    assert batch["ids"].shape == (B, 50)
    for r in range(B):
        inner = batch["ids"][r, 1:49].tolist()
        starts = [s for s in range(len(full) - 47) if full[s:s + 48] == inner]
        assert starts, "not a window of the document"


def test_images_batch_two_views(demo, tok):
    ds, _, _ = make_batches(tok, demo, "images")
    batch = finished(ds, 1)
    assert batch["kind"] == "images" and batch["skipped"] == [] and batch["batch_size"] == B
    for key in ("pixels", "pixels2"):
        assert batch[key].shape == (B, 3, S, S) and batch[key].dtype == np.float32
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    for r in range(B):
        assert not np.array_equal(batch["pixels"][r], batch["pixels2"][r])
    assert "ids" not in batch


def test_labelled_pseudo_pairs(tmp_path, demo, tok):
    """Labels repeat -> same text and same group; different labels -> different groups."""
    src = read_jsonl(os.path.join(demo, KINDS["labelled"]))[:4]
    labels = ["red circle", "blue square", "red circle", "blue square"]
    path = tmp_path / "labelled.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for rec, lab in zip(src, labels):
            f.write(json.dumps({"id": rec["id"], "image": os.path.join(demo, rec["image"]),  # absolute
                                "label": lab}) + "\n")
    ds, sched, _ = make_batches(tok, demo, "labelled", paths={"labelled": str(path)})
    batch = finished(ds, 0)
    assert batch["kind"] == "pairs" and batch["corpus"] == "labelled" and batch["skipped"] == []
    lengths = check_text_fields(batch, tok)
    _, idx = sched.indices(0)
    assert sorted(idx.tolist()) == [0, 1, 2, 3]
    texts = [tok.decode(batch["ids"][r, 1:lengths[r]]) for r in range(B)]
    assert texts == [f"a photo of {labels[i]}" for i in idx]
    g = batch["groups"]
    for r1 in range(B):
        for r2 in range(B):
            assert (g[r1] == g[r2]) == (labels[idx[r1]] == labels[idx[r2]])
    for r, i in enumerate(idx):
        np.testing.assert_allclose(batch["pixels"][r], expected_pixels(os.path.join(demo, src[i]["image"])),
                                   atol=1e-5)


def test_workers_send_uint8_pixels_normalised_bit_identically_in_the_main_process(demo, tok):
    """A worker pickles uint8 CHW pixels (a quarter of float32's bytes);
    finish() gives exactly what normalising in the worker gave
    (vlcore.data.images.to_chw_float of the resized image)."""
    from vlcore.data.images import read_rgb, resize, to_chw_float
    for kind, keys in (("pairs", ("pixels",)), ("images", ("pixels", "pixels2"))):
        ds, sched, _ = make_batches(tok, demo, kind)
        raw = ds[2]
        for key in keys:
            assert raw[key].dtype == np.uint8 and raw[key].shape == (B, 3, S, S)
        done = finished(ds, 2)
        for key in keys:
            want = np.stack([to_chw_float(img.transpose(1, 2, 0), [0.5] * 3, [0.5] * 3) for img in raw[key]])
            np.testing.assert_array_equal(done[key], want)
    ds, sched, corpus = make_batches(tok, demo, "pairs")
    _, idx = sched.indices(2)
    img = resize(read_rgb(os.path.join(demo, read_jsonl(os.path.join(demo, KINDS["pairs"]))[idx[0]]["image"])), S)
    np.testing.assert_array_equal(finished(ds, 2)["pixels"][0], to_chw_float(img, [0.5] * 3, [0.5] * 3))


# ---------------------------------------------------------------- bad records
def test_corrupted_image_is_skipped(tmp_path, tok, demo):
    root = copy_demo(demo, tmp_path)
    ds, sched, _ = make_batches(tok, root, "pairs")
    _, idx = sched.indices(0)
    records = read_jsonl(os.path.join(root, KINDS["pairs"]))
    bad = os.path.join(root, records[idx[1]]["image"])
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2)
    batch = finished(ds, 0)
    assert "error" not in batch
    assert batch["batch_size"] == B and batch["pixels"].shape == (B, 3, S, S)
    assert np.isfinite(batch["pixels"]).all()
    assert len(batch["skipped"]) == 1 and bad in batch["skipped"][0]
    check_text_fields(batch, tok)
    # The other rows are untouched.
    for r in (0, 2, 3):
        np.testing.assert_allclose(batch["pixels"][r],
                                   expected_pixels(os.path.join(root, records[idx[r]]["image"])), atol=1e-5)
    # Deterministic substitute.
    again = finished(ds, 0)
    np.testing.assert_array_equal(again["pixels"], batch["pixels"])
    np.testing.assert_array_equal(again["ids"], batch["ids"])

    strict, _, _ = make_batches(tok, root, "pairs", strict=True)
    err = strict[0]
    assert set(err) >= {"error", "step"} and "ids" not in err
    assert bad in err["error"] and err["step"] == 0


def test_malformed_jsonl_line_is_skipped(tmp_path, tok, demo):
    root = copy_demo(demo, tmp_path)
    manifest = os.path.join(root, KINDS["pairs"])
    ds0, sched, _ = make_batches(tok, root, "pairs")
    _, idx = sched.indices(0)
    with open(manifest, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines[idx[2]] = '{"id": "pair_x", "image": '  # truncated record (line idx[2]+1)
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    ds, sched2, _ = make_batches(tok, root, "pairs")
    assert len(ds.corpora["pairs"]) == 16
    batch = ds[0]
    assert "error" not in batch and batch["batch_size"] == B
    assert len(batch["skipped"]) == 1
    assert f"{manifest}:{idx[2] + 1}:" in batch["skipped"][0]
    check_text_fields(batch, tok)

    strict, _, _ = make_batches(tok, root, "pairs", strict=True)
    err = strict[0]
    assert f"{manifest}:{idx[2] + 1}:" in err["error"]


def test_missing_captions_key_is_skipped(tmp_path, tok, demo):
    root = copy_demo(demo, tmp_path)
    manifest = os.path.join(root, KINDS["pairs"])
    records = read_jsonl(manifest)
    ds0, sched, _ = make_batches(tok, root, "pairs")
    _, idx = sched.indices(0)
    del records[idx[0]]["captions"]
    records[idx[3]]["captions"] = ["  "]  # blank caption
    with open(manifest, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    batch = make_batches(tok, root, "pairs")[0][0]
    assert batch["batch_size"] == B and len(batch["skipped"]) == 2
    assert f"{manifest}:{idx[0] + 1}: missing key" in batch["skipped"][0]
    assert f"{manifest}:{idx[3] + 1}:" in batch["skipped"][1]


def test_loader_bug_comes_back_as_error_batch(demo, tok, monkeypatch):
    ds, _, _ = make_batches(tok, demo, "pairs")
    def boom(*a, **k):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(ds, "_collate_pairs", boom)
    err = ds[1]
    assert "ZeroDivisionError: boom" in err["error"] and err["step"] == 1 and "boom" in err["traceback"]
