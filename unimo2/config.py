"""Configuration schema of UNIMO-2: the ``Arch``, ``Loss`` and ``Data``
sections of a config file. Defaults are the paper's base model (Section 4):
ViT-B/16 at 224 px, RoBERTa-base-shaped text encoder, 12-layer grounded
transformer, C=2048, K=100, beta=0.25.
"""
from dataclasses import dataclass, field
from typing import List, Literal

from data_prep.demo import DemoDataConfig
from vlcore.data.schedule import CurriculumPhase


@dataclass
class EncoderConfig:
    """The transformer-stack settings of each of the three encoders (the
    visual encoder, the text encoder and the grounded transformer)."""
    num_layers: int = 12
    num_heads: int = 12
    dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    act: Literal["gelu", "relu", "gelu_tanh"] = "gelu"


@dataclass
class ViTConfig(EncoderConfig):
    # ViT-B/16's own settings (no dropout, LayerNorm eps 1e-6)
    dropout: float = 0.0
    attn_dropout: float = 0.0
    layer_norm_eps: float = 1e-6
    image_size: int = 224
    patch_size: int = 16
    # 0 for standard ViT-B/16 weights; (patch_size-1)//2 for the official
    # UNIMO-2 checkpoints, whose patch conv is padded.
    patch_padding: int = 0
    # How an image file becomes pixels (vlcore.data.images.Preprocess):
    # opencv (the toolkit's reader) or official (PIL decode and bicubic
    # resize, as the released UNIMO-2 reader; for converted official weights).
    preprocess: Literal["opencv", "official"] = "opencv"

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")


@dataclass
class TextConfig(EncoderConfig):
    vocab_size: int = 50265
    max_positions: int = 514


@dataclass
class GroundingConfig:
    # topk: the paper's grounded dictionary; one_to_one: the VQ "1-to-1 Map"
    # ablation; none: "Our Baseline" / "w/o GD (P)" (no dictionary at all).
    mode: Literal["topk", "one_to_one", "none"] = "topk"
    dict_size: int = 2048
    top_k: int = 100
    beta: float = 0.25
    alpha: float = 1.0
    temperature_init: float = 100.0
    temperature_min: float = 1.0
    temperature_max: float = 10000.0
    # false: the official padding semantics -- padding tokens vote in Eq. 2,
    # and their states are computed as the official code computes them
    # (position id 1, attention over every key; unimo2/text_encoder.py).
    # true: only real tokens vote, so a caption's grounded tokens do not
    # depend on how much the batch padded it.
    exclude_padding: bool = True


@dataclass
class FusionConfig(EncoderConfig):
    # grounded: Figure 2's attention; full: the "w/o G.T." ablation.
    attention: Literal["grounded", "full"] = "grounded"


