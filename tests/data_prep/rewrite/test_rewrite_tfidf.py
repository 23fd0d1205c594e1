"""TF-IDF hard negatives: exact search equals a NumPy brute force, never the
same image, duplicates handled, champion search, kill-and-resume."""
import json

import numpy as np
import pytest

from rewrite_fixtures import read_jsonl, run_module, shard_files, write_pairs

pytest.importorskip("sklearn", reason="scikit-learn is needed for the TF-IDF tool")
from data_prep.rewrite import tfidf  # noqa: E402
from vlcore.formats.rewrites import read_rewrites  # noqa: E402

K = 5


def brute_force(texts, images, k):
    """TF-IDF from raw counts with NumPy (smooth idf, l2 rows), all-pairs
    cosine, same-image pairs removed, top-k scores per caption."""
    from sklearn.feature_extraction.text import CountVectorizer
    counts = CountVectorizer(stop_words="english").fit_transform(texts).toarray().astype(np.float64)
    n = len(texts)
    df = (counts > 0).sum(0)
    tf = counts * (np.log((1 + n) / (1 + df)) + 1)
    tf /= np.linalg.norm(tf, axis=1, keepdims=True)
    cos = tf @ tf.T
    cos[np.asarray(images)[:, None] == np.asarray(images)[None, :]] = -np.inf
    return cos, -np.sort(-cos, axis=1)[:, :k]


def test_exact_matches_numpy_bruteforce(tmp_path):
    records = write_pairs(tmp_path / "pairs.jsonl", num_images=30, per_image=3, seed=1)
    assert tfidf.main(["--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "out"),
                       "--k", str(K), "--method", "exact", "--shard-size", "20"]) == 0
    files = shard_files(tmp_path / "out", "tfidf")
    assert len(files) == 5  # 90 captions / 20 per shard
    got = read_rewrites(files)
    texts = [c for r in records for c in r["captions"]]
    ids = [f"{r['id']}#{k}" for r in records for k in range(len(r["captions"]))]
    images = [r["id"] for r in records for _ in r["captions"]]
    cos, best = brute_force(texts, images, K)
    pos = {cid: i for i, cid in enumerate(ids)}
    assert list(got) == ids
    for q, cid in enumerate(ids):
        negs = got[cid]["negatives"]
        assert len(negs) == K and all(n["kind"] == "tfidf" for n in negs)
        src = [pos[n["source"]] for n in negs]
        assert all(images[s] != images[q] for s in src), "a negative from the same image"
        assert [texts[s] for s in src] == [n["text"] for n in negs]
        np.testing.assert_allclose(cos[q, src], best[q], atol=1e-5)  # the k best, best first


def test_duplicates_and_same_image_texts_are_never_negatives(tmp_path):
    twin = "A red dog sitting on a black car"
    extra = [{"id": "dupA", "image": "a.jpg", "captions": [twin, "A small owl behind the bench"]},
             {"id": "dupB", "image": "b.jpg", "captions": [twin.lower() + ".", "A red dog riding a car"]},
             {"id": "dupC", "image": "c.jpg", "captions": ["A red dog riding a car!"]}]
    write_pairs(tmp_path / "pairs.jsonl", num_images=10, per_image=2, seed=2, extra=extra)
    assert tfidf.main(["--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "out"),
                       "--k", "8", "--method", "exact"]) == 0
    got = read_rewrites(shard_files(tmp_path / "out", "tfidf"))
    norm = lambda s: s.lower().strip(".!")  # noqa: E731
    for cid in ("dupA#0", "dupA#1", "dupB#0", "dupB#1"):
        texts = [norm(n["text"]) for n in got[cid]["negatives"]]
        assert norm(twin) not in texts  # equal to a caption of the query's own image
        assert len(texts) == len(set(texts))
    # "A red dog riding a car!" (dupC) is dupB's second caption: as a text equal to the query
    # it is no negative of either, although it is the most similar caption of another image
    assert "dupB#1" not in [n["source"] for n in got["dupC#0"]["negatives"]]
    assert "dupC#0" not in [n["source"] for n in got["dupB#1"]["negatives"]]
    # the twin text of dupA#0 and dupB#0 is a negative of dupC once, from the earlier caption
    assert [n["source"] for n in got["dupC#0"]["negatives"]][0] == "dupA#0"
    assert "dupB#0" not in [n["source"] for n in got["dupC#0"]["negatives"]]


