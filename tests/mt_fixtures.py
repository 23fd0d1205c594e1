"""A toy translation task for the back-translation tests: English captions
"det adj noun" <-> a pivot language with the word order reversed, where
"big" and "large" both translate to "gross". Back-translation of "a big dog"
therefore yields "a big dog" (dropped: equal to the caption) and
"a large dog" (the positive), which is the whole point of the technique."""
import json
import os

from data_prep.rewrite.mt_model import WORD_SPECIALS, MTConfig, WordVocab, save_model, train_on_pairs

EN2PIVOT = {"a": "ein", "the": "der", "big": "gross", "large": "gross", "small": "klein", "red": "rot",
            "dog": "hund", "cat": "katze", "car": "auto", "bird": "vogel"}
SYNONYM = {"big": "large", "large": "big"}


def english_sentences():
    return [f"{d} {a} {n}" for d in ("a", "the") for a in ("big", "large", "small", "red")
            for n in ("dog", "cat", "car", "bird")]


def to_pivot(sentence):
    return " ".join(EN2PIVOT[w] for w in reversed(sentence.split()))


def tiny_config(src, tgt, **kw):
    base = dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64,
                max_length=8, dropout=0.0)
    return MTConfig(len(src), len(tgt), **{**base, **kw})


def train_toy_models(out_dir, steps=150, seed=0):
    """Train the en->pivot and pivot->en models (a few seconds on one core)
    into ``out_dir/fwd`` and ``out_dir/back``; returns the two paths."""
    specials = list(WORD_SPECIALS.values())
    en = WordVocab(specials + sorted(EN2PIVOT))
    pv = WordVocab(specials + sorted(set(EN2PIVOT.values())))
    sents = english_sentences()
    jobs = {"fwd": ([(s, to_pivot(s)) for s in sents], en, pv),
            "back": ([(to_pivot(s), s) for s in sents], pv, en)}
    paths = []
    for name, (pairs, sv, tv) in jobs.items():
        model = train_on_pairs(pairs, tiny_config(sv, tv), sv, tv, steps=steps, seed=seed)
        save_model(os.path.join(out_dir, name), model, sv, tv)
        paths.append(os.path.join(out_dir, name))
    return paths


def write_toy_pairs(path, num_images=12, per_image=2):
    """Pairs manifest whose captions are distinct toy sentences, verbatim
    (the toy models' vocabularies are whitespace-separated lower-case words)."""
    sents = english_sentences()
    records = [{"id": f"toy{i:03d}", "image": f"{i}.jpg",
                "captions": [sents[(i * per_image + k) * 5 % len(sents)] for k in range(per_image)]}
               for i in range(num_images)]
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return records
