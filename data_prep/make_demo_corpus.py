"""Generate a small synthetic *grounded* vision-language corpus for the demo.

The corpus is procedural (OpenCV drawings plus a small caption grammar), so a
tiny UNIMO-2 can be pre-trained on it on two CPU cores in minutes and then
show zero-shot image-text retrieval far above chance. Nothing is downloaded.

Command line::

    python -m data_prep.make_demo_corpus --out data/demo [--seed 0]
        [--num-pairs 2000] [--num-images 1000] [--num-texts 4000]
        [--num-test 100] [--image-size 64] [--vocab-size 1000]
        [--workers N] [--force] [--quiet]

Python::

    from data_prep.make_demo_corpus import build_demo_corpus
    meta = build_demo_corpus("data/demo", seed=0)      # returns meta.json as a dict

Content
-------
Images are RGB squares (``image_size`` px) with a plain, noisy or softly shaded
gray-ish background and 1-3 non-overlapping objects, drawn anti-aliased:
8 shapes (circle, square, triangle, star, cross, ring, diamond, hexagon) x
8 colours (red, green, blue, yellow, purple, orange, white, black) x 2 sizes
(small, large). Within one scene all colours are different and all shapes are
different, so "the red one" or "the circle" is never ambiguous. Two-object
scenes always realise a clear spatial relation (left of / right of / above /
below); three-object scenes realise at least one.

Captions come from a small grammar with several phrasings; each image gets 5
different captions, each mentioning colour+shape of some of the objects (and
optionally their size, relation, position in the image or the background), all
true for the image, e.g. "a red circle to the left of a blue square",
"there is a small yellow star", "two shapes: a green ring above a purple
triangle".

Output layout (``out``)::

    images/                 PNG files (written by cv2.imwrite, i.e. BGR order
                            in memory, standard RGB PNG on disk)
    pairs_train.jsonl       image-text pairs for pre-training
    pairs_test.jsonl        held-out pairs (``num_test`` images x 5 captions)
    images_train.jsonl      image-only set: single-object images with a label
    text_train.txt          text-only corpus
    vocab/vocab.json        byte-level BPE vocabulary, RoBERTa layout
    vocab/merges.txt        BPE merges, RoBERTa layout
    meta.json               arguments, counts, class lists, chance levels

Manifest format (what the training code reads)
----------------------------------------------
JSONL, UTF-8, one JSON object per line; ``image`` is relative to the
directory holding the manifest. Readers must ignore unknown keys.

* pairs (``pairs_train.jsonl``, ``pairs_test.jsonl``)::

    {"id": "pair_000123", "image": "images/pair_000123.png",
     "captions": ["...", "...", "...", "...", "..."], "scene": [...]}

  Test ids are ``test_000012``.

* labelled images (``images_train.jsonl``)::

    {"id": "img_000045", "image": "images/img_000045.png",
     "label": "red circle", "scene": [...]}

  ``label`` is "<colour> <shape>" (64 classes, listed in meta.json).

* text (``text_train.txt``): plain UTF-8 text, one sample per line, blank
  lines ignored.

The optional ``scene`` key is a list of objects
``{"colour": "red", "shape": "circle", "size": "small", "bbox": [x0, y0, x1, y1]}``
with the object's nominal extent in pixels (inclusive; centre
``((x0+x1)/2, (y0+y1)/2)``, always inside the image).

Splits
------
The test scenes are disjoint from every training split: a scene's key is the
set of its objects' (colour, shape, size, 3x3 grid cell) plus its spatial
relations; test keys are unique and never used by ``pairs_train``,
``images_train`` or the scenes behind ``text_train``. All image files are
distinct.

``meta.json`` holds the arguments, counts, image size, generator version,
class lists, palette and the exact chance levels of R@1/5/10 on the test
split: text->image (one correct image among ``n``) ``k/n``; image->text (any
of the image's 5 captions among ``5n``) ``1 - C(5n-5, k) / C(5n, k)``.

Determinism: every scene is drawn from ``numpy.random.default_rng([seed,
split_id, index])``, so the same arguments give byte-identical files whatever
``--workers`` is. The build goes to ``<out>.tmp-<pid>`` and is renamed to
``<out>`` at the end; when ``<out>/meta.json`` exists with the same arguments
the build is skipped ("already built").
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from fractions import Fraction

import cv2
import numpy as np

GENERATOR_VERSION = "1.0"

# ----------------------------------------------------------------------------
# Vocabulary of the world
# ----------------------------------------------------------------------------
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
PALETTE = {  # RGB
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (245, 215, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
    "white": (250, 250, 250),
    "black": (25, 25, 25),
}
COLOURS = tuple(PALETTE)
SIZES = ("small", "large")
SIZE_WORDS = {"small": ("small",), "large": ("large", "big")}
RELATIONS = ("left", "right", "above", "below")
REL_PHRASE = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
LABELS = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
PROMPT = "a photo of"
BACKGROUNDS = ("plain", "noise", "gradient")
BG_WORDS = {"plain": "plain", "noise": "noisy", "gradient": "shaded"}
REGION_PHRASES = (
    ("in the top left", "at the top", "in the top right"),
    ("on the left", "in the middle", "on the right"),
    ("in the bottom left", "at the bottom", "in the bottom right"),
)

SPLIT_IDS = {"pairs_train": 0, "pairs_test": 1, "images_train": 2, "text_train": 3, "pairs_test_unseen": 4}
CAPTIONS_PER_IMAGE = 5
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_MAX_RESAMPLE = 2000


# ----------------------------------------------------------------------------
# Scene sampling (main process, cheap)
# ----------------------------------------------------------------------------
def _radius(rng, size, S):
    lo, hi = (0.09, 0.11) if size == "small" else (0.16, 0.19)
    return int(rng.integers(max(2, round(lo * S)), max(3, round(hi * S)) + 1))


def _gap(S):
    return max(2, S // 32)


def _bbox(o):
    return (o["cx"] - o["r"], o["cy"] - o["r"], o["cx"] + o["r"], o["cy"] + o["r"])


def _separated(a, b, gap):
    ax0, ay0, ax1, ay1 = _bbox(a)
    bx0, by0, bx1, by1 = _bbox(b)
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def relation(a, b, S):
    """Clear spatial relation of object ``a`` relative to ``b`` or None.

    "left" means a is to the left of b: their boxes are separated along x and
    the horizontal offset dominates the vertical one by 1.5x (so "above"
    cannot also be said). Image y grows downwards.
    """
    gap = _gap(S)
    ax0, ay0, ax1, ay1 = _bbox(a)
    bx0, by0, bx1, by1 = _bbox(b)
    dx, dy = b["cx"] - a["cx"], b["cy"] - a["cy"]
    if ax1 + gap <= bx0 and dx >= 1.5 * abs(dy):
        return "left"
    if bx1 + gap <= ax0 and -dx >= 1.5 * abs(dy):
        return "right"
    if ay1 + gap <= by0 and dy >= 1.5 * abs(dx):
        return "above"
    if by1 + gap <= ay0 and -dy >= 1.5 * abs(dx):
        return "below"
    return None


def scene_relations(objs, S):
    """List of (i, rel, j), i < j, for every clearly related pair."""
    out = []
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            rel = relation(objs[i], objs[j], S)
            if rel is not None:
                out.append((i, rel, j))
    return out


def _cell(o, S):
    return (min(2, o["cy"] * 3 // S), min(2, o["cx"] * 3 // S))


def _region_phrase(o, S):
    """Position phrase ("in the top left") or None near a third boundary."""
    margin = S / 16.0
    idx = []
    for v in (o["cy"], o["cx"]):
        t = v * 3.0 / S
        k = min(2, int(t))
        if (k > 0 and v - k * S / 3.0 < margin) or (k < 2 and (k + 1) * S / 3.0 - v < margin):
            return None
        idx.append(k)
    return REGION_PHRASES[idx[0]][idx[1]]


def _place(rng, radii, S, need_relation):
    gap = _gap(S)
    for _ in range(100):
        placed = []
        for r in radii:
            lo, hi = r + 1, S - 2 - r
            cand = rng.integers(lo, hi + 1, size=(24, 2))
            found = None
            for x, y in cand.tolist():
                o = {"cx": x, "cy": y, "r": r}
                if not all(_separated(o, p, gap) for p in placed):
                    continue
                if need_relation and len(radii) == 2 and placed and relation(placed[0], o, S) is None:
                    continue
                found = o
                break
            if found is None:
                break
            placed.append(found)
        if len(placed) == len(radii) and (not need_relation or scene_relations(placed, S)):
            return placed
    return None


def sample_scene(rng, S, n_objects=None, colour=None, shape=None, exclude_shapes=(), exclude_colours=()):
    """Sample a scene: dict(objects=[...], bg={...}). Deterministic in rng.
    ``exclude_shapes`` / ``exclude_colours``: what the scene must not hold
    (redrawn; with none excluded the random stream is the same as without
    the argument)."""
    if n_objects is None:
        n_objects = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    while True:
        cols = [COLOURS[i] for i in rng.permutation(len(COLOURS))[:n_objects]]
        shps = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n_objects]]
        if colour is not None:
            cols[0] = colour
        if shape is not None:
            shps[0] = shape
        if exclude_shapes and any(s in exclude_shapes for s in shps):
            continue
        if exclude_colours and any(c in exclude_colours for c in cols):
            continue
        sizes = [SIZES[int(v)] for v in rng.integers(0, 2, size=n_objects)]
        radii = [_radius(rng, z, S) for z in sizes]
        pos = _place(rng, radii, S, need_relation=n_objects >= 2)
        if pos is not None:
            break
    objs = []
    for c, s, z, p in zip(cols, shps, sizes, pos):
        jitter = rng.integers(-8, 9, size=3)
        rgb = tuple(int(v) for v in np.clip(np.array(PALETTE[c]) + jitter, 0, 255))
        objs.append({"colour": c, "shape": s, "size": z, "cx": p["cx"], "cy": p["cy"], "r": p["r"], "rgb": rgb})
    gray = int(rng.integers(105, 166))
    tint = rng.integers(-10, 11, size=3)
    bg = {
        "kind": BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
        "rgb": tuple(int(v) for v in np.clip(gray + tint, 0, 255)),
        "angle": float(rng.uniform(0.0, 2 * math.pi)),
    }
    return {"objects": objs, "bg": bg, "size": S}


def scene_boxes(scene, size):
    """The known boxes of a scene as ``[x1, y1, x2, y2]`` pixel edges (the
    generator's ``bbox`` is inclusive), then the whole image."""
    boxes = [[x0, y0, x1 + 1, y1 + 1] for x0, y0, x1, y1 in (obj["bbox"] for obj in scene)]
    return boxes + [[0, 0, size, size]]


def scene_key(scene):
    S = scene["size"]
    objs = scene["objects"]
    items = tuple(sorted((o["colour"], o["shape"], o["size"], _cell(o, S)) for o in objs))
    rels = []
    for i, rel, j in scene_relations(objs, S):
        a, b = (objs[i]["colour"], objs[i]["shape"]), (objs[j]["colour"], objs[j]["shape"])
        if rel in ("right", "below"):  # canonical direction
            a, b, rel = b, a, INVERSE[rel]
        rels.append((a, rel, b))
    return items, tuple(sorted(rels))


def scene_record(scene):
    """The manifest's ``scene`` value."""
    return [
        {"colour": o["colour"], "shape": o["shape"], "size": o["size"], "bbox": list(_bbox(o))}
        for o in scene["objects"]
    ]


# ----------------------------------------------------------------------------
# Caption grammar
# ----------------------------------------------------------------------------
def _np(o, rng, p_size=0.4):
    words = [o["colour"], o["shape"]]
    if rng.random() < p_size:
        choices = SIZE_WORDS[o["size"]]
        words.insert(0, choices[int(rng.integers(0, len(choices)))])
    return " ".join(words)


def _art(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _A(o, rng):
    return _art(_np(o, rng))


def _templates(scene, rng):
    """Caption templates applicable to ``scene`` (callables returning a string)."""
    S = scene["size"]
    objs = scene["objects"]
    n = len(objs)
    rels = scene_relations(objs, S)

    def pick(seq):
        return seq[int(rng.integers(0, len(seq)))]

    def rel_triple():
        i, rel, j = pick(rels)
        if rng.random() < 0.5:
            i, rel, j = j, INVERSE[rel], i
        return objs[i], REL_PHRASE[rel], objs[j], rel

    def shuffled():
        return [objs[k] for k in rng.permutation(n)]

    def region_of(o):
        return _region_phrase(o, S)

    if n == 1:
        o = objs[0]
        T = [
            lambda: _A(o, rng),
            lambda: f"there is {_A(o, rng)}",
            lambda: f"{PROMPT} {_A(o, rng)}",
            lambda: f"a single {_np(o, rng)}",
            lambda: f"one shape: {_A(o, rng)}",
            lambda: f"an image with {_A(o, rng)}",
            lambda: f"{_A(o, rng)} on a {BG_WORDS[scene['bg']['kind']]} background",
        ]
        if region_of(o):
            T += [
                lambda: f"{_A(o, rng)} {region_of(o)}",
                lambda: f"the {_np(o, rng)} is {region_of(o)}",
            ]
        return T

    def rel_sentence(prefix=""):
        a, phrase, b, _ = rel_triple()
        return f"{prefix}{_A(a, rng)} {phrase} {_A(b, rng)}"

    def the_rel():
        a, phrase, b, _ = rel_triple()
        return f"the {_np(a, rng)} is {phrase} the {_np(b, rng)}"

    def region_sentence():
        cands = [o for o in objs if region_of(o)]
        if not cands:
            return None
        o = pick(cands)
        return f"the {_np(o, rng)} is {region_of(o)}"

    def one_of():
        return f"there is {_A(pick(objs), rng)}"

    if n == 2:
        def pair_arrangement():
            a, b = shuffled()
            horizontal = rels[0][1] in ("left", "right")
            tail = "side by side" if horizontal else "one above the other"
            return f"{_A(a, rng)} and {_A(b, rng)} {tail}"

        def next_to():
            if rels[0][1] not in ("left", "right"):
                return None
            a, b = shuffled()
            return f"{_A(a, rng)} next to {_A(b, rng)}"

        def both(prefix=""):
            a, b = shuffled()
            return f"{prefix}{_A(a, rng)} and {_A(b, rng)}"

        return [
            lambda: rel_sentence(),
            lambda: rel_sentence("there is "),
            lambda: rel_sentence("two shapes: "),
            lambda: rel_sentence(PROMPT + " "),
            the_rel,
            lambda: both(),
            lambda: both("two objects: "),
            pair_arrangement,
            next_to,
            one_of,
            region_sentence,
        ]

    def all_three(prefix=""):
        a, b, c = shuffled()
        return f"{prefix}{_A(a, rng)}, {_A(b, rng)} and {_A(c, rng)}"

    def rel_and_third():
        a, phrase, b, _ = rel_triple()
        c = [o for o in objs if o is not a and o is not b][0]
        return f"{_A(a, rng)} {phrase} {_A(b, rng)}, and {_A(c, rng)}"

    def two_of():
        a, b = shuffled()[:2]
        return f"there is {_A(a, rng)} and {_A(b, rng)}"

    return [
        lambda: all_three("three shapes: "),
        lambda: all_three(),
        lambda: all_three("three objects: "),
        lambda: rel_sentence(),
        lambda: rel_sentence(PROMPT + " "),
        rel_and_third,
        the_rel,
        two_of,
        region_sentence,
        lambda: f"three shapes including {_A(pick(objs), rng)}",
    ]


def make_captions(scene, rng, n=CAPTIONS_PER_IMAGE):
    """``n`` different true captions for ``scene``."""
    T = _templates(scene, rng)
    out = []
    for _ in range(20):
        for k in rng.permutation(len(T)):
            cap = T[int(k)]()
            if cap is not None and cap not in out:
                out.append(cap)
                if len(out) == n:
                    return out
    raise RuntimeError("caption grammar could not produce %d distinct captions" % n)


def make_caption(scene, rng):
    T = _templates(scene, rng)
    while True:
        cap = T[int(rng.integers(0, len(T)))]()
        if cap is not None:
            return cap


_SHAPE_FACTS = (
    "a triangle has three corners",
    "a square has four corners",
    "a square has four equal sides",
    "a diamond is a square turned on its corner",
    "a hexagon has six corners",
    "a star has five points",
    "a circle has no corners",
    "a circle is round",
    "a ring is round",
    "a ring is a circle with a hole in the middle",
    "a cross is made of two bars",
)


def make_filler(rng):
    """A sentence of the same vocabulary that describes no particular image."""
    def pick(seq):
        return seq[int(rng.integers(0, len(seq)))]

    c1, c2 = [COLOURS[i] for i in rng.permutation(len(COLOURS))[:2]]
    s1, s2 = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:2]]
    kind = int(rng.integers(0, 8))
    if kind == 0:
        return pick(_SHAPE_FACTS)
    if kind == 1:
        return f"{c1} is a colour"
    if kind == 2:
        return f"a {s1} is a shape"
    if kind == 3:
        return f"{_art(s1)} can be {c1}"
    if kind == 4:
        return pick((f"a large {s1} is bigger than a small {s1}", f"a small {s1} is smaller than a large {s1}"))
    if kind == 5:
        rel = pick(RELATIONS)
        return (f"if {_art(c1 + ' ' + s1)} is {REL_PHRASE[rel]} {_art(c2 + ' ' + s2)} then the "
                f"{c2} {s2} is {REL_PHRASE[INVERSE[rel]]} the {c1} {s1}")
    if kind == 6:
        return f"{_art(c1 + ' ' + s1)} and {_art(c2 + ' ' + s2)} are two different shapes"
    return f"{c1} and {c2} are two colours"


