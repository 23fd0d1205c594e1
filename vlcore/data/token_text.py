"""Text corpora read as token shards (:mod:`vlcore.formats.token_shards`)
instead of raw lines: a text corpus whose ``path`` is a ``tokens.index.json``
yields token ids, which :class:`vlcore.data.text.TextProcessor` uses as they
are (same ids as tokenizing the line on the fly, no tokenization cost)."""
from vlcore.formats.records import LineFile, RecordError
from vlcore.formats.token_shards import TokenShards, TokenShardsError, is_index


class TokenText:
    """``len()`` and ``[i]`` (token ids of line ``i``) like a LineFile."""

    def __init__(self, path):
        try:
            self.shards = TokenShards(path)
        except TokenShardsError as e:
            raise RecordError(str(e)) from None
        self.path = path

    def __len__(self):
        return len(self.shards)

    def __getitem__(self, i):
        ids = self.shards[i]
        if not ids:  # the tokenizer could not read this input line
            raise RecordError(f"{self.path}: sequence {i} was an unreadable input line "
                              "(see the data_prep.tokenize_shards log)")
        return ids


def open_text_corpus(path):
    """The records of a text corpus: token ids if ``path`` is a token-shards
    index, else the lines of the text file."""
    return TokenText(path) if is_index(path) else LineFile(path)


def check_tokenizer(corpora, tokenizer):
    """Stop before training if a token-shards corpus was made with another
    vocabulary than the run's tokenizer."""
    for c in corpora:
        records = getattr(c, "records", None)
        if isinstance(records, TokenText):
            records.shards.check_tokenizer(tokenizer, f"Global.tokenizer_dir (corpus {c.name!r})")
