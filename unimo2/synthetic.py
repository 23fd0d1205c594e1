"""Random pre-training batches of UNIMO-2 at a config's shapes, for the
step benchmarks and ``tools/plan.py`` (the ``synthetic`` hook of ``Arch:
UNIMO2``): the same keys and shapes as ``unimo2.data`` gives the model,
without reading data."""
import numpy as np
import paddle

KINDS = ("pairs", "text", "images")
OBJECTIVES = {"pairs": "ITC + ITM + MLM on captions", "text": "MLM on the text corpus",
              "images": "VCL (two views)"}


def text_length(cfg, kind):
    """Captions at ``max_text_len``; the text corpus at its own (longer)
    ``max_text_len_corpus``, within the position table."""
    data, arch = cfg.DataLoader.Train, cfg.Arch
    return min(data.max_text_len_corpus, arch.text.max_positions - 2) if kind == "text" else data.max_text_len


def synthetic_batch(cfg, kind, batch, seed=0, text_len=None):
    if kind not in KINDS:
        raise ValueError(f"input kind {kind!r}: one of {', '.join(KINDS)}")
    arch = cfg.Arch
    rng = np.random.default_rng(seed)
    n = text_len or text_length(cfg, kind)
    s = arch.vit.image_size
    vocab = arch.text.vocab_size
    b = {"kind": kind, "seed": seed}
    if kind in ("pairs", "text"):
        ids = rng.integers(5, vocab, size=(batch, n))
        ids[:, 0], ids[:, -1] = 0, 2
        mask = np.ones_like(ids, dtype=bool)
        pos = np.concatenate([r * n + 1 + rng.choice(n - 2, max(1, int(0.15 * n)), replace=False)
                              for r in range(batch)])
        b.update(ids=paddle.to_tensor(ids), mlm_ids=paddle.to_tensor(ids), mask=paddle.to_tensor(mask),
                 mlm_positions=paddle.to_tensor(pos), mlm_labels=paddle.to_tensor(ids.reshape(-1)[pos]))
    if kind in ("pairs", "images"):
        b["pixels"] = paddle.to_tensor(rng.normal(size=(batch, 3, s, s)).astype("float32"))
    if kind == "images":
        b["pixels2"] = paddle.to_tensor(rng.normal(size=(batch, 3, s, s)).astype("float32"))
    if kind == "pairs":
        b["groups"] = paddle.to_tensor(np.arange(batch))
    return b
