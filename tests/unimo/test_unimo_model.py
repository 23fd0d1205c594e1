"""UNIMO: region masking, seq2seq split and mask, cached decoding, CMCL (Eq. 1),
the [IMG] token, and every objective on tiny synthetic batches."""
import numpy as np
import paddle
import pytest

from unimo.config import UNIMOArchConfig, UNIMOLossConfig
from unimo.generation import greedy_generate
from unimo.model import UNIMOModel
from unimo.objectives import cmcl_loss, iou_region_mask, seq2seq_split
from unimo.pretrain import UNIMOForPretraining


def tiny(**kw):
    cfg = UNIMOArchConfig(hidden_size=16, num_layers=2, num_heads=2, vocab_size=50, max_positions=40,
                          feature_dim=12, num_classes=7, cmcl_dim=8, dropout=0.0, attn_dropout=0.0, init_std=0.2)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def regions(b=2, r=4, f=12, seed=0, loc=5):
    rng = np.random.default_rng(seed)
    feats = paddle.to_tensor(rng.normal(size=(b, r, f)).astype("float32"))
    locs = paddle.to_tensor(rng.random(size=(b, r, loc)).astype("float32"))
    mask = np.ones((b, r), bool)
    mask[0, -1] = False
    return feats, locs, paddle.to_tensor(mask)


# ------------------------------------------------------------ input corruption
def _iou_ref(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_iou_region_mask_matches_reference():
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(1, 12))
        xy = rng.random((n, 2)) * 50
        wh = rng.random((n, 2)) * 30 + 1
        boxes = np.concatenate([xy, xy + wh], 1)
        seed = int(rng.integers(1 << 30))
        got = iou_region_mask(boxes, np.random.default_rng(seed), ratio=0.3, iou=0.3)
        # replay the anchor draw, then apply the rule by hand
        r2 = np.random.default_rng(seed)
        anchors = r2.random(n) < 0.3
        if not anchors.any():
            anchors[r2.integers(n)] = True
        want = np.array([anchors[i] or any(_iou_ref(boxes[i], boxes[j]) > 0.3 for j in np.flatnonzero(anchors))
                         for i in range(n)])
        np.testing.assert_array_equal(got, want)
    # overlapping duplicates are always masked together
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5], [50, 50, 60, 60]], float)
    for s in range(20):
        m = iou_region_mask(boxes, np.random.default_rng(s), ratio=0.5)
        assert m[0] == m[1]


def test_seq2seq_split_partitions_the_text():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(5, 120))
        toks = list(range(100, 100 + n))
        src, src_pos, tgt, tgt_pos = seq2seq_split(toks, rng, cls_id=0, sep_id=2)
        body = [t for t in tgt if t not in (0, 2)]
        assert sorted(src + body) == toks                         # a partition
        assert len(body) == max(1, round(n * 0.25))               # the 25 % budget, exactly
        assert [toks[p] for p in src_pos] == src
        # fragments: [CLS] w_i..w_j [SEP], contiguous, at most 32 long
        frags, cur = [], None
        for t in tgt:
            if t == 0:
                cur = []
            elif t == 2:
                frags.append(cur)
            else:
                cur.append(t)
        assert all(1 <= len(f) <= 32 and f == list(range(f[0], f[0] + len(f))) for f in frags)
        assert len(tgt_pos) == len(tgt)


# ------------------------------------------------------------ attention
def _seq2seq_outputs(model, src, tgt):
    b = src.shape[0]
    pos = paddle.arange(tgt.shape[1]).unsqueeze(0).expand([b, tgt.shape[1]]) + 10
    return model(text=(src, paddle.ones(src.shape, "bool")), target=(tgt, paddle.ones(tgt.shape, "bool"), pos))


def test_seq2seq_mask_source_blind_to_target_and_target_causal():
    paddle.seed(0)
    model = UNIMOModel(tiny())
    model.eval()
    src = paddle.to_tensor(np.array([[0, 11, 12, 13, 2]] * 2))
    tgt = paddle.to_tensor(np.array([[0, 21, 22, 23, 24, 2]] * 2))
    tgt2 = tgt.clone()
    tgt2[:, 4:] = 33
    a, b = _seq2seq_outputs(model, src, tgt), _seq2seq_outputs(model, src, tgt2)
    np.testing.assert_allclose(a.text.numpy(), b.text.numpy(), atol=1e-6)            # source blind to target
    np.testing.assert_allclose(a.target[:, :4].numpy(), b.target[:, :4].numpy(), atol=1e-6)  # causal
    assert not np.allclose(a.target[:, 4:].numpy(), b.target[:, 4:].numpy())
    src2 = src.clone()
    src2[:, 1] = 40
    c = _seq2seq_outputs(model, src2, tgt)
    assert not np.allclose(a.target.numpy(), c.target.numpy())                          # target sees source