@dataclass
class UNIMO2ArchConfig:
    name: str = "UNIMO2"
    hidden_size: int = 768
    vit: ViTConfig = field(default_factory=ViTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    # How the ITM head combines the pooled text and image [CLS]: concat is
    # the paper's text; mul is the official code and its checkpoints (the
    # pre-training, retrieval and official configs set it); sum.
    itm_fusion: Literal["concat", "mul", "sum"] = "concat"
    proj_dim: int = 256            # size of the ITC projections
    # Activation after the ITC projections: "relu" is the official
    # cmcl_pooled_fc_* head (checkpoints trained with it need it).
    itc_proj_act: Literal["none", "relu"] = "none"
    # The image-text contrastive score. true: the cosine of the two projected
    # [CLS] features. false: normalize(image) . text, the text side left as
    # it is -- the released code's CMCL score without projections
    # (get_cmcl_scores in NLP/UNIMO-2 src/model/unimo_grounded.py, with
    # with_cmcl_projection=False as its Flickr30k script sets), which the
    # official zero-shot retrieval score ITM + 0.3 x CMCL adds. Both rank the
    # images of one caption alike; captions of an image and the sum differ.
    itc_normalize_text: bool = True
    init_std: float = 0.02
    recompute: bool = False

    def __post_init__(self):
        if self.grounding.mode == "none" and self.fusion.attention == "grounded":
            raise ValueError("grounding.mode=none has no grounded tokens: set fusion.attention=full "
                             "(that is the paper's 'Our Baseline')")
        for part in ("vit", "text", "fusion"):
            heads = getattr(self, part).num_heads
            if self.hidden_size % heads:
                raise ValueError(f"hidden_size={self.hidden_size} is not divisible by {part}.num_heads={heads}")


@dataclass
class MLMConfig:
    weight: float = 1.0
    mask_ratio: float = 0.15
    span_p: float = 0.2          # span length ~ Geo(p) (SpanBERT)
    max_span: int = 10
    replace_mask: float = 0.8    # 80/10/10
    replace_random: float = 0.1


@dataclass
class ITMConfig:
    weight: float = 1.0
    # random: a uniformly drawn caption/image of another group from the local
    # batch; hardest: the most similar one by the model's own image-text
    # contrastive similarity (needs itc.weight > 0).
    negatives: Literal["random", "hardest"] = "random"


@dataclass
class ITCConfig:
    # Image-text contrast on the unimodal [CLS] features. Not among the
    # paper's three objectives, but in the official code ("cmcl") and the
    # basis of dual-encoder retrieval; 0 turns it off.
    weight: float = 0.0
    temperature_init: float = 0.07
    temperature_min: float = 0.001
    temperature_max: float = 0.5
    learnable_temperature: bool = True


@dataclass
class VCLConfig:
    weight: float = 1.0
    temperature: float = 0.1


@dataclass
class UNIMO2LossConfig:
    name: str = "UNIMO2Pretrain"
    mlm: MLMConfig = field(default_factory=MLMConfig)
    itm: ITMConfig = field(default_factory=ITMConfig)
    itc: ITCConfig = field(default_factory=ITCConfig)
    vcl: VCLConfig = field(default_factory=VCLConfig)
    grounding_weight: float = 1.0

    def __post_init__(self):
        if self.itm.negatives == "hardest" and self.itc.weight <= 0:
            raise ValueError("itm.negatives=hardest ranks negatives by the image-text contrastive "
                             "similarity: set itc.weight > 0")


@dataclass
class CorpusConfig:
    """One training corpus.

    kind ``pairs``: JSONL ``{"id", "image", "captions": [...]}``;
    ``labelled``: JSONL ``{"id", "image", "label"}`` used as pseudo pairs
    "``prompt`` [label]"; ``images``: the same JSONL read as image-only data
    (visual contrastive learning); ``text``: plain text, one sample per line.
    """
    name: str = ""
    kind: Literal["pairs", "labelled", "images", "text"] = "pairs"
    path: str = ""
    prompt: str = "a photo of"


@dataclass
class AugmentConfig:
    """SimCLR-style views for visual contrastive learning."""
    crop_scale_min: float = 0.3
    rotation_degrees: float = 15.0
    color_jitter: float = 0.4
    color_jitter_prob: float = 0.8
    grayscale_prob: float = 0.2


@dataclass
class UNIMO2DataConfig:
    name: str = "UNIMO2Corpora"
    corpora: List[CorpusConfig] = field(default_factory=list)
    curriculum: List[CurriculumPhase] = field(default_factory=list)
    batch_size: int = 32              # per rank, per step
    max_text_len: int = 64            # tokens incl. [CLS]/[SEP] for captions
    max_text_len_corpus: int = 512    # for the text-only corpus
    num_workers: int = 2
    image_mean: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: List[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    demo: DemoDataConfig = field(default_factory=DemoDataConfig)
    demo_dir: str = ""

    def __post_init__(self):
        names = [c.name for c in self.corpora]
        if len(set(names)) != len(names):
            raise ValueError(f"corpus names must be unique, got {names}")
        for i, phase in enumerate(self.curriculum):
            unknown = set(phase.ratios) - set(names)
            if unknown:
                raise ValueError(f"curriculum[{i}] names unknown corpora {sorted(unknown)}; known: {names}")
            if any(r < 0 for r in phase.ratios.values()) or sum(phase.ratios.values()) <= 0:
                raise ValueError(f"curriculum[{i}].ratios must be >= 0 with a positive sum")


@dataclass
class RetrievalEvalConfig:
    """Zero-shot image-text retrieval on a held-out pairs manifest."""
    name: str = "ZeroShotRetrieval"
    path: str = ""
    # itm: the grounded transformer's matching probability for every pair
    # (exhaustive cross-encoder); itc: dual-encoder cosine similarity.
    # match: the fine-tuned retrieval score, ITM logit + Loss.contrastive_weight
    # x ITC cosine (needs Arch UNIMO2ForRetrieval).
    score: Literal["itm", "itc", "match"] = "itm"
    batch_size: int = 64
    max_images: int = 0  # 0 = all
    # false: the "w/o GD (I)" ablation of Table 4 -- a model pre-trained with
    # the grounded dictionary, evaluated without grounded tokens.
    use_grounding: bool = True
    # Two-stage retrieval (vlcore.tasks.retrieval_eval): the ITC similarity
    # shortlists the top two_stage_k candidates of every query, ``score``
    # re-ranks them; 0 = exhaustive. compare_exhaustive also runs the
    # exhaustive evaluation and reports it as exhaustive_*.
    two_stage_k: int = 0
    compare_exhaustive: bool = False
    # COCO 1K: 1000 -> fold_* metrics averaged over consecutive folds of 1000 images
    fold_size: int = 0
    image_root: str = ""  # "" = the manifest's directory
    # text length and pixel normalisation; 0 / [] = those of DataLoader.Train (or its task)
    max_text_len: int = 0
    image_mean: List[float] = field(default_factory=list)
    image_std: List[float] = field(default_factory=list)

    def __post_init__(self):
        if self.two_stage_k < 0 or self.fold_size < 0:
            raise ValueError("two_stage_k and fold_size must be >= 0")
        if self.two_stage_k and self.score == "itc":
            raise ValueError("two_stage_k re-ranks the ITC shortlist with a cross-encoder score: "
                             "use score: itm or match")
