"""Merging the rewriting tools' outputs: caps and interleaving against an
independent reference, de-duplication across tools, caption agreement and
shard-layout checks, kill-and-resume with the same totals."""
import json
import os

import pytest

from rewrite_fixtures import run_module, shard_files, write_pairs

pytest.importorskip("sklearn", reason="scikit-learn is needed for the TF-IDF tool")
from data_prep.rewrite import backtranslate, merge, tfidf  # noqa: E402
from vlcore.formats.rewrites import NEGATIVE_KINDS, iter_rewrites, normalize_text  # noqa: E402

pytestmark = pytest.mark.slow

SG_KINDS = ("sg-object", "sg-attribute", "sg-relation")


def fake_sg(directory, pairs, shard_size, records):
    """A scene_graph-shaped output (layout files + shards) without spaCy: the
    merge only reads the files; the real tool is tested elsewhere."""
    from data_prep.rewrite.captions import CaptionIndex
    from data_prep.shards import check_layout
    from vlcore.formats.rewrites import write_rewrites
    from vlcore.formats.sharded import shard_name
    index = CaptionIndex([pairs])
    bounds = index.record_bounds(shard_size)
    check_layout(os.path.join(directory, "_parsed"), "sgparse",
                 {"input": index.fingerprint(), "shard_size": shard_size, "record_bounds": bounds})
    check_layout(directory, "sg", {"input": index.fingerprint(), "shard_size": shard_size, "per_kind": 3})
    for s in range(len(bounds) - 1):
        recs = []
        for cid, iid, text in index.captions(bounds[s], bounds[s + 1]):
            negs = [{"text": f"{text} ({kind[3:]} {j})", "kind": kind} for kind in SG_KINDS for j in range(3)]
            recs.append({"caption_id": cid, "image_id": iid, "caption": text, "positives": [], "negatives": negs})
        write_rewrites(os.path.join(directory, shard_name("sg", s, len(bounds) - 1)), recs)


@pytest.fixture()
def inputs(tmp_path):
    records = write_pairs(tmp_path / "pairs.jsonl", num_images=16, per_image=2, seed=5)
    pairs = str(tmp_path / "pairs.jsonl")
    # back-translations from a precomputed round-trip file: one equals a TF-IDF negative
    # of its caption (it must stay a positive), one equals the caption (dropped)
    caps = [c for r in records for c in r["captions"]]
    lines = [f"{c}\t{c.lower()} indeed\n{c}\t{c}\n{c}\tclearly {c}\n{c}\talso {c}" for c in caps]
    common = ["--pairs", pairs, "--shard-size", "10"]
    assert tfidf.main(common + ["--out", str(tmp_path / "tfidf"), "--k", "6", "--method", "exact"]) == 0
    first_neg = next(iter_rewrites(shard_files(tmp_path / "tfidf", "tfidf")[0]))[0]["negatives"][0]["text"]
    lines[0] = f"{caps[0]}\t{first_neg}\n" + lines[0]
    (tmp_path / "rt.tsv").write_text("\n".join(lines) + "\n")
    assert backtranslate.main(common + ["--out", str(tmp_path / "bt"), "--backward", f"file:{tmp_path / 'rt.tsv'}",
                                        "--nbest", "5", "--positives", "5"]) == 0
    fake_sg(str(tmp_path / "sg"), pairs, 10, records)
    return tmp_path, records, caps, first_neg


def reference(tmp_path, max_pos, max_neg, caps):
    """The rule of the module doc, written out plainly."""
    recs = {}
    for tool in ("bt", "tfidf", "sg"):
        for f in shard_files(tmp_path / tool, tool):
            for rec, _ in iter_rewrites(f):
                r = recs.setdefault(rec["caption_id"], {"caption": rec["caption"], "pos": [], "neg": []})
                r["pos"] += rec["positives"]
                r["neg"] += rec["negatives"]
    out = {}
    for cid, r in recs.items():
        seen = {normalize_text(r["caption"])}
        keep = []
        for item in r["pos"] + r["neg"]:
            if normalize_text(item["text"]) not in seen:
                seen.add(normalize_text(item["text"]))
                keep.append(item)
        pos = [i for i in keep if i["kind"] == "bt"][:max_pos]
        per = {k: [i for i in keep if i["kind"] == k][:caps.get(k, 10 ** 6)] for k in NEGATIVE_KINDS}
        neg = []
        for depth in range(200):
            for k in NEGATIVE_KINDS:
                if depth < len(per[k]) and len(neg) < max_neg:
                    neg.append(per[k][depth])
        out[cid] = (pos, neg)
    return out