# ----------------------------------------------------------------------------
# Drawing (worker processes)
# ----------------------------------------------------------------------------
def _poly(cx, cy, pts):
    arr = np.asarray(pts, dtype=np.float64) + (cx, cy)
    return np.round(arr * 16).astype(np.int32)  # shift=4 fixed point


def _regular(n, r, phase):
    t = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def draw_object(img, o):
    shape, cx, cy, r = o["shape"], o["cx"], o["cy"], o["r"]
    col = tuple(int(v) for v in o["rgb"][::-1])  # BGR
    aa = cv2.LINE_AA
    if shape == "circle":
        cv2.circle(img, (cx * 16, cy * 16), r * 16, col, -1, aa, shift=4)
        return
    if shape == "ring":
        th = max(2.0, 0.38 * r)
        cv2.circle(img, (cx * 16, cy * 16), int(round((r - th / 2) * 16)), col,
                   int(round(th)), aa, shift=4)
        return
    if shape == "square":
        s = 0.85 * r
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        pts = [(0, -r), (r, 0.8 * r), (-r, 0.8 * r)]
    elif shape == "diamond":
        pts = [(0, -r), (0.75 * r, 0), (0, r), (-0.75 * r, 0)]
    elif shape == "hexagon":
        pts = _regular(6, r, 0.0)
    elif shape == "star":
        outer = _regular(5, r, -math.pi / 2)
        inner = _regular(5, 0.45 * r, -math.pi / 2 + math.pi / 5)
        pts = np.stack([outer, inner], 1).reshape(-1, 2)
    elif shape == "cross":
        w = 0.33 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r),
               (-w, w), (-r, w), (-r, -w), (-w, -w)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cv2.fillPoly(img, [_poly(cx, cy, pts)], col, aa, shift=4)


