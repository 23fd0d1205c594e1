"""Tests for vlcore.text.tokenizer: Rust BPE vs the pure-Python oracle, both layouts."""
import json
import random

import pytest

from vlcore.text.tokenizer import BPETokenizer, ReferenceBPE, bytes_to_unicode, pure_python_bpe_encode, train_bpe  # noqa: E402

WORDS = ("the a cat dog sat on mat image caption of man woman riding horse beach red blue "
         "café naïve résumé Zürich élan straße москва κόσμος 你好 世界 東京 "
         "it's we'll they're I've you'd she'd I'M DON'T Hello World UNIMO GPT-2 "
         "x² ½ Ⅻ ٣٤ e\u0301 🙂 🚀👍 ‘quoted’ “double” — … $5 3.14 1,000 2019 07:30 "
         "foo_bar a+b=c <s> [CLS] #tag @user http://x.org/a?b=1").split()
PUNCT = list(".,!?;:-()'\"") + ["...", "!!", "?!"]
SPACES = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", " \n ", "\n\n", "\u00a0", "\u3000", "\x1c", " \x85"]


def make_sentence(rng):
    parts = []
    for _ in range(rng.randint(1, 14)):
        w = rng.choice(WORDS)
        if rng.random() < 0.15:
            w = w + rng.choice(PUNCT)
        if rng.random() < 0.1:
            w = str(rng.randint(0, 10 ** rng.randint(1, 6)))
        parts.append(w)
        parts.append(rng.choice(SPACES))
    s = "".join(parts)
    if rng.random() < 0.5:
        s = s.rstrip()  # keep some trailing whitespace cases
    if rng.random() < 0.2:
        s = rng.choice(SPACES) + s
    return s