@pytest.mark.parametrize("layout", ["unimo", "unicoder"])
def test_cached_greedy_decoding_equals_recomputation(layout):
    paddle.seed(1)
    cfg = tiny(layout=layout, image_token="mean" if layout == "unimo" else "none")
    head = UNIMOForPretraining(cfg, UNIMOLossConfig())
    head.eval()
    model, lm = head.model, head.mlm_head
    regs = regions()
    src = paddle.to_tensor(np.array([[0, 11, 12, 2], [0, 14, 2, 1]]))
    src_mask = src != 1
    with paddle.no_grad():
        fast = greedy_generate(model, lm, regs, (src, src_mask), bos_id=0, eos_id=2, max_len=6,
                               start_position=20).numpy()
        # reference: re-encode everything for every new token
        ids = np.zeros((2, 1), np.int64)
        slow = []
        for step in range(fast.shape[1]):
            tgt = paddle.to_tensor(ids)
            pos = paddle.to_tensor(np.arange(20, 20 + ids.shape[1])[None].repeat(2, 0))
            enc = model(regions=regs, text=(src, src_mask), target=(tgt, paddle.ones(tgt.shape, "bool"), pos))
            nxt = lm(enc.target[:, -1]).argmax(-1).numpy()
            slow.append(nxt)
            ids = np.concatenate([ids, nxt[:, None]], 1)
    slow = np.stack(slow, 1)
    for row in range(2):  # compare up to (and including) each row's first EOS
        end = list(fast[row]).index(2) + 1 if 2 in fast[row] else fast.shape[1]
        np.testing.assert_array_equal(fast[row, :end], slow[row, :end])


def test_image_token_is_mean_region_at_whole_image():
    paddle.seed(0)
    model = UNIMOModel(tiny())
    model.eval()
    feats, locs, mask = regions()
    emb, key_mask = model.embed_regions(feats, locs, mask)
    assert key_mask.shape == [2, 5] and bool(key_mask[:, 0].all())
    m = mask.numpy()[0]
    mean = feats.numpy()[0][m].mean(0)
    x = mean @ model.feature_fc.weight.numpy() + model.feature_fc.bias.numpy() \
        + np.array([0, 0, 1, 1, 1.0]) @ model.location_fc.weight.numpy() + model.location_fc.bias.numpy()
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-5) * model.region_norm.weight.numpy() + model.region_norm.bias.numpy()
    np.testing.assert_allclose(emb.numpy()[0, 0], x, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ CMCL (Eq. 1)
def test_cmcl_loss_matches_reference():
    rng = np.random.default_rng(0)
    b, k, d, tau = 3, 5, 4, 0.1
    norm = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    img, own = norm(rng.normal(size=(b, d))), norm(rng.normal(size=(b, k, d)))
    is_pos = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]], bool)
    valid = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    groups = np.array([0, 1, 1])  # images 1 and 2 share a group: not each other's negatives
    loss, _ = cmcl_loss(*(paddle.to_tensor(a) for a in (img.astype("float32"), own.astype("float32"), is_pos, valid)),
                        paddle.to_tensor(own[:, 0].astype("float32")), paddle.to_tensor(groups), tau)
    per_image = []
    for i in range(b):
        s = own[i] @ img[i] / tau
        negs = [s[j] for j in range(k) if valid[i, j] and not is_pos[i, j]]
        negs += [own[j, 0] @ img[i] / tau for j in range(b) if groups[j] != groups[i]]
        pos = [s[j] for j in range(k) if valid[i, j] and is_pos[i, j]]
        per_image.append(np.mean([-p + np.log(np.exp(p) + np.sum(np.exp(negs))) for p in pos]))
    np.testing.assert_allclose(float(loss), np.mean(per_image), rtol=1e-5)


# ------------------------------------------------------------ the objectives
def _text_batch(b=2, n=6, seed=0, seq2seq=False):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 50, size=(b, n))
    ids[:, 0], ids[:, -1] = 0, 2
    out = {"ids": paddle.to_tensor(ids), "mask": paddle.to_tensor(np.ones((b, n), bool)), "seed": 3}
    if seq2seq:
        t = 5
        out.update(lang_task="seq2seq", src_ids=out["ids"], src_mask=out["mask"],
                   src_pos=paddle.to_tensor(np.arange(n)[None].repeat(b, 0) + 2),
                   tgt_ids=paddle.to_tensor(rng.integers(5, 50, size=(b, t))), tgt_mask=paddle.to_tensor(np.ones((b, t), bool)),
                   tgt_pos=paddle.to_tensor(np.arange(t)[None].repeat(b, 0) + 2),
                   s2s_positions=paddle.to_tensor(np.array([0, 1, 2, 3, t, t + 1])),
                   s2s_labels=paddle.to_tensor(rng.integers(5, 50, size=6)))
    else:
        out.update(lang_task="mlm", mlm_ids=out["ids"], mlm_positions=paddle.to_tensor(np.array([1, n + 2])),
                   mlm_labels=paddle.to_tensor(ids.reshape(-1)[[1, n + 2]]))
    return out


