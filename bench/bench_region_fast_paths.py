"""Old vs new code paths of the region-feature extractor, in one process, by
CPU time (what a busy shared machine cannot distort much when single-threaded).

    OMP_NUM_THREADS=1 python bench/bench_region_fast_paths.py [--rois 300] [--reps 1] [--size 600x1000]

"old" swaps the replaced code back in (1x1 convolutions through ``F.conv2d``,
the selection before bit sets: ``tests/region_helpers.py`` keeps it as the
reference), "new" is the committed code. For one generated image and the
R101-C4 detector with random weights it prints, for both, the CPU seconds of
``extract`` (trunk, RPN, pooling, res5 on every RoI, heads, selection) and of
the backbone alone, their ratio, whether the boxes are identical and the
largest feature difference.
"""
import argparse
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rois", type=int, default=300, help="RoIs after the RPN (300: bottom-up attention)")
    ap.add_argument("--reps", type=int, default=1, help="alternating old/new repetitions (best kept)")
    ap.add_argument("--size", default="600x1000", help="HxW of the generated image")
    args = ap.parse_args()
    import tempfile

    from common import header  # CPU defaults before Paddle

    import numpy as np
    import paddle
    import paddle.nn.functional as F

    from data_prep.detector import model as model_mod
    from data_prep.detector import resnet_c4
    from data_prep.detector.config import DetectorConfig
    from data_prep.detector.model import BottomUpAttention
    from data_prep.detector.preprocess import batch_tensor, prepare, read_bgr

    from region_helpers import make_images, selection_before_bitsets

    header()
    h, w = (int(v) for v in args.size.split("x"))
    cfg = DetectorConfig(rpn_post_nms_topk=args.rois)
    paddle.seed(0)
    model = BottomUpAttention(cfg)
    p = prepare(read_bgr(make_images(tempfile.mkdtemp(prefix="bench_fast_"), [(h, w)], seed=0)[0]), cfg)
    new = (resnet_c4.pointwise_conv, model_mod.max_class_confidence)
    old = (lambda x, wt, b, stride=1: F.conv2d(x, wt, b, stride), selection_before_bitsets)
    times, outs = {"old": [], "new": []}, {}
    with paddle.no_grad():
        model.extract([p], [np.array([[0, 0, 32, 32]], np.float32)])  # warm-up
        for _ in range(args.reps):
            for name, (pw, sel) in (("old", old), ("new", new)):
                resnet_c4.pointwise_conv, model_mod.max_class_confidence = pw, sel
                c0 = time.process_time()
                outs[name] = model.extract([p])[0]
                c1 = time.process_time()
                model.backbone(batch_tensor([p]))
                times[name].append((c1 - c0, time.process_time() - c1))
    resnet_c4.pointwise_conv, model_mod.max_class_confidence = new
    a, b = outs["old"], outs["new"]
    same = a.boxes.shape == b.boxes.shape and np.array_equal(a.boxes, b.boxes)
    diff = float(np.abs(a.features - b.features).max()) if same else float("nan")
    print(f"{args.size} image, {outs['new'].num_proposals} RoIs -> {len(b.boxes)} regions; "
          f"boxes identical: {same}, largest feature difference: {diff:.3g}")
    for name in ("old", "new"):
        ext, bb = min(t[0] for t in times[name]), min(t[1] for t in times[name])
        print(f"  {name}: extract {ext:.2f} CPU s, backbone {bb:.2f} CPU s, ratio {bb / ext:.3f}")
    print(f"  speed-up {min(t[0] for t in times['old']) / min(t[0] for t in times['new']):.2f}x; "
          f"load average {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