def test_merge_caps_interleaves_and_deduplicates(inputs, capsys):
    tmp_path, records, caps, first_neg = inputs
    args = ["--pairs", str(tmp_path / "pairs.jsonl"), "--inputs", str(tmp_path / "sg"), str(tmp_path / "tfidf"),
            str(tmp_path / "bt"), "--out", str(tmp_path / "final"), "--max-negatives", "7",
            "--cap", "tfidf=3", "--cap", "sg-relation=1"]
    assert merge.main(args) == 0
    out = capsys.readouterr().out
    files = shard_files(tmp_path / "final", "rewrites")
    assert len(files) == 4
    got = [rec for f in files for rec, _ in iter_rewrites(f)]
    assert [r["caption_id"] for r in got] == [f"{r['id']}#{k}" for r in records for k in range(2)]
    ref = reference(tmp_path, 2, 7, {"tfidf": 3, "sg-relation": 1})
    for rec in got:
        assert (rec["positives"], rec["negatives"]) == ref[rec["caption_id"]]
        assert len(rec["positives"]) == 2 and len(rec["negatives"]) == 7
        assert [n["kind"] for n in rec["negatives"]] == ["tfidf", "sg-object", "sg-attribute", "sg-relation",
                                                         "tfidf", "sg-object", "sg-attribute"]
    # the back-translation equal to a TF-IDF negative stayed a positive (bt is merged first)
    first = got[0]
    assert first["positives"][0]["text"] == first_neg
    assert normalize_text(first_neg) not in [normalize_text(n["text"]) for n in first["negatives"]]
    stats = json.load(open(tmp_path / "final" / "merge.stats.json"))
    assert stats["captions"] == 32 and stats["bt"] == 64 and stats["tfidf"] == 64
    assert stats["sg-object"] == 64 and stats["sg-relation"] == 32
    assert "merge: 32 captions from 3 inputs (bt, tfidf, sg)" in out


def test_merge_rejects_disagreeing_or_misaligned_inputs(inputs, capsys):
    tmp_path, records, caps, _ = inputs
    pairs = str(tmp_path / "pairs.jsonl")
    # an input whose caption text differs from the manifest (edited after the tool ran)
    shard = shard_files(tmp_path / "tfidf", "tfidf")[1]
    lines = open(shard).read().splitlines()
    rec = json.loads(lines[2])
    rec["caption"] = "A purple unicorn"
    lines[2] = json.dumps(rec)
    open(shard, "w").write("\n".join(lines) + "\n")
    assert merge.main(["--pairs", pairs, "--inputs", str(tmp_path / "tfidf"), "--out", str(tmp_path / "f1")]) == 2
    err = capsys.readouterr().err
    assert f"{shard}:3: caption 'A purple unicorn' of {rec['caption_id']!r} differs" in err
    # inputs sharded differently cannot be merged shard by shard
    assert tfidf.main(["--pairs", pairs, "--out", str(tmp_path / "t7"), "--shard-size", "7", "--k", "2"]) == 0
    capsys.readouterr()
    assert merge.main(["--pairs", pairs, "--inputs", str(tmp_path / "bt"), str(tmp_path / "t7"),
                       "--out", str(tmp_path / "f2")]) == 2
    assert "different --shard-size values [7, 10]" in capsys.readouterr().err
    # a directory that is no tool's output
    assert merge.main(["--pairs", pairs, "--inputs", str(tmp_path), "--out", str(tmp_path / "f3")]) == 2
    assert "expected the output directory of one rewriting tool" in capsys.readouterr().err
    assert merge.main(["--pairs", pairs, "--inputs", str(tmp_path / "bt"), "--out", str(tmp_path / "f4"),
                       "--cap", "tfidf:3"]) == 2
    assert "--cap 'tfidf:3': expected KIND=N" in capsys.readouterr().err


def test_merge_kill_and_resume(inputs):
    tmp_path, *_ = inputs
    args = ["--pairs", tmp_path / "pairs.jsonl", "--inputs", tmp_path / "bt", tmp_path / "tfidf", tmp_path / "sg"]
    ref = run_module("data_prep.rewrite.merge", args + ["--out", tmp_path / "ref"])
    assert ref.returncode == 0, ref.stderr
    killed = run_module("data_prep.rewrite.merge", args + ["--out", tmp_path / "out"], DATA_PREP_KILL_AFTER_SHARDS=1)
    assert killed.returncode == -9 and len(shard_files(tmp_path / "out", "rewrites")) == 1
    again = run_module("data_prep.rewrite.merge", args + ["--out", tmp_path / "out"])
    assert again.returncode == 0, again.stderr
    assert "1 of 4 shards already done" in again.stdout
    for a, b in zip(shard_files(tmp_path / "ref", "rewrites"), shard_files(tmp_path / "out", "rewrites"), strict=True):
        assert open(a).read() == open(b).read()
    # the totals line of the resumed run counts all shards, not only the ones it ran
    line = lambda s: [x for x in s.splitlines() if x.startswith("merge:")][0].split("; total")[0]  # noqa: E731
    assert line(again.stdout) == line(ref.stdout)
