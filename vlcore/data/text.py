"""Tokenisation, padding and span masking of captions and text samples,
shared by the model packages' data pipelines."""
import numpy as np

from vlcore.data.masking import span_mask


def pad_ids(seqs, pad_id, length=None):
    """``[B, L]`` int64 array of the sequences padded with ``pad_id``."""
    n = length or max(len(s) for s in seqs)
    out = np.full([len(seqs), n], pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


class TextProcessor:
    """Tokenisation + span masking shared by captions and the text corpus."""

    def __init__(self, tokenizer, mlm_cfg):
        self.tok, self.mlm = tokenizer, mlm_cfg

    def encode(self, text, max_len, rng=None):
        # ``text`` may already be token ids (a token-shards corpus, vlcore.data.token_text).
        ids = self.tok.encode(text) if isinstance(text, str) else list(text)
        room = max_len - 2
        if len(ids) > room:
            # Long documents: a random window, not always the beginning.
            start = int(rng.integers(0, len(ids) - room + 1)) if rng is not None else 0
            ids = ids[start:start + room]
        return ids

    def collate(self, token_lists, rngs):
        """Pad, add [CLS]/[SEP], and span-mask the inner tokens."""
        tok, mlm = self.tok, self.mlm
        n = max(len(t) for t in token_lists) + 2
        b = len(token_lists)
        ids = np.full([b, n], tok.pad_id, dtype=np.int64)
        masked = ids.copy()
        positions, labels = [], []
        for r, (toks, rng) in enumerate(zip(token_lists, rngs)):
            m, pos, lab = span_mask(toks, tok.word_start, rng, tok.mask_id, tok.vocab_size, tok.special_ids,
                                    mlm.mask_ratio, mlm.span_p, mlm.max_span, mlm.replace_mask, mlm.replace_random)
            k = len(toks)
            ids[r, :k + 2] = [tok.cls_id, *toks, tok.sep_id]
            masked[r, :k + 2] = [tok.cls_id, *m, tok.sep_id]
            positions.append(r * n + 1 + pos)
            labels.append(lab)
        return {"ids": ids, "mlm_ids": masked, "mask": ids != tok.pad_id,
                "mlm_positions": np.concatenate(positions).astype(np.int64),
                "mlm_labels": np.concatenate(labels).astype(np.int64)}
