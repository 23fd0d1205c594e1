"""The grounded-dictionary report (UNIMO-2 Appendix A / Figure 3) against a
NumPy re-computation of Eq. 1 and Eq. 2 on a tiny model's own features."""
import json
import math
import os
from collections import Counter

import cv2
import numpy as np
import paddle
import pytest

from unimo2 import grounding_report as gr
from unimo2.retrieval import UNIMO2Encoder
from vlcore.data.retrieval import PairsIndex
from vlcore.framework.run import BuildContext, build_model
from vlcore.text.tokenizer import load_tokenizer

from ckpt_helpers import load_cfg
from helpers import make_tiny_corpus, tiny_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grounding_report")
    corpus = make_tiny_corpus(os.path.join(str(tmp), "demo"))
    cfg = load_cfg(tiny_config(tmp, corpus, tmp / "run"))
    paddle.seed(0)
    model = build_model(cfg)
    model.eval()
    tok = load_tokenizer(cfg.Global.tokenizer_dir)
    enc = UNIMO2Encoder(BuildContext(cfg, None, tokenizer=tok), 4)
    index = PairsIndex(cfg.DataLoader.Eval.path)
    paths, texts = index.images[:5], [c for caps in index.captions[:5] for c in caps] + ["a zzqxv circle"]
    return model, enc, tok, paths, texts, tmp


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_every_patch_and_word_goes_to_its_nearest_entry(setup):
    model, enc, tok, paths, texts, _ = setup
    a = gr.analyse(model, enc, paths, texts, batch_size=2)
    g = model.model.grounding
    emb, eta = g.embedding.numpy().astype(np.float64), float(g.eta().numpy()[0])
    with paddle.no_grad():
        img = enc.images(model, paths).numpy()[:, 1:].astype(np.float64)
        txt, mask = enc.texts(model, texts)
    logit_img = eta * img @ emb.T                                       # Eq. 1 before its sigmoid, [N, P, C]
    x_img = _sigmoid(logit_img)
    assert a.grid ** 2 == img.shape[1]
    assert a.patches.entry == logit_img.argmax(-1).reshape(-1).tolist()
    np.testing.assert_allclose(a.patches.score, logit_img.max(-1).reshape(-1), rtol=1e-4, atol=1e-3)
    ids, _ = enc.token_ids(texts)
    logit_txt = eta * txt.numpy()[:, 1:].astype(np.float64) @ emb.T
    x_txt = _sigmoid(logit_txt)
    # real tokens that are part of a visible word (a lone space piece, cut off by truncation, is not)
    labels = [gr._words(tok, [int(t) for t in row]) for row in ids]
    want = [(b, p) for b in range(len(texts)) for p in range(1, ids.shape[1])
            if ids[b, p] != tok.pad_id and ids[b, p] not in tok.special_ids and labels[b][p]]
    assert len(want) > 0.9 * sum(((ids != tok.pad_id) & ~np.isin(ids, list(tok.special_ids))).sum(1))
    assert list(zip(a.words.source, a.words.where)) == want
    assert a.words.entry == [int(logit_txt[b, p - 1].argmax()) for b, p in want]
    # a word split into pieces is one word in the figure
    last = [lab for src, lab in zip(a.words.source, a.words.label) if src == len(texts) - 1]
    pieces = len(tok.encode("a zzqxv circle")) - 2
    assert pieces > 1 and "zzqxv" in last and last.count("zzqxv") == len(tok.encode(" zzqxv"))
    # Eq. 2 top-K of each image alone and each text alone (real tokens only)
    m = mask.numpy()[:, 1:, None]
    for got, x, w in ((a.image_top_k, x_img, np.ones(x_img.shape[:2] + (1,))), (a.text_top_k, x_txt, m)):
        s = (x * w).sum(1)
        assert [set(r) for r in got] == [set(np.argsort(-row)[:g.top_k].tolist()) for row in s]


def test_usage_statistics():
    spread = gr._spread(Counter({1: 2, 2: 2}), 4, 1)
    assert spread == {"distinct": 2, "of": 4, "entropy_bits": 1.0, "max_entropy_bits": 2.0,
                      "equally_used_entries": 2.0, "share_of_top_1": 0.5,
                      "share_if_used_evenly": 0.25}
    a = gr.Analysis(8, 2, 10.0, 2, gr.Mapped([1, 1, 3], [.9, .8, .7], [0, 0, 1], [0, 1, 0], ["", "", ""]),
                    gr.Mapped([3, 5], [.6, .5], [0, 0], [1, 2], ["red", "ball"]), [[1, 2], [1, 2]], [[1, 4]])
    u = gr.usage(a)
    assert u["top_k_of_images"]["share_of_top_2"] == 1.0 and u["top_k_of_images"]["distinct"] == 2
    assert u["entries_in_some_top_k"] == 3 and u["entries_in_top_k_of_both"] == 1 and u["nearest_of_both"] == 1
    assert u["top_k_of_texts"]["entropy_bits"] == 1.0