def _region_batch(b=2, r=4, c=7, seed=0):
    feats, locs, mask = regions(b, r, seed=seed)
    rng = np.random.default_rng(seed)
    masked = feats.numpy().copy()
    masked[:, 1] = 0
    dist = rng.random((b, c)).astype("float32")
    return {"features": feats, "locations": locs, "region_mask": mask, "masked_features": paddle.to_tensor(masked),
            "region_positions": paddle.to_tensor(np.array([1, r + 1])), "mrfr_targets": feats[:, 1],
            "mrc_dist": paddle.to_tensor(dist / dist.sum(1, keepdims=True)),
            "mrc_ids": paddle.to_tensor(dist.argmax(1).astype("int64"))}


@pytest.mark.parametrize("kind,seq2seq", [("pairs", False), ("pairs", True), ("images", False),
                                          ("text", False), ("text", True)])
def test_every_objective_runs_and_backpropagates(kind, seq2seq):
    paddle.seed(0)
    loss_cfg = UNIMOLossConfig()
    model = UNIMOForPretraining(tiny(), loss_cfg)
    batch = {"kind": kind}
    if kind in ("pairs", "text"):
        batch.update(_text_batch(seq2seq=seq2seq))
    if kind in ("pairs", "images"):
        batch.update(_region_batch())
    if kind == "pairs":
        k = 3
        cm = np.random.default_rng(1).integers(5, 50, size=(2 * k, 5))
        cm[:, 0] = 0
        batch.update(cmcl_ids=paddle.to_tensor(cm), cmcl_mask=paddle.to_tensor(np.ones((2 * k, 5), bool)),
                     cmcl_is_pos=paddle.to_tensor(np.array([[1, 1, 0], [1, 0, 0]], bool)),
                     cmcl_valid=paddle.to_tensor(np.ones((2, k), bool)), groups=paddle.to_tensor(np.array([0, 1])))
    out = model(batch)
    expected = {"pairs": {"mrfr", "mrc", "cmcl"}, "images": {"mrfr", "mrc"}, "text": set()}[kind]
    expected |= {"seq2seq"} if (seq2seq and kind != "images") else ({"mlm"} if kind != "images" else set())
    assert expected <= set(out), out.keys()
    assert np.isfinite(float(out["loss"]))
    out["loss"].backward()
    assert model.model.encoder.layers[0].attn.q_proj.weight.grad is not None


def test_unicoder_vl_matching_objective():
    paddle.seed(0)
    cfg = tiny(layout="unicoder", image_token="none", location_dim=4, type_vocab_size=2)
    loss = UNIMOLossConfig()
    loss.cmcl.weight, loss.vlm.weight, loss.region.mrfr_weight = 0.0, 1.0, 0.0
    loss.region.mrc_target = "argmax"
    model = UNIMOForPretraining(cfg, loss)
    batch = {"kind": "pairs", **_text_batch(), **_region_batch()}
    batch["locations"] = batch["locations"][..., :4]
    out = model(batch)
    assert {"vlm", "mlm", "mrc"} <= set(out) and "cmcl" not in out and "mrfr" not in out
    out["loss"].backward()
    assert model.vlm_head.weight.grad is not None and model.model.type_embed.weight.grad is not None


def test_region_losses_match_references():
    from unimo.objectives import region_classification_loss, region_regression_loss
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(5, 7)).astype("float32"), rng.normal(size=(5, 7)).astype("float32")
    np.testing.assert_allclose(float(region_regression_loss(paddle.to_tensor(pred), paddle.to_tensor(target))),
                               ((pred - target) ** 2).mean(), rtol=1e-5)
    logits = rng.normal(size=(5, 4)).astype("float32")
    dist = rng.random((5, 4)).astype("float32")
    dist /= dist.sum(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(float(region_classification_loss(paddle.to_tensor(logits), target_dist=paddle.to_tensor(dist))),
                               -(dist * logp).sum(1).mean(), rtol=1e-5)
    ids = dist.argmax(1)
    np.testing.assert_allclose(float(region_classification_loss(paddle.to_tensor(logits), target_ids=paddle.to_tensor(ids))),
                               -logp[np.arange(5), ids].mean(), rtol=1e-5)
    empty = paddle.zeros([0, 4])
    assert float(region_classification_loss(empty, target_ids=paddle.zeros([0], "int64"))) == 0.0
