"""Hugging Face checkpoint directories (``config.json`` + ``model.safetensors``)
as the Paddle layouts the converters already map: BERT and RoBERTa into
PaddleNLP's names, ViT into PaddleClas's.

The tensors are read with :mod:`vlcore.formats.weights_file` (the
``safetensors`` package; no code runs; bfloat16 checkpoints are widened to
float32 exactly); the architecture sizes come from ``config.json`` and a size that
differs from the config the model was built from is refused by name
(``config.json: hidden_size=384 but Arch.hidden_size=768``). The renaming
follows the public layouts:

- BERT / RoBERTa (transformers ``modeling_bert.py`` / ``modeling_roberta.py``
  names, e.g. ``FacebookAI/roberta-base``, ``google-bert/bert-base-uncased``):
  ``encoder.layer.{i}.attention.self.{query,key,value}`` -> PaddleNLP's
  ``encoder.layers.{i}.self_attn.{q,k,v}_proj``, ``attention.output.dense``
  -> ``self_attn.out_proj``, ``attention.output.LayerNorm`` -> ``norm1``,
  ``intermediate.dense`` -> ``linear1``, ``output.dense`` -> ``linear2``,
  ``output.LayerNorm`` -> ``norm2``, ``embeddings.LayerNorm`` ->
  ``embeddings.layer_norm``; BERT's MLM head ``cls.predictions.transform.dense``
  / ``.LayerNorm`` / ``.bias`` / ``.decoder.weight`` -> ``cls.predictions.transform``
  / ``layer_norm`` / ``decoder_bias`` / ``decoder_weight``; RoBERTa's
  ``lm_head.*`` keeps its names. Old checkpoints' ``gamma`` / ``beta`` are
  LayerNorm ``weight`` / ``bias``.
- ViT (transformers ``modeling_vit.py``, ``google/vit-base-patch16-224-in21k``
  and ``-224``): ``embeddings.{cls_token, position_embeddings,
  patch_embeddings.projection}`` -> ``cls_token``, ``pos_embed``,
  ``patch_embed.proj``; per layer ``layernorm_before`` / ``layernorm_after``
  -> ``norm1`` / ``norm2``, ``attention.attention.{query,key,value}`` fused
  into PaddleClas's ``attn.qkv`` (columns q | k | v), ``attention.output.dense``
  -> ``attn.proj``, ``intermediate.dense`` / ``output.dense`` -> ``mlp.fc1`` /
  ``mlp.fc2``; the final ``layernorm`` -> ``norm``; ``classifier`` -> ``head``
  (the ImageNet classifier); the in21k checkpoints' ``pooler`` keeps its name.

PyTorch's ``Linear`` stores its weight [out, in] and Paddle's [in, out]:
every Linear weight is transposed; embeddings and the patch convolution are
not. A tensor these rules do not know keeps its name, so the strict mapping
names it in its error.
"""
import json
import os
import re

import numpy as np

from vlcore.convert.mapping import ConversionError
from vlcore.formats import weights_file

_LINEAR = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense", "pooler.dense", "cls.predictions.transform.dense",
           "lm_head.dense", "attention.attention.query", "attention.attention.key", "attention.attention.value",
           "classifier")


