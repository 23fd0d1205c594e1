#!/usr/bin/env python
"""Pre-train (or fine-tune) from a config:

    python tools/train.py -c configs/unimo2_demo.yaml [-o Section.key=value ...]

Multi-GPU / multi-node: the same command under
``python -m paddle.distributed.launch --nproc_per_node N`` or ``fleetrun``.
"""
from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)


def main():
    args = _cli.parse_args("Train a UNIMO-family model from a YAML config.")

    def go():
        cfg = _cli.load(args)
        from vlcore.framework.run import train
        train(cfg)
    _cli.run(go)


if __name__ == "__main__":
    main()
