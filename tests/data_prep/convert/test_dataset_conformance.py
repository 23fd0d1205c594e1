"""Every converter over the conformance fixtures (tests/fixtures/conformance/,
one directory per dataset, each README citing the published layout it
follows): the exact records of every published version, the exact report of
every bad variant (lenient: skipped and counted; --strict: exit 1 at that
item, naming the record id and the key), all-or-nothing multi-file output
under a full disk, and the same image verdicts in the converter and the
training pipeline's decoder."""
import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from data_prep.convert import common
from data_prep.convert.__main__ import main
from vlcore.data import images as images_mod
from vlcore.data.images import ImageError, decode_bgr, read_rgb
from vlcore.formats import sharded

from helpers import TESTS

FIX = os.path.join(TESTS, "fixtures", "conformance")


def fx(*parts):
    return os.path.join(FIX, *parts)


def run(argv, capsys=None):
    logs = []
    code = main(argv, log=logs.append)
    printed = capsys.readouterr().out if capsys else ""
    return code, logs, printed


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# ------------------------------------------------------------------ valid files pass --strict
VALID = [
    ["coco", "--src", fx("karpathy", "dataset_coco.json")],
    ["flickr30k", "--src", fx("karpathy", "dataset_flickr30k.json")],
    ["flickr8k", "--src", fx("karpathy", "dataset_flickr8k.json")],
    ["vg", "--src", fx("visual_genome", "v1.2", "region_descriptions.json"),
     "--image-data", fx("visual_genome", "v1.2", "image_data.json")],
    ["vg", "--src", fx("visual_genome", "v1.0", "region_descriptions_v1.json"),
     "--image-data", fx("visual_genome", "v1.0", "image_data.json")],
    ["vqa", "--src", fx("vqa", "v2", "v2_OpenEnded_mscoco_val2014_questions.json"),
     "--annotations", fx("vqa", "v2", "v2_mscoco_val2014_annotations.json")],
    ["vqa", "--src", fx("vqa", "v2", "v2_OpenEnded_mscoco_test-dev2015_questions.json")],
    ["vqa", "--src", fx("vqa", "v1", "MultipleChoice_mscoco_train2014_questions.json"),
     "--annotations", fx("vqa", "v1", "mscoco_train2014_annotations.json")],
    ["vqa", "--src", fx("vqa", "v1", "OpenEnded_mscoco_train2014_questions.json"),
     "--annotations", fx("vqa", "v1", "mscoco_train2014_annotations.json")],
    ["snli_ve", "--src", fx("snli_ve", "snli_ve_dev.2018.jsonl")],
    ["snli_ve", "--src", fx("snli_ve", "snli_ve_dev.2020.jsonl")],
    ["cc", "--src", fx("cc", "Train_GCC-training.tsv")],
    ["cc", "--src", fx("cc", "cc12m.tsv"), "--columns", "url,caption"],
    ["sbu", "--src", fx("sbu", "SBU_captioned_photo_dataset_urls.txt"),
     "--captions", fx("sbu", "SBU_captioned_photo_dataset_captions.txt")],
    ["sbu", "--src", fx("sbu", "sbu-captions-all.json")],
    ["glue", "--task", "cola", "--src", fx("glue", "CoLA", "train.tsv")],
    ["glue", "--task", "cola", "--src", fx("glue", "CoLA", "test.tsv")],
    ["glue", "--task", "mnli", "--src", fx("glue", "MNLI", "train.tsv")],
    ["glue", "--task", "mrpc", "--src", fx("glue", "MRPC", "test.tsv")],
    ["glue", "--task", "qqp", "--src", fx("glue", "QQP", "test.tsv")],
    ["glue", "--task", "ax", "--src", fx("glue", "diagnostic", "diagnostic.tsv")],
    ["image_folder", "--src", fx("imagenet", "train"), "--label-map", fx("imagenet", "LOC_synset_mapping.txt")],
    ["image_folder", "--src", fx("imagenet", "val"), "--val-labels", fx("imagenet", "LOC_val_solution.csv")],
    ["seq2seq", "--src", fx("seq2seq", "train.source"), "--target", fx("seq2seq", "train.target")],
]


