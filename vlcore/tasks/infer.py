"""Command-line inference from a checkpoint (``tools/infer.py``): a registry
of subcommands that model packages fill in, and the model loading they share.

A subcommand (``rank``, ``caption``, ``answer``...) registers one handler per
family of ``Arch`` names::

    @register("caption", archs=("UNIMOForCaptioning",), help="caption an image",
              arguments=lambda p: p.add_argument("--image", required=True))
    def caption(model, ctx, args):       # -> a JSON-serialisable result
        ...

``tools/infer.py`` builds its sub-parsers from the registry after the model
packages are imported, so a task module adds a subcommand by registering.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from vlcore.framework.registry import INFER_COMMAND


@dataclass
class Command:
    name: str
    help: str
    arguments: Callable            # (argparse parser) -> None
    handlers: List[Tuple[Tuple[str, ...], Callable]]

    @property
    def archs(self) -> List[str]:
        """The ``Arch.name`` values this subcommand serves."""
        return sorted({a for archs, _ in self.handlers for a in archs})

    def handler_for(self, arch_name):
        for archs, fn in self.handlers:
            if arch_name in archs:
                return fn
        raise ValueError(f"infer {self.name}: not available for Arch {arch_name!r} "
                         f"(available for: {', '.join(self.archs)})")


def register(name, archs, help="", arguments=None):
    """Register ``fn(model, ctx, args)`` as subcommand ``name`` for ``archs``
    (``INFER_COMMAND`` entries ``(name, arch)``). The first registration of a
    name that gives them sets its help and arguments."""
    def decorator(fn):
        for arch in archs:
            if (name, arch) in INFER_COMMAND:
                raise ValueError(f"infer {name}: Arch {arch!r} already has a handler")
        for arch in archs:
            INFER_COMMAND.register((name, arch), help=help, arguments=arguments)(fn)
        return fn
    return decorator


def commands() -> Dict[str, Command]:
    """``{subcommand: Command}`` from the registry."""
    out = {}
    for key, fn in INFER_COMMAND.items():
        name, arch = key
        cmd = out.setdefault(name, Command(name, "", None, []))
        cmd.help = cmd.help or INFER_COMMAND.hook(key, "help") or ""
        cmd.arguments = cmd.arguments or INFER_COMMAND.hook(key, "arguments")
        same = [h for h in cmd.handlers if h[1] is fn]
        if same:
            cmd.handlers[cmd.handlers.index(same[0])] = (same[0][0] + (arch,), fn)
        else:
            cmd.handlers.append(((arch,), fn))
    for cmd in out.values():
        cmd.arguments = cmd.arguments or (lambda p: None)
    return out


def commands_help() -> str:
    """Every registered subcommand with the ``Arch`` names it serves (the
    ``--help`` epilog of tools/infer.py: which ones a checkpoint supports
    depends on its config)."""
    width = max((len(n) for n in commands()), default=0)
    lines = ["subcommands -- which one applies depends on the Arch.name of the config given with -c:"]
    for name, cmd in sorted(commands().items()):
        lines += [f"  {name:<{width}}  {cmd.help}", f"  {'':<{width}}  Arch: {', '.join(cmd.archs)}"]
    return "\n".join(lines)


def load_model(cfg):
    """Tokenizer, seeded model and its weights (``Global.checkpoint``, or the
    latest checkpoint in ``Global.output_dir``), in eval mode, and the build
    context task code reads its data settings from."""
    from vlcore.framework import checkpoint as ckpt
    from vlcore.framework.run import BuildContext, build_model
    from vlcore.text.tokenizer import load_tokenizer
    if not cfg.Global.tokenizer_dir:
        raise ValueError("Global.tokenizer_dir is empty")
    tok = load_tokenizer(cfg.Global.tokenizer_dir)
    model = build_model(cfg)
    source = cfg.Global.checkpoint or cfg.Global.output_dir
    ckpt.set_weights(model, ckpt.load_weights(source), source)
    model.eval()
    return model, BuildContext(cfg, None, tokenizer=tok), source


# ----------------------------------------------------------------- rank
def rank_arguments(p):
    p.add_argument("--image", required=True,
                   help="image file (UNIMO-2) or its key in the region store (UNIMO / Unicoder-VL)")
    p.add_argument("--captions", nargs="+", default=[], metavar="TEXT", help="candidate captions")
    p.add_argument("--captions-file", default="", help="candidate captions, one per line")
    p.add_argument("--features", default="", help="region store (UNIMO / Unicoder-VL); default: "
                   "DataLoader.Eval.features or DataLoader.Train.task.features")
    p.add_argument("--score", default="", help="UNIMO-2: itm | itc | match; UNIMO: cmcl | vlm | match "
                   "(default: match for a retrieval fine-tuned model, else itm / cmcl)")
    p.add_argument("--top", type=int, default=0, help="print only the best N (0 = all)")


def read_captions(args):
    captions = list(args.captions)
    if args.captions_file:
        with open(args.captions_file, encoding="utf-8") as f:
            captions += [line.strip() for line in f if line.strip()]
    if not captions:
        raise ValueError("rank: no captions (--captions TEXT ... or --captions-file FILE)")
    return captions


def ranking_result(image, score, ranked, top=0):
    ranked = ranked[:top] if top else ranked
    return {"image": image, "score": score, "ranking": [{"caption": c, "score": s} for c, s in ranked]}
