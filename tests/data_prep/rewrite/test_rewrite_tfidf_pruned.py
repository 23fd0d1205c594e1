"""Pruned TF-IDF search: exactly a NumPy brute force (ties, exclusions,
fewer than k), the bounds it prunes with never below a true score, and
output independent of shards and workers."""
import numpy as np
import pytest

from rewrite_fixtures import run_module, shard_files, write_pairs

pytest.importorskip("sklearn", reason="scikit-learn is needed for the TF-IDF tool")
from data_prep.rewrite import tfidf  # noqa: E402
from data_prep.rewrite import tfidf_kernels as kern  # noqa: E402
from data_prep.rewrite.captions import CaptionIndex  # noqa: E402
from data_prep.rewrite.textstore import CaptionStore  # noqa: E402

# texts equal after normalisation, vector-identical texts (stop words differ), an image
# holding a text twice, a caption with no terms at all, rare words shared by two images,
# a caption of more terms than the kernel's buffers hold at first
EXTRA = [{"id": "twinA", "image": "a.jpg", "captions": ["A red dog riding a bus", "An owl near the kite"]},
         {"id": "twinB", "image": "b.jpg", "captions": ["a red dog riding a bus!", "A red dog riding the bus"]},
         {"id": "twinC", "image": "c.jpg", "captions": ["The red dog riding a bus", "the the a on"]},
         {"id": "same", "image": "d.jpg", "captions": ["A white cat on a bench", "a white cat on a bench."]},
         {"id": "rare1", "image": "e.jpg", "captions": ["A zebra and a marmot"]},
         {"id": "rare2", "image": "f.jpg", "captions": ["a marmot beside a zebra, a marmot"]},
         {"id": "long", "image": "g.jpg", "captions": [" ".join(f"word{i}" for i in range(70)) + " red dog bus"]}]


def build(tmp_path, num_images, seed, per_image=3):
    """A corpus with many repeated and tied captions, indexed as the tool does."""
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, num_images=num_images, per_image=per_image, seed=seed, unique=False, extra=EXTRA)
    idx = str(tmp_path / "idx")
    texts = CaptionStore(idx).build(CaptionIndex([str(pairs)]), log=lambda *a: None)
    tfidf.build_index(texts, idx)
    store = CaptionStore(idx).open()
    X, XT = tfidf._load_csr(f"{idx}/X"), tfidf._load_csr(f"{idx}/XT")
    return store, X, XT, tfidf.load_pruned(idx)


def brute_force(store, X, k):
    """Every query against every caption on the dense matrix. Scores are
    float32 sums in term order (a running sum over all terms: adding the
    zeros of unshared terms changes nothing), i.e. the sparse product's;
    then the module doc's rules, spelt out plainly."""
    D = X.toarray()
    image, hashes = np.asarray(store.record), np.asarray(store.hash)
    out = []
    for q in range(D.shape[0]):
        scores = np.cumsum(D[q] * D, axis=1, dtype=np.float32)[:, -1]
        banned = set(hashes[image == image[q]].tolist())  # the query's text and its image's
        order = sorted(range(len(scores)), key=lambda c: (-scores[c], c))
        got, seen = [], set()
        for c in order:
            if scores[c] <= 0 or len(got) == k:
                break
            if image[c] == image[q] or hashes[c] in banned or hashes[c] in seen:
                continue
            seen.add(hashes[c])
            got.append((c, float(scores[c])))
        out.append(got)
    return out