def render(spec):
    """Draw a scene spec (dict with size, bg, objects, noise_seed) -> BGR uint8."""
    S = spec["size"]
    bg = spec["bg"]
    base = np.array(bg["rgb"][::-1], dtype=np.float32)
    img = np.empty((S, S, 3), dtype=np.float32)
    img[:] = base
    if bg["kind"] == "noise":
        rng = np.random.default_rng(spec["noise_seed"])
        img += rng.normal(0.0, 6.0, size=(S, S, 1)).astype(np.float32)
    elif bg["kind"] == "gradient":
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / max(1, S - 1) - 0.5
        g = xx * math.cos(bg["angle"]) + yy * math.sin(bg["angle"])
        img += (36.0 * g)[..., None]
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    for o in spec["objects"]:
        draw_object(img, o)
    return img


def _draw_task(task):
    spec, path = task
    if not cv2.imwrite(path, render(spec), PNG_PARAMS):
        raise IOError(f"cv2.imwrite failed for {path}")
    return path


def _worker_init():
    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------
# BPE vocabulary
# ----------------------------------------------------------------------------
def _train_bpe(texts, vocab_size, out_dir, min_frequency=2):
    """Train the demo vocabulary with the toolkit's tokenizer (RoBERTa layout).
    Returns the trainer's name for meta.json."""
    from vlcore.text.tokenizer import train_bpe
    train_bpe(texts, vocab_size, out_dir, min_frequency=min_frequency)
    return "vlcore.text.tokenizer.train_bpe"


