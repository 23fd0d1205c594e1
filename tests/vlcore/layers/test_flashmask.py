"""FlashMask's column-wise indices of the attention plans: the mask they
stand for under the kernel's documented contract is exactly the plan's
dense mask (UNIMO-2's grounded and captioning plans, full attention with
padding); a plan the two-index form cannot express is refused by key."""
import numpy as np
import paddle
import pytest

from unimo2.grounded_transformer import grounded_attention_plan
from vlcore.layers.attention import AttentionBlock, AttentionPlan
from vlcore.layers.flashmask import dense_from_indices, startend_row_indices


def _text_mask(lengths, n):
    return paddle.to_tensor(np.arange(n)[None, :] < np.array(lengths)[:, None])


@pytest.mark.parametrize("attention", ["grounded", "seq2seq", "full"])
def test_indices_stand_for_the_plans_mask(attention):
    m, k, n = 5, 3, 6
    grounded = paddle.to_tensor(np.array([[1, 1, 1], [1, 1, 0]], bool))   # a padded grounded token too
    plan = grounded_attention_plan(m, k, n, 2, grounded, _text_mask([6, 4], n), attention)
    idx = startend_row_indices(plan)
    assert idx.shape == (2, 1, m + k + n, 2) and idx.dtype == np.int32
    np.testing.assert_array_equal(dense_from_indices(idx), plan.dense_mask().numpy()[:, 0])


def test_the_grounded_layout_in_numbers():
    """[image 2; grounded 1; text 2], one padded text token: image keys are
    seen by rows [0, 3), the grounded key by all, text keys by [2, 5), the
    padded key by none."""
    plan = grounded_attention_plan(2, 1, 2, 1, None, _text_mask([1], 2))
    assert startend_row_indices(plan)[0, 0].tolist() == [[3, 0], [3, 0], [5, 0], [5, 2], [4, 4]]


def test_full_attention_with_padding():
    plan = AttentionPlan.full(4, _text_mask([3, 4], 4))
    idx = startend_row_indices(plan)
    assert idx[0, 0].tolist() == [[4, 0], [4, 0], [4, 0], [3, 3]] and idx[1, 0, 3].tolist() == [4, 0]


def test_a_plan_outside_the_two_index_form_is_refused():
    # queries [0, 2) see keys [2, 4) only: key 0 is seen by rows [2, 4), not holding its diagonal
    plan = AttentionPlan(4, [AttentionBlock(0, 2, 2, 4), AttentionBlock(2, 4, 0, 2)])
    with pytest.raises(ValueError, match="key 0 .* not one interval holding the diagonal"):
        startend_row_indices(plan)
