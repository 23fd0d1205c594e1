"""How far the toolkit's image preprocessing is from the official UNIMO-2
reader on real photographs, in pixels and in ViT features.

    python bench/bench_image_preprocess.py [--out preprocess.json] [IMAGE ...]

``opencv`` (the toolkit's default: OpenCV decode, area interpolation when
shrinking) against ``official`` (PIL decode, PIL bicubic resize: what
PaddlePaddle/Research NLP/UNIMO-2 src/utils/image_utils.py does), both
normalised with mean = std = 0.5 as the official reader. Images: the
photographs scikit-learn ships (``china.jpg``, ``flower.jpg``, 640x427) and
matplotlib's ``grace_hopper.jpg`` (512x600) unless paths are given.

Printed and written as JSON per image and size: the mean and max absolute
pixel difference (normalised units: the pixel range is 2), and the relative
L2 difference and cosine of the [CLS] output of a ViT-B/16 of the official
geometry (patch padding 7, LayerNorm eps 1e-12) with seeded random weights
(no pretrained weights can be downloaded here; a trained model's features
would move by a different amount -- the pixel figures carry over exactly).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import common  # noqa: E402,F401  (CPU defaults before Paddle)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from unimo2.vit import VisionTransformer  # noqa: E402
from vlcore.data.images import Preprocess  # noqa: E402

MEAN = STD = [0.5, 0.5, 0.5]


def default_images():
    import matplotlib
    import sklearn.datasets
    skl = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    mpl = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    return [os.path.join(skl, "china.jpg"), os.path.join(skl, "flower.jpg"), mpl]


def vit(size):
    paddle.seed(0)
    model = VisionTransformer(image_size=size, patch_size=16, patch_padding=7, hidden_size=768, num_layers=12,
                              num_heads=12, layer_norm_eps=1e-12)
    model.eval()
    return model


def measure(paths, sizes=(224, 384)):
    out = {}
    for size in sizes:
        model = vit(size)
        for path in paths:
            a = Preprocess(size, MEAN, STD, "official")(path)
            b = Preprocess(size, MEAN, STD, "opencv")(path)
            d = np.abs(a - b)
            with paddle.no_grad():
                f = model(paddle.to_tensor(np.stack([a, b])))[:, 0].numpy().astype(np.float64)
            rel = float(np.linalg.norm(f[0] - f[1]) / np.linalg.norm(f[0]))
            cos = float(f[0] @ f[1] / np.linalg.norm(f[0]) / np.linalg.norm(f[1]))
            name = os.path.splitext(os.path.basename(path))[0]
            out[f"{name}_{size}"] = {"pixel_mean_abs": float(d.mean()), "pixel_max_abs": float(d.max()),
                                     "cls_rel_l2": rel, "cls_cosine": cos}
            print(f"{name:>14} {size} px: pixels mean |diff| {d.mean():.4f}, max {d.max():.3f}; "
                  f"ViT [CLS] relative L2 {rel:.4f}, cosine {cos:.5f}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", help="image files (default: the bundled photographs)")
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args()
    common.header()
    result = measure(args.images or default_images())
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
