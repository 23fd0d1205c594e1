#!/usr/bin/env bash
# UNIMO-2 vs "Our Baseline" (no grounded dictionary) on the demo corpus, for
# one or more seeds (default: 0 1). About 4 minutes per run on 2 cores.
#
#   bash tools/demo_compare.sh [seed ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tools/setup_env.sh
seeds=("${@:-0 1}")
runs=()
for seed in ${seeds[@]}; do
  for cfg in unimo2_demo unimo2_demo_baseline; do
    out="output/compare/${cfg}_seed${seed}"
    echo "[compare] $cfg seed $seed -> $out"
    python tools/train.py -c "configs/$cfg.yaml" -o Global.seed="$seed" Global.output_dir="$out"
    python tools/eval.py -c "configs/$cfg.yaml" -o Global.seed="$seed" Global.checkpoint="$out" \
        DataLoader.Eval.score=itc --output "$out/eval_itc.json"
    runs+=("$out")
  done
done
python tools/demo_report.py data/demo/meta.json "${runs[@]}"
