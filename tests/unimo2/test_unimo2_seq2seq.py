"""UNIMO-2 captioning: the seq2seq attention pattern, cached incremental
decoding equal to the full causal forward, beam scores of the outputs."""
import numpy as np
import paddle
import pytest

from unimo2.config import FusionConfig, GroundingConfig, TextConfig, UNIMO2ArchConfig, ViTConfig
from unimo2.grounded_transformer import grounded_attention_plan
from unimo2.seq2seq import UNIMO2ForCaptioning
from vlcore.text.generation import GenerationConfig, length_penalty


def tiny(mode="topk"):
    return UNIMO2ArchConfig(hidden_size=16, vit=ViTConfig(image_size=16, patch_size=8, num_layers=1, num_heads=2,
                                                          dropout=0.0, attn_dropout=0.0),
                            text=TextConfig(vocab_size=30, max_positions=20, num_layers=2, num_heads=2,
                                            dropout=0.0, attn_dropout=0.0),
                            grounding=GroundingConfig(dict_size=8, top_k=3, mode=mode),
                            fusion=FusionConfig(num_layers=2, num_heads=2, dropout=0.0, attn_dropout=0.0,
                                                attention="grounded" if mode != "none" else "full"),
                            proj_dim=8, init_std=0.3)


def _pixels(b=2, seed=0):
    return paddle.to_tensor(np.random.default_rng(seed).normal(size=(b, 3, 16, 16)).astype("float32"))


def test_seq2seq_plan_hides_the_caption_from_the_source():
    m, k, n = 3, 2, 4
    mask = grounded_attention_plan(m, k, n, 1, attention="seq2seq").dense_mask().numpy()[0, 0]
    assert mask[:m + k, m + k:].sum() == 0                      # image and grounded never see the caption
    assert mask[:m + k, :m + k].all()
    assert mask[m + k:, :m].sum() == 0                          # caption sees grounded, not the image
    assert mask[m + k:, m:m + k].all()
    np.testing.assert_array_equal(mask[m + k:, m + k:], np.tril(np.ones((n, n), bool)))  # causal
    base = grounded_attention_plan(m, 0, n, 1, attention="seq2seq").dense_mask().numpy()[0, 0]
    assert base[m:, :m].all()                                   # baseline: the caption sees the image


@pytest.mark.parametrize("mode", ["topk", "none"])
def test_incremental_decoding_equals_full_causal_forward(mode):
    paddle.seed(0)
    model = UNIMO2ForCaptioning(tiny(mode))
    model.eval()
    pixels = _pixels()
    ids = paddle.to_tensor(np.random.default_rng(1).integers(3, 30, size=(2, 6)))
    with paddle.no_grad():
        full = model.mlm_head(model.caption_hidden(pixels, ids, paddle.ones(ids.shape, "bool"))).numpy()
        state, m, k = model.encode_context(pixels)
        assert k == (3 if mode == "topk" else 0)
        steps = [model.mlm_head(model.decode_step(ids[:, t:t + 1], t, state, m, k)[:, -1]).numpy()
                 for t in range(ids.shape[1])]
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-4)


def test_caption_is_causal_and_sees_the_image():
    paddle.seed(1)
    model = UNIMO2ForCaptioning(tiny())
    model.eval()
    ids = paddle.to_tensor(np.array([[0, 5, 6, 7, 8]]))
    ids2 = paddle.to_tensor(np.array([[0, 5, 6, 9, 9]]))
    ones = paddle.ones(ids.shape, "bool")
    with paddle.no_grad():
        a = model.caption_hidden(_pixels(1), ids, ones).numpy()
        b = model.caption_hidden(_pixels(1), ids2, ones).numpy()
        c = model.caption_hidden(_pixels(1, seed=5), ids, ones).numpy()
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-5)
    assert not np.allclose(a[:, 3:], b[:, 3:])
    assert not np.allclose(a, c)


def test_beam_outputs_score_as_their_log_probs():
    paddle.seed(2)
    model = UNIMO2ForCaptioning(tiny())
    model.eval()
    pixels = _pixels()
    cfg = GenerationConfig(beam_size=3, max_len=5, length_penalty=0.6, n_best=2)
    with paddle.no_grad():
        hyps = model.generate({"pixels": pixels}, cfg, bos_id=0, eos_id=2)
        for b in range(2):
            for h in hyps[b]:
                seq = paddle.to_tensor(np.array([[0] + h.tokens]))
                logits = model.mlm_head(model.caption_hidden(pixels[b:b + 1], seq, paddle.ones(seq.shape, "bool")))
                logp = paddle.nn.functional.log_softmax(logits, -1).numpy()[0]
                targets = h.tokens + ([2] if h.length > len(h.tokens) else [])
                ref = sum(logp[j, t] for j, t in enumerate(targets))
                assert h.score == pytest.approx(ref / length_penalty(len(targets), 0.6), abs=1e-3)