def sentences(n, seed):
    rng = random.Random(seed)
    return [make_sentence(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("roberta")
    tok = train_bpe(sentences(400, seed=0), vocab_size=600, out_dir=str(out))
    ref = ReferenceBPE.from_files(str(out / "vocab.json"), str(out / "merges.txt"))
    return tok, ref, out


@pytest.fixture(scope="module")
def test_texts():
    # unseen sentences + hand-written edge cases
    return sentences(300, seed=1) + [
        "", " ", "  ", "\n", "café naïve", "🙂", "a🙂b", "Hello,   world!!  ", "it's I'M 'tis",
        "   leading", "trailing   ", "tab\tsep\t\tx", "x²y ½ Ⅻ", "3.14159 and 1,000,000",
        "unseen zebra quokka Ω≈ç√∫", "\x00\x01 control \x7f", "ß" * 20, "a  \n  b"]


def test_encode_matches_reference(trained, test_texts):
    tok, ref, _ = trained
    for t in test_texts:
        assert tok.encode(t) == ref.encode(t), repr(t)


def test_pure_python_helper(trained):
    tok, ref, _ = trained
    merges = [tuple(m) for m in sorted(ref.ranks, key=ref.ranks.get)]
    assert pure_python_bpe_encode("the cat sat", ref.vocab, merges) == tok.encode("the cat sat")


def test_bytes_to_unicode_is_bijective():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


def test_batch_and_round_trip(trained, test_texts):
    tok, _, _ = trained
    single = [tok.encode(t) for t in test_texts]
    assert tok.encode_batch(test_texts) == single
    assert tok.encode_batch([]) == []
    for t, ids in zip(test_texts, single):
        assert tok.decode(ids) == t


def test_specials_and_build_input(trained):
    tok, _, out = trained
    assert (tok.cls_id, tok.pad_id, tok.sep_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.special_ids == {0, 1, 2, 3, 4}
    with open(out / "vocab.json") as f:
        assert tok.vocab_size == len(json.load(f))
    ids = tok.encode("the cat sat on the mat")
    assert tok.build_input(ids, 100) == [0, *ids, 2]
    assert tok.build_input(ids, 4) == [0, *ids[:2], 2]
    assert tok.decode([0, *ids, 2]) == "the cat sat on the mat"
    assert tok.decode([0, *ids, 2], skip_special=False) == "<s>the cat sat on the mat</s>"
    # specials written in raw text are plain text, not special ids (as in GPT-2)
    assert not set(tok.encode("<s> [CLS] <mask>")) & tok.special_ids


def test_train_is_deterministic(tmp_path):
    texts = sentences(200, seed=5)
    train_bpe(texts, 400, str(tmp_path / "a"))
    train_bpe(iter(texts), 400, str(tmp_path / "b"))
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_word_start(trained):
    tok, _, _ = trained
    text = "the cat, riding a horse!"
    ids = tok.encode(text)
    # reconstruct words from the flags: every flagged token opens a new group
    words = []
    for i in ids:
        piece = tok.decode([i])
        if tok.word_start[i] or not words:
            words.append(piece)
        else:
            words[-1] += piece
    assert [w.strip() for w in words] == ["the", "cat", ",", "riding", "a", "horse", "!"]
    assert tok.word_start.dtype == bool and tok.word_start.shape == (tok.vocab_size,)
    assert all(tok.word_start[i] for i in tok.special_ids)
    vocab = json.loads((trained[2] / "vocab.json").read_text())
    assert tok.word_start[vocab["Ġ"]] and tok.word_start[vocab["."]] and tok.word_start[vocab["Ċ"]]
    assert not tok.word_start[vocab["e"]]
    assert not tok.word_start[vocab["Ã"]]  # first byte of a 2-byte UTF-8 char


def write_unimo_layout(src, dst, rng, line_number_form):
    """Official UNIMO dict from RoBERTa-layout files: GPT-2 ids renumbered
    without specials, shuffled/offset model ids, some GPT-2 ids left out."""
    vocab = json.loads((src / "vocab.json").read_text())
    specials = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"}
    plain = sorted((t for t in vocab if t not in specials), key=vocab.get)
    encoder = {t: i for i, t in enumerate(plain)}
    merges = (src / "merges.txt").read_text().split("\n")[1:]
    dst.mkdir()
    (dst / "encoder.json").write_text(json.dumps(encoder))
    (dst / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges))
    dropped = set(rng.sample(range(len(plain)), 40))
    tokens = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "madeupword0000", "madeupword0001"]
    tokens += [str(g) for g in range(len(plain)) if g not in dropped]
    rng.shuffle(tokens)
    if line_number_form:
        model_ids = list(range(len(tokens)))
        (dst / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    else:
        model_ids = [i + 7 for i in rng.sample(range(len(tokens)), len(tokens))]
        (dst / "vocab.txt").write_text("".join(f"{t}\t{i}\n" for t, i in zip(tokens, model_ids)))
    mapping = dict(zip(tokens, model_ids))
    return encoder, merges, mapping, dropped


@pytest.mark.parametrize("line_number_form", [False, True])
def test_unimo_layout(trained, test_texts, tmp_path, line_number_form):
    _, _, src = trained
    rng = random.Random(3)
    encoder, merges, mapping, dropped = write_unimo_layout(src, tmp_path / "dict", rng, line_number_form)
    tok = BPETokenizer.from_dir(str(tmp_path / "dict"))
    ref = ReferenceBPE(encoder, [tuple(m.split(" ")) for m in merges if m])
    assert tok.vocab_size == max(mapping.values()) + 1
    assert (tok.cls_id, tok.pad_id, tok.sep_id, tok.unk_id, tok.mask_id) == tuple(
        mapping[t] for t in ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"))
    assert tok.image_id == mapping["madeupword0000"]
    assert mapping["madeupword0001"] in tok.special_ids
    n_unk = 0
    for t in test_texts:
        gpt2 = ref.encode(t)
        want = [mapping.get(str(g), mapping["[UNK]"]) for g in gpt2]
        assert tok.encode(t) == want, repr(t)
        n_unk += sum(g in dropped for g in gpt2)
        if not any(g in dropped for g in gpt2):
            assert tok.decode(want) == t
    assert n_unk > 0, "test should exercise GPT-2 ids missing from vocab.txt"
    assert tok.encode_batch(test_texts) == [tok.encode(t) for t in test_texts]
    ids = tok.build_input(tok.encode("the cat"), 16)
    assert tok.decode(ids, skip_special=False) == "[CLS]the cat[SEP]"
    # word_start computed through the GPT-2 token strings
    assert tok.word_start[mapping[str(encoder["Ġ"])]] and not tok.word_start[mapping[str(encoder["e"])]]
    assert tok.word_start[tok.image_id]


def test_from_dir_roberta(trained):
    tok, _, out = trained
    assert BPETokenizer.from_dir(str(out)).encode("the cat") == tok.encode("the cat")


def test_from_dir_prefixed_official_names(trained, tmp_path):
    """The release ships e.g. roberta_base_en.encoder.json / .vocab.bpe / .vocab.txt."""
    _, _, src = trained
    _, _, mapping, _ = write_unimo_layout(src, tmp_path / "plain", random.Random(4), False)
    (tmp_path / "dict").mkdir()
    for name in ("encoder.json", "vocab.bpe", "vocab.txt"):
        (tmp_path / "plain" / name).rename(tmp_path / "dict" / f"roberta_base_en.{name}")
    tok = BPETokenizer.from_dir(str(tmp_path / "dict"))
    assert tok.cls_id == mapping["[CLS]"] and tok.gpt2_to_model is not None


def test_missing_files(tmp_path, trained):
    _, _, out = trained
    with pytest.raises(FileNotFoundError) as e:
        BPETokenizer.from_dir(str(tmp_path))
    assert str(tmp_path) in str(e.value)
    for name in ("vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "vocab.txt"):
        assert name in str(e.value)
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        BPETokenizer.from_roberta(str(out / "vocab.json"), str(tmp_path / "merges.txt"))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BPETokenizer.from_unimo(str(out / "vocab.json"), str(out / "merges.txt"), str(tmp_path / "vocab.txt"))
