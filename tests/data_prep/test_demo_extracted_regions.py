"""The UNIMO demo's region store built by the real extractor in given-box mode
(data_prep/make_demo_regions.py --source extractor): one region per known box
plus the whole image, the given boxes kept, features equal to the detector's
own output, and the UNIMO batch builder reading the store."""
import json
import os

import numpy as np
import pytest

from helpers import ROOT, tiny_unimo_config

DIM = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from data_prep.make_demo_corpus import build_demo_corpus
    from data_prep.make_demo_regions import build
    d = os.path.join(str(tmp_path_factory.mktemp("xcorpus")), "demo")
    build_demo_corpus(d, seed=2, num_pairs=4, num_images=2, num_texts=16, num_test=2, image_size=32,
                      vocab_size=200, quiet=True)
    n = build(d, dim=DIM, seed=3, quiet=True, source="extractor")
    return d, n


def _records(d):
    for name in ("pairs_train.jsonl", "pairs_test.jsonl", "images_train.jsonl"):
        with open(os.path.join(d, name)) as f:
            yield from (json.loads(line) for line in f)


def test_one_region_per_known_box_plus_whole_image(corpus):
    from vlcore.formats.region_store import RegionStore
    d, n = corpus
    recs = list(_records(d))
    store = RegionStore(os.path.join(d, "regions"))
    assert n == len(recs) == len(store) == 8
    for rec in recs:
        r = store.get(rec["id"])
        want = [[x0, y0, x1 + 1, y1 + 1] for x0, y0, x1, y1 in (o["bbox"] for o in rec["scene"])] + [[0, 0, 32, 32]]
        np.testing.assert_array_equal(r.boxes, np.asarray(want, np.float32))
        assert r.features.shape == (len(want), DIM) and np.isfinite(r.features).all()
        assert r.cls_probs.shape == (len(want), 64 + 1)              # colour x shape classes + background
        np.testing.assert_allclose(r.cls_probs.sum(1), 1.0, rtol=1e-5)
        assert not np.allclose(r.features[0], r.features[-1])       # an object crop is not the whole image
    with open(os.path.join(d, "region_boxes.jsonl")) as f:           # the extractor's --boxes input
        assert [json.loads(line)["id"] for line in f] == [rec["id"] for rec in recs]


def test_features_are_the_detectors_output_on_the_given_boxes(corpus):
    import paddle

    from data_prep.demo_extracted_regions import demo_detector_config
    from data_prep.detector.preprocess import prepare, read_bgr
    from data_prep.detector.weights import build_detector
    from vlcore.formats.region_store import RegionStore
    d, _ = corpus
    rec = next(_records(d))
    paddle.seed(3)
    model = build_detector(None, demo_detector_config(DIM, 64))
    model.eval()
    r = RegionStore(os.path.join(d, "regions")).get(rec["id"])
    got = model.extract([prepare(read_bgr(os.path.join(d, rec["image"])), model.cfg)], [r.boxes])[0]
    np.testing.assert_allclose(r.features, got.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.cls_probs, got.cls_probs, rtol=1e-5, atol=1e-6)


def test_rewrites_do_not_depend_on_the_source(corpus, tmp_path):
    from data_prep.make_demo_corpus import build_demo_corpus
    from data_prep.make_demo_regions import build
    d, _ = corpus
    other = os.path.join(str(tmp_path), "demo")
    build_demo_corpus(other, seed=2, num_pairs=4, num_images=2, num_texts=16, num_test=2, image_size=32,
                      vocab_size=200, quiet=True)
    build(other, dim=DIM, seed=3, quiet=True, source="oracle")
    with open(os.path.join(d, "rewrites_train.jsonl")) as a, open(os.path.join(other, "rewrites_train.jsonl")) as b:
        assert a.read() == b.read()


def test_unimo_batch_builder_reads_the_extracted_store(corpus, tmp_path):
    import logging

    import unimo.builders  # noqa: F401
    from vlcore.framework.config import load_config
    from vlcore.framework.registry import TRAIN_DATA
    from vlcore.framework.run import BuildContext
    from vlcore.framework.schema import TrainConfig
    from vlcore.text.tokenizer import BPETokenizer
    d, _ = corpus
    cfg = load_config(TrainConfig, tiny_unimo_config(tmp_path, d, tmp_path / "o"),
                      ["DataLoader.Train.batch_size=2", "Loss.cmcl.num_negatives=1"])
    tok = BPETokenizer.from_dir(os.path.join(d, "vocab"))
    cfg.Arch.vocab_size = tok.vocab_size
    ctx = BuildContext(cfg, logging.getLogger("t"), tok, total_micro_steps=4, seed=5)
    ds = TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx).make_batches(0)
    b = next(ds[i] for i in range(len(ds)) if ds[i]["kind"] == "pairs")
    assert "error" not in b, b
    assert b["features"].shape[2] == DIM and b["region_mask"].any()
    assert b["mrc_dist"].shape[1] == 64


def test_bad_settings_are_named(corpus, tmp_path):
    from data_prep.demo_extracted_regions import demo_detector_config
    from data_prep.make_demo_regions import build
    d, _ = corpus
    cfg_path = os.path.join(str(tmp_path), "det.json")
    with open(cfg_path, "w") as f:
        json.dump({"preset": "tiny", "res2_channels": 4}, f)
    with pytest.raises(ValueError, match="det.json.*32 dims.*wants 16"):
        demo_detector_config(DIM, 64, cfg_path)
    with pytest.raises(ValueError, match="multiple of 8"):
        demo_detector_config(12, 64)
    with pytest.raises(ValueError, match="oracle, extractor"):
        build(d, dim=DIM, source="detector", store_path=os.path.join(str(tmp_path), "s"))


def test_demo_config_selects_the_source():
    from data_prep.demo import DemoDataConfig
    assert DemoDataConfig().region_source == "oracle"
    with pytest.raises(ValueError, match="region_source"):
        DemoDataConfig(region_source="detector")
    assert ROOT


def test_demo_refuses_a_store_of_the_other_source(corpus):
    import logging

    from data_prep.demo import DemoDataConfig, ensure_demo
    d, _ = corpus
    log = logging.getLogger("t")
    ensure_demo(DemoDataConfig(build_if_missing=True, region_source="extractor"), d, log, regions=True)
    with pytest.raises(ValueError, match="holds extractor region features but demo.region_source is oracle"):
        ensure_demo(DemoDataConfig(build_if_missing=True), d, log, regions=True)
