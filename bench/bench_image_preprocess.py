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
pixel difference (normalised units: the pixel range is 2), and for the
[CLS] output of a ViT-B/16 of the official geometry (patch padding 7,
LayerNorm eps 1e-12) with seeded random weights, how far it moves relative
to its norm and relative to its distance to the other photographs' (no
pretrained weights can be downloaded here; a trained model's features move
by another amount -- the pixel figures carry over exactly). Needs two
images or more.
"""
import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
    """Per image and size: pixel differences, and how far the [CLS] feature
    moves between the two preprocessings compared with how far it moves
    between different photographs (random-weight features barely depend on
    the input at all, so only this ratio says something)."""
    out = {}
    for size in sizes:
        model = vit(size)
        pix = {m: [Preprocess(size, MEAN, STD, m)(p) for p in paths] for m in ("official", "opencv")}
        with paddle.no_grad():
            feats = {m: model(paddle.to_tensor(np.stack(x)))[:, 0].numpy().astype(np.float64) for m, x in pix.items()}
        for i, path in enumerate(paths):
            d = np.abs(pix["official"][i] - pix["opencv"][i])
            moved = np.linalg.norm(feats["official"][i] - feats["opencv"][i])
            between = np.mean([np.linalg.norm(feats["official"][i] - feats["official"][j])
                               for j in range(len(paths)) if j != i])
            rel = float(moved / np.linalg.norm(feats["official"][i]))
            ratio = float(moved / between)
            name = os.path.splitext(os.path.basename(path))[0]
            out[f"{name}_{size}"] = {"pixel_mean_abs": float(d.mean()), "pixel_max_abs": float(d.max()),
                                     "cls_rel_l2": rel, "cls_vs_between_images": ratio}
            print(f"{name:>14} {size} px: pixels mean |diff| {d.mean():.4f}, max {d.max():.3f}; ViT [CLS] moves "
                  f"{rel:.4f} of its norm, {ratio:.3f} of the distance to the other photographs", flush=True)
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
