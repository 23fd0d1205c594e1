"""Token shards (data_prep.tokenize_shards, vlcore.formats.token_shards):
same ids as on-the-fly tokenization, bad lines keep their place, manifests,
kill-and-resume, layout checks, and training reading them (UNIMO-2 and UNIMO
text corpora) with the same batches as from raw text."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vlcore.formats.records import LineFile, RecordError

from helpers import ROOT, tool_env

WORDS = ("the a man woman dog cat runs jumps over under bridge river city park red blue small large "
         "café naïve 東京 emoji 🙂 quickly slowly").split()


def _corpus(path, n, seed=0, bad_line=None):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        k = int(rng.integers(1, 30))
        lines.append(" ".join(rng.choice(WORDS, size=k)).encode("utf-8"))
    if bad_line is not None:
        lines[bad_line] = b"broken \xff\xfe bytes"
    with open(path, "wb") as f:
        for i, line in enumerate(lines):
            f.write(line + b"\n")
            if i % 9 == 4:
                f.write(b"\n")  # blank lines are not samples
    return str(path)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from vlcore.text.tokenizer import train_bpe
    d = tmp_path_factory.mktemp("tok")
    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 3
    train_bpe(texts, vocab_size=300, out_dir=str(d / "vocab"), min_frequency=1)
    return str(d / "vocab")


def _tokenize(argv):
    from data_prep.tokenize_shards import main
    assert main(argv) == 0


def test_same_ids_as_on_the_fly(tmp_path, tok_dir, capsys):
    from vlcore.data.token_text import TokenText, open_text_corpus
    from vlcore.formats.token_shards import TokenShards
    from vlcore.text.tokenizer import BPETokenizer
    text = _corpus(tmp_path / "corpus.txt", 50, bad_line=17)
    out = tmp_path / "shards"
    _tokenize(["--text", text, "--tokenizer-dir", tok_dir, "--out", str(out), "--shard-size", "7",
               "--batch-size", "3"])
    printed = capsys.readouterr()
    assert "tokens/s" in printed.out and "bad rows 1" in printed.out
    blanks_before = sum(1 for i in range(17) if i % 9 == 4)  # line numbers count the blank lines
    assert f"{text}:{17 + blanks_before + 1}: not UTF-8" in printed.err
    tok = BPETokenizer.from_dir(tok_dir)
    lines = LineFile(text)
    shards = TokenShards(str(out / "tokens.index.json"))
    assert len(shards) == len(lines) == 50 and len(shards.shards) == 8
    for i in range(len(lines)):
        if i == 17:
            assert shards[i] == []
            continue
        assert shards[i] == tok.encode(lines[i])
    meta = json.load(open(out / "tokens.index.json"))
    assert meta["tokens"] == sum(len(shards[i]) for i in range(50))
    corpus = open_text_corpus(str(out / "tokens.index.json"))
    assert isinstance(corpus, TokenText) and corpus[3] == tok.encode(lines[3])
    with pytest.raises(RecordError, match="sequence 17 was an unreadable input line"):
        corpus[17]
    assert isinstance(open_text_corpus(text), LineFile)  # a plain corpus stays lines


def test_manifest_field_and_strict(tmp_path, tok_dir):
    from vlcore.formats.token_shards import TokenShards
    from vlcore.text.tokenizer import BPETokenizer
    m = tmp_path / "pairs.jsonl"
    recs = [{"id": "a", "image": "a.jpg", "captions": ["the red dog", "a cat runs"]},
            {"id": "b", "image": "b.jpg", "captions": "a small café"},
            {"id": "c", "image": "c.jpg"},
            {"id": "d", "image": "d.jpg", "captions": ["東京 city 🙂"]}]
    m.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n", encoding="utf-8")
    out = tmp_path / "mshards"
    _tokenize(["--manifest", str(m), "--tokenizer-dir", tok_dir, "--out", str(out), "--shard-size", "2"])
    shards = TokenShards(str(out))
    tok = BPETokenizer.from_dir(tok_dir)
    expect = ["the red dog", "a cat runs", "a small café", "東京 city 🙂"]
    assert [shards[i] for i in range(len(shards))] == [tok.encode(t) for t in expect]
    rows = np.concatenate([np.load(out / s["rows"]) for s in shards.shards])
    assert rows.tolist() == [0, 0, 1, 3]
    from data_prep.tokenize_shards import main
    assert main(["--manifest", str(m), "--tokenizer-dir", tok_dir, "--out", str(tmp_path / "s2"), "--strict"]) == 2


def test_kill_and_resume_matches_a_fresh_run(tmp_path, tok_dir):
    text = _corpus(tmp_path / "corpus.txt", 60, seed=1)
    args = ["-m", "data_prep.tokenize_shards", "--text", text, "--tokenizer-dir", tok_dir, "--shard-size", "6"]
    killed = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "a")], cwd=ROOT,
                            env=tool_env(DATA_PREP_KILL_AFTER_SHARDS=3), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9
    done = sorted(f for f in os.listdir(tmp_path / "a") if f.endswith(".ids.npy"))
    assert len(done) == 3 and not os.path.exists(tmp_path / "a" / "tokens.index.json")
    resumed = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "a"), "--workers", "2"], cwd=ROOT,
                             env=tool_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 of 10 shards already done, skipped" in resumed.stdout + resumed.stderr
    _tokenize(["--text", text, "--tokenizer-dir", tok_dir, "--out", str(tmp_path / "b"), "--shard-size", "6"])
    for f in sorted(os.listdir(tmp_path / "b")):
        if f.endswith(".npy"):
            assert np.array_equal(np.load(tmp_path / "a" / f), np.load(tmp_path / "b" / f)), f
    ia, ib = (json.load(open(tmp_path / d / "tokens.index.json")) for d in "ab")
    assert ia == ib
    # another layout in the same directory is refused, not mixed
    from data_prep.tokenize_shards import main
    assert main(["--text", text, "--tokenizer-dir", tok_dir, "--out", str(tmp_path / "a"), "--shard-size", "5"]) == 2


def test_training_batches_equal_raw_text(tmp_path, tok_dir):
    """UNIMO-2 and UNIMO text batches from token shards == from the raw lines."""
    from unimo.data import TextCorpus
    from unimo2.config import CorpusConfig, MLMConfig, UNIMO2DataConfig
    from unimo2.data import Corpus, PretrainBatches
    from vlcore.data.text import TextProcessor
    from vlcore.formats.token_shards import TokenShardsError
    from vlcore.text.tokenizer import BPETokenizer, train_bpe
    text = _corpus(tmp_path / "corpus.txt", 40, seed=2)
    out = tmp_path / "shards"
    _tokenize(["--text", text, "--tokenizer-dir", tok_dir, "--out", str(out), "--shard-size", "16"])
    index = str(out / "tokens.index.json")
    tok = BPETokenizer.from_dir(tok_dir)
    raw = Corpus(CorpusConfig(name="t", kind="text", path=text), 0)
    pre = Corpus(CorpusConfig(name="t", kind="text", path=index), 0)
    data_cfg = UNIMO2DataConfig(max_text_len_corpus=12)  # short: long lines take a random window
    proc = TextProcessor(tok, MLMConfig())
    batches = []
    for corpus in (raw, pre):
        pb = PretrainBatches([corpus], None, tok, data_cfg, MLMConfig(), 16)
        rngs = [np.random.default_rng([5, j]) for j in range(len(corpus))]
        samples = [corpus.load(i, None) for i in range(len(corpus))]
        batches.append(pb._collate_text(samples, rngs))
    for key in ("ids", "mlm_ids", "mask", "mlm_positions", "mlm_labels"):
        assert np.array_equal(batches[0][key], batches[1][key]), key
    assert batches[0]["ids"].shape[1] == 12
    # TextProcessor takes ids as they are
    assert proc.encode(raw.load(3, None)["text"], 100) == proc.encode(pre.load(3, None)["text"], 100)
    # UNIMO's text corpus reads the same ids
    u_pre = TextCorpus(CorpusConfig(name="t", kind="text", path=index), 0)
    assert u_pre.load(5, None)["text"] == tok.encode(raw.load(5, None)["text"])
    # shards of another vocabulary are refused before training
    other = train_bpe(["completely different words here"] * 5, vocab_size=280, out_dir=str(tmp_path / "v2"),
                      min_frequency=1)
    with pytest.raises(TokenShardsError, match="different vocabulary than Global.tokenizer_dir"):
        PretrainBatches([pre], None, other, data_cfg, MLMConfig(), 16)


def test_truncated_shard_names_the_file(tmp_path, tok_dir):
    from vlcore.formats.token_shards import TokenShards, TokenShardsError
    text = _corpus(tmp_path / "corpus.txt", 20)
    out = tmp_path / "shards"
    _tokenize(["--text", text, "--tokenizer-dir", tok_dir, "--out", str(out), "--shard-size", "7"])
    shards = TokenShards(str(out / "tokens.index.json"))
    victim = shards._files[1][0]
    os.truncate(victim, os.path.getsize(victim) // 2)
    assert len(shards[0]) > 0                      # an intact shard still reads
    with pytest.raises(TokenShardsError, match=f"{victim}: unreadable token shard .*truncated"):
        shards[7]
