#!/usr/bin/env bash
# Retrieval evaluation on a 1K-image x 5K-caption synthetic set with a
# trained checkpoint: exhaustive cross-encoder scoring (5M pairs) vs
# two-stage (ITC shortlist of k, ITM re-rank), time ratio and recall of both,
# through the user-facing tools/eval.py.
#
#   bash bench/bench_retrieval_demo_1k5k.sh [checkpoint] [k]
#
# checkpoint: a trained UNIMO-2 demo run (default output/unimo2_demo, made
# by tools/demo.sh); k: shortlist size (default 10). The set is the demo
# generator's held-out split drawn at 1,000 images (data/demo1k/, 5 s; no
# image equals a training image). The exhaustive pass takes about 70
# minutes on 2 CPU cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tools/setup_env.sh
CKPT="${1:-output/unimo2_demo}"
K="${2:-10}"
OUT="output/bench_retrieval_1k5k"
mkdir -p "$OUT"
python -m data_prep.make_demo_corpus --out data/demo1k --num-test 1000 --workers 2 --quiet
python tools/eval.py -c configs/unimo2_demo.yaml -o Global.checkpoint="$CKPT" \
    -o DataLoader.Eval.path=data/demo1k/pairs_test.jsonl -o DataLoader.Eval.two_stage_k="$K" \
    -o DataLoader.Eval.compare_exhaustive=true -o DataLoader.Eval.batch_size=512 \
    --output "$OUT/eval_k$K.json"
python - "$OUT/eval_k$K.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
cols = ["ir_r1", "ir_r5", "ir_r10", "tr_r1", "tr_r5", "tr_r10", "rsum"]
print(f"{'mode':<22} {'seconds':>8} {'pairs':>9}  " + " ".join(f"{c:>7}" for c in cols))
print(f"{'exhaustive':<22} {m['exhaustive_seconds']:8.0f} {m['exhaustive_pairs_scored']:9d}  "
      + " ".join(f"{m['exhaustive_' + c]:7.1f}" for c in cols))
print(f"{'two-stage k=%d' % m['two_stage_k']:<22} {m['seconds']:8.0f} {m['pairs_scored']:9d}  "
      + " ".join(f"{m[c]:7.1f}" for c in cols))
print(f"two-stage is {m['exhaustive_seconds'] / m['seconds']:.1f}x faster, scoring "
      f"{100 * m['pairs_scored'] / m['exhaustive_pairs_scored']:.2f} % of the pairs")
EOF
