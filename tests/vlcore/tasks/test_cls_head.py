"""The pooled classifier and the classification losses against NumPy, and
the task's text encoding / targets."""
import json
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from vlcore.formats.records import RecordError
from vlcore.layers.classifier import ClsHeadConfig, PooledClassifier, classification_loss
from vlcore.tasks.classification import ClassificationTask, ClsTaskConfig


def _np(layer):
    return layer.weight.numpy(), layer.bias.numpy()


@pytest.mark.parametrize("fusion,hidden,act", [("sum", 0, "none"), ("mul", 6, "none"), ("concat", 6, "gelu_ln")])
def test_head_matches_numpy(fusion, hidden, act):
    paddle.seed(0)
    head = PooledClassifier(4, 3, ClsHeadConfig(fusion=fusion, hidden=hidden, act=act, dropout=0.0))
    head.eval()
    rng = np.random.default_rng(0)
    t, v = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 4)).astype("float32")
    got = head(paddle.to_tensor(t), paddle.to_tensor(v)).numpy()
    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    (wt, bt), (wv, bv) = _np(head.pool_text), _np(head.pool_image)
    pt, pv = relu(t @ wt + bt), relu(v @ wv + bv)
    x = {"sum": pt + pv, "mul": pt * pv, "concat": np.concatenate([pt, pv], -1)}[fusion]
    if hidden:
        w, b = _np(head.hidden)
        x = x @ w + b
        if act == "gelu_ln":
            from scipy.special import erf
            x = 0.5 * x * (1 + erf(x / np.sqrt(2)))
            x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
            x = x * head.norm.weight.numpy() + head.norm.bias.numpy()
    w, b = _np(head.out)
    np.testing.assert_allclose(got, x @ w + b, rtol=1e-4, atol=1e-5)
    # one modality alone: its pooler only
    only_text = head(paddle.to_tensor(t), None).numpy() if fusion != "concat" else None
    if only_text is not None and not hidden:
        np.testing.assert_allclose(only_text, pt @ w + b, rtol=1e-4, atol=1e-5)


def test_losses_match_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5)).astype("float32")
    soft = np.clip(rng.integers(0, 4, size=(4, 5)) / 3, 0, 1).astype("float32")
    loss, top = classification_loss(paddle.to_tensor(logits), paddle.to_tensor(soft), "bce")
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ref = -(soft * np.log(p) + (1 - soft) * np.log(1 - p)).sum() / 4
    assert float(loss) == pytest.approx(ref, rel=1e-5)
    assert float(top) == pytest.approx(soft[np.arange(4), logits.argmax(1)].mean())
    labels = np.array([0, 4, 2, 2])
    loss, acc = classification_loss(paddle.to_tensor(logits), paddle.to_tensor(labels), "ce")
    logp = logits - np.log(np.exp(logits.astype(np.float64)).sum(1, keepdims=True))
    assert float(loss) == pytest.approx(-logp[np.arange(4), labels].mean(), rel=1e-5)
    assert float(acc) == pytest.approx(np.mean(logits.argmax(1) == labels))
    y = rng.normal(size=4).astype("float32")
    loss, none = classification_loss(paddle.to_tensor(logits[:, :1]), paddle.to_tensor(y), "mse")
    assert none is None and float(loss) == pytest.approx(((logits[:, 0] - y) ** 2).mean(), rel=1e-5)


class _Tok:
    """Whitespace 'tokenizer': one id per word (its length), fixed specials."""
    cls_id, sep_id, pad_id = 0, 2, 1

    def encode(self, text):
        return [10 + len(w) for w in text.split()]


def _task(task, max_len=12, labels=None, with_targets=True):
    cfg = ClsTaskConfig(task=task, max_text_len=max_len)
    ctx = SimpleNamespace(tokenizer=_Tok())
    from vlcore.tasks.classification import TASKS
    return ClassificationTask(cfg, ctx, labels if labels is not None else list(TASKS[task].labels), with_targets)


def test_pair_encoding_truncates_longest_first():
    t = _task("mnli", max_len=10)
    ids = t.encode_text({"text_a": "a bb ccc dddd eeeee ffffff", "text_b": "g hh"})
    # [CLS] a(6 words -> 5) [SEP] b(2) [SEP]: 10 tokens, the longer text cut first
    assert ids == [0, 11, 12, 13, 14, 15, 2, 11, 12, 2]
    assert len(t.encode_text({"text_a": "x " * 40, "text_b": "y " * 40})) == 10
    single = _task("sst2", max_len=5).encode_text({"text_a": "a bb ccc dddd"})
    assert single == [0, 11, 12, 13, 2]


def test_targets_and_collate():
    t = _task("snli_ve")
    rec = {"id": "1", "image": "x", "image_id": "x", "hypothesis": "h", "label": "neutral"}
    assert t.target(rec, "f:1") == 1
    with pytest.raises(RecordError, match="f:3.*'maybe'"):
        t.target(dict(rec, label="maybe"), "f:3")
    s = _task("stsb")
    assert s.target({"label": 3.5}, "f:1") == 3.5
    with pytest.raises(RecordError, match="f:2.*number"):
        s.target({"label": "high"}, "f:2")
    g = _task("sst2", max_len=8)
    batch = g.collate([g.load({"id": "a", "text_a": "aa b", "label": "1"}, "f:1", None),
                       g.load({"id": "b", "text_a": "c", "label": "0"}, "f:2", None)])
    np.testing.assert_array_equal(batch["ids"], [[0, 12, 11, 2], [0, 11, 2, 1]])
    np.testing.assert_array_equal(batch["mask"], [[1, 1, 1, 1], [1, 1, 1, 0]])
    assert batch["targets"].tolist() == [1, 0] and batch["loss_kind"] == "ce"
    v = _task("vqa", labels=["yes", "no", "2"])
    target = v.target({"answers": {"two": 2, "2": 1, "Yes": 1, "3": 6}}, "f:1")
    np.testing.assert_allclose(target, [1 / 3, 0, 1.0])        # "two" + "2" = 3 humans -> 1.0
    test_split = _task("sst2", with_targets=False)
    assert "targets" not in test_split.collate([test_split.load({"id": "a", "text_a": "x"}, "f:1", None)])
    assert json.dumps(test_split.required) == "[]"


def test_unimo2_visual_path_vit_skips_the_fusion():
    """visual_path=vit: image logits come from the ViT [CLS] alone (the
    fusion's weights do not matter); fusion: they do."""
    from unimo2.config import FusionConfig, GroundingConfig, TextConfig, ViTConfig
    from unimo2.finetune_cls import UNIMO2ClsArchConfig, UNIMO2ForClassification
    kw = dict(hidden_size=16, num_outputs=3, vit=ViTConfig(image_size=16, patch_size=8, num_layers=1, num_heads=2),
              text=TextConfig(vocab_size=50, num_layers=1, num_heads=2, dropout=0, attn_dropout=0),
              grounding=GroundingConfig(dict_size=8, top_k=2),
              fusion=FusionConfig(num_layers=1, num_heads=2, dropout=0, attn_dropout=0),
              head=ClsHeadConfig(dropout=0.0))
    pixels = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype("float32"))
    for path, changes in (("vit", False), ("fusion", True)):
        paddle.seed(0)
        m = UNIMO2ForClassification(UNIMO2ClsArchConfig(visual_path=path, **kw))
        m.eval()
        before = m.logits({"pixels": pixels}).numpy()
        for p in m.model.fusion.parameters():
            p.set_value(p * 0.5 + 0.1)
        after = m.logits({"pixels": pixels}).numpy()
        assert (not np.allclose(before, after)) == changes, path
