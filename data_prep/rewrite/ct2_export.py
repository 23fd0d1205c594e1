"""Export a Paddle translation checkpoint (:mod:`data_prep.rewrite.mt_model`,
``words`` tokenizer) to a CTranslate2 model directory.

    python -m data_prep.rewrite.ct2_export --model mt/en-de --out mt/en-de-ct2 [--quantization int8]

CTranslate2 then decodes it several times faster on CPU than dygraph Paddle
(``bench/bench_backtranslate.py`` measures both), and ``backtranslate
--forward ct2:mt/en-de-ct2`` uses it. The mapping is one to one: the Paddle
model is a pre-norm Transformer with scaled embeddings, a sinusoidal table
(exported as is) and an output projection tied to the target embedding,
which CTranslate2's ``TransformerSpec`` describes; Paddle linear weights are
[in, out] and CTranslate2's [out, in], hence the transposes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys


def _np(t):
    return t.numpy()


def _linear(spec, layer):
    spec.weight = _np(layer.weight).T.copy()
    spec.bias = _np(layer.bias)


def _norm(spec, layer):
    spec.gamma, spec.beta = _np(layer.weight), _np(layer.bias)


def _attention(spec, mha, self_attention):
    import numpy as np
    from ctranslate2.specs import common_spec
    q, k, v = (common_spec.LinearSpec() for _ in range(3))
    _linear(q, mha.q_proj)
    _linear(k, mha.k_proj)
    _linear(v, mha.v_proj)
    fuse = lambda dst, parts: (setattr(dst, "weight", np.concatenate([p.weight for p in parts])),  # noqa: E731
                               setattr(dst, "bias", np.concatenate([p.bias for p in parts])))
    if self_attention:
        fuse(spec.linear[0], [q, k, v])
    else:
        spec.linear[0].weight, spec.linear[0].bias = q.weight, q.bias
        fuse(spec.linear[1], [k, v])
    _linear(spec.linear[-1], mha.out_proj)


def build_spec(model, src_vocab, tgt_vocab):
    from ctranslate2.specs import transformer_spec
    cfg = model.cfg
    if not cfg.normalize_before:
        raise ValueError("only pre-norm models (normalize_before: true) are exported")
    spec = transformer_spec.TransformerSpec.from_config((cfg.num_encoder_layers, cfg.num_decoder_layers),
                                                        cfg.nhead, pre_norm=True)
    enc, dec = model.transformer.encoder, model.transformer.decoder
    pos = _np(model.pos)
    spec.encoder.embeddings[0].weight = _np(model.src_embed.weight)
    spec.encoder.position_encodings.encodings = pos
    _norm(spec.encoder.layer_norm, enc.norm)
    for s, layer in zip(spec.encoder.layer, enc.layers):
        _attention(s.self_attention, layer.self_attn, True)
        _norm(s.self_attention.layer_norm, layer.norm1)
        _norm(s.ffn.layer_norm, layer.norm2)
        _linear(s.ffn.linear_0, layer.linear1)
        _linear(s.ffn.linear_1, layer.linear2)
    spec.decoder.embeddings.weight = _np(model.tgt_embed.weight)
    spec.decoder.position_encodings.encodings = pos
    _norm(spec.decoder.layer_norm, dec.norm)
    spec.decoder.projection.weight = _np(model.tgt_embed.weight)
    spec.decoder.projection.bias = _np(model.out_bias)
    for s, layer in zip(spec.decoder.layer, dec.layers):
        _attention(s.self_attention, layer.self_attn, True)
        _norm(s.self_attention.layer_norm, layer.norm1)
        _attention(s.attention, layer.cross_attn, False)
        _norm(s.attention.layer_norm, layer.norm2)
        _norm(s.ffn.layer_norm, layer.norm3)
        _linear(s.ffn.linear_0, layer.linear1)
        _linear(s.ffn.linear_1, layer.linear2)
    spec.config.layer_norm_epsilon = float(enc.norm._epsilon)
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = "<s>", "</s>", "<unk>"
    spec.config.decoder_start_token = "<s>"
    spec.register_source_vocabulary(list(src_vocab.tokens))
    spec.register_target_vocabulary(list(tgt_vocab.tokens))
    return spec


def export(model_dir, out_dir, quantization=None):
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ImportError("the 'ctranslate2' package is not installed (pip install ctranslate2)") from None
    from data_prep.rewrite.mt_model import load_model
    model, cfg, src, tgt = load_model(model_dir)
    if cfg.tokenizer != "words":
        raise ValueError(f"{model_dir}: only 'words' checkpoints are exported (CTranslate2 takes token "
                         f"strings; a BPE model needs its tokenizer beside it)")
    spec = build_spec(model, src, tgt)
    spec.validate()
    spec.optimize(quantization=quantization)
    tmp = out_dir.rstrip("/") + ".tmp-export"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    spec.save(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data_prep.rewrite.ct2_export", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Paddle checkpoint directory (mt_model layout)")
    ap.add_argument("--out", required=True, help="CTranslate2 model directory to write")
    ap.add_argument("--quantization", choices=("int8", "int8_float32", "int16", "float16"), default=None)
    args = ap.parse_args(argv)
    try:
        export(args.model, args.out, args.quantization)
    except (ImportError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"ct2_export: {args.model} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
