"""The shared cross-encoder pair scorer: batches of the given size, margin
logit[1] - logit[0] or the match head, and an error when match is asked of a
model without a match head."""
import numpy as np
import paddle
import pytest

from vlcore.tasks.retrieval_eval import batched_pair_scorer


class Model:
    def __init__(self, with_match=True):
        self.calls = []
        if with_match:
            self.match_scores = lambda i, c: paddle.to_tensor((10.0 * i + c).astype("float32"))

    def logits(self, i, c):
        self.calls.append(len(i))
        return paddle.to_tensor(np.stack([np.asarray(c, "float32"), 2.0 * np.asarray(i, "float32")], 1))


def test_margin_and_match_scores_in_batches():
    m = Model()
    imgs, caps = np.array([0, 1, 2, 3, 4]), np.array([4, 3, 2, 1, 0])
    margin = batched_pair_scorer(m, "vlm", "X", 2, None, m.logits)
    np.testing.assert_allclose(margin(imgs, caps), 2.0 * imgs - caps)
    assert m.calls == [2, 2, 1]
    match = batched_pair_scorer(m, "match", "X", 3, lambda i, c: m.match_scores(i, c), None)
    np.testing.assert_allclose(match(imgs, caps), 10.0 * imgs + caps)
    assert margin(imgs[:0], caps[:0]).shape == (0,)
    with pytest.raises(ValueError, match=r"score: match needs a retrieval fine-tuned model \(Arch X\), got Model"):
        batched_pair_scorer(Model(with_match=False), "match", "X", 2, None, None)
