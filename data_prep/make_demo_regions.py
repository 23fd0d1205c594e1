"""Region features and CMCL rewrites for the synthetic demo corpus (UNIMO demo).

    python -m data_prep.make_demo_regions --demo data/demo [--dim 64] [--seed 0]
        [--source oracle|extractor] [--detector-config det.yaml] [--store PATH]

No trained detector can be downloaded here, and a randomly initialised one
would extract features that carry little about colour and shape. So the demo's
region features are *derived from the known objects and boxes* of
``data_prep.make_demo_corpus`` (each manifest record has a ``scene``): per
object, a fixed random code for its colour, shape and size plus Gaussian
noise; plus a whole-image region and a background crop, as a detector would
also return. The class distribution puts most mass on the object's colour+shape
class. Real corpora use ``data_prep.extract_region_features`` instead; this
tool exists so the UNIMO demo runs in minutes on a fresh machine.

``--source extractor`` instead runs that extractor in given-box mode on the
known boxes (each object and the whole image) with a small *random-weight*
detector (``data_prep.demo_extracted_regions``): genuine extractor output, but
with random weights the features mostly carry colour/intensity statistics of
the crops. The rewrites are the same for both sources. ``--store PATH``
writes only the region store, at PATH, leaving the demo directory as it is.

The rewrites are likewise *oracle* rewrites from the known scene: negatives
replace one colour (``sg-attribute``), one shape (``sg-object``) or one
relation (``sg-relation``) of the caption by one that makes it false;
positives (``bt``) are other captions of the same image, standing in for
back-translations.

Writes ``<demo>/regions/`` (a region store, ``vlcore.formats.region_store``)
and ``<demo>/rewrites_train.jsonl`` (``vlcore.formats.rewrites``).
"""
import argparse
import contextlib
import json
import os
import re
import sys

import numpy as np

from data_prep.make_demo_corpus import scene_boxes
from vlcore.formats.region_store import RegionFeatures, RegionStore, RegionStoreWriter
from vlcore.formats.rewrites import caption_id, make_record, write_rewrites

_RELATION_SWAPS = {"to the left of": "to the right of", "to the right of": "to the left of",
                   "above": "below", "below": "above"}


def _codes(rng, names, dim):
    return {n: rng.normal(size=dim).astype(np.float32) for n in names}


