"""The assembled UNIMO-2 pre-training model on tiny synthetic batches."""
import numpy as np
import paddle
import pytest

from unimo2.config import FusionConfig, GroundingConfig, TextConfig, UNIMO2ArchConfig, UNIMO2LossConfig, ViTConfig
from unimo2.model import UNIMO2ForPretraining


def tiny_arch(**kw):
    arch = UNIMO2ArchConfig(hidden_size=16, vit=ViTConfig(image_size=16, patch_size=8, num_layers=1, num_heads=2),
                            text=TextConfig(vocab_size=40, max_positions=20, num_layers=1, num_heads=2),
                            grounding=GroundingConfig(dict_size=8, top_k=3),
                            fusion=FusionConfig(num_layers=2, num_heads=2), proj_dim=8)
    for k, v in kw.items():
        setattr(arch, k, v)
    return arch


def batch(kind, b=4, n=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 40, size=(b, n))
    ids[:, 0], ids[:, -1] = 0, 2
    ids[0, -2:] = [2, 1]  # one padded caption
    mask = ids != 1
    mask[0, -1] = False
    out = {"kind": kind, "seed": 7}
    if kind in ("pairs", "text"):
        pos = np.array([1, n + 2, 2 * n + 1, 3 * n + 3])
        out.update(ids=paddle.to_tensor(ids), mlm_ids=paddle.to_tensor(np.where(np.isin(np.arange(b * n), pos).reshape(b, n), 3, ids)),
                   mask=paddle.to_tensor(mask), mlm_positions=paddle.to_tensor(pos),
                   mlm_labels=paddle.to_tensor(ids.reshape(-1)[pos]))
    if kind in ("pairs", "images"):
        out["pixels"] = paddle.to_tensor(rng.normal(size=(b, 3, 16, 16)).astype("float32"))
    if kind == "images":
        out["pixels2"] = paddle.to_tensor(rng.normal(size=(b, 3, 16, 16)).astype("float32"))
    if kind == "pairs":
        out["groups"] = paddle.to_tensor(np.array([0, 1, 2, 2]))
    return out


@pytest.mark.parametrize("kind,expected", [("pairs", {"mlm", "itm", "itc", "grounding"}),
                                           ("text", {"mlm", "grounding"}), ("images", {"vcl", "grounding"})])
def test_losses_per_input_kind(kind, expected):
    paddle.seed(0)
    loss = UNIMO2LossConfig()
    loss.itc.weight = 1.0
    model = UNIMO2ForPretraining(tiny_arch(), loss)
    out = model(batch(kind))
    assert expected <= set(out)
    total = sum(float(out[k]) * w for k, w in (("mlm", 1), ("itm", 1), ("itc", 1), ("vcl", 1), ("grounding", 1))
                if k in out)
    assert np.isclose(float(out["loss"]), total, rtol=1e-5)
    out["loss"].backward()
    vit_grads = [p.grad for p in model.model.vit.parameters()]
    text_grads = [p.grad for p in model.model.text.parameters()]
    # A text-only step must leave the ViT without gradients (and vice versa):
    # they are not moved by the optimizer in that step.
    assert all(g is None for g in vit_grads) == (kind == "text")
    assert all(g is None for g in text_grads) == (kind == "images")
    assert model.model.grounding.embedding.grad is not None


def test_recompute_gives_same_gradients():
    grads = []
    for recompute in (False, True):
        paddle.seed(0)
        model = UNIMO2ForPretraining(tiny_arch(recompute=recompute), UNIMO2LossConfig())
        model.train()
        paddle.seed(1)
        model(batch("pairs"))["loss"].backward()
        grads.append({i: p.grad.numpy().copy()
                      for i, p in enumerate(model.parameters()) if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        np.testing.assert_allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6)


def test_baseline_and_ablations_run():
    for arch in (tiny_arch(grounding=GroundingConfig(mode="none"), fusion=FusionConfig(num_layers=1, num_heads=2, attention="full")),
                 tiny_arch(grounding=GroundingConfig(mode="one_to_one", dict_size=8)),
                 tiny_arch(fusion=FusionConfig(num_layers=1, num_heads=2, attention="full"))):
        model = UNIMO2ForPretraining(arch, UNIMO2LossConfig())
        out = model(batch("pairs"))
        assert np.isfinite(float(out["loss"]))
        assert ("grounding" in out) == (arch.grounding.mode != "none")


def test_config_rejects_grounded_attention_without_dictionary():
    with pytest.raises(ValueError, match="Our Baseline"):
        UNIMO2ArchConfig(grounding=GroundingConfig(mode="none"))


def test_itm_without_grounding_at_inference():
    paddle.seed(0)
    model = UNIMO2ForPretraining(tiny_arch(), UNIMO2LossConfig())
    model.eval()
    b = batch("pairs")
    img = model.model.encode_image(b["pixels"])
    txt = model.model.encode_text(b["ids"], b["mask"])
    with_g, g = model.itm_logits(img, txt, b["mask"])
    without, none = model.itm_logits(img, txt, b["mask"], use_grounding=False)
    assert g is not None and none is None
    assert with_g.shape == without.shape == [4, 2]
    assert not np.allclose(with_g.numpy(), without.numpy())


def test_weights_load_at_another_image_size():
    from unimo2.vit import resize_pos_embed
    from vlcore.framework.checkpoint import set_weights
    paddle.seed(0)
    small = UNIMO2ForPretraining(tiny_arch(), UNIMO2LossConfig())           # 16 px: 2x2 patches
    big = UNIMO2ForPretraining(tiny_arch(vit=ViTConfig(image_size=32, patch_size=8, num_layers=1, num_heads=2)),
                               UNIMO2LossConfig())                            # 32 px: 4x4 patches
    set_weights(big, small.state_dict(), "small")
    expected = resize_pos_embed(small.model.vit.pos_embed, 4).numpy()
    np.testing.assert_allclose(big.model.vit.pos_embed.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(big.model.vit.cls_token.numpy(), small.model.vit.cls_token.numpy())
