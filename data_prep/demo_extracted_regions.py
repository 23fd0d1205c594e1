"""The demo's region store from the real extractor, in given-box mode.

``python -m data_prep.make_demo_regions --demo DIR --source extractor`` lands
here: the known boxes of every demo image (its ``scene`` objects plus the
whole image, :func:`data_prep.make_demo_corpus.scene_boxes`) are written as
a boxes JSONL (the ``--boxes`` format of ``data_prep.extract_region_features``)
and the bottom-up-attention extractor (``data_prep.region_extraction.run``)
computes one feature and one class distribution per given box.

No trained detector can be downloaded here, so the detector has *random
weights*: the features are genuine extractor output of the true boxes, but a
random CNN mostly passes on colour and intensity statistics of the crop, and
its class distributions are arbitrary (MRC then learns to predict them).
The default detector is a small ResNet-C4 sized for the 64-px demo images:
upscaled to 128 px (an 8x8 stride-16 map), one block per stage, and
``res2_channels = dim / 8`` so that the region feature (res5's width,
``8 * res2_channels``) has the size the UNIMO demo config expects.
"""
import json
import os

from data_prep.detector.config import DetectorConfig


def demo_detector_config(dim, num_classes, path=None):
    """The demo's detector: ``path`` (JSON/YAML, ``preset: tiny`` allowed) or
    the default small one; its feature size must be ``dim``."""
    if path:
        cfg = DetectorConfig.load(path)
        if cfg.head_channels != dim:
            raise ValueError(f"{path}: the detector's features have {cfg.head_channels} dims "
                             f"(8 x res2_channels {cfg.res2_channels}) but the demo wants {dim} (--dim / region_dim)")
        return cfg
    if dim % 8:
        raise ValueError(f"the demo detector's feature size is 8 x res2_channels: region dim {dim} "
                         f"is not a multiple of 8")
    # The image scale decides the cost; 128 px keeps all 3,100 demo images at
    # about a minute on 2 cores. Anchors and proposals are unused (given boxes).
    return DetectorConfig.tiny(res2_channels=dim // 8, bottleneck_channels=max(4, dim // 16), stem_channels=16,
                               min_size=128, max_size=128, pooler_resolution=7, num_classes=num_classes,
                               num_attrs=0)


def demo_images(demo_dir, manifests):
    """(id, image path, boxes) of every image of the demo manifests."""
    from data_prep.make_demo_corpus import scene_boxes
    with open(os.path.join(demo_dir, "meta.json")) as f:
        size = int(json.load(f)["image_size"])
    for name in manifests:
        path = os.path.join(demo_dir, name)
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                    yield rec["id"], os.path.join(demo_dir, rec["image"]), scene_boxes(rec["scene"], size)
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{line_no}: not a demo record with id, image and scene ({e})") from None


def write_boxes(demo_dir, manifests, boxes_path):
    """The boxes JSONL (``{"id", "boxes"}`` per image); returns the items
    (``image_sources.ImageItem``) to extract."""
    from data_prep.image_sources import ImageItem
    items = []
    tmp = f"{boxes_path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for image_id, image_path, boxes in demo_images(demo_dir, manifests):
            f.write(json.dumps({"id": image_id, "boxes": boxes}) + "\n")
            items.append(ImageItem(image_id, image_path))
    os.replace(tmp, boxes_path)
    return items


def extract_demo_regions(demo_dir, manifests, store_path, dim, num_classes, seed=0, detector_config=None,
                         batch_size=16, log=None):
    """Extract the known boxes of the demo images into ``store_path`` (a new
    store) with a random-weight detector seeded by ``seed``. Writes
    ``<demo>/region_boxes.jsonl`` on the way. Returns the extraction counts."""
    import paddle

    from data_prep import region_extraction
    from data_prep.detector.weights import build_detector
    from data_prep.image_sources import read_boxes
    cfg = demo_detector_config(dim, num_classes, detector_config)
    boxes_path = os.path.join(demo_dir, "region_boxes.jsonl")
    items = write_boxes(demo_dir, manifests, boxes_path)
    state = paddle.get_rng_state()   # the caller (a trainer) keeps its own random stream
    try:
        paddle.seed(seed)
        model = build_detector(None, cfg)
    finally:
        paddle.set_rng_state(state)
    model.eval()
    # read back through the extractor's own parser: the file is the interface
    stats = region_extraction.run(items, store_path, model, boxes=read_boxes(boxes_path), batch_size=batch_size,
                                  strict=True, topk=5, attr_topk=0, full_probs=True, feature_dtype="float32",
                                  progress=False, log=log)
    if stats["extracted"] != len(items):
        raise RuntimeError(f"{store_path}: extracted {stats['extracted']} of {len(items)} demo images ({stats})")
    return stats
