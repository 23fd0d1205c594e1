"""Family-independent pieces of the demo web page (``tools/serve.py``): the
checks that turn bad input into one-line messages, the gallery read from a
pairs manifest, and the registered ``tools/infer.py`` subcommands a
checkpoint offers, called with the arguments their parsers define (so the
page and the command line run the same code).
"""
import argparse
import os
from typing import Dict, List, NamedTuple

from vlcore.tasks import infer

MAX_UPLOAD_MB = 10          # also given to Gradio (launch(max_file_size=...)), which refuses larger uploads
MAX_IMAGE_SIDE = 4096       # pixels: a small file can still decode to a huge bitmap (a "decompression bomb")
MAX_CAPTIONS = 100
MAX_TEXT_CHARS = 500        # the models read at most max_text_len tokens anyway


class InputError(ValueError):
    """Bad input from the page: one line, shown to the user as it is."""


def check_image(path, max_side=MAX_IMAGE_SIDE, max_mb=MAX_UPLOAD_MB):
    """``path`` if it is an image file of an acceptable size, else InputError.
    Reads only the header (PIL opens lazily), so a huge bitmap is refused
    before anything decodes it. Pillow comes with PaddlePaddle and Gradio."""
    from PIL import Image, UnidentifiedImageError
    if not path:
        raise InputError("no image: pick one from the examples or upload one")
    if not os.path.isfile(path):
        raise InputError(f"image {os.path.basename(path)!r} not found")
    size_mb = os.path.getsize(path) / 2 ** 20
    if size_mb > max_mb:
        raise InputError(f"the image is {size_mb:.3g} MB; the limit is {max_mb} MB")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError):
        raise InputError(f"{os.path.basename(path)!r} is not an image (PNG, JPEG, WebP, ...)") from None
    if max(w, h) > max_side:
        raise InputError(f"the image is {w} x {h} pixels; the limit is {max_side} pixels a side")
    return path


def check_text(text, what="caption"):
    """The stripped text, or InputError if it is empty or too long."""
    text = (text or "").strip()
    if not text:
        raise InputError(f"empty {what}: type one first")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the {what} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def parse_captions(text, limit=MAX_CAPTIONS):
    """Captions typed one per line (blank lines dropped)."""
    captions = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not captions:
        raise InputError("no captions: type one or more, one per line")
    if len(captions) > limit:
        raise InputError(f"{len(captions)} captions; the limit is {limit}")
    for c in captions:
        check_text(c)
    return captions


class GalleryItem(NamedTuple):
    id: str
    image: str            # absolute path of the image file
    key: str              # the image's key in a region store (UNIMO)
    captions: List[str]


def read_gallery(path, image_root="", key="id", limit=0):
    """The distinct images of a manifest with an ``image`` field: a pairs
    manifest (with its ``captions``) or a task manifest (VQA, SNLI-VE...).
    Relative image paths resolve against ``image_root`` or, if empty, the
    manifest's directory; ``key`` names the image in a region store (UNIMO;
    ``image_id`` or ``id`` if the record has no such field)."""
    from vlcore.formats.records import JsonlFile
    root = image_root or os.path.dirname(os.path.abspath(path))
    items, seen = [], set()
    records = JsonlFile(path)
    for i in range(len(records)):
        rec = records[i]
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            raise ValueError(f"{path}:{records.line_number(i)}: a gallery record needs an 'image' path")
        image = os.path.abspath(rec["image"] if os.path.isabs(rec["image"]) else os.path.join(root, rec["image"]))
        if image in seen:
            continue
        seen.add(image)
        name = str(rec.get(key, rec.get("image_id", rec.get("id", len(items)))))
        items.append(GalleryItem(str(rec.get("id", name)), image, name, list(rec.get("captions", []))))
        if limit and len(items) == limit:
            break
    if not items:
        raise ValueError(f"{path}: no images in the gallery manifest")
    return items


def offered_commands(arch_name) -> Dict[str, infer.Command]:
    """The ``tools/infer.py`` subcommands registered for ``arch_name``."""
    return {name: cmd for name, cmd in infer.commands().items() if arch_name in cmd.archs}


def command_args(command: infer.Command, **fields) -> argparse.Namespace:
    """The namespace ``tools/infer.py`` would parse for ``command``: every
    option's default, then ``fields`` (named by ``dest``, e.g. ``text_b``).
    A field the subcommand does not define is a programming error."""
    parser = argparse.ArgumentParser(add_help=False)
    command.arguments(parser)
    # argparse has no public list of a parser's options; _actions is the
    # documented-by-use way (argparse's own help formatter reads it)
    defaults = {a.dest: a.default for a in parser._actions}
    unknown = sorted(set(fields) - set(defaults))
    if unknown:
        raise TypeError(f"infer {command.name}: no option {', '.join(unknown)}")
    return argparse.Namespace(**{**defaults, **fields})


def run_command(model, ctx, name, **fields):
    """Run the registered subcommand ``name`` for the checkpoint's Arch with
    ``fields`` as its arguments; the handler's JSON-able result."""
    import paddle
    arch = ctx.cfg.Arch.name
    cmd = infer.commands().get(name)
    if cmd is None or arch not in cmd.archs:
        needs = f"; it needs a checkpoint of Arch {' or '.join(cmd.archs)}" if cmd else ""
        raise InputError(f"this checkpoint (Arch {arch}) does not offer {name!r}{needs}")
    with paddle.no_grad():
        return cmd.handler_for(arch)(model, ctx, command_args(cmd, **fields))
