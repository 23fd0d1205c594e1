"""Labelled image folders (ImageNet style, ``ROOT/<class>/<image>``) ->
labelled manifest (also read as image-only data, kind ``images``).

Input: a directory whose sub-directories are the classes, e.g.
``train/n01440764/n01440764_10026.JPEG``; deeper levels belong to their
top-level class. Files with an image extension (``.jpg .jpeg .png .bmp
.webp .tif .tiff``, any case) are records; other files are counted and
ignored, images directly under ROOT are reported (no class).

``--label-map FILE`` turns directory names into label text, one class a
line ``<dir> <label>``; ImageNet's ``LOC_synset_mapping.txt`` (``n01440764
tench, Tinca tinca``) works as is: the label is the text up to the first
comma ("tench"), as in the paper's "a photo of [label]" prompts. Without it
the label is the directory name.

Output records, in sorted path order: ``{"id": "n01440764/n01440764_10026",
"image": "<prefix>n01440764/n01440764_10026.JPEG", "label": "tench",
"class_dir": "n01440764"}``.
"""
from __future__ import annotations

import os

from .common import ConvertError, Report, add_common_args, open_outputs, read_lines

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def add_args(p):
    p.add_argument("--src", required=True, help="image root: one sub-directory per class")
    add_common_args(p)
    p.add_argument("--image-prefix", default="", help="prepended to every image path (relative to --src)")
    p.add_argument("--label-map", help="lines '<dir> <label>' (e.g. ImageNet's LOC_synset_mapping.txt)")


def _label_map(path, report):
    labels = {}
    for lineno, text in read_lines(path, report):
        if not text.strip():
            continue
        key, _, rest = text.strip().partition(" ")
        label = rest.split(",")[0].strip()
        if not label:
            raise ConvertError(f"{path}:{lineno}: expected '<dir> <label>', got {text!r}")
        if key in labels:
            raise ConvertError(f"{path}:{lineno}: class {key!r} listed twice")
        labels[key] = label
    return labels


def convert(args, report: Report):
    if not os.path.isdir(args.src):
        raise ConvertError(f"{args.src}: not a directory")
    labels = _label_map(args.label_map, report) if args.label_map else None
    files = []
    for dirpath, dirnames, filenames in os.walk(args.src, followlinks=True):
        dirnames.sort()
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), args.src).replace(os.sep, "/")
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTS:
                report.note("non-image files ignored")
                continue
            files.append(rel)
    files.sort()
    if not files:
        raise ConvertError(f"{args.src}: no image files (extensions {sorted(IMAGE_EXTS)})")
    with open_outputs({"out": (args.out, "labelled")}, report) as out:
        for rel in files:
            where = os.path.join(args.src, rel)
            if "/" not in rel:
                report.bad(where, "image directly under the root has no class directory", "no class")
                continue
            cls = rel.split("/", 1)[0]
            if labels is not None and cls not in labels:
                report.bad(where, f"class directory {cls!r} is not in {args.label_map}", "unknown class")
                continue
            out["out"].write({"id": f"{args.id_prefix}{os.path.splitext(rel)[0]}", "image": args.image_prefix + rel,
                              "label": labels[cls] if labels is not None else cls, "class_dir": cls}, where)
    return list(out.values())
