"""Task machinery both families share: classification tasks (VQA, SNLI-VE,
GLUE, image classification) and their evaluator, seq2seq fine-tuning and
generation evaluation, retrieval evaluation and losses, VQA answer
normalisation, caption and generation metrics, and the registry-driven
command-line inference (tools/infer.py). A family adds its model and heads
in its own package (e.g. ``unimo2/finetune_cls.py``)."""
