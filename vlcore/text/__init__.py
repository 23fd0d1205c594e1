"""Text in and out: the tokenizers (byte-level BPE, the official UNIMO
dictionary) and sequence generation (beam search, sampling) over any model
that gives next-token logits. Shared by training and data preparation."""
