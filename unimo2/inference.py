"""UNIMO-2 for inference: image + caption -> matching logits and embeddings.

:func:`export` saves :class:`UNIMO2Scorer` with ``paddle.jit.save`` into a
self-contained directory that :mod:`unimo2.predictor` serves without the
training code: ``model.json`` + ``model.pdiparams`` (the program and its
weights), ``export.json`` (inputs, outputs, preprocessing) and
``tokenizer/`` (a copy of the vocabulary files).

The batch size is dynamic; the text length is fixed at export time (the
text encoder's position ids and the attention plans are built from Python
shapes), so captions are padded or truncated to it. Padding tokens are
masked, so the length does not change the scores -- except under
``Arch.grounding.exclude_padding: false`` (the official behaviour), where
padding tokens vote for grounded tokens and the exported length matters.
"""
import json
import os
import shutil

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

OUTPUTS = ("itm_logits", "image_embedding", "text_embedding")
FORMAT = "unimo2-scorer/1"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "vocab.txt")


class UNIMO2Scorer(nn.Layer):
    """``(pixels [B,3,S,S], ids [B,L], mask [B,L]) -> (itm_logits [B,2],
    image_embedding [B,P], text_embedding [B,P])``: the grounded
    transformer's matching logits (index 1 = match) and the L2-normalised
    ITC embeddings of the unimodal [CLS] features."""

    def __init__(self, model, use_grounding=True):
        super().__init__()
        self.net = model
        self.use_grounding = use_grounding

    def forward(self, pixels, ids, mask):
        image = self.net.model.encode_image(pixels)
        text = self.net.model.encode_text(ids, mask)
        logits, _ = self.net.itm_logits(image, text, mask, self.use_grounding)
        return logits, self.net.embed_image(image), self.net.embed_text(text)


def _tokenizer_files(tokenizer_dir):
    """The vocabulary files BPETokenizer.from_dir reads (names may carry a prefix)."""
    return sorted(f for f in os.listdir(tokenizer_dir)
                  if any(f == n or f.endswith("." + n) or f.endswith("-" + n) for n in TOKENIZER_FILES))


def export(model, out_dir, image_size, max_len, tokenizer_dir, image_mean, image_std,
           use_grounding=True, info=None, image_preprocess="opencv"):
    """Write the inference directory (into a temporary sibling, then renamed,
    so an interrupted export never leaves a half-written ``out_dir``)."""
    if max_len < 2:
        raise ValueError(f"--max-len {max_len}: needs room for [CLS] and [SEP]")
    files = _tokenizer_files(tokenizer_dir) if tokenizer_dir and os.path.isdir(tokenizer_dir) else []
    if not files:
        raise FileNotFoundError(f"Global.tokenizer_dir={tokenizer_dir!r}: no vocabulary files to ship with the model")
    model.eval()
    scorer = UNIMO2Scorer(model, use_grounding)
    scorer.eval()
    spec = [InputSpec([None, 3, image_size, image_size], "float32", "pixels"),
            InputSpec([None, max_len], "int64", "ids"), InputSpec([None, max_len], "bool", "mask")]
    out_dir = os.path.abspath(out_dir)
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "tokenizer"))
    paddle.jit.save(scorer, os.path.join(tmp, "model"), input_spec=spec)
    for f in files:
        shutil.copy2(os.path.join(tokenizer_dir, f), os.path.join(tmp, "tokenizer", f))
    meta = {"format": FORMAT, "model": "model", "inputs": {
                "pixels": {"shape": [-1, 3, image_size, image_size], "dtype": "float32",
                           "layout": "NCHW RGB, (x / 255 - mean) / std",
                           "preprocess": image_preprocess},
                "ids": {"shape": [-1, max_len], "dtype": "int64", "layout": "[CLS] caption [SEP] padding"},
                "mask": {"shape": [-1, max_len], "dtype": "bool", "layout": "True for real tokens"}},
            "outputs": list(OUTPUTS), "image_size": image_size, "image_mean": list(image_mean),
            "image_std": list(image_std), "image_preprocess": image_preprocess, "max_len": max_len,
            "use_grounding": use_grounding,
            "tokenizer": "tokenizer", **(info or {})}
    with open(os.path.join(tmp, "export.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
