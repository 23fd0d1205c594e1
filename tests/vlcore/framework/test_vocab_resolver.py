"""The Arch builders' vocab_size resolver: 0 takes the tokenizer's size (also
at a nested path), a smaller table than the tokenizer is an error naming the key."""
from types import SimpleNamespace

import pytest

from vlcore.framework.schema import vocab_size_resolver


def test_zero_takes_the_tokenizer_size_and_small_tables_fail():
    tok = SimpleNamespace(vocab_size=120)
    flat, nested = SimpleNamespace(vocab_size=0), SimpleNamespace(text=SimpleNamespace(vocab_size=0))
    vocab_size_resolver()(flat, tok)
    vocab_size_resolver("text.vocab_size")(nested, tok)
    assert flat.vocab_size == 120 and nested.text.vocab_size == 120
    big = SimpleNamespace(vocab_size=500)
    vocab_size_resolver()(big, tok)
    assert big.vocab_size == 500  # a larger table is kept
    with pytest.raises(ValueError, match=r"Arch\.text\.vocab_size=100 is smaller than the tokenizer \(120 entries\)"):
        vocab_size_resolver("text.vocab_size")(SimpleNamespace(text=SimpleNamespace(vocab_size=100)), tok)