# ----------------------------------------------------------------------------
# Chance levels
# ----------------------------------------------------------------------------
def retrieval_chance(num_test, captions_per_image=CAPTIONS_PER_IMAGE, ks=(1, 5, 10)):
    """Exact chance R@k on a test split of ``num_test`` images x captions.

    text->image: one correct image among ``n``: ``min(1, k/n)``.
    image->text: any of the image's ``c`` captions within the top k of ``c*n``
    (a uniformly random ranking): ``1 - C(cn-c, k) / C(cn, k)``.
    """
    n, c = num_test, captions_per_image
    t2i, i2t = {}, {}
    for k in ks:
        t2i[f"R@{k}"] = float(min(Fraction(1), Fraction(k, n)))
        i2t[f"R@{k}"] = float(1 - Fraction(math.comb(c * n - c, k), math.comb(c * n, k)))
    return {"text_to_image": t2i, "image_to_text": i2t}


# ----------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------
def _args_dict(seed, num_pairs, num_images, num_texts, num_test, image_size, vocab_size, held_out_shapes=(),
               held_out_pairs=0, held_out_colours=()):
    args = {
        "seed": int(seed), "num_pairs": int(num_pairs), "num_images": int(num_images),
        "num_texts": int(num_texts), "num_test": int(num_test), "image_size": int(image_size),
        "vocab_size": int(vocab_size), "generator_version": GENERATOR_VERSION,
    }
    if held_out_shapes:  # only then: the demo's meta.json (and its "already built" check) stays as it was
        args["held_out_shapes"] = sorted(held_out_shapes)
    if held_out_colours:
        args["held_out_colours"] = sorted(held_out_colours)
    if held_out_pairs:
        args["held_out_pairs"] = int(held_out_pairs)
    return args


