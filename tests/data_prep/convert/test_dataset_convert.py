"""Dataset converters (data_prep.convert) on hand-written fixtures in the
public layouts: what is written, what is skipped and where it is reported,
--strict, and that a failed conversion leaves no output behind."""
import json
import os

import cv2
import numpy as np

from data_prep.convert.__main__ import main
from vlcore.formats.manifests import Manifest, validate


def run(argv):
    logs = []
    code = main(argv, log=logs.append)
    return code, logs


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


# ------------------------------------------------------------- Karpathy
KARPATHY_COCO = {
    "dataset": "coco",
    "images": [
        {"filepath": "val2014", "sentids": [770337, 771687], "filename": "COCO_val2014_000000391895.jpg",
         "imgid": 0, "split": "test", "cocoid": 391895,
         "sentences": [
             {"tokens": ["a", "man", "with", "a", "red", "helmet"], "raw": "A man with a red helmet on a small moped on a dirt road. ",
              "imgid": 0, "sentid": 770337},
             {"tokens": ["man", "riding"], "raw": "Man riding a motor bike\n on a dirt road on the countryside.",
              "imgid": 0, "sentid": 771687}]},
        {"filepath": "train2014", "sentids": [1, 2, 3], "filename": "COCO_train2014_000000000009.jpg",
         "imgid": 1, "split": "train", "cocoid": 9,
         "sentences": [{"tokens": ["a"], "raw": "Closeup of bins of food.", "imgid": 1, "sentid": 1},
                       {"tokens": ["a"], "raw": "Closeup of bins of food.", "imgid": 1, "sentid": 2},
                       {"tokens": ["a", "meal"], "imgid": 1, "sentid": 3}]},  # no raw: reported
        {"filepath": "val2014", "sentids": [4], "filename": "COCO_val2014_000000000042.jpg",
         "imgid": 2, "split": "restval", "cocoid": 42,
         "sentences": [{"tokens": ["x"], "raw": "A dog.", "imgid": 2, "sentid": 4}]},
        {"filepath": "val2014", "sentids": [5], "filename": "COCO_val2014_000000000073.jpg",
         "imgid": 3, "split": "val", "cocoid": 73,
         "sentences": [{"tokens": [], "raw": "   ", "imgid": 3, "sentid": 5}]},  # no usable caption
        {"filepath": "val2014", "sentids": [], "imgid": 4, "split": "val", "cocoid": 74, "sentences": []},
    ],
}


