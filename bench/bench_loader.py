"""The UNIMO-2 data loader's cost per sample, from manifest + files and from
webdataset shards, and how many CPU cores one GPU needs.

Usage:  python bench/bench_loader.py [--images 256] [--batches 6] [--transfer-batches 12] [--rounds 5]
                                     [--json OUT.json]

Builds, in a temporary directory, a corpus of web-sized JPEGs (400-640 px
sides, quality 90, shapes on noise: 40-120 KB, about what img2dataset keeps
of the web before resizing), captions, an image-only split and a text
corpus; writes the images as tar shards (``data_prep.make_shards``) and the
text as token shards (``data_prep.tokenize_shards``). Then, with the
toolkit's own pipeline (``UNIMO2TrainData`` at 224 px, batch 32: decode,
resize, normalise, tokenize, span masking; VCL: two augmented views), it
times in-process batches and reports **samples per CPU-second** (the
process's CPU time, all its threads) for

- pairs, images (two VCL views) and text,
- each from manifest + files (text: plain lines) and from shards (text:
  token shards),

measured as interleaved rounds (manifest, shards, then shards, manifest,
... after one warm-up round: the order is reversed every other round, as in
bench/common.py interleaved), with the median of the per-round ratios
shards / manifest and its spread. It also prints the cores per
A100-equivalent: OpenCLIP's ViT-B/16 trains at about 330 samples/s on one
A100 (the figure issue 14 cites), so the loader needs 330 / (samples per
CPU-second) cores per GPU. The load average at start and end and the peak
RSS are printed and written to the JSON; rounds that disagree beyond the
stated spread are reported as such rather than averaged away
(bench/common.py ratio_summary).
"""
import argparse
import json
import os
import shutil
import tempfile
import time

from common import (  # beside this script (python bench/bench_loader.py)
    header,
    more_rounds,
    ratio_summary,
    run_record,
    show_record,
    turn_order,
    write_json,
)

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

A100_SAMPLES_PER_S = 330.0


