"""Run under paddle.distributed.launch with 2 ranks: exhaustive and
two-stage retrieval evaluation with the pairs split across ranks. Writes
``<out>/rank<r>.json`` with the metrics and the pairs this rank scored."""
import json
import os
import sys

import numpy as np  # noqa: E402

from vlcore.framework import dist  # noqa: E402
from vlcore.tasks import retrieval_eval  # noqa: E402


def main(out):
    dist.init()
    rng = np.random.default_rng(0)
    caption_image = np.repeat(np.arange(12), 3)
    cross = rng.normal(size=[12, 36]).astype(np.float32)
    cross[caption_image, np.arange(36)] += 1.0
    dual = cross + rng.normal(size=cross.shape).astype(np.float32)
    scored = []

    def pair_scores(imgs, caps):
        scored.extend(zip(imgs.tolist(), caps.tolist()))
        return cross[imgs, caps]
    ex = retrieval_eval.evaluate(12, caption_image, pair_scores, fold_size=6)
    ex_pairs = list(scored)
    scored.clear()
    two = retrieval_eval.evaluate(12, caption_image, pair_scores, dual=dual, k=4, fold_size=6)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank{dist.rank()}.json"), "w") as f:
        json.dump({"world": dist.world_size(), "exhaustive": ex, "two_stage": two, "ex_pairs": ex_pairs,
                   "two_pairs": scored}, f)


if __name__ == "__main__":
    main(sys.argv[1])
