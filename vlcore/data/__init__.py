"""The data pipeline shared by the families: image decoding and
augmentation, text helpers, MLM masking, step-indexed batching that makes a
resumed run read the same data, curriculum schedules, worker setup, and the
fine-tuning data (``DataLoader.Train: Finetune``) with its task protocol."""