def read_hf_checkpoint(path, model_types):
    """``(config, tensors, config_path)`` of a Hugging Face directory (or its
    ``model.safetensors`` file, with ``config.json`` beside it) whose
    ``model_type`` is one of ``model_types``."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    weights = os.path.join(directory, "model.safetensors") if os.path.isdir(path) else path
    config_path = os.path.join(directory, "config.json")
    for p in (config_path, weights):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such file (a Hugging Face checkpoint directory holds config.json "
                                    f"and model.safetensors)")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as e:
        raise ConversionError(f"{config_path}: not JSON ({e})") from None
    if config.get("model_type") not in model_types:
        raise ConversionError(f"{config_path}: model_type {config.get('model_type')!r}, expected "
                              f"{' or '.join(model_types)}")
    try:
        tensors = weights_file.load(weights)  # bf16 checkpoints are widened to float32, exactly
    except weights_file.WeightsFileError as e:
        raise ConversionError(str(e)) from None
    return config, tensors, config_path


def check_sizes(config, config_path, expected):
    """Refuse the first ``config.json`` size that differs from the model's:
    ``expected`` maps a config.json key to ``(config key, value)``."""
    for key, (ours, value) in expected.items():
        if key in config and config[key] != value:
            raise ConversionError(f"{config_path}: {key}={config[key]} but {ours}={value}")


def encoder_sizes(hidden_size, num_layers, num_heads, section="Arch."):
    """The ``config.json`` sizes of a transformer encoder against the
    model's (``section``: where its layer and head counts live), for
    :func:`check_sizes`; the feed-forward size is 4 x hidden in this toolkit."""
    return {"hidden_size": ("Arch.hidden_size", hidden_size),
            "num_hidden_layers": (f"{section}num_layers", num_layers),
            "num_attention_heads": (f"{section}num_heads", num_heads),
            "intermediate_size": ("the feed-forward size 4 x Arch.hidden_size", 4 * hidden_size)}


def read_as_paddle(path, model_type, expected=()):
    """The tensors of a Hugging Face directory under the Paddle names of the
    same model (BERT / RoBERTa: PaddleNLP's, ViT: PaddleClas's), after
    ``config.json`` was checked against ``expected`` (see :func:`check_sizes`)."""
    config, tensors, config_path = read_hf_checkpoint(path, (model_type,))
    check_sizes(config, config_path, dict(expected))
    return vit_to_paddleclas(tensors) if model_type == "vit" else text_to_paddlenlp(tensors)


def _rename_norms(name):
    return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))


def _is_linear_weight(name, value):
    return name.endswith(".weight") and value.ndim == 2 and any(f"{s}.weight" in name or name == f"{s}.weight"
                                                                for s in _LINEAR)


def text_to_paddlenlp(tensors):
    """BERT / RoBERTa tensors under PaddleNLP's names (see the module doc)."""
    out = {}
    for name, value in tensors.items():
        if _is_linear_weight(name, value):
            value = np.ascontiguousarray(value.T)
        n = _rename_norms(name)
        n = re.sub(r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
                   lambda m: f"encoder.layers.{m.group(1)}.self_attn.{m.group(2)[0]}_proj.", n)
        n = re.sub(r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.layers.\1.self_attn.out_proj.", n)
        n = re.sub(r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.layers.\1.norm1.", n)
        n = re.sub(r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.layers.\1.linear1.", n)
        n = re.sub(r"encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.layers.\1.linear2.", n)
        n = re.sub(r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.layers.\1.norm2.", n)
        n = n.replace("embeddings.LayerNorm.", "embeddings.layer_norm.")
        n = n.replace("cls.predictions.transform.dense.", "cls.predictions.transform.")
        n = n.replace("cls.predictions.transform.LayerNorm.", "cls.predictions.layer_norm.")
        n = {"cls.predictions.bias": "cls.predictions.decoder_bias",
             "cls.predictions.decoder.weight": "cls.predictions.decoder_weight"}.get(n, n)
        if n == "cls.predictions.decoder.bias":   # transformers ties it to cls.predictions.bias
            if "cls.predictions.bias" in tensors and np.array_equal(value, tensors["cls.predictions.bias"]):
                continue
            raise ConversionError("cls.predictions.decoder.bias differs from cls.predictions.bias")
        out[n] = value
    return out


def vit_to_paddleclas(tensors):
    """ViT tensors under PaddleClas's names (see the module doc)."""
    src = {re.sub(r"^vit\.", "", _rename_norms(k)): v for k, v in tensors.items()}
    out = {}
    qkv = {}
    for name, value in src.items():
        m = re.match(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$", name)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        if _is_linear_weight(name, value):
            value = np.ascontiguousarray(value.T)
        n = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
             "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
             "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
             "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
             "classifier.weight": "head.weight", "classifier.bias": "head.bias"}.get(name, name)
        n = re.sub(r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1.", n)
        n = re.sub(r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2.", n)
        n = re.sub(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj.", n)
        n = re.sub(r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1.", n)
        n = re.sub(r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2.", n)
        out[n] = value
    for (i, kind), parts in sorted(qkv.items()):
        if set(parts) != {"query", "key", "value"}:
            raise ConversionError(f"encoder.layer.{i}.attention.attention: {kind} of "
                                  f"{sorted(parts)} only (query, key and value are needed)")
        cols = [parts[p].T if kind == "weight" else parts[p] for p in ("query", "key", "value")]
        out[f"blocks.{i}.attn.qkv.{kind}"] = np.ascontiguousarray(np.concatenate(cols, axis=-1))
    return out
