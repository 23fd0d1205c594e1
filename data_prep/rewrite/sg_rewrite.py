"""Scene-graph negatives: replace one node of a parsed caption.

The replacement vocabularies come from the corpus itself: every node text
seen, by kind and class (see :mod:`data_prep.rewrite.sg_parse`), with its
count. A negative replaces one node's words with a vocabulary entry of the
same kind and class and a different lemma, and keeps the rest of the
sentence byte for byte; an ``a``/``an`` right before the replaced words is
re-chosen for the new first word, and a capital at the start of the
sentence is kept.
"""
from __future__ import annotations

import random
import zlib
from collections import Counter, defaultdict

from vlcore.formats.rewrites import normalize_text

KINDS = {"object": "sg-object", "attribute": "sg-attribute", "relation": "sg-relation"}
# Words spelled with a vowel but said with a consonant (and the reverse), the
# usual exceptions of the a/an rule.
_A_PREFIXES = ("uni", "use", "usu", "uti", "eu", "one", "once", "ewe", "ufo", "uk")
_AN_PREFIXES = ("hour", "honest", "honor", "honour", "heir", "herb")


def article_for(word: str) -> str:
    w = word.lower()
    if w.startswith(_AN_PREFIXES):
        return "an"
    if w.startswith(_A_PREFIXES):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def build_vocab(parsed_iter, min_count: int = 1, max_size: int = 2000) -> dict:
    """``{kind: {cls: [[text, lemma, count], ...]}}``, most frequent first
    (ties by text), at most ``max_size`` per class."""
    counts = defaultdict(Counter)
    lemmas = {}
    for parsed in parsed_iter:
        for n in parsed["nodes"]:
            text = n["text"].lower()
            counts[(n["kind"], n["cls"])][text] += 1
            lemmas.setdefault((n["kind"], n["cls"], text), n["lemma"])
    vocab: dict = {k: {} for k in KINDS}
    for (kind, cls), c in sorted(counts.items()):
        items = sorted((t for t in c.items() if t[1] >= min_count), key=lambda t: (-t[1], t[0]))[:max_size]
        if items:
            vocab[kind][cls] = [[t, lemmas[(kind, cls, t)], n] for t, n in items]
    return vocab


def render(tokens, node, replacement: str) -> str:
    """The caption with ``node``'s tokens replaced by ``replacement``."""
    toks = [[t[0], t[1]] for t in tokens]
    s, e = node["start"], node["end"]
    if s == 0 and toks[0][0][:1].isupper():
        replacement = replacement[:1].upper() + replacement[1:]
    toks[s:e] = [[replacement, toks[e - 1][1]]]
    if s > 0 and toks[s - 1][0].lower() in ("a", "an"):
        art = article_for(replacement)
        old = toks[s - 1][0]
        toks[s - 1][0] = art.capitalize() if old[:1].isupper() else art
    return "".join(t + ws for t, ws in toks)


def negatives_for(cid: str, parsed: dict, caption: str, same_image: list[str], vocab: dict,
                  per_kind: int, seed: int = 0, tries: int = 8) -> list[dict]:
    """Up to ``per_kind`` negatives of each kind for one caption. Random but
    reproducible: the generator is seeded by the caption id, so the result
    does not depend on sharding or workers."""
    rng = random.Random(zlib.crc32(cid.encode("utf-8")) ^ seed)
    banned = {normalize_text(t) for t in (caption, *same_image)}
    out = []
    for kind, out_kind in KINDS.items():
        nodes = [n for n in parsed["nodes"] if n["kind"] == kind and vocab[kind].get(n["cls"])]
        made = 0
        for _ in range(per_kind * tries):
            if made == per_kind or not nodes:
                break
            node = rng.choice(nodes)
            text, lemma, _ = rng.choice(vocab[kind][node["cls"]])
            if lemma == node["lemma"] or text == node["text"].lower():
                continue
            neg = render(parsed["tokens"], node, text)
            key = normalize_text(neg)
            if key in banned:
                continue
            banned.add(key)
            out.append({"text": neg, "kind": out_kind})
            made += 1
    return out
