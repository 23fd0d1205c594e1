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

_COMMANDS: Dict[str, "Command"] = {}


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
    """Register ``fn(model, ctx, args)`` as subcommand ``name`` for ``archs``.
    The first registration of a name sets its help and arguments."""
    def decorator(fn):
        cmd = _COMMANDS.get(name)
        if cmd is None:
            cmd = _COMMANDS[name] = Command(name, help, arguments or (lambda p: None), [])
        taken = [a for a in archs for known, _ in cmd.handlers if a in known]
        if taken:
            raise ValueError(f"infer {name}: Arch {taken} already has a handler")
        cmd.handlers.append((tuple(archs), fn))
        return fn
    return decorator


def commands():
    return dict(_COMMANDS)


def commands_help() -> str:
    """Every registered subcommand with the ``Arch`` names it serves (the
    ``--help`` epilog of tools/infer.py: which ones a checkpoint supports
    depends on its config)."""
    width = max((len(n) for n in _COMMANDS), default=0)
    lines = ["subcommands -- which one applies depends on the Arch.name of the config given with -c:"]
    for name, cmd in sorted(_COMMANDS.items()):
        lines += [f"  {name:<{width}}  {cmd.help}", f"  {'':<{width}}  Arch: {', '.join(cmd.archs)}"]
    return "\n".join(lines)


def load_model(cfg):
    """Tokenizer, seeded model and its weights (``Global.checkpoint``, or the
    latest checkpoint in ``Global.output_dir``), in eval mode, and the build
    context task code reads its data settings from."""
    from . import checkpoint as ckpt
    from .run import BuildContext, build_model
    from .tokenizer import BPETokenizer
    if not cfg.Global.tokenizer_dir:
        raise ValueError("Global.tokenizer_dir is empty")
    tok = BPETokenizer.from_dir(cfg.Global.tokenizer_dir)
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
