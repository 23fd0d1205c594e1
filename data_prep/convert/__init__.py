"""Converters from the public dataset formats to the toolkit's manifests
(:mod:`vlcore.formats.manifests`) and text corpora. One module per format;
one command line::

    python -m data_prep.convert <format> --src ... --out ... [--strict]

Formats: ``coco`` / ``flickr30k`` / ``flickr8k`` (Karpathy split JSON),
``vg`` (Visual Genome region descriptions), ``cc`` / ``sbu`` (web caption
TSVs / SBU's release files), ``vqa`` (VQA v1 and v2), ``snli_ve`` (both
generator versions), ``glue``, ``image_folder``
(ImageNet-style class folders), ``text`` (plain text corpora), ``seq2seq``
(line-parallel source/target text). Each module's docstring gives the input
layout it expects (versions and key spellings, with the source they were
taken from) and what it writes; docs/datasets.md summarises them.
"""