@pytest.mark.parametrize("argv", VALID, ids=lambda a: f"{a[0]}-{os.path.basename(a[2 if a[1] == '--src' else 4])}")
def test_every_published_version_passes_strict(tmp_path, argv):
    """Valid input, including valid-but-empty items (an image with 0
    regions, with 0 sentences), never stops --strict and skips nothing."""
    out = str(tmp_path / ("out" if argv[0] in ("coco", "flickr30k", "flickr8k") else "out.jsonl"))
    code, logs, _ = run(argv + ["--out", out, "--strict"])
    assert code == 0, logs
    assert not any("skipped" in m for m in logs), logs


# ---------------------------------------------------------------------------- Karpathy
def test_karpathy_coco_records(tmp_path, capsys):
    out = tmp_path / "coco"
    code, logs, printed = run(["coco", "--src", fx("karpathy", "dataset_coco.json"), "--out", str(out),
                               "--image-prefix", "coco/"], capsys)
    assert code == 0 and logs == []
    assert listing(out) == ["restval.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert read_jsonl(out / "test.jsonl") == [
        {"id": "391895", "image": "coco/val2014/COCO_val2014_000000391895.jpg", "image_id": "391895",
         "captions": ["A man with a red helmet on a small moped on a dirt road.",
                      "Man riding a motor bike on a dirt road on the countryside."]}]
    assert read_jsonl(out / "val.jsonl")[0]["captions"] == ["Caf\u00e9 tables on a street.", "Two bikes."]
    assert [r["id"] for r in read_jsonl(out / "train.jsonl")] == ["537772"]
    assert "repeated captions dropped: 1" in printed and "skipped 0" in printed


@pytest.mark.parametrize("fmt, name, expected", [
    ("flickr30k", "dataset_flickr30k.json", {"train": ["1000092795"], "test": ["1007129816"]}),
    ("flickr8k", "dataset_flickr8k.json", {"train": ["2513260012_03d33305cf"]}),
])
def test_karpathy_flickr_records(tmp_path, capsys, fmt, name, expected):
    out = tmp_path / fmt
    code, logs, printed = run([fmt, "--src", fx("karpathy", name), "--out", str(out)], capsys)
    assert code == 0 and logs == []
    for split, ids in expected.items():
        recs = read_jsonl(out / f"{split}.jsonl")
        assert [r["id"] for r in recs] == ids and all(r["image"] == f"{r['id']}.jpg" for r in recs)
    if fmt == "flickr8k":  # the val image has an empty sentences list: a note, not an error
        assert read_jsonl(out / "val.jsonl") == []
        assert "images with 0 sentences (no record): 1" in printed and "skipped 0" in printed


@pytest.mark.parametrize("fmt, name, fragment", [
    ("coco", "no_cocoid.json",
     "no_cocoid.json: images[1].cocoid [filename COCO_train2014_000000537772.jpg]: must be the COCO image id "
     "(an integer), got nothing"),
    ("coco", "no_raw.json", "no_raw.json: images[1].sentences[0].raw [cocoid 537772, sentid 283074]: missing"),
    ("flickr30k", "filename_not_string.json",
     "filename_not_string.json: images[1].filename: missing or not a file name (got an integer (1007129816))"),
])
def test_karpathy_bad_variants(tmp_path, capsys, fmt, name, fragment):
    out = tmp_path / "o"
    code, logs, printed = run([fmt, "--src", fx("karpathy", "bad", name), "--out", str(out)], capsys)
    assert code == 0 and len(logs) == 1 and fragment in logs[0]
    assert "skipped 1 " in printed
    code, logs, _ = run([fmt, "--src", fx("karpathy", "bad", name), "--out", str(tmp_path / "s"), "--strict"])
    assert code == 1 and fragment in logs[-1] and listing(tmp_path / "s") == []


