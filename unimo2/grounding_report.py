"""What the grounded dictionary learned, as UNIMO-2 Appendix A shows it
(Figure 3), and whether it is used at all.

The paper (``unimo2_paper.txt``, Appendix A): "We map each patch or token
into a grounded token with which has the largest similarity between their
representations by Equation 1. For each grounded token, the patches and
tokens that have the largest similarity scores are selected and
visualized." So:

- every image patch (the ViT's outputs without [CLS]) and every text token
  (the text encoder's outputs without [CLS], padding and special tokens) is
  mapped to ``argmax_j x_ij``, ``x_ij = sigmoid(eta * v_i . g_j)`` (Eq. 1,
  :meth:`unimo2.grounding.GroundedDictionary.similarity`);
- for each dictionary entry, the patches and tokens mapped to it, best
  ``x_ij`` first (compared as logits ``eta * v_i . g_j``: float32's sigmoid
  saturates to 1.0 and would tie them; the JSON's ``score`` is the logit).
  A token is shown as the whole word it belongs to (the tokenizer's
  ``word_start``), so a BPE or WordPiece piece reads as a word.
  At most two patches of one image per entry, so one picture does not fill
  a row with its neighbouring patches (our choice; the paper is silent).

Usage statistics, because a collapsed dictionary is the first thing to
see: for each image alone and each text alone, its top-K grounded tokens as
the model computes them (Eq. 2, :meth:`unimo2.model.UNIMO2Model.ground`);
how many entries are ever in a top-K, the entropy of how often each entry
is (bits; ``2**H`` is the number of equally used entries it equals), and
the share of all top-K places held by the K most frequent entries (1.0:
every input gets the same grounded tokens, a collapsed dictionary). The
same counts for the nearest-entry map of patches and words, and how many
entries both modalities use.
"""
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import paddle

PATCHES_PER_IMAGE = 2  # per entry in the figure


@dataclass
class Mapped:
    """Tokens of one modality mapped to their nearest entries."""
    entry: List[int] = field(default_factory=list)
    score: List[float] = field(default_factory=list)  # logit of Eq. 1 (x_ij is its sigmoid)
    source: List[int] = field(default_factory=list)   # image or text index
    where: List[int] = field(default_factory=list)    # patch index, or token position
    label: List[str] = field(default_factory=list)    # the word ("" for patches)


@dataclass
class Analysis:
    dict_size: int
    top_k: int
    eta: float
    grid: int                                # patches per side
    patches: Mapped
    words: Mapped
    image_top_k: List[List[int]]             # per image, its grounded tokens
    text_top_k: List[List[int]]              # per text


def _dictionary(model):
    grounding = model.model.grounding
    if grounding is None:
        raise ValueError("this model has no grounded dictionary (Arch.grounding.mode: none)")
    if grounding.mode != "topk":
        raise ValueError(f"grounding mode {grounding.mode!r}: the figure is for the top-K dictionary")
    return grounding


def _nearest(grounding, feats):
    """(entry, logit) of every token, ``[B, L]``: the argmax of Eq. 1 and
    its logit ``eta * v_i . g_j``. Taken on the logit: the sigmoid is
    monotonic, but in float32 it saturates to exactly 1.0 for large logits
    (eta starts at 100), and a tie would send every such token to the entry
    with the lowest id."""
    logits = grounding.eta() * paddle.matmul(feats, grounding.embedding, transpose_y=True)
    return paddle.argmax(logits, axis=-1).numpy(), paddle.max(logits, axis=-1).numpy()


def _words(tok, ids):
    """The word each position of ``ids`` belongs to ("" for special tokens)."""
    out, start = [""] * len(ids), None
    bounds = []
    for p, t in enumerate(ids):
        if t in tok.special_ids:
            start = None
            continue
        if start is None or tok.word_start[t]:
            start = p
            bounds.append([p, p + 1])
        else:
            bounds[-1][1] = p + 1
    for a, b in bounds:
        word = tok.decode([int(t) for t in ids[a:b]]).strip()
        for p in range(a, b):
            out[p] = word
    return out


