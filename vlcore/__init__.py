"""The shared package of the UNIMO-family toolkit: what both model packages
(``unimo``, ``unimo2``) and the data-preparation tools (``data_prep``) use.

Subpackages, from the bottom up (the import rule is docs/design.md's table,
checked by tests/test_architecture.py):

- ``formats``: on-disk formats (manifests, region store, rewrites, token
  shards, atomic writes); no Paddle.
- ``layers``: transformer building blocks, heads and the weighted sum of
  objectives.
- ``text``: the tokenizers and sequence generation (beam search, sampling).
- ``viz``: pictures drawn with matplotlib (training curves, retrieval
  sheets, image grids); of the toolkit it imports only ``formats``.
- ``framework``: config, registry, schema, training engine and run, dist,
  checkpoints, optimizer, logging, command-line plumbing.
- ``data``: image decoding, masking, batching, schedules, the fine-tuning
  data pipeline.
- ``convert``: converting other people's checkpoints (strict mappings).
- ``tasks``: task machinery shared by the families: classification (VQA,
  SNLI-VE, GLUE, images), seq2seq, retrieval evaluation and losses, metrics,
  command-line inference.
"""