# ------------------------------------------------------------------------ Visual Genome
def test_visual_genome_both_versions(tmp_path, capsys):
    v12 = str(tmp_path / "v12.jsonl")
    code, logs, printed = run(["vg", "--src", fx("visual_genome", "v1.2", "region_descriptions.json"),
                               "--image-data", fx("visual_genome", "v1.2", "image_data.json"), "--out", v12], capsys)
    assert code == 0 and logs == []
    assert read_jsonl(v12) == [
        {"id": "1", "image": "VG_100K_2/1.jpg", "image_id": "1",
         "captions": ["the clock is green in colour", "shade is along the street"]},
        {"id": "3", "image": "VG_100K/3.jpg", "image_id": "3", "captions": ["black and white \u00e9t\u00e9 sign"],
         "coco_id": "57870", "flickr_id": "2970773875"}]
    assert "images with 0 regions (valid, no record): 1" in printed and "skipped 0" in printed
    v10 = str(tmp_path / "v10.jsonl")
    code, logs, printed = run(["vg", "--src", fx("visual_genome", "v1.0", "region_descriptions_v1.json"),
                               "--image-data", fx("visual_genome", "v1.0", "image_data.json"), "--out", v10], capsys)
    assert code == 0 and logs == []
    assert read_jsonl(v10) == [read_jsonl(v12)[0]]  # 'id'/'image' spellings read like 'region_id'/'image_id'
    assert "images with 0 regions (valid, no record): 1" in printed