def _rng(seed, split, i, *extra):
    return np.random.default_rng([seed, SPLIT_IDS[split], i, *extra])


def _sample_unique(rng, S, taken, what, **kw):
    for _ in range(_MAX_RESAMPLE):
        scene = sample_scene(rng, S, **kw)
        key = scene_key(scene)
        if key not in taken:
            return scene, key
    raise RuntimeError(f"could not sample a {what} scene outside the test set; use fewer test images")


def _spec(scene, seed, split, i):
    return {
        "size": scene["size"], "bg": scene["bg"], "objects": scene["objects"],
        "noise_seed": [seed, SPLIT_IDS[split], i, 1],
    }


def _read_meta(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_tmp(out):
    parent, name = os.path.split(out)
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        m = re.fullmatch(re.escape(name) + r"\.(?:tmp|old)-(\d+)", entry)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_demo_corpus(out_dir, seed=0, num_pairs=2000, num_images=1000, num_texts=4000, num_test=100,
                      image_size=64, vocab_size=1000, workers=1, quiet=False, overwrite=False, held_out_shapes=(),
                      held_out_pairs=0, held_out_colours=()):
    """Build the demo corpus into ``out_dir`` and return its meta (dict).

    Skips the work ("already built") when ``out_dir/meta.json`` records the
    same arguments. If ``out_dir`` exists otherwise, raises FileExistsError
    unless ``overwrite`` is true. ``workers`` only changes speed, never output.

    ``held_out_shapes`` (the controlled variant of the ablation study,
    docs/ablations.md): these shapes never occur in ``pairs_train`` nor in
    the seen test split ``pairs_test``; they do occur in the image-only
    images (``images_train``) and in the text-only corpus, and
    ``pairs_test_unseen.jsonl`` holds ``num_test`` single-object test images
    of them, whose every caption names the shape, with the shape alone as
    ``label`` (a two-way zero-shot classification, chance 50 %, that the
    colour and size learnt from the pairs cannot answer).

    ``held_out_pairs``: rare instead of absent. The first
    ``held_out_pairs * len(held_out_shapes)`` training pairs are one-object
    scenes of the held-out shapes in turn (each shape in ``held_out_pairs``
    pairs, every caption naming it); the other pairs still exclude them.
    With none at all, nothing in the training data tells which word goes
    with which look (docs/ablations.md, "the bound"); a few anchor pairs
    make that learnable and leave the unpaired data something to add.

    ``held_out_colours``: the same with colours instead of shapes (one of
    the two; the unseen split's ``label`` is then the colour). The demo's
    tiny model learns colour words from the pairs but not shape words
    (docs/ablations.md), so colours are the concept it can be tested on.
    """
    t0 = time.time()
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    out = os.path.abspath(os.fspath(out_dir))
    S = int(image_size)
    if S < 32:
        raise ValueError("image_size must be >= 32")
    if num_test < 1 or num_pairs < 0 or num_images < 0 or num_texts < 0:
        raise ValueError("num_test must be >= 1 and the other counts >= 0")
    unknown = sorted(set(held_out_shapes) - set(SHAPES))
    if unknown or len(set(held_out_shapes)) > len(SHAPES) - 3:
        raise ValueError(f"held_out_shapes {sorted(held_out_shapes)}: shapes of {list(SHAPES)}, at most "
                         f"{len(SHAPES) - 3} (a pair's scene needs up to 3 other shapes)")
    unknown = sorted(set(held_out_colours) - set(COLOURS))
    if unknown or len(set(held_out_colours)) > len(COLOURS) - 3:
        raise ValueError(f"held_out_colours {sorted(held_out_colours)}: colours of {list(COLOURS)}, at most "
                         f"{len(COLOURS) - 3} (a pair's scene needs up to 3 other colours)")
    if held_out_shapes and held_out_colours:
        raise ValueError("hold out shapes or colours, not both")
    n_held = len(set(held_out_shapes) | set(held_out_colours))
    if held_out_pairs < 0 or (held_out_pairs and not n_held) or held_out_pairs * n_held > num_pairs:
        raise ValueError(f"held_out_pairs {held_out_pairs}: needs held_out_shapes or held_out_colours, and at most "
                         f"num_pairs / {max(1, n_held)} pairs per held-out shape or colour")
    args = _args_dict(seed, num_pairs, num_images, num_texts, num_test, image_size, vocab_size, held_out_shapes,
                      held_out_pairs, held_out_colours)
    meta_path = os.path.join(out, "meta.json")

    if os.path.exists(out):
        meta = _read_meta(meta_path)
        if meta is not None and meta.get("args") == args and not overwrite:
            log(f"already built: {out}")
            return meta
        if not overwrite:
            raise FileExistsError(
                f"{out} exists but was not built with these arguments (or is incomplete); "
                "remove it or pass overwrite=True / --force")

    os.makedirs(os.path.dirname(out), exist_ok=True)
    _clean_stale_tmp(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    try:
        os.makedirs(os.path.join(tmp, "images"))
        meta = _build_into(tmp, args, int(workers), quiet, log)
        meta_text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(meta_text)
        old = None
        if os.path.exists(out):  # overwrite: move the old build aside first
            old = f"{out}.old-{os.getpid()}"
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            if old is not None and not os.path.exists(out):
                os.rename(old, out)  # put the previous build back
                old = None
            other = _read_meta(meta_path)
            if other is not None and other.get("args") == args:  # a concurrent build won
                shutil.rmtree(tmp, ignore_errors=True)
                log(f"already built (concurrently): {out}")
                return other
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    c = meta["counts"]
    log(f"built demo corpus in {time.time() - t0:.1f}s: {c['pairs_train']} train pairs "
        f"({c['captions_train']} captions), {c['pairs_test']} test pairs ({c['captions_test']} captions), "
        f"{c['images_train']} labelled images, {c['text_train']} text lines, "
        f"vocab {meta['vocab']['size']} -> {out}")
    return meta


def _build_into(root, args, workers, quiet, log):
    seed, S = args["seed"], args["image_size"]
    tasks = []  # (spec, path)

    def add_image(split, i, image_id, scene):
        rel = f"images/{image_id}.png"
        tasks.append((_spec(scene, seed, split, i), os.path.join(root, rel)))
        return rel

    held = tuple(args.get("held_out_shapes", ()))
    held_colours = tuple(args.get("held_out_colours", ()))
    what = "colour" if held_colours else "shape"
    held = held or held_colours
    exclude = {"exclude_colours": held} if held_colours else {"exclude_shapes": held}

    def one_held(i):  # a one-object scene of the i-th held-out shape or colour
        return {what: held[i % len(held)]}
    # test first: its scene keys are excluded from every training split
    test_keys, test_rows = set(), []
    for i in range(args["num_test"]):
        rng = _rng(seed, "pairs_test", i)
        scene, key = _sample_unique(rng, S, test_keys, "test", **exclude)
        test_keys.add(key)
        iid = f"test_{i:06d}"
        test_rows.append({"id": iid, "image": add_image("pairs_test", i, iid, scene),
                          "captions": make_captions(scene, rng), "scene": scene_record(scene)})
    unseen_rows = []
    for i in range(args["num_test"] if held else 0):
        # one object of a held-out shape (colour): every caption of a one-object scene names it
        rng = _rng(seed, "pairs_test_unseen", i)
        scene, key = _sample_unique(rng, S, test_keys, "test", n_objects=1, **one_held(i))
        test_keys.add(key)
        iid = f"unseen_{i:06d}"
        # "label": the shape (colour) alone, for the two-way zero-shot
        # classification (hexagon or star?) that the other attributes cannot answer
        unseen_rows.append({"id": iid, "image": add_image("pairs_test_unseen", i, iid, scene),
                            "captions": make_captions(scene, rng), "scene": scene_record(scene),
                            "label": held[i % len(held)]})

    train_rows = []
    anchors = args.get("held_out_pairs", 0) * len(held)
    for i in range(args["num_pairs"]):
        rng = _rng(seed, "pairs_train", i)
        if i < anchors:  # a rare anchor pair: one held-out object, every caption names it
            scene, _ = _sample_unique(rng, S, test_keys, "train", n_objects=1, **one_held(i))
        else:
            scene, _ = _sample_unique(rng, S, test_keys, "train", **exclude)
        iid = f"pair_{i:06d}"
        train_rows.append({"id": iid, "image": add_image("pairs_train", i, iid, scene),
                           "captions": make_captions(scene, rng), "scene": scene_record(scene)})

    image_rows = []
    for i in range(args["num_images"]):
        rng = _rng(seed, "images_train", i)
        colour, shape = LABELS[i % len(LABELS)].split(" ")  # balanced classes
        scene, _ = _sample_unique(rng, S, test_keys, "labelled", n_objects=1, colour=colour, shape=shape)
        iid = f"img_{i:06d}"
        image_rows.append({"id": iid, "image": add_image("images_train", i, iid, scene),
                           "label": f"{colour} {shape}", "scene": scene_record(scene)})

    text_lines = []
    for i in range(args["num_texts"]):
        rng = _rng(seed, "text_train", i)
        if rng.random() < 0.25:
            text_lines.append(make_filler(rng))
        else:
            scene, _ = _sample_unique(rng, S, test_keys, "text")
            text_lines.append(make_caption(scene, rng))

    _write_jsonl(os.path.join(root, "pairs_test.jsonl"), test_rows)
    if unseen_rows:
        _write_jsonl(os.path.join(root, "pairs_test_unseen.jsonl"), unseen_rows)
    _write_jsonl(os.path.join(root, "pairs_train.jsonl"), train_rows)
    _write_jsonl(os.path.join(root, "images_train.jsonl"), image_rows)
    with open(os.path.join(root, "text_train.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in text_lines)

    # draw
    t_draw = time.time()
    from tqdm import tqdm
    # disable=None: off when not a TTY
    bar = tqdm(total=len(tasks), desc="drawing", unit="img", disable=quiet or None, file=sys.stderr)
    if workers > 1 and len(tasks) > 64:
        import multiprocessing as mp
        with mp.get_context().Pool(workers, initializer=_worker_init) as pool:
            for _ in pool.imap_unordered(_draw_task, tasks, chunksize=32):
                bar.update(1)
    else:
        for task in tasks:
            _draw_task(task)
            bar.update(1)
    bar.close()
    log(f"drew {len(tasks)} images in {time.time() - t_draw:.1f}s")

    # vocabulary
    texts = [c for row in train_rows + test_rows for c in row["captions"]]
    texts += text_lines + list(LABELS) + [PROMPT]
    trainer = _train_bpe(texts, args["vocab_size"], os.path.join(root, "vocab"), min_frequency=2)
    with open(os.path.join(root, "vocab", "vocab.json"), encoding="utf-8") as f:
        real_vocab_size = len(json.load(f))

    meta = {
        "generator": "data_prep.make_demo_corpus",
        "generator_version": GENERATOR_VERSION,
        "args": args,
        "seed": seed,
        "image_size": S,
        "counts": {
            "pairs_train": len(train_rows),
            "pairs_test": len(test_rows),
            "images_train": len(image_rows),
            "text_train": len(text_lines),
            "captions_per_image": CAPTIONS_PER_IMAGE,
            "captions_train": CAPTIONS_PER_IMAGE * len(train_rows),
            "captions_test": CAPTIONS_PER_IMAGE * len(test_rows),
            "images_total": len(tasks),
        },
        "files": {
            "pairs_train": "pairs_train.jsonl",
            "pairs_test": "pairs_test.jsonl",
            "images_train": "images_train.jsonl",
            "text_train": "text_train.txt",
            "vocab": "vocab/vocab.json",
            "merges": "vocab/merges.txt",
        },
        "classes": {
            "colours": list(COLOURS),
            "shapes": list(SHAPES),
            "sizes": list(SIZES),
            "relations": [REL_PHRASE[r] for r in RELATIONS],
            "labels": list(LABELS),
        },
        "palette_rgb": {k: list(v) for k, v in PALETTE.items()},
        "prompt": PROMPT,
        "chance": retrieval_chance(len(test_rows)),
        "vocab": {"trainer": trainer, "requested_size": args["vocab_size"], "size": real_vocab_size},
    }
    if unseen_rows:  # the vocabulary above never saw these captions
        meta["counts"]["pairs_test_unseen"] = len(unseen_rows)
        meta["files"]["pairs_test_unseen"] = "pairs_test_unseen.jsonl"
        meta["held_out_colours" if held_colours else "held_out_shapes"] = list(held)
        meta["held_out_pairs"] = args.get("held_out_pairs", 0)
        meta["chance_held_out"] = 1.0 / len(held)  # the unseen split's "label": which held-out shape or colour
        meta["chance_unseen"] = retrieval_chance(len(unseen_rows))
        if not held_colours:  # the name the shape study's suites read
            meta["chance_shape"] = 1.0 / len(held)
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m data_prep.make_demo_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (e.g. data/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-pairs", type=int, default=2000, help="training image-text pairs (5 captions each)")
    p.add_argument("--num-images", type=int, default=1000, help="labelled single-object images")
    p.add_argument("--num-texts", type=int, default=4000, help="lines of the text-only corpus")
    p.add_argument("--num-test", type=int, default=100, help="held-out test images (5 captions each)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1, help="processes drawing images (output is identical)")
    p.add_argument("--held-out-shapes", default="", metavar="SHAPE,SHAPE",
                   help="shapes kept out of every image-text pair (image-only and text-only data keep them); "
                        "adds pairs_test_unseen.jsonl (the ablation study's controlled corpus)")
    p.add_argument("--held-out-colours", default="", metavar="COLOUR,COLOUR",
                   help="the same with colours (instead of --held-out-shapes)")
    p.add_argument("--held-out-pairs", type=int, default=0, metavar="N",
                   help="N training pairs per held-out shape or colour (rare, not absent)")
    p.add_argument("--force", action="store_true", help="rebuild even if --out exists")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        build_demo_corpus(a.out, seed=a.seed, num_pairs=a.num_pairs, num_images=a.num_images,
                          num_texts=a.num_texts, num_test=a.num_test, image_size=a.image_size,
                          vocab_size=a.vocab_size, workers=a.workers, quiet=a.quiet, overwrite=a.force,
                          held_out_shapes=tuple(s for s in a.held_out_shapes.split(",") if s),
                          held_out_pairs=a.held_out_pairs,
                          held_out_colours=tuple(c for c in a.held_out_colours.split(",") if c))
    except (FileExistsError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
