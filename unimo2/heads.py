"""Task heads of UNIMO-2. The image-text matching head is shared with UNIMO's
retrieval fine-tuning and lives in vlcore.layers.heads."""
from vlcore.layers.heads import MatchHead as ITMHead  # noqa: F401
