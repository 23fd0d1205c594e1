#!/usr/bin/env python
"""Evaluate a checkpoint with the config's ``DataLoader.Eval`` task:

    python tools/eval.py -c configs/unimo2_demo.yaml -o Global.checkpoint=output/unimo2_demo

``Global.checkpoint`` may be a run directory (its latest checkpoint), a
``step_N`` directory or a weights file (``.safetensors``, ``.pdparams``). Metrics are printed and written
as JSON (``--output``, default ``<Global.output_dir>/eval_metrics.json``).
"""
from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)


def main():
    args = _cli.parse_args("Evaluate a checkpoint (e.g. zero-shot retrieval R@1/5/10).",
                           lambda p: p.add_argument("--output", default=None, help="metrics JSON path"))

    def go():
        cfg = _cli.load(args)
        from vlcore.framework.run import evaluate
        evaluate(cfg, args.output)
    _cli.run(go)


if __name__ == "__main__":
    main()