def web_jpegs(directory, n, seed=0):
    """``n`` JPEGs of web-photo size: random shapes on noisy gradients."""
    import cv2
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    names = []
    for i in range(n):
        h, w = int(rng.integers(400, 641)), int(rng.integers(400, 641))
        base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * rng.random(3)[None, None, :]
        img = (base + rng.normal(0, 25, (h, w, 3))).clip(0, 255).astype(np.uint8)
        for _ in range(6):
            c = tuple(int(x) for x in rng.integers(0, 256, 3))
            cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(20, 120)), c, -1)
        name = f"img{i:05d}.jpg"
        cv2.imwrite(os.path.join(directory, name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(name)
    return names


def build_corpus(tmp, n):
    from data_prep.make_shards import convert
    from vlcore.text.tokenizer import train_bpe
    words = "red green blue small large circle square star ring above below left right of the a two".split()
    rng = np.random.default_rng(1)
    names = web_jpegs(os.path.join(tmp, "images"), n)
    caption = lambda: " ".join(rng.choice(words, 9))  # noqa: E731
    with open(os.path.join(tmp, "pairs.jsonl"), "w") as f:
        for i, name in enumerate(names):
            rec = {"id": str(i), "image": f"images/{name}", "captions": [caption() for _ in range(3)]}
            f.write(json.dumps(rec) + "\n")
    with open(os.path.join(tmp, "images.jsonl"), "w") as f:
        for i, name in enumerate(names):
            f.write(json.dumps({"id": str(i), "image": f"images/{name}", "label": "thing"}) + "\n")
    texts = [" ".join(rng.choice(words, 60)) for _ in range(4 * n)]
    with open(os.path.join(tmp, "text.txt"), "w") as f:
        f.write("\n".join(texts) + "\n")
    train_bpe(texts, 600, os.path.join(tmp, "vocab"))
    quiet = lambda m: None  # noqa: E731
    convert(os.path.join(tmp, "pairs.jsonl"), "pairs", os.path.join(tmp, "pairs_shards"), 64, log=quiet)
    convert(os.path.join(tmp, "images.jsonl"), "images", os.path.join(tmp, "images_shards"), 64, log=quiet)
    from data_prep.tokenize_shards import main as tokenize
    if tokenize(["--text", os.path.join(tmp, "text.txt"), "--tokenizer-dir", os.path.join(tmp, "vocab"),
                 "--out", os.path.join(tmp, "tokens"), "--shard-size", str(2 * n)]) != 0:
        raise SystemExit("tokenize_shards failed")
    sizes = [os.path.getsize(os.path.join(tmp, "images", x)) for x in names]
    return {"images": n, "jpeg_kb_median": round(float(np.median(sizes)) / 1024, 1)}


def batches(tmp, kind, source, batch_size):
    """The toolkit's step batches of one corpus (in-process)."""
    import unimo2  # noqa: F401  (registers the builders)
    from vlcore.framework.config import load_config
    from vlcore.framework.registry import TRAIN_DATA
    from vlcore.framework.run import BuildContext
    from vlcore.framework.schema import TrainConfig
    from vlcore.text.tokenizer import load_tokenizer
    path = {("pairs", "manifest"): "pairs.jsonl", ("pairs", "shards"): "pairs_shards",
            ("images", "manifest"): "images.jsonl", ("images", "shards"): "images_shards",
            ("text", "manifest"): "text.txt", ("text", "shards"): "tokens/tokens.index.json"}[(kind, source)]
    cfg = load_config(TrainConfig, os.path.join(ROOT, "configs", "unimo2_base.yaml"), [
        f"Global.tokenizer_dir={os.path.join(tmp, 'vocab')}", "Global.max_steps=1000", "Global.init_from=",
        f"DataLoader.Train.batch_size={batch_size}", "DataLoader.Train.num_workers=0",
        "DataLoader.Train.demo.build_if_missing=false"])
    cfg.DataLoader.Train.corpora = [type(cfg.DataLoader.Train.corpora[0])(name=kind, kind=kind,
                                                                          path=os.path.join(tmp, path))]
    cfg.DataLoader.Train.curriculum = [type(cfg.DataLoader.Train.curriculum[0])(ratios={kind: 1})]
    ctx = BuildContext(cfg, None, tokenizer=load_tokenizer(cfg.Global.tokenizer_dir), total_micro_steps=1000)
    return TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx).make_batches(0)


def cpu_rate(data, first, count):
    """Samples per CPU-second over batches ``first .. first+count-1``."""
    t0, samples = time.process_time(), 0
    for i in range(first, first + count):
        b = data.finish(data[i])  # the whole pipeline, the main process's part included
        if "error" in b:
            raise SystemExit(f"loader error: {b['error']}")
        samples += b["batch_size"]
    return samples / (time.process_time() - t0)


def read_rate(tmp, source, indices):
    """Raw random-access reads (no decoding): samples per second of wall
    time, reading the record and its image's bytes."""
    from vlcore.data.shard_records import ShardRecords
    from vlcore.formats.records import JsonlFile
    if source == "shards":
        records = ShardRecords(os.path.join(tmp, "pairs_shards"), "pairs")
        read = lambda i: len(records[i]["image"].data)  # noqa: E731
    else:
        records = JsonlFile(os.path.join(tmp, "pairs.jsonl"))

        def read(i):
            with open(os.path.join(tmp, records[i]["image"]), "rb") as f:
                return len(f.read())
    t0 = time.perf_counter()
    for i in indices:
        read(int(i))
    return len(indices) / (time.perf_counter() - t0)


def worker_rate(data, first, count, window=None):
    """With one loader worker (a forked process, as in training): wall
    samples/s, samples per worker CPU-second, and the main process's CPU
    per sample (receiving and unpickling the batches, and ``finish``).
    ``window``: :class:`_Window` (uint8 pixels, the toolkit's way) or
    :class:`_FloatTransfer` (float32 pixels from the worker, as before)."""
    import psutil

    from vlcore.data.workers import step_loader
    it = iter(step_loader((window or _Window)(data, first, count + 1), 1))
    next(it)  # the fork and the first batch are start-up
    me = psutil.Process()
    cpu = lambda ps: sum(p.cpu_times().user + p.cpu_times().system for p in ps)  # noqa: E731
    kids = me.children(recursive=True)
    k0, m0, t0 = cpu(kids), time.process_time(), time.perf_counter()
    samples = 0
    for _ in range(count):
        batch = next(it)
        samples += int(np.asarray(batch["batch_size"]).reshape(-1)[0])
    wall, worker_cpu, main_cpu = time.perf_counter() - t0, cpu(kids) - k0, time.process_time() - m0
    for _ in it:  # the window is used up: the loader ends and joins its worker
        pass
    return samples / wall, samples / max(worker_cpu, 1e-9), main_cpu / samples


class _Window:
    """Batches ``first .. first+count-1`` of a step-batch source, as a
    dataset of ``count`` items (the loader reads items 0..count-1), with its
    ``finish`` (run in the main process by the loader)."""

    def __init__(self, data, first, count):
        self.data, self.first, self.count = data, first, count
        self.finish = data.finish

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return self.data[self.first + i]


class _FloatTransfer(_Window):
    """Before: the worker normalises and ships float32 pixels (nothing left
    for the main process)."""

    def __init__(self, data, first, count):
        super().__init__(data, first, count)
        del self.finish

    def __getitem__(self, i):
        batch = self.data.finish(self.data[self.first + i])
        return {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in batch.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=6, help="batches per round and source")
    ap.add_argument("--transfer-batches", type=int, default=12,
                    help="batches per round and variant with one worker: a wall-clock rate, which other jobs "
                         "sharing the cores move more than a CPU-time one, so longer rounds")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds after the warm-up")
    ap.add_argument("--max-rounds", type=int, default=20,
                    help="more rounds, up to this many, while a ratio is not yet stable (a busy machine)")
    ap.add_argument("--json", default="", help="write the figures here")
    args = ap.parse_args()
    header()
    load_start = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="bench_loader_")
    try:
        corpus = build_corpus(tmp, args.images)
        print(f"corpus: {corpus['images']} JPEGs, median {corpus['jpeg_kb_median']} KB; batch {args.batch_size}, "
              f"224 px; {args.rounds} to {args.max_rounds} interleaved rounds (until the ratio is stable) of "
              f"{args.batches} batches per source (+1 warm-up)")
        results = {}
        for kind in ("pairs", "images", "text"):
            data = {s: batches(tmp, kind, s, args.batch_size) for s in ("manifest", "shards")}
            rates = {"manifest": [], "shards": []}
            settled = lambda: ratio_summary(rates["shards"], rates["manifest"])["stable"]  # noqa: E731
            for r in more_rounds(args.rounds, args.max_rounds, settled, warmup=1):
                for source in turn_order(("manifest", "shards"), r):   # A B, B A, ...: the load hits both alike
                    rate = cpu_rate(data[source], r * args.batches, args.batches)
                    if r:  # round 0 warms caches and allocators
                        rates[source].append(rate)
            ratio = ratio_summary(rates["shards"], rates["manifest"], fmt="{:.3f}", unit="")
            results[kind] = {
                "manifest_samples_per_cpu_s": round(float(np.median(rates["manifest"])), 1),
                "shards_samples_per_cpu_s": round(float(np.median(rates["shards"])), 1),
                "shards_over_manifest": round(ratio["ratio"], 3), "spread": round(ratio["spread"], 3),
                "rounds": len(ratio["rounds"]), "stable": ratio["stable"], "shown": ratio["shown"],
                "cores_per_a100": round(A100_SAMPLES_PER_S / float(np.median(rates["shards"])), 2)}
            x = results[kind]
            print(f"{kind:6s}: manifest {x['manifest_samples_per_cpu_s']:7.1f}, shards "
                  f"{x['shards_samples_per_cpu_s']:7.1f} samples/CPU-s; shards/manifest "
                  f"{ratio['shown']}; {x['cores_per_a100']:.2f} cores per A100 "
                  f"({A100_SAMPLES_PER_S:.0f} samples/s, ViT-B/16)")
        rng = np.random.default_rng(0)
        reads = {"manifest": [], "shards": []}
        settled = lambda: ratio_summary(reads["shards"], reads["manifest"])["stable"]  # noqa: E731
        for r in more_rounds(args.rounds, args.max_rounds, settled, warmup=1):
            indices = rng.integers(0, args.images, 16 * args.images)
            for source in ("manifest", "shards"):
                rate = read_rate(tmp, source, indices)
                if r:
                    reads[source].append(rate)
        ratio = ratio_summary(reads["shards"], reads["manifest"], fmt="{:.3f}", unit="")
        results["random_access_read"] = {
            "manifest_samples_per_s": round(float(np.median(reads["manifest"])), 0),
            "shards_samples_per_s": round(float(np.median(reads["shards"])), 0),
            "shards_over_manifest": round(ratio["ratio"], 3), "spread": round(ratio["spread"], 3),
            "rounds": len(ratio["rounds"]), "stable": ratio["stable"], "shown": ratio["shown"]}
        x = results["random_access_read"]
        print(f"random-access reads of a record and its image bytes (warm page cache): manifest + files "
              f"{x['manifest_samples_per_s']:.0f}/s, shards {x['shards_samples_per_s']:.0f}/s; shards/manifest "
              f"{ratio['shown']}")
        for kind in ("pairs", "images"):
            data = {s: batches(tmp, kind, s, args.batch_size) for s in ("manifest", "shards")}
            one = {"manifest": [], "shards": [], "float32": []}

            def cpu_ratio():
                """float32 / uint8 in CPU-seconds per sample of the whole pipeline
                (worker + main process): the cost of the transfer, which other jobs
                sharing the cores do not change the way they change wall time."""
                per_sample = {v: [1 / x[1] + x[2] for x in one[v]] for v in ("shards", "float32")}
                return ratio_summary(per_sample["float32"], per_sample["shards"], fmt="{:.3f}", unit="")
            settled = lambda: cpu_ratio()["stable"]  # noqa: E731
            for r in more_rounds(args.rounds, args.max_rounds, settled):
                first = r * (args.transfer_batches + 1)
                for source in turn_order(("manifest", "shards", "float32"), r):
                    window = _FloatTransfer if source == "float32" else _Window
                    one[source].append(worker_rate(data["shards" if source == "float32" else source], first,
                                                   args.transfer_batches, window))
            ratio = ratio_summary([u[0] for u in one["shards"]], [f[0] for f in one["float32"]], fmt="{:.3f}",
                                  unit="")
            in_process = results[kind]["shards_samples_per_cpu_s"]
            cpu = cpu_ratio()
            results[kind]["transfer"] = {
                "cpu_uint8_over_float32": round(cpu["ratio"], 3), "cpu_spread": round(cpu["spread"], 3),
                "cpu_stable": cpu["stable"], "cpu_shown": cpu["shown"],
                "float32_wall_samples_per_s": round(float(np.median([x[0] for x in one["float32"]])), 1),
                "uint8_over_float32": round(ratio["ratio"], 3), "spread": round(ratio["spread"], 3),
                "rounds": len(ratio["rounds"]), "stable": ratio["stable"], "shown": ratio["shown"],
                "uint8_wall_over_in_process": round(float(np.median([x[0] for x in one["shards"]])) / in_process, 3),
                "float32_wall_over_in_process": round(float(np.median([x[0] for x in one["float32"]])) / in_process, 3)}
            t = results[kind]["transfer"]
            print(f"{kind:6s} with 1 worker, shards: uint8 pixels / float32 pixels from the worker (before) "
                  f"{ratio['shown']} in wall samples/s, {cpu['shown']} in samples per CPU-s of worker and "
                  f"main process; wall with 1 worker / in-process rate "
                  f"{t['uint8_wall_over_in_process']:.3f} (float32 before: "
                  f"{t['float32_wall_samples_per_s'] / in_process:.3f})")
            for source in ("manifest", "shards"):
                wall, per_cpu, main_cpu = (float(np.median([x[j] for x in one[source]])) for j in range(3))
                results[kind][f"{source}_one_worker"] = {
                    "wall_samples_per_s": round(wall, 1), "samples_per_worker_cpu_s": round(per_cpu, 1),
                    "main_process_cpu_ms_per_sample": round(1000 * main_cpu, 2)}
                print(f"{kind:6s} with 1 worker, {source:8s}: {wall:6.1f} samples/s wall, {per_cpu:6.1f} per worker "
                      f"CPU-s, the main process {1000 * main_cpu:.2f} CPU-ms per sample (receiving batches)")
        rec = run_record(load_start)
        print(show_record(rec))
        if args.json:
            write_json(args.json, {"corpus": corpus, "batch_size": args.batch_size, "image_size": 224,
                                   "rounds": args.rounds, "max_rounds": args.max_rounds,
                                   "batches_per_round": args.batches,
                                   "transfer_batches_per_round": args.transfer_batches, "results": results,
                                   **rec})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
