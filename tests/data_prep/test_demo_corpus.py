"""Tests of data_prep.make_demo_corpus (synthetic grounded demo corpus)."""
import hashlib
import itertools
import json
import math
import os
import re
from fractions import Fraction

import cv2
import numpy as np
import pytest

from data_prep import make_demo_corpus as dc

TINY = dict(num_pairs=40, num_images=20, num_texts=50, num_test=10, image_size=64, vocab_size=400)

COLOURS = set(dc.COLOURS)
SHAPES = set(dc.SHAPES)
NP = r"(?:(small|large|big) )?(%s) (%s)" % ("|".join(dc.COLOURS), "|".join(dc.SHAPES))
REL = r"(to the left of|to the right of|above|below|next to)"
REGION = r"(in the top left|at the top|in the top right|on the left|in the middle|on the right|" \
         r"in the bottom left|at the bottom|in the bottom right)"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    meta = dc.build_demo_corpus(str(out), seed=0, quiet=True, **TINY)
    return out, meta


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def all_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def centre(o):
    x0, y0, x1, y1 = o["bbox"]
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def find_obj(scene, colour, shape):
    hits = [o for o in scene if o["colour"] == colour and o["shape"] == shape]
    assert len(hits) == 1, (colour, shape, scene)
    return hits[0]


