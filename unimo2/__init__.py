"""UNIMO-2 (Li et al., ACL 2022): end to end from pixels.

Importing the package registers the family with the shared registries
(``vlcore``). The paper's Section 3, by file:

- ``vit.py`` (visual encoder), ``text_encoder.py`` (RoBERTa-shaped text
  encoder), ``grounding.py`` (the grounded dictionary: top-K lookup, the
  grounding loss), ``grounded_transformer.py`` (the Grounded Transformer),
  ``model.py`` (the whole model), ``objectives.py`` and ``heads.py`` (MLM,
  ITM, ITC/VCL), ``data.py`` (pairs, images, text and the curriculum).
- ``builders.py``: ``Arch`` / ``Loss`` / ``DataLoader`` entries of
  pre-training.
- Tasks: ``retrieval*.py``, ``zeroshot_cls.py``, ``finetune_cls.py`` (VQA,
  SNLI-VE, GLUE, ImageNet), ``seq2seq.py`` (captioning).
- ``convert.py``: the official UNIMO-2 checkpoints, PaddleClas ViT and
  PaddleNLP RoBERTa; ``inference.py`` / ``predictor.py``: export and serving.
"""
# Each import registers part of the family (see vlcore.framework.registry).
from unimo2 import (  # noqa: F401
    builders,  # Arch UNIMO2, UNIMO2ForRetrieval; UNIMO2Pretrain; UNIMO2Corpora; ZeroShotRetrieval
    convert,  # Global.init_from: unimo2-official, roberta-paddlenlp, vit-paddleclas
    finetune_cls,  # UNIMO2ForClassification (VQA, SNLI-VE, GLUE, ImageNet); infer answer
    retrieval_finetune,  # task UNIMO2Retrieval
    seq2seq,  # UNIMO2ForCaptioning; task UNIMO2Caption; evaluator; infer caption
    zeroshot_cls,  # ZeroShotClassification
)
