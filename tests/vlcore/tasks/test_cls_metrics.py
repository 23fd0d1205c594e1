"""Classification metrics against sklearn/scipy, and the official VQA
normalisation / accuracy against hand-computed cases."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import matthews_corrcoef

from vlcore.tasks.metrics import accuracy, matthews_corr, pearson_spearman
from vlcore.tasks.vqa_answers import AnswerVocab, normalize_answer, soft_scores, vqa_accuracy


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_matthews_matches_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    labels = rng.integers(0, n_classes, 200)
    pred = np.where(rng.random(200) < 0.6, labels, rng.integers(0, n_classes, 200))
    assert matthews_corr(pred, labels) == pytest.approx(matthews_corrcoef(labels, pred), abs=1e-12)


def test_matthews_constant_prediction_is_zero():
    labels = np.array([0, 1, 1, 0, 1])
    assert matthews_corr(np.ones(5, int), labels) == 0.0 == matthews_corrcoef(labels, np.ones(5, int))
    assert matthews_corr(labels, labels) == pytest.approx(1.0)


def test_pearson_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    labels = np.round(rng.uniform(0, 5, 100), 1)           # STS-B-like scores, many ties
    pred = labels + rng.normal(0, 1.0, 100)
    pred[:10] = 2.5                                        # ties in the predictions too
    out = pearson_spearman(pred, labels)
    assert out["pearson"] == pytest.approx(stats.pearsonr(pred, labels)[0], abs=1e-12)
    assert out["spearman"] == pytest.approx(stats.spearmanr(pred, labels)[0], abs=1e-12)
    assert out["corr"] == pytest.approx((out["pearson"] + out["spearman"]) / 2)


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


# ---------------------------------------------------------------- VQA
@pytest.mark.parametrize("raw,norm", [
    ("Two", "2"), ("the dog.", "dog"), ("yes!", "yes"), ("dont", "don't"), ("a red-ball", "red ball"),
    ("1,000", "1000"), ("3.5", "3.5"), ("none", "0"), ("  An Apple\t", "apple"), ("what's up?", "what's up"),
    ("x - y", "x y"), ("somebody'd", "somebodyd"),
])
def test_normalisation(raw, norm):
    assert normalize_answer(raw) == norm


def test_vqa_accuracy_hand_computed():
    answers = {"yes": 3, "no": 7}
    # "yes": 3 subsets lose one of its 3 -> 2/3 each; 7 keep all 3 -> 1; (3*2/3 + 7)/10
    assert vqa_accuracy("yes", answers) == pytest.approx(0.9)
    assert vqa_accuracy("no", answers) == pytest.approx(1.0)
    assert vqa_accuracy("maybe", answers) == 0.0
    # one human: 9 subsets keep it -> 1/3 each, the subset without it -> 0
    assert vqa_accuracy("cat", {"cat": 1, "dog": 9}) == pytest.approx(0.3)
    assert vqa_accuracy("cat", {"cat": 2, "dog": 8}) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)
    # normalisation merges spellings: "2" and "two" are one answer
    assert vqa_accuracy("2", {"two": 2, "2": 1, "3": 7}) == pytest.approx(0.9)
    # raw lists work too
    assert vqa_accuracy("no", ["no"] * 4 + ["yes"] * 6) == pytest.approx(1.0)


def test_vqa_official_quirk_unanimous_answers_are_not_normalised():
    # The official script normalises only when the humans disagree.
    assert vqa_accuracy("yes", {"yes": 10}) == 1.0
    assert vqa_accuracy("Yes", {"yes": 10}) == 0.0
    assert vqa_accuracy("Yes", {"yes": 9, "no": 1}) == pytest.approx(1.0)


def test_soft_scores_and_vocab(tmp_path):
    assert soft_scores({"Two": 1, "2": 1, "yes": 5, "no": 3}) == {"2": pytest.approx(2 / 3), "yes": 1.0, "no": 1.0}
    questions = [{"yes": 8, "no": 2}, {"yes": 10}, {"2": 6, "two": 4}, {"red": 10}, {"blue": 1, "red": 9}]
    vocab = AnswerVocab.build(questions, min_count=2)
    assert vocab.answers == ["red", "yes"]             # by question count, ties by string; "2"/"no" once
    assert AnswerVocab.build(questions, min_count=1, max_size=3).answers == ["red", "yes", "2"]
    np.testing.assert_allclose(vocab.targets({"yes": 1, "red": 2, "green": 7}), [2 / 3, 1 / 3])
    path = tmp_path / "answers.txt"
    AnswerVocab(["a b", "don't", 'quote"d']).save(str(path))
    assert AnswerVocab.load(str(path)).answers == ["a b", "don't", 'quote"d']
    path.write_text('"ok"\n42\n')
    with pytest.raises(ValueError, match="answers.txt:2"):
        AnswerVocab.load(str(path))


def test_vqa_prior_baselines(tmp_path):
    import json as _json

    from vqa_baseline import baselines

    def q(i, question, answers):
        return {"id": str(i), "image": "x.png", "image_id": "x", "question": question, "answers": answers}
    train = [q(1, "what colour?", {"red": 10}), q(2, "what colour?", {"red": 7, "blue": 3}),
             q(3, "how many?", {"2": 5, "two": 5}), q(4, "how many?", {"3": 10})]
    test = [q(5, "what colour?", {"red": 3, "blue": 7}), q(6, "how many?", {"2": 8, "3": 2}),
            q(7, "how many?", {"two": 10})]
    for name, rows in (("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    out = baselines(str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl"))
    # overall counts: red 17, 2 (incl. "two") 10, 3 10, blue 3 -> "red" for all
    assert out["majority_answer"] == "red"
    assert out["majority"] == pytest.approx(100 * (0.9 + 0.0 + 0.0) / 3, abs=0.01)  # rounded to 2 places
    # per question: "red" and "2"; "2" vs ten unanimous "two" is not normalised (official quirk) -> 0
    assert out["question_prior"] == pytest.approx(100 * (0.9 + 1.0 + 0.0) / 3, abs=0.01)
