"""Shared core of the UNIMO-family toolkit.

Everything both model packages (``unimo`` and ``unimo2``) use lives here:
config loading, the training engine and its fleet glue, transformer layers,
the tokenizer, data utilities, metrics and checkpoint I/O. Model packages
import from here and never from each other.
"""