def analyse(model, enc, paths, texts, batch_size=32) -> Analysis:
    """Map the patches of ``paths`` and the tokens of ``texts`` (``enc``: a
    :class:`unimo2.retrieval.UNIMO2Encoder`) to their nearest entries, and
    take every image's and text's top-K grounded tokens."""
    grounding = _dictionary(model)
    patches, words = Mapped(), Mapped()
    image_top, text_top, grid = [], [], 0
    with paddle.no_grad():
        for s in range(0, len(paths), batch_size):
            img = enc.images(model, paths[s:s + batch_size])
            feats = img[:, 1:]
            grid = int(round(math.sqrt(feats.shape[1])))
            entry, score = _nearest(grounding, feats)
            for b in range(entry.shape[0]):
                for p in range(entry.shape[1]):
                    patches.entry.append(int(entry[b, p]))
                    patches.score.append(float(score[b, p]))
                    patches.source.append(s + b)
                    patches.where.append(p)
                    patches.label.append("")
            image_top += model.model.ground(img).indices.numpy().tolist()
        for s in range(0, len(texts), batch_size):
            txt, mask = enc.texts(model, texts[s:s + batch_size])
            ids, _ = enc.token_ids(texts[s:s + batch_size])
            entry, score = _nearest(grounding, txt[:, 1:])
            for b in range(entry.shape[0]):
                row = [int(t) for t in ids[b]]
                labels = _words(enc.tok, row)
                for p in range(1, len(row)):
                    if row[p] == enc.tok.pad_id or not labels[p]:
                        continue
                    words.entry.append(int(entry[b, p - 1]))
                    words.score.append(float(score[b, p - 1]))
                    words.source.append(s + b)
                    words.where.append(p)
                    words.label.append(labels[p])
            text_top += model.model.ground(None, txt, mask).indices.numpy().tolist()
    return Analysis(grounding.dict_size, grounding.top_k, float(grounding.eta().numpy().reshape(-1)[0]), grid,
                    patches, words, image_top, text_top)


def _spread(counts: Counter, total_entries, k=None):
    """Distinct entries, entropy (bits), 2**entropy, and the share of the k
    most frequent entries."""
    n = sum(counts.values())
    if not n:
        return {"distinct": 0, "entropy_bits": 0.0, "equally_used_entries": 0.0}
    p = np.array(list(counts.values()), np.float64) / n
    h = float(-(p * np.log2(p)).sum())
    out = {"distinct": len(counts), "of": total_entries, "entropy_bits": round(h, 3),
           "max_entropy_bits": round(math.log2(total_entries), 3), "equally_used_entries": round(2 ** h, 1)}
    if k:
        out[f"share_of_top_{k}"] = round(sum(c for _, c in counts.most_common(k)) / n, 3)
        out["share_if_used_evenly"] = round(k / total_entries, 4)
    return out


def usage(a: Analysis) -> Dict:
    """The dictionary's usage statistics (see the module docstring)."""
    img = Counter(j for row in a.image_top_k for j in row)
    txt = Counter(j for row in a.text_top_k for j in row)
    near_p, near_w = Counter(a.patches.entry), Counter(a.words.entry)
    return {
        "dict_size": a.dict_size, "top_k": a.top_k, "temperature": round(a.eta, 4),
        "images": len(a.image_top_k), "texts": len(a.text_top_k),
        "top_k_of_images": _spread(img, a.dict_size, a.top_k),
        "top_k_of_texts": _spread(txt, a.dict_size, a.top_k),
        "entries_in_some_top_k": len(set(img) | set(txt)),
        "entries_in_top_k_of_both": len(set(img) & set(txt)),
        "nearest_of_patches": _spread(near_p, a.dict_size),
        "nearest_of_words": _spread(near_w, a.dict_size),
        "nearest_of_both": len(set(near_p) & set(near_w)),
    }


def entries(a: Analysis, paths, n_entries=10, per_entry=6) -> List[Dict]:
    """The figure's rows: the entries with the most patches and words mapped
    to them (entries holding both modalities first), each with its best
    patches and words."""
    by_entry_p, by_entry_w = defaultdict(list), defaultdict(list)
    for i, j in enumerate(a.patches.entry):
        by_entry_p[j].append(i)
    for i, j in enumerate(a.words.entry):
        by_entry_w[j].append(i)
    ranked = sorted(set(by_entry_p) | set(by_entry_w),
                    key=lambda j: (-(j in by_entry_p and j in by_entry_w),
                                   -(len(by_entry_p[j]) + len(by_entry_w[j])), j))
    rows = []
    for j in ranked[:n_entries]:
        shown, per_image = [], Counter()
        for i in sorted(by_entry_p[j], key=lambda i: -a.patches.score[i]):
            src = a.patches.source[i]
            if per_image[src] < PATCHES_PER_IMAGE:
                per_image[src] += 1
                p = a.patches.where[i]
                shown.append({"image": paths[src], "row": p // a.grid, "col": p % a.grid,
                              "score": round(a.patches.score[i], 4)})
            if len(shown) == per_entry:
                break
        rows.append({"entry": int(j), "patches": len(by_entry_p[j]), "tokens": len(by_entry_w[j]),
                     "top_patches": shown, "top_words": _top_words(a.words, by_entry_w[j], per_entry)})
    return rows


