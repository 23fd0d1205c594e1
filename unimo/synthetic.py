"""Random pre-training batches of UNIMO / Unicoder-VL at a config's shapes,
for the step benchmarks and ``tools/plan.py`` (the ``synthetic`` hook of
``Arch: UNIMO``): the keys and shapes ``unimo.data`` gives the model, with
every region real and every CMCL slot filled."""
import numpy as np
import paddle

KINDS = ("pairs", "images", "text")
OBJECTIVES = {"pairs": "CMCL + masked regions + MLM/seq2seq on captions", "images": "masked regions",
              "text": "MLM/seq2seq on the text corpus"}


def text_length(cfg, kind):
    """Captions at ``max_text_len``; the text corpus at its own (longer)
    ``max_text_len_corpus``, within the position table."""
    data = cfg.DataLoader.Train
    return min(data.max_text_len_corpus, cfg.Arch.max_positions - 2) if kind == "text" else data.max_text_len


def synthetic_batch(cfg, kind, batch, seed=0, text_len=None, regions=None, negatives=None):
    """``text_len``: default ``max_text_len`` (captions) or
    ``max_text_len_corpus`` (text); ``regions``: ``max_regions``;
    ``negatives``: ``Loss.cmcl.num_negatives``."""
    if kind not in KINDS:
        raise ValueError(f"input kind {kind!r}: one of {', '.join(KINDS)}")
    arch, loss, data = cfg.Arch, cfg.Loss, cfg.DataLoader.Train
    n = text_len or text_length(cfg, kind)
    r = regions or data.max_regions
    negatives = loss.cmcl.num_negatives if negatives is None else negatives
    rng = np.random.default_rng(seed)
    t = paddle.to_tensor
    out = {"kind": kind, "seed": seed, "lang_task": "mlm"}
    if kind in ("pairs", "images"):
        feats = rng.normal(size=(batch, r, arch.feature_dim)).astype("float32")
        masked_at = rng.random((batch, r)) < 0.15
        rows, cols = np.nonzero(masked_at)
        dist = rng.random((len(rows), arch.num_classes)).astype("float32")
        out.update(features=t(feats), masked_features=t(np.where(masked_at[..., None], 0, feats)),
                   locations=t(rng.random((batch, r, arch.location_dim)).astype("float32")),
                   region_mask=t(np.ones((batch, r), bool)), region_positions=t(rows * r + cols),
                   mrfr_targets=t(feats[rows, cols]), mrc_dist=t(dist / dist.sum(1, keepdims=True)),
                   mrc_ids=t(dist.argmax(1)), groups=t(np.arange(batch)))
    if kind in ("pairs", "text"):
        ids = rng.integers(5, arch.vocab_size, size=(batch, n))
        ids[:, 0], ids[:, -1] = 0, 2
        pos = np.concatenate([i * n + 1 + rng.choice(n - 2, max(1, int(0.15 * n)), replace=False)
                              for i in range(batch)])
        out.update(ids=t(ids), mlm_ids=t(ids), mask=t(np.ones((batch, n), bool)), mlm_positions=t(pos),
                   mlm_labels=t(ids.reshape(-1)[pos]))
    if kind == "pairs":
        k = 1 + loss.cmcl.num_positives + negatives
        cm = rng.integers(5, arch.vocab_size, size=(batch * k, 24))
        cm[:, 0] = 0
        is_pos = np.zeros((batch, k), bool)
        is_pos[:, :1 + loss.cmcl.num_positives] = True
        out.update(cmcl_ids=t(cm), cmcl_mask=t(np.ones(cm.shape, bool)), cmcl_is_pos=t(is_pos),
                   cmcl_valid=t(np.ones((batch, k), bool)))
    return out
