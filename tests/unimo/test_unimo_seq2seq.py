"""UNIMO generation model: cached incremental decoding equals the full
causal forward, beam scores are the length-normalised log-probabilities of
the returned sequences, label smoothing matches its formula."""
import numpy as np
import paddle
import pytest

from unimo.config import UNIMOArchConfig
from unimo.generation import generate, generate_uncached, greedy_generate
from unimo.seq2seq import UNIMOForSeq2Seq
from vlcore.tasks.seq2seq import Seq2SeqLossConfig, label_smoothed_ce, target_arrays
from vlcore.text.generation import GenerationConfig, length_penalty


def tiny():
    return UNIMOArchConfig(hidden_size=16, num_layers=2, num_heads=2, vocab_size=30, max_positions=40,
                           feature_dim=12, cmcl_dim=8, dropout=0.0, attn_dropout=0.0, init_std=0.3)


def _regions(b=2, r=4, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((b, r), bool)
    mask[0, -1] = False
    return (paddle.to_tensor(rng.normal(size=(b, r, 12)).astype("float32")),
            paddle.to_tensor(rng.random(size=(b, r, 5)).astype("float32")), paddle.to_tensor(mask))


def _source():
    src = paddle.to_tensor(np.array([[0, 11, 12, 13, 2], [0, 14, 2, 1, 1]]))
    return src, src != 1


def _full_logits(m, regions, text, ids):
    """Teacher-forced logits of every target position (one causal pass)."""
    pos = paddle.to_tensor(np.arange(ids.shape[1])[None].repeat(ids.shape[0], 0) + 2)
    enc = m.model(regions=regions, text=text, target=(ids, paddle.ones(ids.shape, "bool"), pos))
    return m.mlm_head(enc.target)


@pytest.mark.parametrize("context", ["image", "text", "both"])
def test_incremental_decoding_equals_full_causal_forward(context):
    paddle.seed(0)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    regions = _regions() if context in ("image", "both") else None
    text = _source() if context in ("text", "both") else None
    ids = paddle.to_tensor(np.random.default_rng(1).integers(3, 30, size=(2, 6)))
    with paddle.no_grad():
        full = _full_logits(m, regions, text, ids).numpy()
        _, caches, cmask = m.model.encode_context(regions, text)
        steps = []
        for t in range(ids.shape[1]):
            h = m.model.decode_step(ids[:, t:t + 1], paddle.full([2, 1], 2 + t, dtype="int64"), cmask, t, caches)
            steps.append(m.mlm_head(h[:, -1]).numpy())
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_beam_scores_are_normalised_log_probs_of_the_outputs(alpha):
    paddle.seed(2)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    regions = _regions()
    cfg = GenerationConfig(beam_size=4, max_len=5, min_len=1, length_penalty=alpha, n_best=3)
    with paddle.no_grad():
        hyps = generate(m.model, m.mlm_head, regions, None, cfg, bos_id=0, eos_id=2)
        for b in range(2):
            assert len(hyps[b]) == 3
            for h in hyps[b]:
                assert len(h.tokens) >= 1
                seq = [0] + h.tokens
                logits = _full_logits(m, tuple(x[b:b + 1] for x in regions), None,
                                      paddle.to_tensor(np.array([seq])))
                logp = paddle.nn.functional.log_softmax(logits, -1).numpy()[0]
                targets = h.tokens + ([2] if h.length > len(h.tokens) else [])
                ref = sum(logp[j, t] for j, t in enumerate(targets))
                assert h.log_prob == pytest.approx(ref, abs=1e-3)
                assert h.score == pytest.approx(ref / length_penalty(len(targets), alpha), abs=1e-3)


def test_greedy_is_beam_one():
    paddle.seed(3)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    regions, text = _regions(), _source()
    with paddle.no_grad():
        g = greedy_generate(m.model, m.mlm_head, regions, text, bos_id=0, eos_id=2, max_len=6).numpy()
        # reference: argmax of a full re-encoding per step
        ids = np.zeros((2, 1), np.int64)
        for _ in range(g.shape[1]):
            logits = _full_logits(m, regions, text, paddle.to_tensor(ids))
            ids = np.concatenate([ids, logits[:, -1].argmax(-1).numpy()[:, None]], 1)
    for row in range(2):
        end = list(g[row]).index(2) + 1 if 2 in g[row] else g.shape[1]
        np.testing.assert_array_equal(g[row, :end], ids[row, 1:end + 1])


def test_label_smoothed_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7)).astype("float32")
    labels = rng.integers(0, 7, size=5)
    eps = 0.1
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.full((5, 7), eps / 7)
    target[np.arange(5), labels] += 1 - eps
    ref = -(target * logp).sum(-1).mean()
    got = float(label_smoothed_ce(paddle.to_tensor(logits), paddle.to_tensor(labels), eps))
    assert got == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="label_smooth"):
        Seq2SeqLossConfig(label_smooth=1.0)


def test_target_arrays_shift_and_positions():
    out = target_arrays([[5, 6, 7], [8]], max_len=3, bos_id=0, eos_id=4, pad_id=1, position_offset=2)
    np.testing.assert_array_equal(out["tgt_ids"], [[0, 5, 6], [0, 8, 1]])     # truncated to max_len-1 tokens
    np.testing.assert_array_equal(out["labels"], [5, 6, 4, 8, 4])
    np.testing.assert_array_equal(out["label_positions"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(out["tgt_pos"][0], [2, 3, 4])


def test_training_loss_is_the_teacher_forced_loss():
    paddle.seed(4)
    m = UNIMOForSeq2Seq(tiny(), Seq2SeqLossConfig(label_smooth=0.0))
    m.eval()
    feats, locs, mask = _regions()
    batch = {k: paddle.to_tensor(v) for k, v in
             target_arrays([[5, 6, 7], [8, 9]], 10, 0, 2, 1, 2).items()}
    batch.update(features=feats, locations=locs, region_mask=mask)
    with paddle.no_grad():
        loss = float(m(batch)["loss"])
        ref = []
        for b, toks in enumerate([[5, 6, 7], [8, 9]]):
            logits = _full_logits(m, (feats[b:b + 1], locs[b:b + 1], mask[b:b + 1]), None,
                                  paddle.to_tensor(np.array([[0] + toks])))
            logp = paddle.nn.functional.log_softmax(logits, -1).numpy()[0]
            ref += [-logp[j, t] for j, t in enumerate(toks + [2])]
    assert loss == pytest.approx(np.mean(ref), rel=1e-4)


def test_cached_beam_search_equals_recomputing_beam_search():
    paddle.seed(5)
    m = UNIMOForSeq2Seq(tiny())
    m.eval()
    regions, text = _regions(), _source()
    cfg = GenerationConfig(beam_size=3, max_len=6, min_len=2, length_penalty=0.6, block_ngram=3, n_best=2)
    word_start = np.random.default_rng(0).random(30) < 0.5    # word-level trigram blocking
    with paddle.no_grad():
        fast = generate(m.model, m.mlm_head, regions, text, cfg, bos_id=0, eos_id=2, word_start=word_start)
        slow = generate_uncached(m.model, m.mlm_head, regions, text, cfg, bos_id=0, eos_id=2, word_start=word_start)
    for f, s in zip(fast, slow):
        assert [h.tokens for h in f] == [h.tokens for h in s]
        np.testing.assert_allclose([h.score for h in f], [h.score for h in s], atol=1e-4)
