"""Configuration schema of UNIMO (and Unicoder-VL, a configuration of it).

Defaults are UNIMO-base (paper Section 4.2): 12 layers, 768-d, 12 heads,
post-LN, initialised from RoBERTa-base; up to 100 regions (36 in the paper)
of 2048-d pooled RoI features with 5-d locations; text up to 512 tokens.
"""
from dataclasses import dataclass, field
from typing import List, Literal

from data_prep.demo import DemoDataConfig
from vlcore.data.schedule import CurriculumPhase


@dataclass
class UNIMOArchConfig:
    name: str = "UNIMO"
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    vocab_size: int = 50265            # 0: the tokenizer's size
    max_positions: int = 514
    position_offset: int = 2           # RoBERTa: the first token is at position 2
    type_vocab_size: int = 0           # Unicoder-VL: 2 (text / image segments)
    dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    act: Literal["gelu", "relu", "gelu_tanh"] = "gelu"
    feature_dim: int = 2048            # pooled RoI feature size
    location_dim: Literal[4, 5] = 5    # 5: x1/W, y1/H, x2/W, y2/H, area (UNIMO); 4: corners (Unicoder-VL)
    num_classes: int = 1600            # detector object classes (Visual Genome's 1600), for MRC/MOC
    # unimo: [IMG] regions [CLS] text [SEP]; unicoder: [CLS] text [SEP] regions
    layout: Literal["unimo", "unicoder"] = "unimo"
    # [IMG]: the mean region feature at location [0,0,1,1,1] (what the
    # released UNIMO checkpoints expect); none: no image token (Unicoder-VL).
    image_token: Literal["mean", "none"] = "mean"
    cmcl_dim: int = 768                # CMCL projection size
    # CMCL's "FC layer" into the common space (Section 3.1): one linear FC for
    # both modalities (shared), or what the released code has, a ReLU FC per
    # modality, pooled_fc_text / pooled_fc_image (separate_relu).
    cmcl_proj: Literal["shared", "separate_relu"] = "shared"
    init_std: float = 0.02
    recompute: bool = False

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.layout == "unimo" and self.image_token == "none":
            raise ValueError("layout=unimo puts [IMG] first: image_token must be 'mean'")


@dataclass
class RegionMaskConfig:
    """Visual learning (Section 3.2): anchors drawn with ``ratio``; every
    region whose IoU with an anchor exceeds ``iou`` is masked too."""
    ratio: float = 0.15
    iou: float = 0.3
    mrfr_weight: float = 1.0           # masked region feature regression
    mrc_weight: float = 1.0            # masked region classification
    mrc_target: Literal["distribution", "argmax"] = "distribution"
    # Unicoder-VL's masked object classification replaces a masked feature
    # by a random vector / another image's feature / itself (80/10/10).
    replace: Literal["zero", "unicoder"] = "zero"


@dataclass
class LanguageConfig:
    """Language learning (Section 3.3): span MLM and seq2seq, alternated."""
    mlm_weight: float = 1.0
    seq2seq_weight: float = 1.0
    seq2seq_prob: float = 0.5          # share of language steps that are seq2seq
    mask_ratio: float = 0.15
    span_p: float = 0.2
    max_span: int = 10
    replace_mask: float = 0.8
    replace_random: float = 0.1
    seq2seq_ratio: float = 0.25        # target budget
    fragment_min: int = 4
    fragment_max: int = 32


@dataclass
class CMCLConfig:
    """Cross-modal contrastive learning (Eq. 1)."""
    weight: float = 1.0
    temperature: float = 0.07
    num_positives: int = 2             # back-translations per caption (paper: 2)
    num_negatives: int = 8             # rewrites per caption per step (paper: up to 100)
    in_batch: bool = True              # other captions of the global batch are negatives too


@dataclass
class VLMConfig:
    """Visual-linguistic matching on [CLS] (Unicoder-VL; one random negative image)."""
    weight: float = 0.0


@dataclass
class UNIMOLossConfig:
    name: str = "UNIMOPretrain"
    region: RegionMaskConfig = field(default_factory=RegionMaskConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    cmcl: CMCLConfig = field(default_factory=CMCLConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)


@dataclass
class UNIMOCorpusConfig:
    """One corpus. ``pairs``: JSONL ``{"id", "captions": [...]}`` whose region
    features are in ``features`` under the record's ``id`` (``key``);
    ``images``: JSONL ``{"id"}`` (or any pairs manifest) read as image-only
    data; ``text``: plain text, one sample per line. ``rewrites``: CMCL
    positives/negatives (``vlcore.formats.rewrites``), for pairs."""
    name: str = ""
    kind: Literal["pairs", "images", "text"] = "pairs"
    path: str = ""
    features: str = ""                 # region feature store (vlcore.formats.region_store)
    key: str = "id"                    # manifest field naming the image in the store
    rewrites: List[str] = field(default_factory=list)
    # keep only rewrites of these kinds: bt, tfidf, sg-object/-attribute/-relation ("sg": all three); empty: all
    rewrite_kinds: List[str] = field(default_factory=list)


@dataclass
class UNIMODataConfig:
    name: str = "UNIMOCorpora"
    corpora: List[UNIMOCorpusConfig] = field(default_factory=list)
    curriculum: List[CurriculumPhase] = field(default_factory=list)
    batch_size: int = 32
    max_text_len: int = 64             # captions (incl. [CLS]/[SEP])
    max_text_len_corpus: int = 512     # text corpus
    max_regions: int = 100
    num_workers: int = 2
    demo: DemoDataConfig = field(default_factory=DemoDataConfig)
    demo_dir: str = ""

    def __post_init__(self):
        names = [c.name for c in self.corpora]
        if len(set(names)) != len(names):
            raise ValueError(f"corpus names must be unique, got {names}")
        for i, c in enumerate(self.corpora):
            if c.kind in ("pairs", "images") and not c.features:
                raise ValueError(f"corpora[{i}] ({c.name}): kind {c.kind} needs 'features' (a region feature store)")
        for i, phase in enumerate(self.curriculum):
            unknown = set(phase.ratios) - set(names)
            if unknown:
                raise ValueError(f"curriculum[{i}] names unknown corpora {sorted(unknown)}; known: {names}")


@dataclass
class UNIMORetrievalConfig:
    """Retrieval with region features: CMCL similarity of the separately
    encoded image and caption (``cmcl``), the matching score of the joint
    encoding (``vlm``, Unicoder-VL), or the fine-tuned score (``match``,
    Arch UNIMOForRetrieval). Two-stage mode and COCO 1K folds: see
    vlcore.tasks.retrieval_eval."""
    name: str = "UNIMORetrieval"
    path: str = ""
    features: str = ""
    key: str = "id"
    score: Literal["cmcl", "vlm", "match"] = "cmcl"
    batch_size: int = 64
    max_images: int = 0            # 0 = all
    two_stage_k: int = 0           # CMCL shortlists the top k, ``score`` re-ranks; 0 = exhaustive
    compare_exhaustive: bool = False
    fold_size: int = 0             # COCO 1K: 1000

    def __post_init__(self):
        if self.two_stage_k < 0 or self.fold_size < 0:
            raise ValueError("two_stage_k and fold_size must be >= 0")
        if self.two_stage_k and self.score == "cmcl":
            raise ValueError("two_stage_k re-ranks the CMCL shortlist with a cross-encoder: use score vlm or match")