def holds(rel, a, b):
    """Independent check of a spatial relation between two scene objects."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    if rel == "to the left of":
        return a["bbox"][2] < b["bbox"][0] and bx - ax > abs(by - ay)
    if rel == "to the right of":
        return b["bbox"][2] < a["bbox"][0] and ax - bx > abs(by - ay)
    if rel == "above":
        return a["bbox"][3] < b["bbox"][1] and by - ay > abs(bx - ax)
    if rel == "below":
        return b["bbox"][3] < a["bbox"][1] and ay - by > abs(bx - ax)
    if rel == "next to":
        return holds("to the left of", a, b) or holds("to the right of", a, b)
    raise AssertionError(rel)


def region_ok(phrase, o, S=64):
    cx, cy = centre(o)
    col = "left" if cx < S / 3 else "right" if cx >= 2 * S / 3 else "centre"
    row = "top" if cy < S / 3 else "bottom" if cy >= 2 * S / 3 else "centre"
    want_row = "top" if "top" in phrase else "bottom" if "bottom" in phrase else "centre"
    want_col = "left" if "left" in phrase else "right" if "right" in phrase else "centre"
    return (row, col) == (want_row, want_col)


def check_caption(cap, scene):
    words = cap.split()
    assert set(w.strip(",:") for w in words) & COLOURS, cap
    nps = list(re.finditer(NP, cap))
    assert nps, cap
    # every colour / shape word is part of a "colour shape" phrase naming a real object
    n_colour = sum(w.strip(",:") in COLOURS for w in words)
    assert n_colour == len(nps), cap
    for m in nps:
        size, colour, shape = m.groups()
        o = find_obj(scene, colour, shape)
        if size:
            assert o["size"] == ("small" if size == "small" else "large"), (cap, o)
    for m in re.finditer(NP + r" (?:is )?" + REL + r" (?:a|an|the) " + NP, cap):
        _, c1, s1, rel, _, c2, s2 = m.groups()
        assert holds(rel, find_obj(scene, c1, s1), find_obj(scene, c2, s2)), (cap, scene)
    for m in re.finditer(NP + r" (?:is )?" + REGION, cap):
        _, c, s, phrase = m.groups()
        assert region_ok(phrase, find_obj(scene, c, s)), (cap, scene)
    if cap.endswith("side by side") or cap.endswith("one above the other"):
        a, b = scene
        horizontal = holds("next to", a, b)
        vertical = holds("above", a, b) or holds("below", a, b)
        assert horizontal if cap.endswith("side by side") else vertical, (cap, scene)


def test_files_exist_and_parse(corpus):
    out, meta = corpus
    for name in ("pairs_train.jsonl", "pairs_test.jsonl", "images_train.jsonl", "text_train.txt",
                 "meta.json", "vocab/vocab.json", "vocab/merges.txt"):
        assert (out / name).is_file(), name
    train, test = read_jsonl(out / "pairs_train.jsonl"), read_jsonl(out / "pairs_test.jsonl")
    images = read_jsonl(out / "images_train.jsonl")
    texts = [l for l in (out / "text_train.txt").read_text(encoding="utf-8").splitlines() if l.strip()]
    assert (len(train), len(test), len(images), len(texts)) == (40, 10, 20, 50)
    assert meta == json.loads((out / "meta.json").read_text(encoding="utf-8"))
    c = meta["counts"]
    assert (c["pairs_train"], c["pairs_test"], c["images_train"], c["text_train"]) == (40, 10, 20, 50)
    assert meta["image_size"] == 64 and meta["seed"] == 0
    assert meta["generator_version"] == dc.GENERATOR_VERSION
    assert len(meta["classes"]["labels"]) == 64 and len(meta["classes"]["shapes"]) == 8
    for row in train + test:
        assert set(row) >= {"id", "image", "captions"}
        assert row["image"] == f"images/{row['id']}.png"
        assert len(row["captions"]) == 5 and len(set(row["captions"])) == 5
        assert 1 <= len(row["scene"]) <= 3
    for row in train + test + images:
        img = cv2.imread(str(out / row["image"]), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (64, 64, 3) and img.dtype == np.uint8
    ids = [r["id"] for r in train + test + images]
    assert len(ids) == len(set(ids))
    assert len(os.listdir(out / "images")) == len(ids)
    for row in images:
        assert row["id"].startswith("img_") and len(row["scene"]) == 1
        assert row["label"] == f"{row['scene'][0]['colour']} {row['scene'][0]['shape']}"
        assert row["label"] in meta["classes"]["labels"]
    assert all(w in dc.LABELS for w in (r["label"] for r in images))
    # no leftover temporary directories next to the output
    assert sorted(os.listdir(out.parent)) == ["demo"]


def test_scenes_valid(corpus):
    out, _ = corpus
    rows = read_jsonl(out / "pairs_train.jsonl") + read_jsonl(out / "pairs_test.jsonl") + \
        read_jsonl(out / "images_train.jsonl")
    for row in rows:
        scene = row["scene"]
        assert len({o["colour"] for o in scene}) == len(scene)
        assert len({o["shape"] for o in scene}) == len(scene)
        for o in scene:
            x0, y0, x1, y1 = o["bbox"]
            assert 0 <= x0 < x1 <= 63 and 0 <= y0 < y1 <= 63, o
            assert o["size"] in ("small", "large")
        for a, b in itertools.combinations(scene, 2):  # no overlap at all
            assert a["bbox"][2] < b["bbox"][0] or b["bbox"][2] < a["bbox"][0] or \
                a["bbox"][3] < b["bbox"][1] or b["bbox"][3] < a["bbox"][1], (a, b)
        if len(scene) == 2:
            a, b = scene
            assert any(holds(r, a, b) for r in ("to the left of", "to the right of", "above", "below"))
    sizes = {o["size"]: o["bbox"][2] - o["bbox"][0] for row in rows for o in row["scene"]}
    assert set(sizes) == {"small", "large"}


def test_captions_true_for_image(corpus):
    out, _ = corpus
    n_rel = 0
    for row in read_jsonl(out / "pairs_train.jsonl") + read_jsonl(out / "pairs_test.jsonl"):
        for cap in row["captions"]:
            check_caption(cap, row["scene"])
            n_rel += bool(re.search(REL, cap))
    assert n_rel > 20  # relations are actually expressed


def test_check_caption_rejects_false_captions():
    scene = [{"colour": "red", "shape": "circle", "size": "small", "bbox": [4, 20, 16, 32]},
             {"colour": "blue", "shape": "square", "size": "large", "bbox": [36, 16, 58, 38]}]
    check_caption("a red circle to the left of a blue square", scene)
    for bad in ("a red circle to the right of a blue square", "a green circle", "a red square",
                "a large red circle", "the blue square is above the red circle"):
        with pytest.raises(AssertionError):
            check_caption(bad, scene)


def test_text_corpus(corpus):
    out, _ = corpus
    lines = (out / "text_train.txt").read_text(encoding="utf-8").splitlines()
    vocab = set()
    for row in read_jsonl(out / "pairs_train.jsonl"):
        for cap in row["captions"]:
            vocab.update(w.strip(",:") for w in cap.split())
    assert all(line.strip() == line and line for line in lines)
    words = [w.strip(",:") for line in lines for w in line.split()]
    assert sum(w in vocab for w in words) / len(words) > 0.8  # same vocabulary


def scene_key(scene, S=64):
    objs = []
    for o in scene:
        x0, y0, x1, y1 = o["bbox"]
        objs.append({"colour": o["colour"], "shape": o["shape"], "size": o["size"],
                     "cx": (x0 + x1) // 2, "cy": (y0 + y1) // 2, "r": (x1 - x0) // 2})
    return dc.scene_key({"objects": objs, "size": S})


def test_test_split_disjoint(corpus):
    out, _ = corpus
    train = read_jsonl(out / "pairs_train.jsonl") + read_jsonl(out / "images_train.jsonl")
    test = read_jsonl(out / "pairs_test.jsonl")
    assert all(r["id"].startswith("test_") for r in test)
    assert not {r["image"] for r in train} & {r["image"] for r in test}

    def digest(r):
        return hashlib.sha1((out / r["image"]).read_bytes()).hexdigest()

    assert not {digest(r) for r in train} & {digest(r) for r in test}
    test_keys = [scene_key(r["scene"]) for r in test]
    assert len(set(test_keys)) == len(test_keys)
    assert not {scene_key(r["scene"]) for r in train} & set(test_keys)
    exact = {json.dumps(r["scene"]) for r in train}
    assert not exact & {json.dumps(r["scene"]) for r in test}


def test_drawn_colours_match_palette(corpus):
    out, _ = corpus
    rows = read_jsonl(out / "pairs_train.jsonl") + read_jsonl(out / "pairs_test.jsonl") + \
        read_jsonl(out / "images_train.jsonl")
    for row in rows:
        rgb = cv2.cvtColor(cv2.imread(str(out / row["image"])), cv2.COLOR_BGR2RGB).astype(np.int32)
        for o in row["scene"]:
            want = np.array(dc.PALETTE[o["colour"]])
            x0, y0, x1, y1 = o["bbox"]
            box = rgb[y0:y1 + 1, x0:x1 + 1]
            close = np.linalg.norm(box - want, axis=-1) < 45
            assert close.mean() > 0.2, (row["id"], o, close.mean())
            if o["shape"] != "ring":  # hollow centre
                cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
                centre_px = rgb[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3)
                dist = np.linalg.norm(np.median(centre_px, 0) - want)
                assert dist < 45, (row["id"], o, centre_px)
                # and no other palette colour is closer
                others = [np.linalg.norm(np.median(centre_px, 0) - np.array(v))
                          for k, v in dc.PALETTE.items() if k != o["colour"]]
                assert dist < min(others)


def test_deterministic(tmp_path, corpus):
    out, meta = corpus
    again = tmp_path / "again"
    meta2 = dc.build_demo_corpus(str(again), seed=0, workers=2, quiet=True, **TINY)  # parallel too
    assert meta2 == meta
    a, b = all_files(out), all_files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = dc.build_demo_corpus(str(tmp_path / "other"), seed=1, quiet=True, **TINY)
    c = all_files(tmp_path / "other")
    assert other["seed"] == 1
    assert c["pairs_train.jsonl"] != a["pairs_train.jsonl"]
    assert c["images/pair_000000.png"] != a["images/pair_000000.png"]


def test_chance_levels(corpus):
    _, meta = corpus
    n = 10
    ch = meta["chance"]
    for k in (1, 5, 10):
        assert ch["text_to_image"][f"R@{k}"] == pytest.approx(k / n)
        exact = 1 - math.comb(5 * n - 5, k) / math.comb(5 * n, k)
        assert ch["image_to_text"][f"R@{k}"] == pytest.approx(exact)
    # brute force: exhaustive enumeration of the top-k sets for a small split
    n_small, k = 3, 4
    caps = range(5 * n_small)
    hit = sum(any(c < 5 for c in top) for top in itertools.combinations(caps, k))
    total = math.comb(5 * n_small, k)
    assert dc.retrieval_chance(n_small, ks=(k,))["image_to_text"][f"R@{k}"] == float(Fraction(hit, total))
    # Monte Carlo on the real split size: random similarity matrices
    rng = np.random.default_rng(0)
    trials = 20000
    sims = rng.random((trials, 5 * n))
    ranks = np.argsort(-sims, axis=1)
    t2i = rng.random((trials, n)).argsort(axis=1)
    for k in (1, 5, 10):
        i2t_sim = np.any(ranks[:, :k] < 5, axis=1).mean()  # captions 0..4 belong to the image
        t2i_sim = np.any(t2i[:, :k] == 0, axis=1).mean()
        assert abs(i2t_sim - ch["image_to_text"][f"R@{k}"]) < 0.015
        assert abs(t2i_sim - ch["text_to_image"][f"R@{k}"]) < 0.015
    assert dc.retrieval_chance(4, ks=(10,))["text_to_image"]["R@10"] == 1.0


def test_vocab(corpus):
    out, meta = corpus
    vocab = json.loads((out / "vocab" / "vocab.json").read_text(encoding="utf-8"))
    for tok in ("<s>", "<pad>", "</s>", "<unk>", "<mask>"):
        assert tok in vocab
    assert len(vocab) == meta["vocab"]["size"] <= 400
    assert (out / "vocab" / "merges.txt").read_text(encoding="utf-8").startswith("#version")
    from vlcore.text.tokenizer import BPETokenizer
    tok = BPETokenizer.from_roberta(str(out / "vocab" / "vocab.json"), str(out / "vocab" / "merges.txt"))
    cap = read_jsonl(out / "pairs_test.jsonl")[0]["captions"][0]
    ids = tok.encode(cap)
    assert ids and tok.unk_id not in ids
    assert tok.decode(ids) == cap
    assert len(tok.encode("a photo of a red circle")) <= 8  # frequent words are single tokens


def test_resume_and_safety(tmp_path, corpus, capsys, monkeypatch):
    out, meta = corpus
    mtime = os.path.getmtime(out / "meta.json")
    again = dc.build_demo_corpus(str(out), seed=0, **TINY)
    assert again == meta and os.path.getmtime(out / "meta.json") == mtime
    assert "already built" in capsys.readouterr().out
    with pytest.raises(FileExistsError):  # different arguments: refuse, keep the old build
        dc.build_demo_corpus(str(out), seed=1, quiet=True, **TINY)
    assert os.path.getmtime(out / "meta.json") == mtime

    # a failure mid-build leaves neither the output nor a temporary directory
    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(dc, "_train_bpe", boom)
    target = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        dc.build_demo_corpus(str(target), seed=0, quiet=True, **TINY)
    assert os.listdir(tmp_path) == []


def test_overwrite(tmp_path):
    target = tmp_path / "d"
    small = dict(TINY, num_pairs=5, num_images=3, num_texts=5, num_test=2)
    dc.build_demo_corpus(str(target), seed=0, quiet=True, **small)
    meta = dc.build_demo_corpus(str(target), seed=3, quiet=True, overwrite=True, **small)
    assert meta["seed"] == 3
    assert json.loads((target / "meta.json").read_text())["seed"] == 3
    assert os.listdir(tmp_path) == ["d"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--num-pairs", "6", "--num-images", "4", "--num-texts", "8",
            "--num-test", "3", "--vocab-size", "300", "--seed", "2"]
    assert dc.main(argv) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "6 train pairs" in text
    meta = json.loads((out / "meta.json").read_text())
    assert meta["args"]["num_pairs"] == 6 and meta["seed"] == 2
    assert dc.main(argv) == 0
    assert "already built" in capsys.readouterr().out
    assert dc.main(argv[:-1] + ["5"]) == 1  # other seed on an existing dir: error, no change


def test_held_out_shapes_never_meet_their_words_in_a_pair(tmp_path):
    """The ablation study's controlled corpus: the held-out shapes are in no
    training pair and no seen test pair, but in image-only images and in the
    text-only corpus; the unseen test split shows one of them per image and
    names it in every caption."""
    from data_prep.make_demo_corpus import build_demo_corpus
    held = ("hexagon", "star")
    meta = build_demo_corpus(str(tmp_path / "c"), seed=2, num_pairs=80, num_images=64, num_texts=200, num_test=10,
                             image_size=32, vocab_size=300, quiet=True, held_out_shapes=held)
    rows = lambda name: [json.loads(line) for line in open(tmp_path / "c" / name)]  # noqa: E731
    word = re.compile(r"\b(hexagons?|stars?)\b")
    for name in ("pairs_train.jsonl", "pairs_test.jsonl"):
        for r in rows(name):
            assert not {o["shape"] for o in r["scene"]} & set(held), (name, r["id"])
            assert not any(word.search(c) for c in r["captions"]), (name, r["id"])
    unseen = rows("pairs_test_unseen.jsonl")
    assert len(unseen) == 10 and meta["counts"]["pairs_test_unseen"] == 10 and meta["held_out_shapes"] == list(held)
    for r in unseen:
        (obj,) = r["scene"]
        assert obj["shape"] in held and all(obj["shape"] in c for c in r["captions"]), r
    assert {r["label"].split()[1] for r in rows("images_train.jsonl")} >= set(held)
    assert any(word.search(line) for line in open(tmp_path / "c" / "text_train.txt"))
    assert meta["args"]["held_out_shapes"] == sorted(held) and "chance_unseen" in meta
    with pytest.raises(ValueError, match="held_out_shapes"):
        build_demo_corpus(str(tmp_path / "d"), held_out_shapes=("blob",), quiet=True)


def test_held_out_pairs_make_the_shapes_rare_not_absent(tmp_path):
    """``held_out_pairs``: each held-out shape in exactly that many training
    pairs (one-object scenes naming it in every caption), the first ones; no
    other pair and no seen test pair shows or names it; the rest of the
    corpus is the same as without anchors (same seeds per index)."""
    from data_prep.make_demo_corpus import build_demo_corpus
    held, common = ("hexagon", "star"), dict(seed=3, num_pairs=60, num_images=16, num_texts=40, num_test=6,
                                             image_size=32, vocab_size=200, quiet=True)
    meta = build_demo_corpus(str(tmp_path / "r"), held_out_shapes=held, held_out_pairs=3, **common)
    build_demo_corpus(str(tmp_path / "n"), held_out_shapes=held, **common)
    rows = lambda d, name: [json.loads(line) for line in open(tmp_path / d / name)]  # noqa: E731
    pairs = rows("r", "pairs_train.jsonl")
    shown = [[o["shape"] for o in r["scene"] if o["shape"] in held] for r in pairs]
    assert [s for s in shown if s] == [["hexagon"], ["star"]] * 3 and all(shown[:6])
    for r in pairs[:6]:
        assert all(r["scene"][0]["shape"] in c for c in r["captions"]), r
    word = re.compile(r"\b(hexagons?|stars?)\b")
    assert not any(word.search(c) for r in pairs[6:] + rows("r", "pairs_test.jsonl") for c in r["captions"])
    assert pairs[6:] == rows("n", "pairs_train.jsonl")[6:]
    assert rows("r", "pairs_test_unseen.jsonl") == rows("n", "pairs_test_unseen.jsonl")
    assert meta["held_out_pairs"] == 3 and meta["args"]["held_out_pairs"] == 3
    with pytest.raises(ValueError, match="held_out_pairs"):
        build_demo_corpus(str(tmp_path / "x"), held_out_pairs=2, quiet=True)  # no held-out shapes


def test_held_out_colours_rare_in_the_pairs(tmp_path):
    """``held_out_colours``: the same design with colours: the anchor pairs
    first (one object each, every caption naming its colour), no other pair
    or seen test image of those colours, the unseen split labelled by colour;
    shapes and colours are not held out together."""
    from data_prep.make_demo_corpus import build_demo_corpus
    held = ("orange", "purple")
    meta = build_demo_corpus(str(tmp_path / "c"), seed=3, num_pairs=60, num_images=64, num_texts=80, num_test=8,
                             image_size=32, vocab_size=200, quiet=True, held_out_colours=held, held_out_pairs=2)
    rows = lambda name: [json.loads(line) for line in open(tmp_path / "c" / name)]  # noqa: E731
    pairs = rows("pairs_train.jsonl")
    shown = [[o["colour"] for o in r["scene"] if o["colour"] in held] for r in pairs]
    assert [s for s in shown if s] == [["orange"], ["purple"]] * 2 and all(shown[:4])
    assert all(r["scene"][0]["colour"] in c for r in pairs[:4] for c in r["captions"])
    assert not any(o["colour"] in held for r in rows("pairs_test.jsonl") for o in r["scene"])
    unseen = rows("pairs_test_unseen.jsonl")
    assert [r["label"] for r in unseen] == [r["scene"][0]["colour"] for r in unseen] == list(held) * 4
    assert all(r["label"] in c for r in unseen for c in r["captions"])
    assert meta["held_out_colours"] == list(held) and meta["chance_held_out"] == 0.5 and "chance_shape" not in meta
    with pytest.raises(ValueError, match="not both"):
        build_demo_corpus(str(tmp_path / "x"), held_out_shapes=("star",), held_out_colours=("red",), quiet=True)
    with pytest.raises(ValueError, match="held_out_colours"):
        build_demo_corpus(str(tmp_path / "y"), held_out_colours=("teal",), quiet=True)


def test_held_out_corpus_on_first_use_and_refused_when_it_differs(tmp_path):
    """ensure_demo builds the ablation corpus the config asks for (with its
    two-way "label" and chance), its regions for the unseen split too and the
    TF-IDF negatives; an existing corpus of other held-out shapes is refused
    rather than silently trained on."""
    import logging

    from data_prep.demo import DemoDataConfig, ensure_demo
    from vlcore.formats.region_store import RegionStore
    from vlcore.formats.rewrites import read_rewrites
    cfg = DemoDataConfig(build_if_missing=True, seed=1, num_pairs=40, num_images=20, num_texts=60, num_test=6,
                         image_size=32, vocab_size=200, region_dim=8, held_out_shapes=["star", "hexagon"],
                         tfidf_negatives=2)
    d = tmp_path / "abl"
    ensure_demo(cfg, str(d), logging.getLogger("t"), regions=True)
    meta = json.loads((d / "meta.json").read_text())
    assert meta["chance_shape"] == 0.5
    unseen = [json.loads(line) for line in open(d / "pairs_test_unseen.jsonl")]
    assert [r["label"] for r in unseen] == [r["scene"][0]["shape"] for r in unseen]
    assert sorted({r["label"] for r in unseen}) == ["hexagon", "star"]
    store = RegionStore(str(d / "regions"))
    assert all(r["id"] in store for r in unseen)
    kinds = {n["kind"] for rec in read_rewrites([str(d / "rewrites_tfidf")]).values() for n in rec["negatives"]}
    assert kinds == {"tfidf"}
    other = DemoDataConfig(build_if_missing=True, held_out_shapes=["star"])
    with pytest.raises(ValueError, match=r"holds out shapes \['hexagon', 'star'\] but demo.held_out_shapes is \['star'\]"):
        ensure_demo(other, str(d), logging.getLogger("t"))
    rare = DemoDataConfig(build_if_missing=True, held_out_shapes=["star", "hexagon"], held_out_pairs=5)
    with pytest.raises(ValueError, match=r"0 training pairs per held-out shape but demo.held_out_pairs is 5"):
        ensure_demo(rare, str(d), logging.getLogger("t"))


def test_two_jobs_started_together_build_the_corpus_once(tmp_path):
    """Two independent jobs (not ranks of one launch) that find no corpus at
    the same moment: the lock lets one build it and the other find it built,
    instead of both writing the same files."""
    import subprocess
    import sys
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
            "from data_prep.demo import DemoDataConfig, ensure_demo\n"
            "import glob, os, time\n"
            "cfg = DemoDataConfig(build_if_missing=True, seed=1, num_pairs=40, num_images=20, num_texts=60,\n"
            "                     num_test=6, image_size=32, vocab_size=200)\n"
            "open(sys.argv[1] + '.ready' + sys.argv[2], 'w').close()\n"
            "while len(glob.glob(sys.argv[1] + '.ready*')) < 2:  # both imported: look for the corpus together\n"
            "    time.sleep(0.01)\n"
            "ensure_demo(cfg, sys.argv[1], logging.getLogger('t'))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    jobs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "demo"), str(i)], env=env,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300)[1] for p in jobs]
    assert [p.returncode for p in jobs] == [0, 0], logs
    assert sum("building the demo corpus" in log for log in logs) == 1, logs
    assert json.loads((tmp_path / "demo" / "meta.json").read_text())["args"]["num_pairs"] == 40
