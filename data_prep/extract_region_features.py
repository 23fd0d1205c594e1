"""Bottom-up-attention region features for a set of images, into a region store.

Extract (the default command)::

    python -m data_prep.extract_region_features --images DIR|LIST.txt|MANIFEST.jsonl|COCO.json
        --out STORE --weights detector.safetensors
        [--num-boxes 36 | --min-boxes 10 --max-boxes 100] [--conf 0.2] [--proposals 300]
        [--batch-size 1] [--shard i/n] [--boxes boxes.jsonl] [--image-root DIR]
        [--detector-config cfg.yaml] [--full-probs] [--float32] [--topk 10] [--strict]
        [--wait-timeout SECONDS]

Re-running the same command continues where it stopped. ``--shard i/n``
writes ``STORE.shard-0000i-of-0000n`` (run n processes, on one machine or
several, e.g. a Slurm array), then ``merge`` combines them into STORE. Under
``python -m paddle.distributed.launch`` / ``fleetrun`` rank r of n does the
same as ``--shard r/n`` on the GPU the launcher gave it
(``FLAGS_selected_gpus``), and rank 0 merges when every rank's part is
done (:mod:`data_prep.job_part`). A part is done when its store holds
``part_done.json`` (written after its last image); ``merge`` refuses parts
without it. ``--boxes`` extracts the
given boxes (JSONL ``{"id", "boxes": [[x1, y1, x2, y2], ...]}``) instead of
detecting. Other commands::

    python -m data_prep.extract_region_features merge --out STORE [SHARD_STORE ...]
    python -m data_prep.extract_region_features verify STORE
    python -m data_prep.extract_region_features import-tsv --tsv F.tsv [F2.tsv ...] --out STORE [--float32]
        [--probs-background first|last] [--no-probs] [--topk 10] [--feature-dim 2048] [--num-probs 1601] [--strict]
    python -m data_prep.extract_region_features export-tsv --store STORE --out F.tsv
        [--probs-background first|last] [--sparse-probs]

Unreadable images are skipped, counted and logged by file name (``--strict``:
stop at the first). Errors in the input end with one line and exit code 2
(``VLCORE_DEBUG=1`` for a traceback).
"""
import argparse
import glob
import hashlib
import json
import os
import re
import sys

from data_prep.job_part import PartError, add_part_args, args_part, selected_device, wait_until
from vlcore.formats.sharded import atomic_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMANDS = ("merge", "verify", "import-tsv", "export-tsv")
PART_DONE = "part_done.json"


def shard_store_path(out, i, n):
    return f"{out}.shard-{i:05d}-of-{n:05d}"


def _ids_digest(items):
    """What a part's image list was, so a done marker of another list
    (an earlier job with the same store name) does not count."""
    return hashlib.sha256("\n".join(it.image_id for it in items).encode("utf-8")).hexdigest()


