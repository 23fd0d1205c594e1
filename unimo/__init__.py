"""UNIMO (Li et al., ACL 2021) and Unicoder-VL (Li et al., AAAI 2020).

One transformer over Faster R-CNN region features and text. Importing the
package registers the family with the shared registries (``vlcore``):

- ``model.py``: the single-stream encoder; ``objectives.py``: visual
  learning (masked region regression/classification), language learning
  (span MLM, seq2seq) and CMCL with rewritten positives and negatives;
  ``pretrain.py``: the pre-training model and its weighted sum of losses.
- ``builders.py``: ``Arch`` / ``Loss`` / ``DataLoader`` entries of
  pre-training (``UNIMO``). Unicoder-VL is this model with ``layout:
  unicoder`` ([CLS] text [SEP] regions), its masked object classification
  and visual-linguistic matching: the preset configs/unicoder_vl/arch/base.yaml
  and configs/unicoder_vl/loss/*.yaml (docs/design.md).
- Tasks: ``retrieval*.py``, ``finetune_cls.py`` (VQA, SNLI-VE, GLUE),
  ``seq2seq.py`` and ``generation.py`` (captioning, text generation).
- ``convert.py``: the official UNIMO checkpoints and PaddleNLP text weights.
"""
# Each import registers part of the family (see vlcore.framework.registry).
from unimo import (  # noqa: F401
    builders,  # Arch UNIMO, UNIMOForRetrieval; Loss UNIMOPretrain; UNIMOCorpora; UNIMORetrieval
    convert,  # Global.init_from: unimo-official, roberta-paddlenlp, bert-paddlenlp
    finetune_cls,  # UNIMOForClassification (VQA, SNLI-VE, GLUE); infer answer
    retrieval_finetune,  # task UNIMORetrieval
    seq2seq,  # UNIMOForCaptioning, UNIMOForSeq2Seq; their tasks, evaluator, infer
)
