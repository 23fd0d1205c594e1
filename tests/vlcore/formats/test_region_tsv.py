"""The official UNIMO feature TSV: parsing as the official reader does,
line-numbered errors, and TSV <-> store round trips."""
import base64

import numpy as np
import pytest

from vlcore.formats.region_store import RegionStore, RegionStoreWriter, StoreError
from vlcore.formats.unimo_tsv import TsvError, TsvRecord, TsvWriter, parse_line, read_tsv, store_to_tsv, tsv_to_store

from region_helpers import random_record

D, C = 16, 11   # feature width and probs width (10 classes + background) of these tests


def _records(seed=0, sizes=(3, 0, 5, 1)):
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        p = rng.random((n, C)).astype(np.float32)
        p /= p.sum(1, keepdims=True) if n else 1
        xy = rng.random((n, 2)).astype(np.float32) * 40
        out.append(TsvRecord(f"COCO_val2014_{i:012d}.jpg", 640 + i, 480, np.concatenate([xy, xy + 5], 1),
                             rng.standard_normal((n, D)).astype(np.float32), p))
    return out


def _write_tsv(path, recs):
    with TsvWriter(str(path)) as w:
        for r in recs:
            w.write(r)


def test_field_layout_matches_the_official_reader(tmp_path):
    rec = _records(sizes=(2,))[0]
    _write_tsv(tmp_path / "a.tsv", [rec])
    items = open(tmp_path / "a.tsv").read().rstrip("\n").split("\t")
    # as NLP/UNIMO/src/reader/retrieval_reader.py decodes a line
    img_filename, image_w, image_h, number_box, boxes, image_embeddings, probs = items
    dec = lambda s: np.frombuffer(base64.b64decode(s), dtype=np.float32).reshape(int(number_box), -1)
    assert (img_filename, int(image_w), int(image_h)) == (rec.img_filename, 640, 480)
    np.testing.assert_array_equal(dec(boxes), rec.boxes)
    np.testing.assert_array_equal(dec(image_embeddings), rec.image_embeddings)
    np.testing.assert_array_equal(dec(probs), rec.probs)


def test_round_trip_float32_is_byte_exact(tmp_path):
    recs = _records()
    _write_tsv(tmp_path / "in.tsv", recs)
    stats = tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "s"), float32=True, feature_dim=D, num_probs=C)
    assert stats == {"read": 4, "written": 4, "skipped_existing": 0, "bad_lines": 0}
    n = store_to_tsv(str(tmp_path / "s"), str(tmp_path / "out.tsv"), ids=[r.img_filename for r in recs])
    assert n == 4
    assert (tmp_path / "out.tsv").read_bytes() == (tmp_path / "in.tsv").read_bytes()


def test_round_trip_float16_within_rounding(tmp_path):
    recs = _records(seed=1)
    _write_tsv(tmp_path / "in.tsv", recs)
    tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "s"), feature_dim=D, num_probs=C)
    store_to_tsv(str(tmp_path / "s"), str(tmp_path / "out.tsv"), ids=[r.img_filename for r in recs])
    back = list(read_tsv(str(tmp_path / "out.tsv"), D, C))
    for a, b in zip(recs, back):
        assert (a.img_filename, a.image_w, a.image_h) == (b.img_filename, b.image_w, b.image_h)
        assert a.number_box == b.number_box
        np.testing.assert_array_equal(a.boxes, b.boxes)                        # boxes stay float32
        np.testing.assert_allclose(b.image_embeddings, a.image_embeddings, rtol=2 ** -11, atol=6e-8)
        np.testing.assert_allclose(b.probs, a.probs, rtol=2 ** -11, atol=6e-8)
        assert not np.array_equal(b.image_embeddings, a.image_embeddings) or a.number_box == 0


