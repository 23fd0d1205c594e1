"""Retrieval evaluation time, exhaustive cross-encoder vs two-stage (ITC
shortlist + ITM re-rank), on a synthetic N-image x 5N-caption set.

    python bench/bench_retrieval_two_stage.py [--images 1000] [--k 10 20] [--hidden 64 --layers 2]

A random UNIMO-2 of the demo's shape (64-d, 2+2+2 layers, 32 px) scores
random pixels and random captions of 8-20 tokens; the unimodal encodings
are computed once and shared, so the times are those of the scoring (what
the two modes differ in). Prints seconds, pairs scored and the speed-up of
each k, and the R@1/5/10 of both against the synthetic ground truth (meaningful only
with trained weights: ``bench/bench_retrieval_demo_1k5k.sh`` measures both
modes with the trained demo checkpoint on a held-out 1K x 5K set).
"""
import argparse
import time

from common import header  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from unimo2.config import (  # noqa: E402
    FusionConfig,
    GroundingConfig,
    TextConfig,
    UNIMO2ArchConfig,
    UNIMO2LossConfig,  # noqa: E402
    ViTConfig,
)
from unimo2.model import UNIMO2ForPretraining  # noqa: E402
from unimo2.retrieval import pair_scorer  # noqa: E402
from vlcore.tasks import retrieval_eval  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--captions-per-image", type=int, default=5)
    ap.add_argument("--k", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header()
    paddle.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    d, n_layers = args.hidden, args.layers
    arch = UNIMO2ArchConfig(hidden_size=d, vit=ViTConfig(image_size=32, patch_size=8, num_layers=n_layers, num_heads=2),
                            text=TextConfig(vocab_size=300, max_positions=66, num_layers=n_layers, num_heads=2),
                            grounding=GroundingConfig(dict_size=128, top_k=8),
                            fusion=FusionConfig(num_layers=n_layers, num_heads=2), proj_dim=d, init_std=0.1)
    model = UNIMO2ForPretraining(arch, UNIMO2LossConfig())
    model.eval()
    n_img, per = args.images, args.captions_per_image
    n_cap = n_img * per
    caption_image = np.repeat(np.arange(n_img), per)
    with paddle.no_grad():
        t0 = time.perf_counter()
        img = paddle.concat([model.model.encode_image(paddle.randn([min(256, n_img - s), 3, 32, 32]))
                             for s in range(0, n_img, 256)])
        lens = rng.integers(8, 21, n_cap)
        ids = np.ones([n_cap, 22], np.int64)
        for i, n in enumerate(lens):
            ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = 0, rng.integers(4, 300, n), 2
        mask = np.zeros(ids.shape, bool)
        for i, n in enumerate(lens):
            mask[i, :n + 2] = True
        ids_t, mask_t = paddle.to_tensor(ids), paddle.to_tensor(mask)
        txt = paddle.concat([model.model.encode_text(ids_t[s:s + 256], mask_t[s:s + 256])
                             for s in range(0, n_cap, 256)])
        dual = paddle.matmul(model.embed_image(img), model.embed_text(txt), transpose_y=True).numpy()
        enc_s = time.perf_counter() - t0
        scorer = pair_scorer(model, "itm", img, txt, mask_t, args.batch_size)
        print(f"{n_img} images x {n_cap} captions, {d}-d, {n_layers}+{n_layers}+{n_layers} layers; "
              f"unimodal encoding + ITC matrix (shared): {enc_s:.1f} s")
        ex = retrieval_eval.evaluate(n_img, caption_image, scorer)
        print(f"exhaustive: {ex['seconds']:.1f} s, {ex['pairs_scored']} pairs "
              f"({ex['pairs_scored'] / ex['seconds']:.0f} pairs/s); R@1/5/10 TR {ex['tr_r1']:.1f}/{ex['tr_r5']:.1f}/"
              f"{ex['tr_r10']:.1f} IR {ex['ir_r1']:.1f}/{ex['ir_r5']:.1f}/{ex['ir_r10']:.1f}")
        for k in args.k:
            two = retrieval_eval.evaluate(n_img, caption_image, scorer, dual=dual, k=k)
            print(f"two-stage k={k}: {two['seconds']:.1f} s, {two['pairs_scored']} pairs "
                  f"({100 * two['pairs_scored'] / ex['pairs_scored']:.2f} %), "
                  f"speed-up x{ex['seconds'] / two['seconds']:.1f}; "
                  f"R@1/5/10 TR {two['tr_r1']:.1f}/{two['tr_r5']:.1f}/{two['tr_r10']:.1f} "
                  f"IR {two['ir_r1']:.1f}/{two['ir_r5']:.1f}/{two['ir_r10']:.1f} "
                  f"(rsum {two['rsum']:.1f} vs {ex['rsum']:.1f})")


if __name__ == "__main__":
    main()
