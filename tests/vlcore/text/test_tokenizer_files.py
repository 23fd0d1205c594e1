"""Bad tokenizer files, both layouts: one TokenizerError (a ValueError, so
the command lines print one line and exit 2) naming the file, the line where
there is one, and what is wrong."""
import json
import subprocess
import sys

import pytest

from vlcore.text.tokenizer import BPETokenizer, ReferenceBPE, TokenizerError

from helpers import ROOT

ROBERTA = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "a": 5, "b": 6, "ab": 7, "Ġ": 8, "c": 9}
MERGES = "#version: 0.2\na b\n"
ENCODER = {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "c": 4}
UNIMO_VOCAB = "[PAD]\n[CLS]\n[SEP]\n[MASK]\n[UNK]\nmadeupword0000\n0\n1\n2\n3\n"


def _roberta(d, vocab=None, merges=MERGES):
    d.mkdir(exist_ok=True)
    (d / "vocab.json").write_bytes(vocab if isinstance(vocab, bytes) else json.dumps(vocab or ROBERTA).encode())
    (d / "merges.txt").write_bytes(merges.encode() if isinstance(merges, str) else merges)
    return d


def _unimo(d, encoder=None, bpe=MERGES, vocab=UNIMO_VOCAB):
    d.mkdir(exist_ok=True)
    (d / "encoder.json").write_bytes(encoder if isinstance(encoder, bytes) else json.dumps(encoder or ENCODER).encode())
    (d / "vocab.bpe").write_bytes(bpe.encode() if isinstance(bpe, str) else bpe)
    (d / "vocab.txt").write_bytes(vocab.encode() if isinstance(vocab, str) else vocab)
    return d


def _error(d):
    with pytest.raises(TokenizerError) as e:
        BPETokenizer.from_dir(str(d))
    assert isinstance(e.value, ValueError)
    return str(e.value)


def test_the_tiny_vocabularies_are_valid(tmp_path):
    tok = BPETokenizer.from_dir(str(_roberta(tmp_path / "r")))
    assert tok.encode("ab c") == [7, 8, 9] and tok.mask_id == 4
    tok = BPETokenizer.from_dir(str(_unimo(tmp_path / "u")))
    assert tok.encode("ab") == [8] and tok.unk_id == 4 and tok.image_id == 5  # vocab.txt line of GPT-2 id 2


@pytest.mark.parametrize("content, problem", [
    (b"[1, 2, 3]", "a JSON list, expected a JSON object mapping each token to its integer id"),
    (b'{"<s>": 0, "a": "five"}', "token 'a' has id 'five'"),
    (b'{"<s>": 0, "a": -1}', "token 'a' has id -1"),
    (b'{"<s>": 0, "a": 1.5}', "token 'a' has id 1.5"),
    (b'{"<s>": 0, "a": 0}', "tokens '<s>' and 'a' both have id 0"),
    (b"{}", "no tokens"),
    (b"", "empty file"),
    (b'{"<s>": 0,\n "<pad>": 1,\n "</s', "vocab.json:3: not valid JSON"),
    (b'{"<s>": 0, "\xff": 1}', "vocab.json:1: not UTF-8 text (byte 12"),
])
def test_bad_vocab_json(tmp_path, content, problem):
    d = _roberta(tmp_path / "r", vocab=content)
    msg = _error(d)
    assert str(d / "vocab.json") in msg and problem in msg, msg