def _top_words(words: Mapped, members, top) -> List[Dict]:
    best, count = {}, Counter()
    for i in members:
        w = words.label[i]
        count[w] += 1
        best[w] = max(best.get(w, 0.0), words.score[i])
    order = sorted(best, key=lambda w: (-best[w], -count[w], w))[:top]
    return [{"word": w, "score": round(best[w], 4), "count": count[w]} for w in order]


def entry_words(model, enc, texts, top=5) -> Dict[int, List[Tuple[str, float]]]:
    """For each dictionary entry that some word of ``texts`` is nearest to:
    its words, best similarity (Eq. 1) first (the demo page's labels)."""
    a = analyse(model, enc, [], texts)
    by_entry = defaultdict(list)
    for i, j in enumerate(a.words.entry):
        by_entry[j].append(i)
    return {j: [(w["word"], w["score"]) for w in _top_words(a.words, members, top)]
            for j, members in by_entry.items()}


def patch_crop(enc, path, row, col, grid, size=48):
    """The patch at (row, col) of the image as the model saw it (resized to
    its input size), enlarged to ``size`` pixels (nearest neighbour)."""
    img = enc.preprocess.resize(enc.preprocess.decode(path))   # uint8 RGB [S, S, 3]
    h, w = img.shape[:2]
    y0, y1 = row * h // grid, (row + 1) * h // grid
    x0, x1 = col * w // grid, (col + 1) * w // grid
    crop = img[y0:y1, x0:x1]
    ys = (np.arange(size) * crop.shape[0] // size).clip(0, crop.shape[0] - 1)
    xs = (np.arange(size) * crop.shape[1] // size).clip(0, crop.shape[1] - 1)
    return crop[ys][:, xs]


def label_overlap(model, enc, paths, labels, prompt="a {label}", groups=None) -> Dict:
    """Does the grounded dictionary link a word and its look? For each label:
    the images of that label and the prompt naming it (``prompt`` with
    ``{label}`` filled), each with its own top-K grounded tokens (Eq. 2 on
    the image alone, on the text alone). ``matrix[i][j]``: the share of
    prompt j's K tokens that an image of label i also has, averaged over
    those images. If the dictionary is the shared space the paper describes
    ("anchor points" between unpaired images and texts, Figure 1), the
    diagonal stands above the rest; with no link, every cell is near
    ``chance`` = K / C (two random K-sets of C entries share K/C of their
    entries on average). ``groups`` (name -> labels) averages the diagonal
    (``matched``) and the rest of those rows (``mismatched``) over a group,
    e.g. the shapes the pairs carry and the held-out ones."""
    names = sorted(set(labels))
    a = analyse(model, enc, paths, [prompt.replace("{label}", n) for n in names])
    k, texts = a.top_k, [set(t) for t in a.text_top_k]
    per_image = np.array([[len(set(row) & t) / k for t in texts] for row in a.image_top_k])  # [images, labels]
    index = {n: i for i, n in enumerate(names)}
    rows = np.array([index[label] for label in labels])
    matrix = np.stack([per_image[rows == i].mean(axis=0) for i in range(len(names))])

    def summary(members):
        idx = [index[m] for m in members if m in index]
        if not idx:
            raise ValueError(f"no images of {sorted(members)} among the labels {names}")
        off = [matrix[i, j] for i in idx for j in range(len(names)) if j != i]
        return {"labels": [names[i] for i in idx], "matched": round(float(np.mean([matrix[i, i] for i in idx])), 4),
                "mismatched": round(float(np.mean(off)), 4) if off else None}
    return {"prompt": prompt, "labels": names, "images": {n: int((rows == i).sum()) for i, n in enumerate(names)},
            "top_k": k, "dict_size": a.dict_size, "chance": round(k / a.dict_size, 4),
            "matrix": np.round(matrix, 4).tolist(), "all": summary(names),
            "groups": {g: summary(m) for g, m in (groups or {}).items()}}
