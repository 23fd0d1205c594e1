#!/usr/bin/env bash
# Quick start 1: install, pre-train the tiny UNIMO-2 demo, and report zero-shot
# retrieval on its held-out split. Outputs go to output/unimo2_demo/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tools/setup_env.sh
python tools/train.py -c configs/unimo2_demo.yaml "$@"
python tools/eval.py -c configs/unimo2_demo.yaml -o DataLoader.Eval.score=itc \
    --output output/unimo2_demo/eval_itc.json "$@"
python tools/visualize_grounding.py -c configs/unimo2_demo.yaml -o Global.checkpoint=output/unimo2_demo "$@"
python tools/demo_report.py data/demo/meta.json output/unimo2_demo