def test_background_column_and_topk(tmp_path):
    rec = _records(sizes=(4,))[0]
    _write_tsv(tmp_path / "in.tsv", [rec])
    tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "first"), float32=True, k=3, feature_dim=D, num_probs=C)
    tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "last"), float32=True, k=3, probs_background="last",
                 feature_dim=D, num_probs=C)
    first = RegionStore(str(tmp_path / "first")).get(rec.img_filename)
    last = RegionStore(str(tmp_path / "last")).get(rec.img_filename)
    fg_first, fg_last = rec.probs[:, 1:], rec.probs[:, :-1]   # foreground columns under each convention
    for got, fg in ((first, fg_first), (last, fg_last)):
        want = np.argsort(-fg, axis=1, kind="stable")[:, :3]
        np.testing.assert_array_equal(got.obj_ids, want)
        np.testing.assert_array_equal(got.obj_scores, np.take_along_axis(fg, want, 1))
    # the store keeps background last whatever the TSV did
    np.testing.assert_array_equal(first.cls_probs[:, -1], rec.probs[:, 0])


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f[:6], "6 tab-separated fields"),
    (lambda f: [f[0], "wide", *f[2:]], "image_w 'wide' is not a number"),
    (lambda f: [*f[:4], "###", *f[5:]], "boxes is not valid base64"),
    (lambda f: [*f[:3], "3", *f[4:]], "boxes has 8 values, expected 3 x 4"),
    (lambda f: [*f[:5], base64.b64encode(b"\0" * 4 * (2 * D - 1)).decode(), f[6]], "image_embeddings has"),
])
def test_malformed_lines_name_file_and_line(tmp_path, mutate, message):
    good = _records(sizes=(2,))
    _write_tsv(tmp_path / "g.tsv", good)
    fields = (tmp_path / "g.tsv").read_text().rstrip("\n").split("\t")
    path = tmp_path / "bad.tsv"
    path.write_text((tmp_path / "g.tsv").read_text() + "\n" + "\t".join(mutate(fields)) + "\n")
    with pytest.raises(TsvError, match=f"bad.tsv:3: {message}"):
        list(read_tsv(str(path), D, C))
    errors = []
    assert len(list(read_tsv(str(path), D, C, strict=False, on_error=errors.append))) == 1
    assert len(errors) == 1 and "bad.tsv:3" in str(errors[0])


def test_widths_inferred_when_not_given():
    rec = _records(sizes=(2,))[0]
    from vlcore.formats.unimo_tsv import format_line
    got = parse_line(format_line(rec), feature_dim=None, num_probs=None)
    assert got.image_embeddings.shape == (2, D) and got.probs.shape == (2, C)


def test_import_skips_existing_and_export_needs_full_probs(tmp_path):
    recs = _records()
    _write_tsv(tmp_path / "in.tsv", recs)
    args = dict(feature_dim=D, num_probs=C)
    tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "s"), **args)
    again = tsv_to_store([str(tmp_path / "in.tsv")], str(tmp_path / "s"), **args)
    assert again["written"] == 0 and again["skipped_existing"] == 4
    with RegionStoreWriter(str(tmp_path / "topk")) as w:
        w.put(random_record("only_topk", 3, classes=C - 1, probs=False))
    with pytest.raises(StoreError, match="'only_topk'.*--sparse-probs"):
        store_to_tsv(str(tmp_path / "topk"), str(tmp_path / "x.tsv"))
    assert not (tmp_path / "x.tsv").exists()          # nothing half-written
    store_to_tsv(str(tmp_path / "topk"), str(tmp_path / "x.tsv"), sparse_probs=True)
    (back,) = list(read_tsv(str(tmp_path / "x.tsv"), D, None))
    assert back.probs.shape == (3, 1601)  # the store did not record a class count: UNIMO's 1600 + background
    rec = RegionStore(str(tmp_path / "topk")).get("only_topk")
    fg = back.probs[:, 1:]
    np.testing.assert_array_equal(np.take_along_axis(fg, rec.obj_ids.astype(np.int64), 1), rec.obj_scores)
    np.testing.assert_allclose(back.probs.sum(1), 1.0, rtol=1e-6)