def test_rows_prefer_entries_of_both_modalities_and_spread_over_images():
    patches = gr.Mapped([4] * 5 + [2] * 9, [.9, .8, .7, .6, .5] + [.99] * 9, [0, 0, 0, 1, 2] + list(range(9)),
                        list(range(14)), [""] * 14)
    words = gr.Mapped([4, 4, 7], [.3, .6, .9], [0, 1, 1], [1, 1, 2], ["red", "red", "ball"])
    a = gr.Analysis(8, 2, 10.0, 2, patches, words, [], [])
    rows = gr.entries(a, [f"img{i}" for i in range(10)], n_entries=3, per_entry=3)
    assert [r["entry"] for r in rows] == [4, 2, 7]   # 4 has both; then by size
    assert [(p["image"], p["score"]) for p in rows[0]["top_patches"]] == [("img0", .9), ("img0", .8), ("img1", .6)]
    assert rows[0]["top_words"] == [{"word": "red", "score": .6, "count": 2}]
    assert (rows[0]["top_patches"][2]["row"], rows[0]["top_patches"][2]["col"]) == (1, 1)  # patch 3 of a 2x2 grid


def test_patch_crop_is_the_patch_the_model_saw(setup, tmp_path):
    _, enc, _, _, _, _ = setup
    img = np.zeros((64, 64, 3), np.uint8)
    img[:32, 32:] = (255, 0, 0)          # top right red (RGB)
    cv2.imwrite(str(tmp_path / "q.png"), img[:, :, ::-1])
    crop = gr.patch_crop(enc, str(tmp_path / "q.png"), 0, 1, 2, size=12)
    assert crop.shape == (12, 12, 3) and (crop == (255, 0, 0)).all()
    assert (gr.patch_crop(enc, str(tmp_path / "q.png"), 1, 1, 2, size=12) == 0).all()


def test_a_model_without_dictionary_is_refused(setup):
    model, enc, _, paths, texts, _ = setup
    saved, model.model.grounding = model.model.grounding, None
    try:
        with pytest.raises(ValueError, match="no grounded dictionary"):
            gr.analyse(model, enc, paths, texts)
    finally:
        model.model.grounding = saved


def test_entry_words_are_the_words_nearest_each_entry(setup):
    model, enc, _, _, texts, _ = setup
    words = gr.entry_words(model, enc, texts, top=3)
    a = gr.analyse(model, enc, [], texts)
    assert set(words) == set(a.words.entry)
    for j, ws in words.items():
        mine = {a.words.label[i]: a.words.score[i] for i in range(len(a.words.entry)) if a.words.entry[i] == j}
        assert 1 <= len(ws) <= 3 and all(w in mine for w, _ in ws)
        assert [s for _, s in ws] == sorted((s for _, s in ws), reverse=True)
    assert math.isclose(json.loads(json.dumps(words[next(iter(words))][0][1])), words[next(iter(words))][0][1])


def test_label_overlap_is_the_share_of_a_prompts_tokens_in_its_images(setup):
    """label_overlap against the top-K sets that analyse (checked above
    against Eq. 2) gives: each cell the mean share of prompt j's K tokens in
    an image of label i; groups average the diagonal and the rest."""
    model, enc, _, paths, _, _ = setup
    labels = ["red", "blue", "red", "green", "blue"]
    o = gr.label_overlap(model, enc, paths, labels, prompt="a {label} thing",
                         groups={"warm": ["red"], "cold": ["blue", "green"]})
    names = ["blue", "green", "red"]
    a = gr.analyse(model, enc, paths, [f"a {n} thing" for n in names])
    k = a.top_k
    want = np.array([[np.mean([len(set(a.image_top_k[r]) & set(a.text_top_k[j])) / k
                               for r in range(5) if labels[r] == n]) for j in range(3)] for n in names])
    assert o["labels"] == names and o["images"] == {"blue": 2, "green": 1, "red": 2}
    np.testing.assert_allclose(o["matrix"], want, atol=1e-4)
    assert o["chance"] == round(k / a.dict_size, 4)
    assert o["groups"]["warm"]["matched"] == pytest.approx(want[2, 2], abs=1e-4)
    assert o["groups"]["warm"]["mismatched"] == pytest.approx((want[2, 0] + want[2, 1]) / 2, abs=1e-4)
    assert o["groups"]["cold"]["matched"] == pytest.approx((want[0, 0] + want[1, 1]) / 2, abs=1e-4)
    assert o["all"]["mismatched"] == pytest.approx(want[~np.eye(3, dtype=bool)].mean(), abs=1e-4)
    with pytest.raises(ValueError, match="no images of"):
        gr.label_overlap(model, enc, paths, labels, groups={"x": ["purple"]})