@pytest.mark.parametrize("seed,k", [(0, 5), (1, 12), (2, 60)])
def test_pruned_search_equals_numpy_bruteforce(tmp_path, seed, k):
    store, X, XT, pruned = build(tmp_path, num_images=70, seed=seed)
    want = brute_force(store, X, k)
    n = X.shape[0]
    got = tfidf.search(0, n, X, XT, None, store.record, store.hash, store.first, k, pruned=pruned)
    for q in range(n):
        assert list(zip(*got[q])) == want[q], f"query {q}"
    # the same, bit for bit, as exact search (the sparse product)
    assert got == tfidf.search(0, n, X, XT, None, store.record, store.hash, store.first, k)
    first = {store.rids[r]: int(store.first[r]) for r in range(len(store.rids))}
    negs, scores = got[first["twinA"]]
    assert first["twinB"] not in negs  # its text equals the query's once normalised
    assert first["twinB"] + 1 in negs and scores[negs.index(first["twinB"] + 1)] == pytest.approx(1.0)
    assert got[first["twinC"] + 1] == ([], [])  # no terms: no neighbours
    if k == 60:  # more than there are distinct texts sharing a word with the query: fewer than k
        assert any(0 < len(p) < k for p, _ in got)
    # each caption is scored once at most (in the list of its rarest shared term), and pruning
    # leaves most unscored once the k-th score is high
    scored = tfidf.search_arrays(0, n, X, XT, None, store.record, store.hash, store.first, k, pruned=pruned)[3]
    D = X.toarray()
    image = np.asarray(store.record)
    sharing = [int(((D @ D[q] > 0) & (image != image[q])).sum()) for q in range(n)]
    assert (scored <= sharing).all()
    if k == 5:
        assert scored.sum() < 0.6 * sum(sharing)


def test_bounds_never_below_true_scores(tmp_path):
    """What the pruning relies on, checked on every (query, caption) pair
    sharing a term: terms numbered by df; each list sorted by prefix norm;
    the prefix-norm bound and the signature bound at the rarest shared term
    are at least the float32 score; signatures hold every other term."""
    store, X, XT, (PT, PW, PS, PR) = build(tmp_path, num_images=40, seed=5)
    df = np.diff(XT.indptr)
    assert (np.diff(df) <= 0).all()
    num_terms = len(PT.indptr) - 1
    for t in range(num_terms):
        keys = PT.data[PT.indptr[t]:PT.indptr[t + 1]]
        assert (np.diff(keys) <= 0).all()
    D = X.toarray()
    posting = {(int(PT.indices[p]), t): p for t in range(num_terms) for p in range(PT.indptr[t], PT.indptr[t + 1])}
    checked = 0
    for q in range(D.shape[0]):
        x = D[q]
        for c in range(D.shape[0]):
            shared = np.nonzero((x > 0) & (D[c] > 0))[0]
            if not len(shared):
                continue
            score = np.cumsum(x * D[c], dtype=np.float32)[-1]
            t = shared[-1]  # the rarest shared term: where the caption is scored
            p = posting[(c, t)]
            row = PR.indices[PR.indptr[p]:PR.indptr[p + 1]]
            assert set(row.tolist()) == set(np.nonzero(D[c])[0].tolist())
            for u in row:
                if u != t:
                    assert int(PS[p]) & int(kern.term_bit(u)), "a term missing from the signature"
            nx = np.sqrt(np.sum(x[:t + 1].astype(np.float64) ** 2))
            assert nx * PT.data[p] + 1e-6 >= score
            others = [u for u in np.nonzero(x)[0] if u != t and int(PS[p]) & int(kern.term_bit(u))]
            rest = max(0.0, float(PT.data[p]) ** 2 - float(PW[p]) ** 2)
            bound = x[t] * float(PW[p]) + np.sqrt(np.sum(x[others].astype(np.float64) ** 2) * rest)
            assert bound + 1e-6 >= score
            checked += 1
    assert checked > 1000


@pytest.mark.slow
def test_pruned_output_does_not_depend_on_shards_or_workers(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, num_images=60, per_image=3, seed=7, unique=False, extra=EXTRA)
    common = ["--pairs", pairs, "--k", 7]
    runs = {"pruned-7-1": ["--method", "pruned", "--shard-size", 7, "--workers", 1],
            "pruned-50-2": ["--method", "pruned", "--shard-size", 50, "--workers", 2, "--measure-recall", 40],
            "exact-13-2": ["--method", "exact", "--shard-size", 13, "--workers", 2]}
    outputs = {}
    for name, extra in runs.items():
        r = run_module("data_prep.rewrite.tfidf", common + extra + ["--out", tmp_path / name])
        assert r.returncode == 0, r.stderr
        outputs[name] = b"".join(open(f, "rb").read() for f in shard_files(tmp_path / name, "tfidf"))
    assert outputs["pruned-7-1"] == outputs["pruned-50-2"] == outputs["exact-13-2"]
    rec = (tmp_path / "pruned-50-2" / "tfidf.recall.json").read_text()
    assert '"recall": 1.0' in rec and '"identical_queries": 1.0' in rec
