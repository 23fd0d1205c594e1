"""Task manifest specs (vlcore.formats.manifests): valid records pass, each
kind of mistake is reported with file, line and key."""
import json

import pytest

from vlcore.formats.manifests import KINDS, Manifest, ManifestError, check_file, main, validate

GOOD = {
    "pairs": {"id": "391895", "image": "val2014/x.jpg", "captions": ["A man on a moped."]},
    "labelled": {"id": "n1_1", "image": "n1/n1_1.JPEG", "label": "tench"},
    "vqa": {"id": "458752000", "image": "x.jpg", "image_id": "458752", "question": "What?",
            "answers": {"net": 9, "netting": 1}},
    "snli_ve": {"id": "1#1", "image": "1.jpg", "image_id": "1", "hypothesis": "A dog.", "label": "neutral"},
    "text_cls": {"id": "0", "text_a": "a", "text_b": "b", "label": 3.8},
    "seq2seq": {"id": "0", "source": "long text", "target": "short"},
}


def test_every_kind_has_a_valid_example():
    assert set(GOOD) == set(KINDS)
    for kind, rec in GOOD.items():
        assert validate(kind, rec) is rec


@pytest.mark.parametrize("kind,change,needle", [
    ("pairs", {"captions": []}, "'captions' must be a non-empty list"),
    ("pairs", {"captions": ["ok", ""]}, "'captions'"),
    ("vqa", {"answers": {"net": 0}}, "'answers' must be"),
    ("vqa", {"image_id": 458752}, "'image_id' must be a non-empty string"),
    ("snli_ve", {"label": "-"}, "'label' must be one of"),
    ("text_cls", {"label": float("nan")}, "'label'"),
    ("text_cls", {"label": True}, "'label'"),
    ("labelled", {"label": " "}, "'label'"),
])
def test_bad_values_name_the_key(kind, change, needle):
    with pytest.raises(ManifestError, match=needle):
        validate(kind, {**GOOD[kind], **change}, "m.jsonl:3")


def test_missing_and_required_optional_keys():
    rec = dict(GOOD["vqa"])
    del rec["question"]
    with pytest.raises(ManifestError, match=r"m.jsonl:7: vqa record has no 'question'"):
        validate("vqa", rec, "m.jsonl:7")
    test_rec = {k: v for k, v in GOOD["vqa"].items() if k != "answers"}
    assert validate("vqa", test_rec)  # test splits have no answers
    with pytest.raises(ManifestError, match="no 'answers'"):
        validate("vqa", test_rec, require=("answers",))


def test_reader_reports_file_and_line(tmp_path):
    path = tmp_path / "ve.jsonl"
    good = GOOD["snli_ve"]
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "2", "label": "maybe"}) + "\n"
                    + "{not json\n" + json.dumps({**good}) + "\n")
    m = Manifest(str(path), "snli_ve")
    assert len(m) == 4 and m[0] == good
    with pytest.raises(ManifestError, match=rf"{path}:3: 'label'"):
        m[1]
    with pytest.raises(ManifestError, match=rf"{path}:4: malformed JSON"):
        m[2]
    good_n, bad_n, errors = check_file(str(path), "snli_ve")
    assert (good_n, bad_n) == (1, 3)  # line 5 repeats id "1#1"
    assert any("repeated (first on line 1)" in e for e in errors)
    assert main(["snli_ve", str(path)]) == 1
