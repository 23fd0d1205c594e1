"""The region-feature extractor: whole pipeline vs the backbone alone.

    python bench/bench_region_extractor.py [--sizes 600x800] [--images 3] [--config r101|tiny]
        [--post-nms 300]

For each image size, a fresh process (so its peak memory is that size's)
generates ``--images`` images, builds the detector with random weights
(real R101-C4 sizes by default) and measures, on the same images in the same
run:

- backbone only: the stride-16 trunk (stem + res2-res4) forward on the
  already decoded and resized images, once before and once after the whole
  extractor (their mean is used; both are printed);
- whole extractor: ``data_prep.region_extraction.run`` from image files to a
  committed region store (decode, resize, trunk, RPN, RoI pooling, res5 on
  every RoI, class/attribute heads, selection, encoding, LMDB writes);
- a breakdown of one image by stage, with the convolution/linear FLOPs of the
  network parts counted by forward hooks;
- peak resident memory (VmHWM) after the backbone-only pass and after the
  whole run.

It prints images/s of both, their ratio, the breakdown, and the share of the
time spent outside the network (everything that is not trunk, res5 or head
matmuls) relative to the backbone. It also prints the **FLOP bound** of the
ratio: trunk FLOPs / all network FLOPs, i.e. the ratio if every stage ran at
the trunk's FLOP/s and everything outside the network were free. Under the C4
architecture res5 runs once per RoI (at 300 RoIs and a 600x1000 input it is
~10x the trunk), so that bound -- not 0.5 -- is the ceiling of a faithful
extractor. The load average and the machine's 2048^2 matmul FLOP/s are
printed with every run: on a shared machine the absolute numbers move with
the load, the ratio less. The CPU-time ratio (process CPU seconds instead of
wall seconds) is the figure to compare across runs on a busy machine when
run single-threaded (``OMP_NUM_THREADS=1``): a thread's CPU time barely
depends on the load, while with several threads MKL's spin-waiting under
contention inflates it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class ConvFlops:
    """2 x multiply-adds of every conv and linear layer executed (forward hooks)."""

    def __init__(self, model):
        import paddle.nn as nn

        from data_prep.detector.resnet_c4 import ConvNorm
        self.flops, self.on = 0, False
        for layer in model.sublayers():
            if isinstance(layer, (ConvNorm, nn.Conv2D)):
                layer.register_forward_post_hook(self._conv)
            elif isinstance(layer, nn.Linear):
                layer.register_forward_post_hook(self._linear)

    def _conv(self, layer, inputs, out):
        if self.on:
            w = layer.weight.shape
            self.flops += 2 * int(out.size) * w[1] * w[2] * w[3]

    def _linear(self, layer, inputs, out):
        if self.on:
            self.flops += 2 * int(out.size) * layer.weight.shape[0]

    def measure(self, fn):
        self.flops, self.on = 0, True
        try:
            result = fn()
        finally:
            self.on = False
        return result, self.flops


def load_average():
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def worker(args):
    from common import matmul_ceiling  # sets the CPU defaults before Paddle is imported

    import numpy as np
    import paddle
    import paddle.nn.functional as F

    from data_prep import image_sources, region_extraction
    from data_prep.detector.config import DetectorConfig
    from data_prep.detector.model import BottomUpAttention
    from data_prep.detector.preprocess import batch_tensor, prepare, read_bgr
    from data_prep.detector.selection import max_class_confidence, select_regions
    from vlcore.formats.region_store import RegionStoreWriter

    from region_helpers import make_images

    h, w = (int(v) for v in args.size.split("x"))
    cfg = DetectorConfig.tiny() if args.config == "tiny" else DetectorConfig()
    if args.post_nms:
        cfg.rpn_post_nms_topk = args.post_nms
    tmp = tempfile.mkdtemp(prefix="bench_region_")
    paths = make_images(os.path.join(tmp, "imgs"), [(h, w)] * args.images, seed=0)
    paddle.seed(0)
    model = BottomUpAttention(cfg)
    flops = ConvFlops(model)
    prepared = [prepare(read_bgr(p), cfg) for p in paths]
    out = {"size": args.size, "input": [prepared[0].h, prepared[0].w], "images": args.images,
           "load_start": load_average(), "matmul_gflops": matmul_ceiling() / 1e9}

    def backbone_pass():
        with paddle.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            for p in prepared:
                model.backbone(batch_tensor([p]))
            return (time.perf_counter() - t0) / len(prepared), (time.process_time() - c0) / len(prepared)

    with paddle.no_grad():
        model.backbone(batch_tensor(prepared[:1]))                      # warm-up
        model.extract(prepared[:1], [np.array([[0, 0, 32, 32]], np.float32)])
    # backbone, whole, backbone again: the machine is shared, so the backbone
    # figure is the mean of the passes before and after the whole extractor's
    backbone_before = backbone_pass()
    out["peak_backbone_mb"] = peak_rss_mb()
    items = image_sources.list_images(os.path.join(tmp, "imgs"))
    c0 = time.process_time()
    stats = region_extraction.run(items, os.path.join(tmp, "store"), model, progress=False, log=lambda m: None)
    out["whole_cpu_s"] = (time.process_time() - c0) / stats["extracted"]
    out["whole_s"] = stats["seconds"] / stats["extracted"]
    out["peak_whole_mb"] = peak_rss_mb()
    backbone_after = backbone_pass()
    out["backbone_s"] = (backbone_before[0] + backbone_after[0]) / 2
    out["backbone_cpu_s"] = (backbone_before[1] + backbone_after[1]) / 2
    out["backbone_spread"] = [backbone_before[0], backbone_after[0]]

    # one image, stage by stage
    p, stage = prepared[0], {}
    with paddle.no_grad():
        t = time.perf_counter()
        p = prepare(read_bgr(paths[0]), cfg)
        stage["decode+resize"] = time.perf_counter() - t
        t = time.perf_counter()
        feat, fl_trunk = flops.measure(lambda: model.backbone(batch_tensor([p])))
        stage["trunk"] = time.perf_counter() - t
        t = time.perf_counter()
        (rois,), fl_rpn = flops.measure(lambda: model.proposal_generator(feat, [(p.h, p.w)]))
        stage["rpn (head + proposals)"] = time.perf_counter() - t
        pooled, t_pool, t_res5, fl_res5 = [], 0.0, 0.0, 0
        for s in range(0, rois.shape[0], cfg.roi_chunk):
            t = time.perf_counter()
            x = model.roi_heads.pool(feat, rois[s:s + cfg.roi_chunk])
            t_pool += time.perf_counter() - t
            t = time.perf_counter()
            y, f5 = flops.measure(lambda: model.roi_heads.res5(x).mean(axis=[2, 3]))
            t_res5 += time.perf_counter() - t
            fl_res5 += f5
            pooled.append(y)
        stage["roi pooling"], stage["res5 on RoIs"] = t_pool, t_res5
        region = paddle.concat(pooled)
        t = time.perf_counter()
        (logits, _, attr), fl_pred = flops.measure(lambda: model.roi_heads.box_predictor(region, with_deltas=False))
        probs = F.softmax(logits, axis=-1).numpy()
        stage["class/attribute heads"] = time.perf_counter() - t
        t = time.perf_counter()
        keep = select_regions(max_class_confidence(rois.numpy(), probs[:, :-1], cfg.nms), cfg.conf,
                              cfg.min_boxes, cfg.max_boxes)
        stage["selection (per-class NMS)"] = time.perf_counter() - t
    from data_prep.detector.model import Regions
    attr_probs = F.softmax(attr[:, :-1], axis=-1).numpy()[keep] if attr is not None else None
    regions = Regions(rois.numpy()[keep], region.numpy()[keep], probs[keep], attr_probs, int(rois.shape[0]))
    t = time.perf_counter()
    with RegionStoreWriter(os.path.join(tmp, "w"), commit_every=1) as wr:
        wr.put(region_extraction.to_record("x", p, regions, 10, 10, False))
    stage["encode + LMDB commit"] = time.perf_counter() - t
    out.update(stage=stage, rois=int(rois.shape[0]), kept=int(len(keep)),
               gflop={"trunk": fl_trunk / 1e9, "rpn": fl_rpn / 1e9, "res5": fl_res5 / 1e9, "heads": fl_pred / 1e9},
               load_end=load_average())
    print("RESULT " + json.dumps(out), flush=True)


def flop_bound(g):
    """Backbone-only / whole ratio if all network FLOPs ran at one rate and
    nothing else cost anything."""
    return g["trunk"] / (g["trunk"] + g["rpn"] + g["res5"] + g["heads"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="600x800", help="comma-separated HxW of the generated images")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--config", choices=("r101", "tiny"), default="r101")
    ap.add_argument("--post-nms", type=int, default=0, help="RoIs per image after the RPN (default: config, 300)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    from common import header
    header()
    results = []
    for size in args.sizes.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--size", size, "--images", str(args.images),
               "--config", args.config, "--post-nms", str(args.post_nms)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        if r.returncode or not line:
            sys.exit(f"worker for {size} failed:\n{r.stderr[-3000:]}")
        results.append(json.loads(line[0][7:]))
    print(f"\nconfig {args.config}, {args.images} images per size, random weights")
    print("| image (input) | RoIs | backbone only img/s | whole extractor img/s | ratio | CPU-time ratio "
          "| FLOP bound of the ratio | peak RSS backbone / whole | load avg start -> end | matmul GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['size']} ({r['input'][0]}x{r['input'][1]}) | {r['rois']} | {1 / r['backbone_s']:.3f} | "
              f"{1 / r['whole_s']:.3f} | **{r['backbone_s'] / r['whole_s']:.3f}** | "
              f"{r['backbone_cpu_s'] / r['whole_cpu_s']:.3f} | {flop_bound(r['gflop']):.3f} | "
              f"{r['peak_backbone_mb']:.0f} / {r['peak_whole_mb']:.0f} MB | {r['load_start']} -> {r['load_end']} | "
              f"{r['matmul_gflops']:.0f} |")
    for r in results:
        st, g = r["stage"], r["gflop"]
        total = sum(st.values())
        print(f"\n{r['size']}: backbone-only s/img before / after the whole run: "
              f"{r['backbone_spread'][0]:.2f} / {r['backbone_spread'][1]:.2f}")
        network = st["trunk"] + st["res5 on RoIs"] + st["class/attribute heads"] + st["rpn (head + proposals)"]
        print(f"\n{r['size']}: one image by stage ({r['rois']} RoIs -> {r['kept']} regions), "
              f"{total:.2f} s in all")
        rates = {"trunk": g["trunk"], "rpn (head + proposals)": g["rpn"], "res5 on RoIs": g["res5"],
                 "class/attribute heads": g["heads"]}
        for k, v in st.items():
            rate = f"  {rates[k] / v:6.1f} GFLOP/s" if k in rates else ""
            print(f"  {k:28s} {v:8.3f} s  {100 * v / total:5.1f} %{rate}")
        print(f"  GFLOP: trunk {g['trunk']:.1f}, RPN head {g['rpn']:.1f}, res5 on RoIs {g['res5']:.1f}, "
              f"class/attr heads {g['heads']:.2f}  (res5 / trunk = {g['res5'] / g['trunk']:.1f}x)")
        print(f"  outside the network (decode, pooling, selection, writing): {total - network:.3f} s = "
              f"{(total - network) / st['trunk']:.2f} x the backbone")


if __name__ == "__main__":
    main()
