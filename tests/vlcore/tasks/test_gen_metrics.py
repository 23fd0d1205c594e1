"""Generation metric wrappers: exact matches, hand-computed cases, and
agreement with pycocoevalcap / rouge-score called directly."""
import math

import pytest

from vlcore.tasks.gen_metrics import coco_caption_metrics, rouge_metrics, spice_status

REFS = {"1": ["a man rides a horse on the beach", "a person riding a horse"],
        "2": ["two dogs play in the snow", "dogs playing in snow"],
        "3": ["a red bus parked on the street", "a bus on a city street"]}


def test_identical_predictions_score_one_on_bleu_and_rouge():
    refs = {k: [v[0]] for k, v in REFS.items()}
    hyps = {k: v[0] for k, v in refs.items()}
    m = coco_caption_metrics(refs, hyps, metrics=("bleu", "rouge_l", "cider"))
    for n in range(1, 5):
        assert m[f"Bleu_{n}"] == pytest.approx(100.0, abs=1e-4)
    assert m["ROUGE_L"] == pytest.approx(100.0, abs=1e-4)
    assert m["CIDEr"] > 0
    r = rouge_metrics(refs, hyps)
    assert r == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})


def test_bleu_hand_computed():
    # hyp "a man rides a dog", ref "a man rides a horse": 4 of 5 unigrams,
    # 3/4 bigrams, 2/3 trigrams, 1/2 4-grams match; same length -> BP = 1.
    m = coco_caption_metrics({"x": ["a man rides a horse"]}, {"x": "a man rides a dog"}, metrics=("bleu",))
    assert m["Bleu_1"] == pytest.approx(100 * 4 / 5, rel=1e-4)
    assert m["Bleu_2"] == pytest.approx(100 * math.sqrt(4 / 5 * 3 / 4), rel=1e-4)
    assert m["Bleu_4"] == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, rel=1e-4)


def test_rouge_hand_computed():
    # LCS("the cat sat", "the cat is on the mat sat")... keep it small:
    # hyp "the cat sat on the mat", ref "the cat is on the mat":
    # unigram overlap 5 (the x2, cat, on, mat) of 6 and 6 -> F1 5/6;
    # bigrams: hyp {the cat, cat sat, sat on, on the, the mat}, ref {the cat,
    # cat is, is on, on the, the mat}: 3 shared of 5 and 5 -> 3/5; LCS 5 -> 5/6.
    r = rouge_metrics({"x": ["the cat is on the mat"]}, {"x": "the cat sat on the mat"})
    assert r["rouge1"] == pytest.approx(100 * 5 / 6, rel=1e-6)
    assert r["rouge2"] == pytest.approx(100 * 3 / 5, rel=1e-6)
    assert r["rougeL"] == pytest.approx(100 * 5 / 6, rel=1e-6)


@pytest.mark.slow
def test_matches_pycocoevalcap_called_directly():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    hyps = {"1": "a man riding a horse", "2": "a dog in the snow", "3": "a bus on the road"}
    m = coco_caption_metrics(REFS, hyps)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": hyps[k]}] for k in REFS})
    assert m["Bleu_4"] == pytest.approx(100 * Bleu(4).compute_score(gts, res, verbose=0)[0][3], rel=1e-6)
    assert m["CIDEr"] == pytest.approx(100 * Cider().compute_score(gts, res)[0], rel=1e-6)
    assert m["ROUGE_L"] == pytest.approx(100 * Rouge().compute_score(gts, res)[0], rel=1e-6)
    # METEOR's java start-up costs ~15 s: checked in range only (one call)
    assert 0 < m["METEOR"] < 100 and 0 < m["CIDEr"]
    if spice_status() is None:
        assert "SPICE" in m
    else:
        assert "SPICE" not in m and "Stanford CoreNLP" in m["SPICE_status"]


def test_mismatched_ids_are_an_error():
    with pytest.raises(ValueError, match="different ids"):
        coco_caption_metrics({"a": ["x"]}, {"b": "x"}, metrics=("bleu",))
    with pytest.raises(ValueError, match="no reference"):
        rouge_metrics({"a": []}, {"a": "x"})