def part_is_done(store, items=None):
    """Has the extraction of the part ``store`` finished (for ``items``, if given)?"""
    try:
        with open(os.path.join(store, PART_DONE), encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        return False
    return items is None or done.get("ids_sha256") == _ids_digest(items)


def find_shard_stores(out):
    pattern = re.compile(re.escape(os.path.basename(out)) + r"\.shard-(\d{5})-of-(\d{5})$")
    found = {}
    for path in glob.glob(glob.escape(out) + ".shard-*-of-*"):
        m = pattern.match(os.path.basename(path))
        if m:
            found[path] = (int(m.group(1)), int(m.group(2)))
    totals = {n for _, n in found.values()}
    if len(totals) > 1:
        raise ValueError(f"{out}: shard stores of different runs ({sorted(totals)} shards) lie side by side")
    if totals:
        n = totals.pop()
        missing = sorted(set(range(n)) - {i for i, _ in found.values()})
        if missing:
            raise ValueError(f"{out}: shard(s) {', '.join(map(str, missing))} of {n} not found")
        unfinished = [p for p in sorted(found) if not part_is_done(p)]
        if unfinished:
            raise ValueError(f"{unfinished[0]}: unfinished (no {PART_DONE}; {len(unfinished)} of {n} parts so); "
                             f"run its extraction again, it continues where it stopped")
    return sorted(found)


def extract_parser():
    p = argparse.ArgumentParser(prog="python -m data_prep.extract_region_features",
                                description="Extract bottom-up-attention region features into a region store.")
    p.add_argument("--images", required=True, help="directory, list (.txt), manifest (.jsonl) or COCO/Karpathy .json")
    p.add_argument("--image-root", help="base of relative image paths (default: the list's directory)")
    p.add_argument("--out", required=True, help="the region store (an LMDB directory)")
    p.add_argument("--weights",
                   help="detector weights, .safetensors (see data_prep.convert_detectron2_weights) or .pdparams")
    p.add_argument("--random-weights", action="store_true", help="no weights: random init (tests, benchmarks)")
    p.add_argument("--detector-config", help="JSON/YAML detector settings (default: R101 bottom-up attention)")
    p.add_argument("--num-boxes", type=int, help="a fixed number of boxes per image (sets min and max)")
    p.add_argument("--min-boxes", type=int)
    p.add_argument("--max-boxes", type=int)
    p.add_argument("--conf", type=float, help="confidence threshold of the selection (default 0.2)")
    p.add_argument("--proposals", type=int,
                   help="RoIs per image after the RPN (default 300, as bottom-up attention). Fewer is faster "
                        "(res5 runs once per RoI) but CHANGES the features: the selection chooses among fewer boxes")
    p.add_argument("--batch-size", type=int, default=1)
    add_part_args(p, finish="the merge command")
    p.add_argument("--boxes", help="JSONL of given boxes: extract these instead of detecting")
    p.add_argument("--topk", type=int, default=10, help="object classes kept per box (ids + scores)")
    p.add_argument("--attr-topk", type=int, default=10, help="attributes kept per box")
    p.add_argument("--full-probs", action="store_true", help="also keep the full class distribution per box")
    p.add_argument("--float32", action="store_true", help="store features as float32 (default float16)")
    p.add_argument("--commit-every", type=int, default=16, help="records per LMDB transaction")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument("--no-progress", action="store_true")
    return p


def detector_config(args):
    from data_prep.detector.config import DetectorConfig
    cfg = DetectorConfig.load(args.detector_config) if args.detector_config else DetectorConfig()
    over = {}
    if args.num_boxes is not None:
        if args.min_boxes is not None or args.max_boxes is not None:
            raise ValueError("--num-boxes sets both --min-boxes and --max-boxes; give one or the other")
        over.update(min_boxes=args.num_boxes, max_boxes=args.num_boxes)
    if args.min_boxes is not None:
        over["min_boxes"] = args.min_boxes
    if args.max_boxes is not None:
        over["max_boxes"] = args.max_boxes
    if args.conf is not None:
        over["conf"] = args.conf
    if args.proposals is not None:
        if args.proposals < 1:
            raise ValueError(f"--proposals must be at least 1, not {args.proposals}")
        over["rpn_post_nms_topk"] = args.proposals
    return DetectorConfig.from_dict({**cfg.to_dict(), **over}, where="command line")


def cmd_extract(argv):
    args = extract_parser().parse_args(argv)
    if bool(args.weights) == bool(args.random_weights):
        raise ValueError("give --weights W.safetensors (or --random-weights for a test run)")
    if args.weights and not os.path.isfile(args.weights):
        raise FileNotFoundError(f"{args.weights}: no such weights file")
    from data_prep import image_sources, region_extraction
    from vlcore.formats.region_store import RegionStore
    cfg = detector_config(args)
    part = args_part(args)  # --shard i/n, or the launcher's rank and world size
    all_items = image_sources.list_images(args.images, args.image_root)
    items, out, also_done = all_items, args.out, None
    if part.count > 1:
        items = image_sources.shard(all_items, part.index, part.count)
        out = shard_store_path(args.out, part.index, part.count)
        if os.path.isfile(os.path.join(args.out, "data.mdb")):  # ids merged by an earlier round
            also_done = set(RegionStore(args.out).keys())
    boxes = image_sources.read_boxes(args.boxes) if args.boxes else None

    def build():
        import paddle

        from data_prep.detector.weights import build_detector
        from vlcore.framework.env import describe_cpu_defaults
        device = selected_device()
        if device and paddle.device.is_compiled_with_cuda():  # the launcher's GPU for this rank
            paddle.set_device(device)
        print(f"{part.prefix}paddle {paddle.__version__} on {paddle.device.get_device()}; {describe_cpu_defaults()}",
              file=sys.stderr, flush=True)
        if args.random_weights:
            paddle.seed(0)
        return build_detector(args.weights, cfg)

    region_extraction.run(items, out, build, weights_path=args.weights, boxes=boxes, batch_size=args.batch_size,
                          strict=args.strict, topk=args.topk, attr_topk=args.attr_topk, full_probs=args.full_probs,
                          feature_dtype="float32" if args.float32 else "float16", commit_every=args.commit_every,
                          also_done=also_done, progress=False if args.no_progress else None)
    if part.count > 1:
        with atomic_open(os.path.join(out, PART_DONE)) as f:
            json.dump({"part": str(part), "images": len(items), "ids_sha256": _ids_digest(items)}, f)
    if part.waits and part.finishes:
        merge_parts(args.out, all_items, part)
    elif part.count > 1:
        print(f"{out}: {part}: done; " + ("rank 0 merges the parts into " + args.out if part.waits else
                                         f"merge the {part.count} parts with: merge --out {args.out}"),
              file=sys.stderr)
    return 0


def merge_parts(out, all_items, part):
    """Rank 0 under a launcher: wait for every rank's part, then merge them."""
    from data_prep import image_sources
    from vlcore.formats.region_store import merge
    stores = [shard_store_path(out, r, part.count) for r in range(part.count)]

    def missing():
        return [f"{s} (rank {r})" for r, s in enumerate(stores)
                if not part_is_done(s, image_sources.shard(all_items, r, part.count))]
    wait_until(missing, part, "every rank's region store", log=lambda m: print(m, file=sys.stderr, flush=True))
    res = merge(stores, out)
    print(f"{out}: {part}: merged {len(stores)} parts, {res['copied']} records copied, "
          f"{res['skipped_identical']} already there")


def cmd_merge(argv):
    p = argparse.ArgumentParser(prog="... merge", description="Merge shard stores into one store.")
    p.add_argument("--out", required=True)
    p.add_argument("sources", nargs="*", help="stores to merge (default: OUT.shard-*-of-*)")
    args = p.parse_args(argv)
    from vlcore.formats.region_store import merge
    sources = args.sources or find_shard_stores(args.out)
    if not sources:
        raise FileNotFoundError(f"{args.out}: no shard stores ({args.out}.shard-*-of-*) to merge")
    res = merge(sources, args.out)
    print(f"{args.out}: merged {len(sources)} stores, {res['copied']} records copied, "
          f"{res['skipped_identical']} already there")
    return 0


def cmd_verify(argv):
    p = argparse.ArgumentParser(prog="... verify", description="Check every record of a store.")
    p.add_argument("store")
    args = p.parse_args(argv)
    from vlcore.formats.region_store import RegionStore
    report = RegionStore(args.store).verify()
    print(report)
    return 0 if report.ok else 1


def cmd_import_tsv(argv):
    p = argparse.ArgumentParser(prog="... import-tsv", description="UNIMO feature TSV -> region store.")
    p.add_argument("--tsv", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--float32", action="store_true", help="keep float32 features (exact round trip)")
    p.add_argument("--probs-background", choices=("first", "last"), default="first")
    p.add_argument("--no-probs", action="store_true", help="keep only the top-k classes, not all probabilities")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--feature-dim", type=int, default=2048, help="expected feature width (0: infer)")
    p.add_argument("--num-probs", type=int, default=1601, help="expected probs width, classes + background (0: infer)")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    args = p.parse_args(argv)
    from vlcore.formats.unimo_tsv import tsv_to_store
    stats = tsv_to_store(args.tsv, args.out, float32=args.float32, k=args.topk,
                         probs_background=args.probs_background, keep_probs=not args.no_probs, strict=args.strict,
                         feature_dim=args.feature_dim or None, num_probs=args.num_probs or None,
                         log=lambda m: print(m, file=sys.stderr))
    print(f"{args.out}: {stats}")
    return 0


def cmd_export_tsv(argv):
    p = argparse.ArgumentParser(prog="... export-tsv", description="Region store -> UNIMO feature TSV.")
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--probs-background", choices=("first", "last"), default="first")
    p.add_argument("--sparse-probs", action="store_true",
                   help="a store without full probabilities: write the top-k, zeros elsewhere")
    args = p.parse_args(argv)
    from vlcore.formats.unimo_tsv import store_to_tsv
    n = store_to_tsv(args.store, args.out, args.probs_background, args.sparse_probs)
    print(f"{args.out}: {n} lines")
    return 0


def main(argv=None):
    if argv is None:  # a real command line: CPU defaults before Paddle is imported
        from vlcore.framework.env import apply_cpu_defaults, reexec_with_malloc_tuning
        reexec_with_malloc_tuning()
        apply_cpu_defaults()
        argv = sys.argv[1:]
    from data_prep.detector.config import WeightsError
    from data_prep.image_sources import SourceError
    from vlcore.data.images import ImageError
    from vlcore.formats.region_store import StoreError
    from vlcore.formats.unimo_tsv import TsvError
    cmd = {"merge": cmd_merge, "verify": cmd_verify, "import-tsv": cmd_import_tsv, "export-tsv": cmd_export_tsv}
    try:
        if argv and argv[0] in cmd:
            return cmd[argv[0]](argv[1:])
        return cmd_extract(argv)
    except (SourceError, StoreError, WeightsError, TsvError, ImageError, FileNotFoundError, PartError,
            ValueError) as e:
        if os.environ.get("VLCORE_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
