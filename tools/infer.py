#!/usr/bin/env python
"""Inference from a checkpoint and its config, on the command line:

    python tools/infer.py -c configs/unimo2/retrieval_demo.yaml -o Global.checkpoint=output/unimo2_retrieval_demo \\
        rank --image data/demo/images/test_000000.png --captions "a red circle" "two blue squares"

Subcommands come from the model packages (``vlcore.tasks.infer.register``):
``rank`` ranks captions for an image (UNIMO-2: an image file; UNIMO /
Unicoder-VL: a key of the region store); generation, VQA and classification
tasks add ``caption``, ``generate`` and ``answer``. Which one a checkpoint
supports depends on its config's ``Arch.name``; ``--help`` lists them all
with the Arch names each serves. Prints the result as JSON (``--output``
also writes it to a file).
"""
import argparse
import json
import sys

from vlcore.framework import cli as _cli

_cli.setup_process()  # before Paddle is imported
import unimo  # noqa: E402,F401  (registers UNIMO and Unicoder-VL)
import unimo2  # noqa: E402,F401  (registers UNIMO-2)


def main():
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config")
    pre.add_argument("-o", "--override", action="append", default=[])
    known, _ = pre.parse_known_args()

    def go():
        cfg = _cli.load(known) if known.config else None
        from vlcore.tasks import infer
        p = argparse.ArgumentParser(description="Inference from a checkpoint (rank captions, ...).",
                                    epilog=infer.commands_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("-c", "--config", required=True, help="YAML config of the checkpoint's run")
        # one KEY=VALUE per -o (a list would swallow the subcommand)
        p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                       help="e.g. -o Global.checkpoint=output/run/step_1000")
        p.add_argument("--output", default="", help="also write the JSON result here")
        sub = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
        for name, cmd in sorted(infer.commands().items()):
            cmd.arguments(sub.add_parser(name, help=cmd.help,
                                         description=f"{cmd.help}. For a checkpoint whose config (-c, before "
                                                     f"the subcommand) has Arch.name {' or '.join(cmd.archs)}."))
        args = p.parse_args()
        handler = infer.commands()[args.command].handler_for(cfg.Arch.name)
        model, ctx, source = infer.load_model(cfg)
        import paddle
        with paddle.no_grad():
            result = handler(model, ctx, args)
        result = dict(result, checkpoint=source, command=args.command)
        text = json.dumps(result, indent=1, ensure_ascii=False)
        print(text)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    _cli.run(go)


if __name__ == "__main__":
    sys.exit(main())
