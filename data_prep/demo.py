"""The embedded demo corpus on first use: the ``demo`` section of the
pre-training data configs and building what it asks for when missing (rank 0
builds, the other ranks wait; separate jobs started together take turns on
a lock, so the first builds and the others find it built).
"""
import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from typing import List

from data_prep.make_demo_corpus import build_demo_corpus
from data_prep.make_demo_regions import build as build_demo_regions
from vlcore.formats.region_store import RegionStore
from vlcore.framework import dist


@dataclass
class DemoDataConfig:
    """Build the synthetic demo corpus under ``demo_dir`` (the data section's
    key beside this one) when it is missing."""
    build_if_missing: bool = False
    seed: int = 0
    num_pairs: int = 2000
    num_images: int = 1000
    num_texts: int = 4000
    num_test: int = 100
    image_size: int = 64
    vocab_size: int = 1000
    region_dim: int = 64      # UNIMO demo: size of the derived region features
    # UNIMO demo: "oracle" (codes of the known objects, the default) or
    # "extractor" (data_prep.extract_region_features in given-box mode on the
    # known boxes, random weights: genuine extractor output that mostly
    # carries colour/intensity statistics); region_detector: its settings file
    region_source: str = "oracle"
    region_detector: str = ""
    # shapes held out of every image-text pair but kept in image-only and text-only data (docs/ablations.md)
    held_out_shapes: List[str] = field(default_factory=list)
    # the same with colours (one of the two); the demo's tiny model learns colour words, not shape words
    held_out_colours: List[str] = field(default_factory=list)
    # training pairs per held-out shape or colour (rare instead of absent; 0: none); docs/ablations.md
    held_out_pairs: int = 0
    # UNIMO: this many TF-IDF negatives per caption (data_prep.rewrite.tfidf) in <demo_dir>/rewrites_tfidf; 0: none
    tfidf_negatives: int = 0

    def __post_init__(self):
        if self.region_source not in ("oracle", "extractor"):
            raise ValueError(f"demo.region_source must be oracle or extractor, not {self.region_source!r}")
        if self.region_detector and self.region_source != "extractor":
            raise ValueError("demo.region_detector needs demo.region_source: extractor")


def ensure_demo(cfg, demo_dir, logger, regions=False):
    """Build the demo corpus (and, for UNIMO, its region store and rewrites)
    in ``demo_dir`` if missing. Rank 0 builds; the other ranks wait."""
    if not (cfg.build_if_missing and demo_dir):
        return
    if dist.is_main():
        with _one_builder(demo_dir):
            _ensure_built(cfg, demo_dir, logger, regions)
    dist.barrier()


@contextlib.contextmanager
def _one_builder(demo_dir):
    """An flock on ``<demo_dir>.lock`` while a job checks and builds: two
    jobs started together on a fresh clone (e.g. the copies of the demo that
    a benchmark runs as its load, tools/results.py) would otherwise both
    write the same files. The kernel drops the lock if its holder dies."""
    path = os.path.abspath(demo_dir).rstrip(os.sep) + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_built(cfg, demo_dir, logger, regions):
    """Check what is there and build what is missing (under the lock)."""
    meta_path = os.path.join(demo_dir, "meta.json")
    if os.path.isfile(meta_path):
        _check_held_out(meta_path, cfg.held_out_shapes, cfg.held_out_pairs, cfg.held_out_colours)
    else:
        logger.info("building the demo corpus in %s (first run only)", demo_dir)
        build_demo_corpus(demo_dir, seed=cfg.seed, num_pairs=cfg.num_pairs, num_images=cfg.num_images,
                          num_texts=cfg.num_texts, num_test=cfg.num_test, image_size=cfg.image_size,
                          vocab_size=cfg.vocab_size, held_out_shapes=tuple(cfg.held_out_shapes),
                          held_out_pairs=cfg.held_out_pairs, held_out_colours=tuple(cfg.held_out_colours))
    if regions and os.path.isdir(os.path.join(demo_dir, "regions")):
        _check_region_source(os.path.join(demo_dir, "regions"), cfg.region_source)
    elif regions:
        logger.info("building the demo's region features (%s) and rewrites (first run only)", cfg.region_source)
        build_demo_regions(demo_dir, dim=cfg.region_dim, seed=cfg.seed, quiet=True, source=cfg.region_source,
              detector_config=cfg.region_detector or None)
    tfidf_dir = os.path.join(demo_dir, "rewrites_tfidf")
    # tfidf.stats.json is written last: a killed build resumes (the tool skips finished shards)
    if regions and cfg.tfidf_negatives and not os.path.isfile(os.path.join(tfidf_dir, "tfidf.stats.json")):
        logger.info("building the demo's TF-IDF negatives in %s (first run only)", tfidf_dir)
        from data_prep.rewrite import tfidf
        if tfidf.main(["--pairs", os.path.join(demo_dir, "pairs_train.jsonl"), "--out", tfidf_dir,
                       "--k", str(cfg.tfidf_negatives), "--workers", "1"]):
            raise ValueError(f"{tfidf_dir}: building the TF-IDF negatives failed (see above)")


def _check_held_out(meta_path, wanted, wanted_pairs=0, wanted_colours=()):
    """An existing corpus is reused, never rebuilt: refuse one whose held-out
    shapes or colours (or their number of anchor pairs) are not the config's
    (the plain demo holds none out)."""
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    for what, key, have, want in (
            ("holds out shapes {}", "held_out_shapes", sorted(meta.get("held_out_shapes", [])), sorted(wanted)),
            ("holds out colours {}", "held_out_colours", sorted(meta.get("held_out_colours", [])),
             sorted(wanted_colours)),
            ("has {} training pairs per held-out shape", "held_out_pairs", meta.get("held_out_pairs", 0),
             wanted_pairs)):
        if have != want:
            raise ValueError(f"{meta_path}: the corpus {what.format(have)} but demo.{key} is {want}; use another "
                             f"demo_dir or delete this one to rebuild")


def _check_region_source(store_path, wanted):
    """An existing store is reused, never rebuilt: refuse one of the other
    source rather than train on features the config did not ask for."""
    have = "oracle" if "oracle" in str(RegionStore(store_path).meta.get("source", "")) else "extractor"
    if have != wanted:
        raise ValueError(f"{store_path}: holds {have} region features but demo.region_source is {wanted}; "
                         f"delete it to rebuild, or build elsewhere with python -m data_prep.make_demo_regions "
                         f"--source {wanted} --store PATH")
