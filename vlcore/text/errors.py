"""The tokenizers' error, below both tokenizer modules."""


class TokenizerError(ValueError):
    """A vocabulary file that cannot be used; the message names the file (and
    line) and says what is wrong. A ValueError, so the command lines print it
    as one line and exit 2."""