class OracleFeatures:
    """Deterministic features for (colour, shape, size) objects."""

    def __init__(self, meta, dim, seed):
        classes = meta["classes"]
        self.colours, self.shapes, self.sizes = classes["colours"], classes["shapes"], classes["sizes"]
        self.labels = [f"{c} {s}" for c in self.colours for s in self.shapes]
        rng = np.random.default_rng([seed, 77])
        self.dim = dim
        self.colour_code = _codes(rng, self.colours, dim)
        self.shape_code = _codes(rng, self.shapes, dim)
        self.size_code = _codes(rng, self.sizes, dim)
        self.background = rng.normal(size=dim).astype(np.float32)

    def record(self, image_id, scene, size, rng, top_k=5):
        boxes, feats, dists = scene_boxes(scene, size)[:-1], [], []   # the whole image comes below
        n_cls = len(self.labels)
        for obj in scene:
            f = self.colour_code[obj["colour"]] + self.shape_code[obj["shape"]] + 0.5 * self.size_code[obj["size"]]
            feats.append(f + 0.3 * rng.normal(size=self.dim))
            dist = np.full(n_cls + 1, 0.05 / n_cls, np.float32)
            ci, si = self.colours.index(obj["colour"]), self.shapes.index(obj["shape"])
            dist[ci * len(self.shapes) + si] += 0.8
            for s in range(len(self.shapes)):      # confusable: same colour
                dist[ci * len(self.shapes) + s] += 0.1 / len(self.shapes)
            dist[n_cls] += 0.05                    # background last (detectron2 order)
            dists.append(dist / dist.sum())
        # a whole-image region and a background crop, as detectors return too
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        w, h = (int(v) for v in rng.integers(size // 4, size // 2, 2))
        for box in ([0, 0, size, size], [x0, y0, x0 + w, y0 + h]):
            boxes.append(box)
            feats.append(self.background + 0.3 * rng.normal(size=self.dim))
            dist = np.full(n_cls + 1, 0.1 / n_cls, np.float32)
            dist[n_cls] = 0.9
            dists.append(dist / dist.sum())
        dists = np.asarray(dists, np.float32)
        order = np.argsort(-dists[:, :n_cls], axis=1)[:, :top_k]
        return RegionFeatures(image_id=image_id, image_w=size, image_h=size,
                              boxes=np.asarray(boxes, np.float32), features=np.asarray(feats, np.float32),
                              obj_ids=order.astype(np.int32),
                              obj_scores=np.take_along_axis(dists, order, 1).astype(np.float32),
                              cls_probs=dists)


def fix_articles(text):
    """a/an agreement after a word was replaced ("an orange" -> "a black")."""
    return re.sub(r"\b([Aa])n? (?=(\w))", lambda m: m.group(1) + ("n " if m.group(2) in "aeiouAEIOU" else " "), text)


def oracle_negatives(caption, scene, meta, rng, limit=6):
    """Rewrites of ``caption`` made false by one edit of a known kind."""
    colours, shapes = meta["classes"]["colours"], meta["classes"]["shapes"]
    present_c = {o["colour"] for o in scene}
    present_s = {o["shape"] for o in scene}
    out = []
    for kind, vocab, present in (("sg-attribute", colours, present_c), ("sg-object", shapes, present_s)):
        for word in [w for w in vocab if re.search(rf"\b{w}\b", caption)]:
            other = [w for w in vocab if w not in present]
            if other:
                new = fix_articles(re.sub(rf"\b{word}\b", str(rng.choice(other)), caption, count=1))
                out.append({"text": new, "kind": kind})
    for phrase, swap in _RELATION_SWAPS.items():
        if phrase in caption:
            out.append({"text": caption.replace(phrase, swap, 1), "kind": "sg-relation"})
            break
    rng.shuffle(out)
    return out[:limit]


MANIFESTS = ("pairs_train.jsonl", "pairs_test.jsonl", "images_train.jsonl")
UNSEEN = "pairs_test_unseen.jsonl"  # only in the ablation study's corpus (--held-out-shapes)
SOURCES = ("oracle", "extractor")


def build(demo_dir, dim=64, seed=0, quiet=False, source="oracle", detector_config=None, store_path=None):
    """The region store (``source`` oracle or extractor) at ``store_path``
    (default ``<demo>/regions``) and, unless ``store_path`` is given, the
    rewrites. Returns the number of region records."""
    if source not in SOURCES:
        raise ValueError(f"region source must be one of {', '.join(SOURCES)}, not {source!r}")
    with open(os.path.join(demo_dir, "meta.json")) as f:
        meta = json.load(f)
    oracle = OracleFeatures(meta, dim, seed)
    manifests = MANIFESTS + ((UNSEEN,) if os.path.isfile(os.path.join(demo_dir, UNSEEN)) else ())
    size = int(meta["image_size"])
    write_rewrites_too = store_path is None
    store_path = store_path or os.path.join(demo_dir, "regions")
    rewrites = []
    tmp = f"{store_path}.tmp-{os.getpid()}"
    if source == "extractor":
        from data_prep.demo_extracted_regions import extract_demo_regions
        log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
        extract_demo_regions(demo_dir, manifests, tmp, dim, len(oracle.labels), seed, detector_config, log=log)
    writer = (RegionStoreWriter(tmp, feature_dtype="float32",
                                meta={"source": "data_prep.make_demo_regions (oracle features)", "seed": seed})
              if source == "oracle" else contextlib.nullcontext())
    with writer as w:
        for name in manifests:
            with open(os.path.join(demo_dir, name), encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    rec = json.loads(line)
                    rng = np.random.default_rng([seed, line_no, len(name)])
                    # drawn for both sources so the rewrites below do not depend on the source
                    record = oracle.record(rec["id"], rec["scene"], size, rng)
                    if source == "oracle":
                        w.put(record)
                    if name == "pairs_train.jsonl" and write_rewrites_too:
                        caps = rec["captions"]
                        for k, cap in enumerate(caps):
                            pos = [{"text": c, "kind": "bt"} for j, c in enumerate(caps) if j != k][:2]
                            neg = oracle_negatives(cap, rec["scene"], meta, rng)
                            rewrites.append(make_record(caption_id(rec["id"], k), cap, pos, neg))
    _install(tmp, store_path)
    if write_rewrites_too:
        write_rewrites(os.path.join(demo_dir, "rewrites_train.jsonl"), rewrites)
    n = len(RegionStore(store_path))
    if not quiet:
        print(f"wrote {n} {source} region records to {store_path} and {len(rewrites)} rewrite records",
              file=sys.stderr)
    return n


def _install(tmp, dest):
    """Move a finished directory into place (replacing an old one) so a
    killed build never leaves a half-written store under the final name."""
    import shutil
    old = f"{dest}.old-{os.getpid()}"
    if os.path.exists(dest):
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", required=True, help="a corpus built by data_prep.make_demo_corpus")
    ap.add_argument("--dim", type=int, default=64, help="feature size (the real detector's is 2048)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", choices=SOURCES, default="oracle",
                    help="oracle: codes of the known objects (default); extractor: the random-weight "
                         "bottom-up-attention extractor on the known boxes")
    ap.add_argument("--detector-config", help="extractor source: JSON/YAML detector settings "
                                              "(default: a small ResNet for 64-px images)")
    ap.add_argument("--store", help="write only the region store, here (default: DEMO/regions, plus the rewrites)")
    args = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(args.demo, "meta.json")):
        sys.exit(f"error: {args.demo}: no meta.json (build it with python -m data_prep.make_demo_corpus)")
    if args.detector_config and args.source != "extractor":
        sys.exit("error: --detector-config needs --source extractor")
    if argv is None:  # a real command line: CPU defaults before Paddle is imported
        from vlcore.framework.env import apply_cpu_defaults
        apply_cpu_defaults()
    try:
        build(args.demo, args.dim, args.seed, source=args.source, detector_config=args.detector_config,
              store_path=args.store)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