@pytest.mark.parametrize("regions, image_data, fragment", [
    ("region_descriptions.json", "image_data_height_string.json",
     "image_data_height_string.json: [2] [image_id 3]: 'height' must be an integer, got a string ('480')"),
    ("region_x_string.json", "image_data.json",
     "region_x_string.json: [2].regions[0] [id 3, region_id 4091]: 'x' must be an integer, got a string ('3')"),
    ("region_other_image.json", "image_data.json",
     "region_other_image.json: [2].regions[0] [id 3, region_id 4091]: 'image_id' is an integer (1) but the region "
     "is listed under image 3"),
])
def test_visual_genome_bad_variants(tmp_path, capsys, regions, image_data, fragment):
    def path(name):
        return fx("visual_genome", "v1.2" if name in ("region_descriptions.json", "image_data.json") else "bad", name)
    argv = ["vg", "--src", path(regions), "--image-data", path(image_data)]
    code, logs, printed = run(argv + ["--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 0 and len(logs) == 1 and fragment in logs[0]
    assert [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["1"]  # image 3 is dropped, image 1 kept
    assert "skipped 1 " in printed
    code, logs, _ = run(argv + ["--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and fragment in logs[-1] and not (tmp_path / "s.jsonl").exists()


# ---------------------------------------------------------------------------------- VQA
def test_vqa_v2_v1_and_test_dev(tmp_path):
    out = str(tmp_path / "v2.jsonl")
    assert run(["vqa", "--src", fx("vqa", "v2", "v2_OpenEnded_mscoco_val2014_questions.json"),
                "--annotations", fx("vqa", "v2", "v2_mscoco_val2014_annotations.json"), "--out", out])[0] == 0
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == ["262148000", "262148001", "393225000"]
    assert recs[0] == {"id": "262148000", "image": "val2014/COCO_val2014_000000262148.jpg", "image_id": "262148",
                       "question": "Where is he looking?",
                       "answers": {"down": 7, "at table": 1, "skateboard": 1, "table": 1},
                       "answer_type": "other", "question_type": "none of the above"}
    assert recs[2]["question"] == "Is the bowl empty?"  # no-break space and double space collapsed
    out = str(tmp_path / "td.jsonl")
    assert run(["vqa", "--src", fx("vqa", "v2", "v2_OpenEnded_mscoco_test-dev2015_questions.json"),
                "--out", out])[0] == 0
    assert read_jsonl(out) == [{"id": "10", "image": "test2015/COCO_test2015_000000000001.jpg", "image_id": "1",
                                "question": "Are the dogs tied?"}]
    mc, oe = str(tmp_path / "mc.jsonl"), str(tmp_path / "oe.jsonl")
    ann = fx("vqa", "v1", "mscoco_train2014_annotations.json")
    assert run(["vqa", "--src", fx("vqa", "v1", "MultipleChoice_mscoco_train2014_questions.json"),
                "--annotations", ann, "--out", mc])[0] == 0
    assert run(["vqa", "--src", fx("vqa", "v1", "OpenEnded_mscoco_train2014_questions.json"),
                "--annotations", ann, "--out", oe])[0] == 0
    (rec_mc,), (rec_oe,) = read_jsonl(mc), read_jsonl(oe)
    assert len(rec_mc.pop("multiple_choices")) == 18 and "net" in json.dumps(rec_mc)
    assert rec_mc == rec_oe and rec_oe["answers"] == {"net": 8, "netting": 1, "mesh": 1}


@pytest.mark.parametrize("questions, annotations, fragment, kind", [
    ("v2/v2_OpenEnded_mscoco_val2014_questions.json", "bad/annotation_without_question.json",
     "annotation_without_question.json: annotations[3] [question_id 393225999]: question_id 393225999 has no "
     "question in", "no question: 1"),
    ("bad/image_id_string_questions.json", "v2/v2_mscoco_val2014_annotations.json",
     "image_id_string_questions.json: questions[1] [question_id 262148001]: 'image_id' must be an integer, "
     "got a string ('262148')", "missing field: 1"),
    ("bad/no_question_text_questions.json", "v2/v2_mscoco_val2014_annotations.json",
     "no_question_text_questions.json: questions[2] [question_id 393225000]: 'question' must be a non-empty "
     "string, got null", "missing field: 1"),
])
def test_vqa_bad_variants(tmp_path, capsys, questions, annotations, fragment, kind):
    argv = ["vqa", "--src", fx("vqa", *questions.split("/")), "--annotations", fx("vqa", *annotations.split("/"))]
    code, logs, printed = run(argv + ["--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 0 and len(logs) == 1 and fragment in logs[0], logs
    assert f"skipped 1 ({kind})" in printed
    code, logs, _ = run(argv + ["--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and fragment in logs[-1] and not (tmp_path / "s.jsonl").exists()


# ------------------------------------------------------------------------------ SNLI-VE
def test_snli_ve_both_generators_give_the_same_records(tmp_path):
    outs = []
    for version in ("2018", "2020"):
        out = str(tmp_path / f"{version}.jsonl")
        assert run(["snli_ve", "--src", fx("snli_ve", f"snli_ve_dev.{version}.jsonl"), "--out", out,
                    "--image-prefix", "flickr30k-images/"])[0] == 0
        outs.append(read_jsonl(out))
    assert outs[0] == outs[1]
    assert outs[1][0] == {"id": "3416050480.jpg#4r1n", "image": "flickr30k-images/3416050480.jpg",
                          "image_id": "3416050480", "hypothesis": "A person is training his horse for a competition.",
                          "label": "neutral"}
    assert [r["label"] for r in outs[1]] == ["neutral", "contradiction", "entailment"]


@pytest.mark.parametrize("name, line, fragment", [
    ("image_differs_from_pair.jsonl", 1,
     "[pairID 3416050480.jpg#4r1n]: image '1000092795' differs from the image of pairID '3416050480.jpg#4r1n'"),
    ("2018_key_without_jpg.jsonl", 1,
     "[pairID 3416050480.jpg#4r1n]: 'Flikr30kID' is '3416050480', expected a file name ending in '.jpg' "
     "(2018 generator)"),
    ("hypothesis_not_string.jsonl", 2,
     "[pairID 3416050480.jpg#4r1c]: 'sentence2' must be a non-empty string, got an integer (7)"),
    ("no_image_key.jsonl", 1,
     "[pairID 3416050480.jpg#4r1e]: no image key: neither 'Flickr30K_ID' (2020 generator) nor 'Flikr30kID'"),
])
def test_snli_ve_bad_variants(tmp_path, name, line, fragment):
    src = fx("snli_ve", "bad", name)
    code, logs, _ = run(["snli_ve", "--src", src, "--out", str(tmp_path / "o.jsonl")])
    assert code == 0 and len(logs) == 1 and f"{src}:{line} {fragment}" in logs[0], logs
    assert len(read_jsonl(tmp_path / "o.jsonl")) == line - 1
    code, logs, _ = run(["snli_ve", "--src", src, "--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and f"{src}:{line} {fragment}" in logs[-1]


# ------------------------------------------------------------------------ CC / CC12M / SBU
def test_cc3m_and_cc12m(tmp_path):
    out = str(tmp_path / "cc3m.jsonl")
    assert run(["cc", "--src", fx("cc", "Train_GCC-training.tsv"), "--out", out])[0] == 0
    recs = read_jsonl(out)
    assert [(r["id"], r["image"], r["captions"]) for r in recs] == [
        ("0", "00000/000000000.jpg", ["a very typical bus station"]),
        ("1", "00000/000000001.jpg", ["sierra looked stunning in this top and this skirt while performing with "
                                      "person at their former university"])]
    out = str(tmp_path / "cc12m.jsonl")
    assert run(["cc", "--src", fx("cc", "cc12m.tsv"), "--out", out, "--columns", "url,caption"])[0] == 0
    assert [r["url"] for r in read_jsonl(out)] == ["https://example.org/images/0001.jpg",
                                                   "https://example.org/images/0002.jpg"]
    code, logs, _ = run(["cc", "--src", fx("cc", "cc12m.tsv"), "--out", out])  # CC3M's column order
    assert code == 2 and "cc12m.tsv:1: the 'url' column holds no URL" in logs[-1] and "--columns url,caption" in logs[-1]
    src = fx("cc", "bad", "missing_url_column.tsv")
    code, logs, _ = run(["cc", "--src", src, "--out", out, "--strict"])
    assert code == 1 and f"{src}:1: 1 tab-separated fields, expected 2" in logs[-1]


def test_sbu_both_distributions(tmp_path):
    a, b = str(tmp_path / "txt.jsonl"), str(tmp_path / "json.jsonl")
    assert run(["sbu", "--src", fx("sbu", "SBU_captioned_photo_dataset_urls.txt"),
                "--captions", fx("sbu", "SBU_captioned_photo_dataset_captions.txt"), "--out", a,
                "--image-name", "{basename}"])[0] == 0
    assert run(["sbu", "--src", fx("sbu", "sbu-captions-all.json"), "--out", b, "--image-name", "{basename}"])[0] == 0
    assert read_jsonl(a) == read_jsonl(b)
    assert [r["image"] for r in read_jsonl(a)] == ["4385058960_b0f291553e.jpg", "1234_ab.jpg"]


def test_sbu_bad_variants(tmp_path):
    urls = fx("sbu", "SBU_captioned_photo_dataset_urls.txt")
    short = fx("sbu", "bad", "captions_short.txt")
    code, logs, _ = run(["sbu", "--src", urls, "--captions", short, "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and logs[-1] == f"error: {urls} has 2 lines but {short} has 1: the files must be line-parallel"
    latin1 = fx("sbu", "bad", "captions_latin1.txt")
    code, logs, _ = run(["sbu", "--src", urls, "--captions", latin1, "--out", str(tmp_path / "o.jsonl")])
    assert code == 0 and len(logs) == 1 and f"{latin1}:2: not UTF-8" in logs[0]
    assert [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["0"]  # line 1 kept, the pair of line 2 skipped
    src = fx("sbu", "bad", "lists_differ.json")
    code, logs, _ = run(["sbu", "--src", src, "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and f"{src}: 'image_urls' has 1 items but 'captions' has 0" in logs[-1]


# -------------------------------------------------------------------------------- GLUE
def test_glue_layouts(tmp_path):
    def conv(task, *path):
        out = str(tmp_path / f"{task}-{path[-1]}.jsonl")
        code, logs, _ = run(["glue", "--task", task, "--src", fx("glue", *path), "--out", out])
        assert code == 0 and logs == []
        return read_jsonl(out)
    assert [r["label"] for r in conv("cola", "CoLA", "train.tsv")] == ["1", "0"]
    assert conv("cola", "CoLA", "test.tsv") == [{"id": "0", "text_a": "Bill whistled past the house."}]
    (mnli,) = conv("mnli", "MNLI", "train.tsv")
    assert mnli["id"] == "31193n" and mnli["label"] == "neutral" and mnli["text_b"].endswith("work.")
    (mrpc,) = conv("mrpc", "MRPC", "test.tsv")
    assert mrpc["id"] == "0" and "label" not in mrpc and mrpc["text_b"].startswith("Current Chief")
    assert "label" not in conv("qqp", "QQP", "test.tsv")[0]
    assert conv("ax", "diagnostic", "diagnostic.tsv")[0]["text_b"] == "The cat did not sit on the mat."


@pytest.mark.parametrize("task, name, fragment", [
    ("stsb", "STS-B_dev_label_text.tsv", ":3 [index 1]: 'label' must be a non-empty string or a finite number"),
    ("mnli", "MNLI_dev_matched_short_row.tsv", ":2: 5 tab-separated fields, expected 16"),
])
def test_glue_bad_variants(tmp_path, task, name, fragment):
    src = fx("glue", "bad", name)
    code, logs, _ = run(["glue", "--task", task, "--src", src, "--out", str(tmp_path / "o.jsonl")])
    assert code == 0 and len(logs) == 1 and src + fragment in logs[0]
    code, logs, _ = run(["glue", "--task", task, "--src", src, "--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and src + fragment in logs[-1]


# ----------------------------------------------------------------------------- ImageNet
def test_imagenet_train_quirky_images_are_valid(tmp_path):
    out = str(tmp_path / "train.jsonl")
    code, logs, _ = run(["image_folder", "--src", fx("imagenet", "train"), "--out", out,
                         "--label-map", fx("imagenet", "LOC_synset_mapping.txt")])
    assert code == 0 and logs == []
    assert [(r["id"], r["label"]) for r in read_jsonl(out)] == [
        ("n01440764/n01440764_10026", "tench"), ("n01440764/n01440764_gray", "tench"),
        ("n01443537/n01443537_cmyk", "goldfish"), ("n02105855/n02105855_2933", "Shetland sheepdog")]


def test_imagenet_flat_val_with_solution_csv(tmp_path):
    out = str(tmp_path / "val.jsonl")
    code, logs, _ = run(["image_folder", "--src", fx("imagenet", "val"), "--out", out,
                         "--val-labels", fx("imagenet", "LOC_val_solution.csv"),
                         "--label-map", fx("imagenet", "LOC_synset_mapping.txt")])
    assert code == 0 and logs == []
    assert [(r["id"], r["label"], r["class_dir"]) for r in read_jsonl(out)] == [
        ("ILSVRC2012_val_00000001", "tench", "n01440764"), ("ILSVRC2012_val_00000002", "goldfish", "n01443537")]
    csv_path = fx("imagenet", "bad", "LOC_val_solution_two_synsets.csv")
    code, logs, _ = run(["image_folder", "--src", fx("imagenet", "val"), "--out", out, "--val-labels", csv_path])
    assert code == 0 and f"{csv_path}:2 [ImageId ILSVRC2012_val_00000001]: PredictionString must be" in logs[0]
    assert any("ILSVRC2012_val_00000001.JPEG: image 'ILSVRC2012_val_00000001' has no row" in m for m in logs)


def test_imagenet_corrupt_images_are_decoded_and_reported(tmp_path, capsys):
    root = fx("imagenet", "bad", "train")
    out = str(tmp_path / "o.jsonl")
    code, logs, printed = run(["image_folder", "--src", root, "--out", out, "--workers", "2"], capsys)
    assert code == 0
    assert logs == [
        f"image_folder: skipped {os.path.join(root, 'n01440764/n01440764_text.JPEG')}: cannot decode image "
        "(corrupt or unsupported format)",
        f"image_folder: skipped {os.path.join(root, 'n01440764/n01440764_truncated.JPEG')}: truncated JPEG "
        "(no end-of-image marker after the image data)"]
    assert [r["id"] for r in read_jsonl(out)] == ["n01440764/n01440764_10026"]
    assert "skipped 2 (corrupt image: 2)" in printed
    code, logs, _ = run(["image_folder", "--src", root, "--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and "n01440764_text.JPEG: cannot decode image" in logs[-1]
    code, logs, printed = run(["image_folder", "--src", root, "--out", out, "--no-decode"], capsys)
    assert code == 0 and len(read_jsonl(out)) == 3 and "images not decoded (--no-decode): 1" in printed


# ---------------------------------------------- the training pipeline decodes the same way
QUIRKS = ["n01440764/n01440764_gray.JPEG", "n01443537/n01443537_cmyk.JPEG", "n02105855/n02105855_2933.JPEG"]


@pytest.mark.parametrize("rel", QUIRKS)
def test_pipeline_reads_quirky_images_like_pillow(rel):
    """Grayscale, CMYK and PNG-bytes-under-.JPEG decode to the RGB Pillow
    gives (CMYK within 1 level), in the pipeline as in the converter."""
    path = fx("imagenet", "train", rel)
    rgb = read_rgb(path)
    ref = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(np.int16) - ref).max() <= 1
    assert decode_bgr(np.fromfile(path, np.uint8), path, reduced=True).shape[2] == 3


def test_pipeline_refuses_truncated_jpeg_even_if_opencv_would_not(monkeypatch):
    """A JPEG cut short is refused naming the file; the end-of-image check
    does not depend on the OpenCV build (some only warn and return an image)."""
    path = fx("imagenet", "bad", "train", "n01440764", "n01440764_truncated.JPEG")
    with pytest.raises(ImageError, match="n01440764_truncated.JPEG: truncated JPEG"):
        read_rgb(path)
    monkeypatch.setattr(images_mod.cv2, "imdecode", lambda data, flag: np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageError, match="truncated JPEG"):
        read_rgb(path)
    good = fx("imagenet", "train", "n01440764", "n01440764_10026.JPEG")
    assert read_rgb(good).shape == (4, 4, 3)  # the check passes complete files


# ------------------------------------------------------------------------- text, seq2seq
def test_text_and_seq2seq(tmp_path):
    out = str(tmp_path / "corpus.txt")
    code, logs, _ = run(["text", "--src", fx("text", "wiki"), "--out", out, "--mode", "blocks"])
    assert code == 0 and len(logs) == 1 and f"{fx('text', 'wiki', 'b.txt')}:2: not UTF-8" in logs[0]
    assert open(out, encoding="utf-8").read().split("\n") == [
        "First sentence of doc one. Second line.", "Doc two only line.", "Book text. more book", ""]
    out = str(tmp_path / "s2s.jsonl")
    assert run(["seq2seq", "--src", fx("seq2seq", "train.source"), "--target", fx("seq2seq", "train.target"),
                "--out", out, "--replace", "<q>", " "])[0] == 0
    assert read_jsonl(out)[0] == {"id": "1", "source": "( CNN ) the article text .",
                                  "target": "first summary second sentence"}
    short = fx("seq2seq", "bad", "train.target.short")
    code, logs, _ = run(["seq2seq", "--src", fx("seq2seq", "train.source"), "--target", short, "--out", out])
    assert code == 2
    assert logs[-1] == f"error: {fx('seq2seq', 'train.source')} has 2 lines but {short} has 1: " \
                       "the files must be line-parallel"


# ------------------------------------------------------------- all-or-nothing outputs
def _no_leftovers(directory):
    return [n for n in listing(directory) if ".tmp-" in n or ".old-" in n]


def test_full_disk_on_the_third_split_leaves_no_file(tmp_path, monkeypatch):
    """COCO writes four split files; ENOSPC at the fsync of the third one
    leaves none of them and no temporary file, and is one line."""
    out = tmp_path / "coco"
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(sharded.os, "fsync", fsync)
    code, logs, _ = run(["coco", "--src", fx("karpathy", "dataset_coco.json"), "--out", str(out)])
    assert code == 2
    assert logs == [f"error: no space left on device while writing {out / 'train.jsonl'}"]  # files in sorted order
    assert listing(out) == []


def test_full_disk_while_writing_names_the_file(tmp_path, monkeypatch):
    """ENOSPC raised by a write (not the fsync) also leaves nothing."""
    out = tmp_path / "coco"
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fake_open(path, *a, **k):
        f = real_open(path, *a, **k)
        return FullDisk(f) if os.path.basename(path).startswith("train.jsonl") else f
    monkeypatch.setattr(sharded, "open", fake_open, raising=False)
    code, logs, _ = run(["coco", "--src", fx("karpathy", "dataset_coco.json"), "--out", str(out)])
    assert code == 2 and logs == [f"error: no space left on device while writing {out / 'train.jsonl'}"]
    assert listing(out) == []


def test_failed_rename_restores_the_previous_outputs(tmp_path, monkeypatch):
    """A rename failing after two outputs were replaced puts the old files
    back byte for byte; no temporary or backup file is left."""
    out = tmp_path / "coco"
    out.mkdir()
    old = {name: f"old {name}\n" for name in ("restval.jsonl", "test.jsonl", "train.jsonl", "val.jsonl")}
    for name, text in old.items():
        (out / name).write_text(text)
    real_replace = os.replace
    renames = []

    def replace(src, dst):
        if ".tmp-" in str(src):
            renames.append(dst)
            if len(renames) == 3:
                raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)
    monkeypatch.setattr(sharded.os, "replace", replace)
    code, logs, _ = run(["coco", "--src", fx("karpathy", "dataset_coco.json"), "--out", str(out)])
    assert code == 2 and logs == [f"error: Input/output error while writing {out / 'train.jsonl'}"]
    assert {name: (out / name).read_text() for name in listing(out)} == old
    assert _no_leftovers(out) == []


def test_success_replaces_outputs_and_leaves_no_backup(tmp_path):
    out = tmp_path / "coco"
    out.mkdir()
    (out / "test.jsonl").write_text("old\n")
    assert run(["coco", "--src", fx("karpathy", "dataset_coco.json"), "--out", str(out)])[0] == 0
    assert listing(out) == ["restval.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert read_jsonl(out / "test.jsonl")[0]["id"] == "391895"


def test_text_corpus_full_disk(tmp_path, monkeypatch):
    out = tmp_path / "corpus.txt"
    monkeypatch.setattr(sharded.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    code, logs, _ = run(["text", "--src", fx("text", "wiki", "a.txt"), "--out", str(out)])
    assert code == 2 and logs == [f"error: no space left on device while writing {out}"]
    assert listing(tmp_path) == []


def test_manifest_writer_names_its_file_on_a_full_disk():
    writer = common.ManifestWriter(type("F", (), {"write": lambda self, t: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "x"))})(), "/x/out.jsonl", "seq2seq", common.Report("t"))
    with pytest.raises(sharded.OutputError, match="^no space left on device while writing /x/out.jsonl$"):
        writer.write({"id": "1", "source": "s"}, "f:1")


def test_wrong_types_name_the_record_and_the_key(tmp_path):
    """A caption of the wrong type is reported as such (not as 'missing'),
    with the image and sentence ids; an SBU JSON row names its URL."""
    data = json.load(open(fx("karpathy", "dataset_coco.json")))
    data["images"][1]["sentences"][0]["raw"] = 5
    src = tmp_path / "dataset_coco.json"
    src.write_text(json.dumps(data))
    code, logs, _ = run(["coco", "--src", str(src), "--out", str(tmp_path / "o"), "--strict"])
    assert code == 1 and logs[-1].endswith("images[1].sentences[0].raw [cocoid 537772, sentid 283074]: "
                                           "the caption must be a string, got an integer (5)")
    src = tmp_path / "sbu-captions-all.json"
    src.write_text(json.dumps({"image_urls": ["http://static.flickr.com/3/1234_ab.jpg"], "captions": [" "]}))
    code, logs, _ = run(["sbu", "--src", str(src), "--out", str(tmp_path / "s.jsonl"), "--strict"])
    assert code == 1 and logs[-1].endswith("captions[0] [url http://static.flickr.com/3/1234_ab.jpg]: "
                                           "the caption must be a non-empty string, got a string (' ')")
