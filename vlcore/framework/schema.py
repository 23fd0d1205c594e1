"""The top-level config schema and the registries every builder goes through.

A config file has the PaddleClas-style sections ``Global``, ``Arch``,
``Loss``, ``Optimizer``, ``LRScheduler`` and ``DataLoader`` (``Train`` and
``Eval``). ``Arch``, ``Loss``, ``DataLoader.Train`` and ``DataLoader.Eval``
carry a ``name`` that picks a registered dataclass (and builder) from the
tables of :mod:`vlcore.framework.registry`; model packages register theirs
when imported (``import unimo, unimo2``).
"""
from dataclasses import dataclass, field
from typing import List, Literal, Optional

from vlcore.framework.config import at_least, not_a_file
from vlcore.framework.init_from import parse_init_from
from vlcore.framework.registry import ARCH, EVALUATOR, LOSS, TRAIN_DATA


def vocab_size_resolver(path="vocab_size"):
    """An Arch builder's ``resolve(arch_cfg, tokenizer)`` for the vocabulary
    size at the dotted ``path`` of the Arch config: 0 means the tokenizer's
    size; a tokenizer larger than the embedding table is an error before any
    work starts."""
    *parents, leaf = path.split(".")

    def resolve(cfg, tokenizer):
        holder = cfg
        for name in parents:
            holder = getattr(holder, name)
        size = getattr(holder, leaf)
        if size == 0:
            setattr(holder, leaf, tokenizer.vocab_size)
        elif tokenizer.vocab_size > size:
            raise ValueError(f"Arch.{path}={size} is smaller than the tokenizer ({tokenizer.vocab_size} entries)")
    return resolve


@dataclass
class GlobalConfig:
    # Range checks (``at_least``...) run in the config validator, which names
    # the key and the file that set it, before any work starts.

    # the run directory: config.yaml, train.log, metrics.jsonl, vdl/, checkpoints
    output_dir: str = field(default="output/run", metadata=not_a_file())
    seed: int = 42                 # initialisation, data order, masking, dropout
    max_steps: int = field(default=1000, metadata=at_least(1))     # optimizer steps
    accum_steps: int = field(default=1, metadata=at_least(1))      # micro-batches per optimizer step
    log_interval: int = field(default=10, metadata=at_least(1))    # optimizer steps per log line (mean losses)
    save_interval: int = field(default=500, metadata=at_least(1))  # optimizer steps per checkpoint
    eval_interval: int = field(default=0, metadata=at_least(0))    # 0: evaluate only at the end
    keep_last: int = field(default=3, metadata=at_least(0))        # checkpoints kept (0 = all)
    resume: str = ""               # "" | "auto" | a checkpoint directory
    checkpoint: str = ""           # weights to evaluate (tools/eval.py); "" = latest in output_dir
    # weights to start from: a weights file (.safetensors, .pdparams) or checkpoint dir and/or
    # converted sources "KIND:PATH[,KIND:PATH]" (e.g. vit-paddleclas:vit.pdparams)
    init_from: str = ""
    tokenizer_dir: str = ""        # vocab.json+merges.txt or the official UNIMO dict
    device: Literal["auto", "cpu", "gpu"] = "auto"   # auto: a GPU if this Paddle build has CUDA
    amp: Literal["off", "fp16", "bf16"] = "off"     # mixed precision on GPU; on CPU it logs that it is off
    strict_data: bool = False      # stop at the first bad record instead of skipping it
    visualdl: bool = True          # also write VisualDL scalars to <output_dir>/vdl
    progress_bar: bool = True      # on rank 0, when stderr is a terminal
    plot_curves: bool = True       # draw <output_dir>/curves.png (every logged number) when training ends

    def __post_init__(self):
        if self.init_from:
            parse_init_from(self.init_from)  # syntax and source kinds, before any work


@dataclass
class OptimizerConfig:
    name: Literal["AdamW"] = "AdamW"
    lr: float = 5e-5
    weight_decay: float = 0.01     # never applied to biases, LayerNorm and scalars
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    grad_clip: float = 1.0         # max global gradient norm; 0 disables


@dataclass
class LRSchedulerConfig:
    # scale_by_epoch_decay: lr * decay_rate**(number of decay_epochs passed),
    # the stepwise schedule of UNIMO-2's fine-tuning (Table 9).
    name: Literal["linear", "constant", "cosine", "scale_by_epoch_decay"] = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0      # used when warmup_steps is 0
    min_lr_ratio: float = 0.0      # floor of the decay, as a fraction of lr
    decay_epochs: List[float] = field(default_factory=list)  # scale_by_epoch_decay boundaries
    decay_rate: float = 0.1
    steps_per_epoch: float = 0.0   # 0: from the training data (DataLoader.Train: Finetune)

    def __post_init__(self):
        if self.name == "scale_by_epoch_decay" and not self.decay_epochs:
            raise ValueError("scale_by_epoch_decay needs decay_epochs (e.g. [24, 32])")
        if list(self.decay_epochs) != sorted(self.decay_epochs):
            raise ValueError(f"decay_epochs must be increasing, got {self.decay_epochs}")


@dataclass
class DataLoaderConfig:
    Train: Optional[TRAIN_DATA] = None
    Eval: Optional[EVALUATOR] = None


@dataclass
class TrainConfig:
    Global: GlobalConfig = field(default_factory=GlobalConfig)
    Arch: ARCH = None
    Loss: Optional[LOSS] = None
    Optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    LRScheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)
    DataLoader: DataLoaderConfig = field(default_factory=DataLoaderConfig)