def test_coco_karpathy_splits(tmp_path):
    src = write(tmp_path / "dataset_coco.json", json.dumps(KARPATHY_COCO))
    out = tmp_path / "coco"
    code, logs = run(["coco", "--src", src, "--out", str(out), "--image-prefix", "coco/", "--id-prefix", "coco_"])
    assert code == 0
    assert sorted(os.listdir(out)) == ["restval.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    test = read_jsonl(out / "test.jsonl")
    assert test == [{"id": "coco_391895", "image": "coco/val2014/COCO_val2014_000000391895.jpg",
                     "image_id": "391895",
                     "captions": ["A man with a red helmet on a small moped on a dirt road.",
                                  "Man riding a motor bike on a dirt road on the countryside."]}]
    train = read_jsonl(out / "train.jsonl")
    assert train[0]["captions"] == ["Closeup of bins of food."]  # repeat dropped; no raw: not rebuilt from tokens
    assert any("images[1].sentences[2].raw [cocoid 9, sentid 3]: missing" in m for m in logs)
    assert read_jsonl(out / "val.jsonl") == []
    assert any("dataset_coco.json: images[3].sentences[0].raw [cocoid 73, sentid 5]: missing or empty caption" in m
               for m in logs)
    assert any("images[4].filename [cocoid 74]: missing" in m for m in logs)
    assert len(Manifest(str(out / "restval.jsonl"), "pairs")) == 1


def test_coco_restval_into_train_and_flickr(tmp_path, capsys):
    src = write(tmp_path / "dataset_coco.json", json.dumps(KARPATHY_COCO))
    out = tmp_path / "coco"
    assert run(["coco", "--src", src, "--out", str(out), "--restval-into-train", "--splits", "train", "restval"])[0] == 0
    assert [r["id"] for r in read_jsonl(out / "train.jsonl")] == ["9", "42"]
    assert os.listdir(out) == ["train.jsonl"]
    printed = capsys.readouterr().out
    assert "train.jsonl: 2 pairs records (2 captions)" in printed and "repeated captions dropped: 1" in printed
    flickr = {"dataset": "flickr30k", "images": [
        {"sentids": [0, 1], "imgid": 0, "split": "train", "filename": "1000092795.jpg",
         "sentences": [{"tokens": ["two"], "raw": "Two young guys with shaggy hair .", "imgid": 0, "sentid": 0}]}]}
    src = write(tmp_path / "dataset_flickr30k.json", json.dumps(flickr))
    assert run(["flickr30k", "--src", src, "--out", str(tmp_path / "f30k")])[0] == 0
    assert read_jsonl(tmp_path / "f30k" / "train.jsonl") == [
        {"id": "1000092795", "image": "1000092795.jpg", "image_id": "1000092795",
         "captions": ["Two young guys with shaggy hair ."]}]


def test_strict_stops_and_leaves_no_output(tmp_path):
    src = write(tmp_path / "dataset_coco.json", json.dumps(KARPATHY_COCO))
    out = tmp_path / "coco"
    code, logs = run(["coco", "--src", src, "--out", str(out), "--strict"])
    assert code == 1
    assert "images[1].sentences[2].raw [cocoid 9, sentid 3]" in logs[-1]
    assert not out.exists() or os.listdir(out) == []  # atomic: no partial manifests, no temp files
    bad = write(tmp_path / "broken.json", '{"images": [\n{"split": "train",}')
    code, logs = run(["coco", "--src", bad, "--out", str(out)])
    assert code == 2 and "broken.json:2: malformed JSON" in logs[-1]


# ------------------------------------------------------------------ VQA
def _vqa_files(tmp_path):
    questions = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {},
                 "data_subtype": "train2014", "questions": [
                     {"image_id": 458752, "question": "What is this photo taken looking through?", "question_id": 458752000},
                     {"image_id": 458752, "question": "What position is this man playing?", "question_id": 458752001},
                     {"image_id": 262146, "question": "", "question_id": 262146000},
                     {"image_id": 262146, "question": "What color is the snow?", "question_id": 262146001}]}
    ans = ["net"] * 8 + ["netting", "mesh"]
    annotations = {"info": {}, "license": {}, "data_subtype": "train2014", "data_type": "mscoco", "annotations": [
        {"question_type": "what is this", "multiple_choice_answer": "net", "image_id": 458752,
         "answer_type": "other", "question_id": 458752000,
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(ans)]},
        {"question_type": "what", "multiple_choice_answer": "pitcher", "image_id": 458752,
         "answer_type": "other", "question_id": 458752001,
         "answers": [{"answer": "pitcher", "answer_confidence": "yes", "answer_id": 1},
                     {"answer_confidence": "yes", "answer_id": 2}]},  # an answer without text
        {"question_type": "what color is the", "multiple_choice_answer": "white", "image_id": 262146,
         "answer_type": "other", "question_id": 262146001,
         "answers": [{"answer": "white", "answer_confidence": "yes", "answer_id": i} for i in range(10)]}]}
    q = write(tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json", json.dumps(questions))
    a = write(tmp_path / "v2_mscoco_train2014_annotations.json", json.dumps(annotations))
    return q, a


def test_vqa_with_annotations(tmp_path):
    q, a = _vqa_files(tmp_path)
    out = str(tmp_path / "vqa_train.jsonl")
    code, logs = run(["vqa", "--src", q, "--annotations", a, "--out", out])
    assert code == 0
    recs = read_jsonl(out)
    assert recs == [
        {"id": "458752000", "image": "train2014/COCO_train2014_000000458752.jpg", "image_id": "458752",
         "question": "What is this photo taken looking through?", "answers": {"net": 8, "netting": 1, "mesh": 1},
         "answer_type": "other", "question_type": "what is this"},
        {"id": "262146001", "image": "train2014/COCO_train2014_000000262146.jpg", "image_id": "262146",
         "question": "What color is the snow?", "answers": {"white": 10}, "answer_type": "other",
         "question_type": "what color is the"}]
    assert any("annotations[1].answers[1].answer [question_id 458752001, answer_id 2]: missing or empty answer" in m
               for m in logs)
    assert any("questions[2] [question_id 262146000]: 'question' must be a non-empty string" in m for m in logs)
    assert len(Manifest(out, "vqa", require=("answers",))) == 2


def test_vqa_test_split_and_mismatch(tmp_path):
    q, a = _vqa_files(tmp_path)
    out = str(tmp_path / "vqa_test.jsonl")
    assert run(["vqa", "--src", q, "--out", out])[0] == 0
    recs = read_jsonl(out)
    assert len(recs) == 3 and all("answers" not in r for r in recs)
    data = json.load(open(a))
    data["data_subtype"] = "val2014"
    write(tmp_path / "val_ann.json", json.dumps(data))
    code, logs = run(["vqa", "--src", q, "--annotations", str(tmp_path / "val_ann.json"), "--out", out])
    assert code == 2 and "does not match the questions' 'train2014'" in logs[-1]


# -------------------------------------------------------------- SNLI-VE
def test_snli_ve(tmp_path):
    base = {"sentence1": "Two women are embracing while holding to go packages.", "captionID": "4705552913.jpg#2",
            "annotator_labels": ["entailment"], "sentence1_parse": "(ROOT (S ...))",
            "sentence2_parse": "(ROOT ...)", "sentence1_binary_parse": "( ( Two women ) ...)"}
    rows = [
        {**base, "Flikr30kID": "4705552913.jpg", "pairID": "4705552913.jpg#2r1n", "gold_label": "neutral",
         "sentence2": "The sisters are hugging goodbye while holding to go packages after just eating lunch."},
        {**base, "Flikr30kID": "4705552913.jpg", "pairID": "4705552913.jpg#2r1e", "gold_label": "entailment",
         "sentence2": "Two woman are holding packages."},
        {**base, "Flikr30kID": "4705552913.jpg", "pairID": "4705552913.jpg#2r1c", "gold_label": "-",
         "sentence2": "The men are fighting outside a deli."},
        {**base, "Flickr30K_ID": "4705552913", "pairID": "4705552913.jpg#3r1c", "gold_label": "contradiction",
         "sentence2": "No."},  # the 2020 generator's key, no .jpg
        {**base, "pairID": "4705552913.jpg#3r1n", "gold_label": "neutral", "sentence2": "Missing image."},
    ]
    src = write(tmp_path / "snli_ve_train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    out = str(tmp_path / "ve.jsonl")
    code, logs = run(["snli_ve", "--src", src, "--out", out, "--image-prefix", "flickr30k-images/"])
    assert code == 0
    recs = read_jsonl(out)
    assert [r["label"] for r in recs] == ["neutral", "entailment", "contradiction"]
    assert recs[0] == {"id": "4705552913.jpg#2r1n", "image": "flickr30k-images/4705552913.jpg",
                       "image_id": "4705552913",
                       "hypothesis": "The sisters are hugging goodbye while holding to go packages after just eating lunch.",
                       "label": "neutral"}
    assert recs[2]["image"] == "flickr30k-images/4705552913.jpg"
    assert any(f"{src}:3 [pairID 4705552913.jpg#2r1c]: gold_label '-'" in m for m in logs)
    assert any(f"{src}:5 [pairID 4705552913.jpg#3r1n]: no image key" in m for m in logs)
    assert any(f"{src}:6: malformed JSON" in m for m in logs)


# ----------------------------------------------------------------- GLUE
def test_glue_presets(tmp_path):
    d = tmp_path / "glue"
    sst = write(d / "SST-2" / "train.tsv", "sentence\tlabel\nhide new secretions from the parental units \t0\n"
                                          "contains no wit , only labored gags \t0\nthe greatest musicians \t1\n")
    cola = write(d / "CoLA" / "train.tsv", "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
                                           "gj04\t0\t*\tOne more pseudo generalization and I'm giving up.\n"
                                           "gj04\t1\n")  # truncated row
    cola_test = write(d / "CoLA" / "test.tsv", "index\tsentence\n0\tBill whistled past the house.\n")
    mnli_header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                   "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n")
    mnli = write(d / "MNLI" / "dev_matched.tsv", mnli_header +
                 "0\t63735\t63735n\tslate\t( ( The ...\t( ( ...\t(ROOT ...\t(ROOT ...\tThe new rights are nice enough\t"
                 "Everyone really likes the \"newest\" benefits \tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n")
    stsb = write(d / "STS-B" / "dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                                          "sentence2\tscore\n0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\t"
                                          "A man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000\n"
                                          "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA young child.\tA child.\tfive\n")
    outs = {}
    for task, src in [("sst2", sst), ("cola", cola), ("cola", cola_test), ("mnli", mnli), ("stsb", stsb)]:
        out = str(tmp_path / f"{task}-{os.path.basename(src)}.jsonl")
        code, logs = run(["glue", "--task", task, "--src", src, "--out", out])
        assert code == 0, logs
        outs[(task, os.path.basename(src))] = (read_jsonl(out), logs)
    recs, _ = outs[("sst2", "train.tsv")]
    assert recs[0] == {"id": "train-2", "text_a": "hide new secretions from the parental units", "label": "0"}
    recs, logs = outs[("cola", "train.tsv")]
    assert recs == [{"id": "train-1", "text_a": "Our friends won't buy this analysis, let alone the next one we propose.",
                     "label": "1"},
                    {"id": "train-2", "text_a": "One more pseudo generalization and I'm giving up.", "label": "0"}]
    assert any(f"{cola}:3: 2 tab-separated fields, expected 4" in m for m in logs)
    assert outs[("cola", "test.tsv")][0] == [{"id": "0", "text_a": "Bill whistled past the house."}]
    recs, _ = outs[("mnli", "dev_matched.tsv")]
    assert recs == [{"id": "63735n", "text_a": "The new rights are nice enough",
                     "text_b": "Everyone really likes the \"newest\" benefits", "label": "neutral"}]
    recs, logs = outs[("stsb", "dev.tsv")]
    assert recs[0]["label"] == 5.0 and len(recs) == 1
    assert any(f"{stsb}:3 [index 1]: 'label' must be a non-empty string or a finite number" in m for m in logs)
    for recs, _ in outs.values():
        for r in recs:
            validate("text_cls", r)


def test_glue_generic_and_wrong_file(tmp_path):
    src = write(tmp_path / "my.tsv", "a\tb\tlab\nx\ty\tpos\n")
    out = str(tmp_path / "o.jsonl")
    assert run(["glue", "--task", "generic", "--src", src, "--out", out, "--text-a", "a", "--label", "lab"])[0] == 0
    assert read_jsonl(out) == [{"id": "my-2", "text_a": "x", "label": "pos"}]
    code, logs = run(["glue", "--task", "mnli", "--src", src, "--out", out])
    assert code == 2 and "has no column(s) ['sentence1', 'sentence2'] (is this a mnli file?)" in logs[-1]
    assert len(Manifest(out, "text_cls")) == 1  # the earlier output is untouched


# ------------------------------------------------------- Visual Genome
def test_visual_genome(tmp_path):
    regions = [
        {"regions": [{"region_id": 1382, "width": 82, "height": 139, "image_id": 1,
                      "phrase": "the clock is green in colour", "y": 57, "x": 421},
                     {"region_id": 1383, "width": 182, "height": 109, "image_id": 1,
                      "phrase": "shade is along the street ", "y": 372, "x": 320},
                     {"region_id": 1384, "width": 82, "height": 139, "image_id": 1,
                      "phrase": "the clock is green in colour", "y": 57, "x": 421}],
         "id": 1},
        {"regions": [{"region_id": 9, "width": 1, "height": 1, "image_id": 2, "y": 0, "x": 0}], "id": 2},
        {"regions": [{"region_id": 10, "width": 1, "height": 1, "image_id": 99, "phrase": "a cat", "y": 0, "x": 0}],
         "id": 99},
    ]
    image_data = [
        {"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg", "height": 600,
         "image_id": 1, "coco_id": None, "flickr_id": None},
        {"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K/2.jpg", "height": 600,
         "image_id": 2, "coco_id": 57870, "flickr_id": None},
    ]
    src = write(tmp_path / "region_descriptions.json", json.dumps(regions))
    img = write(tmp_path / "image_data.json", json.dumps(image_data))
    out = str(tmp_path / "vg.jsonl")
    code, logs = run(["vg", "--src", src, "--image-data", img, "--out", out, "--id-prefix", "vg_"])
    assert code == 0
    assert read_jsonl(out) == [{"id": "vg_1", "image": "VG_100K_2/1.jpg", "image_id": "1",
                                "captions": ["the clock is green in colour", "shade is along the street"]}]
    assert any("region_descriptions.json: [1].regions[0].phrase [id 2, region_id 9]: missing or empty" in m
               for m in logs)
    assert any("[2] [id 99]: image 99 is not in" in m for m in logs)
    write(tmp_path / "truncated.json", json.dumps(regions)[:200])
    code, logs = run(["vg", "--src", str(tmp_path / "truncated.json"), "--image-data", img, "--out", out])
    assert code == 2 and "malformed JSON in item [0] (parse error: premature EOF)" in logs[-1]


# ------------------------------------------------------------- CC / SBU
def test_cc_tsv_with_image_check(tmp_path):
    src = write(tmp_path / "Train_GCC-training.tsv",
                "a very typical bus station\thttp://lh6.ggpht.com/-IvRtNLNcG8o/TpFyrudaT6I/AAAAAAAAM6o/_11MuAAKalQ/IMG_3422.JPG?imgmax=800\n"
                "sierra looked stunning in this top and this skirt while performing with person at their former university\thttp://78.media.tumblr.com/3b133294bdc9c7a3f5c9bb0a5ce2ad0a/tumblr_nyhbhdvw0p1qzr3hco1_500.jpg\n"
                "no url here\n"
                "\tftp://example.com/a.jpg\n")
    root = tmp_path / "cc_images"
    write(root / "00000" / "000000000.jpg", "x")
    out = str(tmp_path / "cc.jsonl")
    code, logs = run(["cc", "--src", src, "--out", out, "--check-images", str(root), "--image-prefix", "cc_images/"])
    assert code == 0
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == ["0"]
    assert recs[0]["image"] == "cc_images/00000/000000000.jpg" and recs[0]["captions"] == ["a very typical bus station"]
    assert any(f"{src}:2: image '00000/000000001.jpg' not under" in m for m in logs)
    assert any(f"{src}:3: 1 tab-separated fields, expected 2" in m for m in logs)
    assert any(f"{src}:4: the caption must be a non-empty string" in m for m in logs)


def test_sbu_parallel_files(tmp_path):
    urls = write(tmp_path / "SBU_captioned_photo_dataset_urls.txt",
                 "http://static.flickr.com/2723/4385058960_b0f291553e.jpg\nhttp://static.flickr.com/3/1234_ab.jpg\n")
    caps = write(tmp_path / "SBU_captioned_photo_dataset_captions.txt",
                 "a wooden chair in the living room\nMan sits in a rusted car buried in the sand\n")
    out = str(tmp_path / "sbu.jsonl")
    assert run(["sbu", "--src", urls, "--captions", caps, "--out", out, "--image-name", "{basename}"])[0] == 0
    recs = read_jsonl(out)
    assert [(r["image"], r["captions"][0]) for r in recs] == [
        ("4385058960_b0f291553e.jpg", "a wooden chair in the living room"),
        ("1234_ab.jpg", "Man sits in a rusted car buried in the sand")]
    write(tmp_path / "short.txt", "one caption\n")
    code, logs = run(["sbu", "--src", urls, "--captions", str(tmp_path / "short.txt"), "--out", out])
    assert code == 2 and logs[-1] == f"error: {urls} has 2 lines but {tmp_path / 'short.txt'} has 1: the files must be line-parallel"


# ---------------------------------------------------------- image folder
def test_image_folder_with_synset_map(tmp_path):
    root = tmp_path / "train"
    jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    for rel in ["n01440764/n01440764_10026.JPEG", "n01440764/n01440764_10027.JPEG",
                "n01443537/n01443537_2.JPEG", "n09999999/x.png", "stray.jpg"]:
        os.makedirs(os.path.dirname(str(root / rel)), exist_ok=True)
        (root / rel).write_bytes(jpeg)
    write(root / "n01443537" / "readme.txt", "x")
    mapping = write(tmp_path / "LOC_synset_mapping.txt",
                    "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    out = str(tmp_path / "inet.jsonl")
    code, logs = run(["image_folder", "--src", str(root), "--out", out, "--label-map", mapping,
                      "--image-prefix", "train/"])
    assert code == 0
    recs = read_jsonl(out)
    assert recs[0] == {"id": "n01440764/n01440764_10026", "image": "train/n01440764/n01440764_10026.JPEG",
                       "label": "tench", "class_dir": "n01440764"}
    assert [r["label"] for r in recs] == ["tench", "tench", "goldfish"]
    assert any("n09999999/x.png: class directory 'n09999999' is not in" in m for m in logs)
    assert any("stray.jpg: image directly under the root" in m for m in logs)
    assert len(Manifest(out, "labelled")) == 3


# ------------------------------------------------------------ text, seq2seq
def test_text_corpus_lines_and_blocks(tmp_path, capsys):
    a = tmp_path / "wiki" / "a.txt"
    write(a, "First sentence of doc one.\nSecond\u2028line.\n\n\nDoc two only line.\n")
    with open(tmp_path / "wiki" / "b.txt", "wb") as f:
        f.write(b"\xef\xbb\xbfBook text.\n\xff\xfe bad bytes\nmore book\n")
    out = str(tmp_path / "corpus.txt")
    code, logs = run(["text", "--src", str(tmp_path / "wiki"), "--out", out, "--mode", "blocks"])
    assert code == 0
    assert open(out, encoding="utf-8").read().split("\n") == [
        "First sentence of doc one. Second line.", "Doc two only line.", "Book text. more book", ""]
    assert any(f"{tmp_path / 'wiki' / 'b.txt'}:2: not UTF-8" in m for m in logs)
    code, _ = run(["text", "--src", str(a), "--out", out, "--mode", "lines", "--min-chars", "10"])
    assert open(out, encoding="utf-8").read().split("\n") == [
        "First sentence of doc one.", "Second line.", "Doc two only line.", ""]
    assert "3 text samples" in capsys.readouterr().out


def test_seq2seq_parallel(tmp_path):
    src = write(tmp_path / "train.source", "( CNN ) the article text .\nsecond article\n")
    tgt = write(tmp_path / "train.target", "first summary <q> second sentence\n \n")
    out = str(tmp_path / "cnndm.jsonl")
    code, logs = run(["seq2seq", "--src", src, "--target", tgt, "--out", out, "--replace", "<q>", " "])
    assert code == 0
    assert read_jsonl(out) == [{"id": "1", "source": "( CNN ) the article text .",
                                "target": "first summary second sentence"}]
    assert any(f"{tgt}:2: empty target" in m for m in logs)
    assert len(Manifest(out, "seq2seq")) == 1