def test_truncated_vocab_json_says_so(tmp_path):
    text = json.dumps(ROBERTA, indent=0)
    msg = _error(_roberta(tmp_path / "r", vocab=text[:len(text) // 2].encode()))
    assert "vocab.json:" in msg and "not valid JSON" in msg and msg.endswith("the file ends early (truncated?)"), msg
    msg = _error(_roberta(tmp_path / "r2", vocab=b'{"a": 0 "b": 1}'))     # broken, not truncated
    assert "not valid JSON (Expecting ',' delimiter, column 9)" in msg and "(truncated?)" not in msg, msg


@pytest.mark.parametrize("merges, line, problem", [
    ("#version: 0.2\na b\nabc\n", 3, "malformed merge rule 'abc'"),
    ("#version: 0.2\na b c\n", 2, "malformed merge rule 'a b c'"),
    ("#version: 0.2\n\na b\n", 2, "malformed merge rule ''"),
    ("#version: 0.2\na  b\n", 2, "malformed merge rule 'a  b'"),
    ("#version: 0.2\na c\n", 2, "'ac' is not a token of"),
    ("#version: 0.2\nx b\n", 2, "'x' is not a token of"),
    ("#version: 0.2\na b\nab", 3, "malformed merge rule 'ab'"),          # truncated mid-rule
])
def test_bad_merges_name_file_and_line(tmp_path, merges, line, problem):
    d = _roberta(tmp_path / "r", merges=merges)
    msg = _error(d)
    assert msg.startswith(f"{d / 'merges.txt'}:{line}: ") and problem in msg, msg


def test_merges_with_crlf_and_without_final_newline_are_fine(tmp_path):
    tok = BPETokenizer.from_dir(str(_roberta(tmp_path / "r", merges="#version: 0.2\r\na b")))
    assert tok.encode("ab") == [7]


def test_non_utf8_merges(tmp_path):
    d = _roberta(tmp_path / "r", merges=b"#version: 0.2\na b\n\xc3\x28 b\n")
    msg = _error(d)
    assert msg.startswith(f"{d / 'merges.txt'}:3: not UTF-8 text"), msg


def test_missing_special_tokens_roberta(tmp_path):
    vocab = {k: v for k, v in ROBERTA.items() if k not in ("<mask>", "<pad>")}
    d = _roberta(tmp_path / "r", vocab=vocab)
    msg = _error(d)
    assert msg.startswith(f"{d / 'vocab.json'}: special tokens ['<pad>', '<mask>'] missing"), msg


@pytest.mark.parametrize("vocab, problem", [
    ("[PAD]\n[CLS]\n[SEP]\n[UNK]\n0\n", "vocab.txt: special tokens ['[MASK]'] missing"),
    ("[PAD]\t0\n[CLS]\tone\n", "vocab.txt:2: index 'one' of token '[CLS]' is not an integer"),
    ("[PAD]\t0\t7\n", "vocab.txt:1: expected 'token' or 'token<TAB>index', got 3 tab-separated fields"),
    ("", "vocab.txt: empty file"),
    (b"[PAD]\n[CLS]\n\xe9\n", "vocab.txt:3: not UTF-8 text"),
])
def test_bad_unimo_vocab_txt(tmp_path, vocab, problem):
    d = _unimo(tmp_path / "u", vocab=vocab)
    msg = _error(d)
    assert msg.startswith(str(d)) and problem in msg, msg


@pytest.mark.parametrize("kind", ["encoder", "bpe"])
def test_bad_unimo_encoder_and_bpe(tmp_path, kind):
    if kind == "encoder":
        d = _unimo(tmp_path / "u", encoder=b'{"a": 0, "b": 1, "ab"')
        want = f"{d / 'encoder.json'}:1: not valid JSON"
    else:
        d = _unimo(tmp_path / "u", bpe="#version: 0.2\na b\nb\n")
        want = f"{d / 'vocab.bpe'}:3: malformed merge rule 'b'"
    msg = _error(d)
    assert msg.startswith(want), msg


def test_reference_bpe_reads_the_same_way(tmp_path):
    d = _roberta(tmp_path / "r", merges="#version: 0.2\na b\nq\n")
    with pytest.raises(TokenizerError, match=r"merges\.txt:3: malformed"):
        ReferenceBPE.from_files(str(d / "vocab.json"), str(d / "merges.txt"))


def test_not_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        BPETokenizer.from_dir(str(tmp_path / "nope"))


def test_command_line_prints_one_line_and_exits_2(tmp_path):
    d = _roberta(tmp_path / "r", merges="#version: 0.2\na b\na b c\n")
    (tmp_path / "t.txt").write_text("ab\n")
    r = subprocess.run([sys.executable, "-m", "data_prep.tokenize_shards", "--text", str(tmp_path / "t.txt"),
                        "--tokenizer-dir", str(d), "--out", str(tmp_path / "out")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {d / 'merges.txt'}:3: malformed merge rule 'a b c'; expected two symbols separated by one space"]