@pytest.mark.slow
def test_champion_search_equals_exact_when_lists_are_complete(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", num_images=25, per_image=2, seed=3)
    common = ["--pairs", str(tmp_path / "pairs.jsonl"), "--k", str(K), "--shard-size", "16"]
    assert tfidf.main(common + ["--out", str(tmp_path / "exact"), "--method", "exact"]) == 0
    assert tfidf.main(common + ["--out", str(tmp_path / "champ"), "--method", "champion",
                                "--champions", "1000", "--measure-recall", "20"]) == 0
    exact = read_jsonl(shard_files(tmp_path / "exact", "tfidf"))
    champ = read_jsonl(shard_files(tmp_path / "champ", "tfidf"))
    assert exact == champ
    rec = json.load(open(tmp_path / "champ" / "tfidf.recall.json"))
    assert rec["recall"] == 1.0 and rec["queries"] == 20
    # with tiny lists the search is approximate, and the measured recall says so
    assert tfidf.main(common + ["--out", str(tmp_path / "tiny"), "--method", "champion",
                                "--champions", "2", "--measure-recall", "50"]) == 0
    rec = json.load(open(tmp_path / "tiny" / "tfidf.recall.json"))
    assert 0.0 < rec["recall"] < 1.0


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", num_images=40, per_image=2, seed=4)
    args = ["--pairs", tmp_path / "pairs.jsonl", "--k", K, "--shard-size", "10", "--method", "exact"]
    ref = run_module("data_prep.rewrite.tfidf", args + ["--out", tmp_path / "ref"])
    assert ref.returncode == 0, ref.stderr
    killed = run_module("data_prep.rewrite.tfidf", args + ["--out", tmp_path / "out", "--workers", "2"],
                        DATA_PREP_KILL_AFTER_SHARDS=3)
    assert killed.returncode == -9
    done = shard_files(tmp_path / "out", "tfidf")
    assert 3 <= len(done) < 8
    again = run_module("data_prep.rewrite.tfidf", args + ["--out", tmp_path / "out"])
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} of 8 shards already done" in again.stdout
    for a, b in zip(shard_files(tmp_path / "ref", "tfidf"), shard_files(tmp_path / "out", "tfidf"), strict=True):
        assert open(a).read() == open(b).read()
    # a different job in the same directory is refused, not mixed in
    other_args = [3 if a == K and args[i - 1] == "--k" else a for i, a in enumerate(args)]
    other = run_module("data_prep.rewrite.tfidf", other_args + ["--out", tmp_path / "out"])
    assert other.returncode == 2 and "different 'tfidf' job" in other.stderr


def test_topk_selection_breaks_ties_by_position_and_widens_past_filtered():
    from data_prep.rewrite import tfidf_kernels as kern
    rng = np.random.default_rng(0)
    n, k = 200, 5
    cand = rng.permutation(n).astype(np.int64) + 10
    score = np.full(n, 0.5, np.float32)  # all tied: far more than the 2k+8 looked at first
    score[cand == 150] = 0.9
    score[cand == 40] = 0.0  # not similar at all: never a neighbour
    hashes = np.arange(n + 10, dtype=np.int64)
    hashes[[11, 12]] = hashes[10]  # the same text three times: only its first position counts
    banned = np.array([hashes[13]])  # a text of the query's own image
    pos, val = np.zeros(k, np.int64), np.zeros(k, np.float32)
    got = kern._select(cand, score, n, hashes, banned, k, pos, val)
    assert got == k
    assert pos.tolist() == [150, 10, 14, 15, 16] and val[0] == np.float32(0.9)
    # everything filtered: fewer than k, and no position twice
    hashes[:] = 7
    got = kern._select(cand, score, n, hashes, banned, k, pos, val)
    assert got == 1 and pos[0] == 150
