"""Labelled image folders (ImageNet style) -> labelled manifest (also read as
image-only data, kind ``images``).

Input layouts:

- class folders, ``ROOT/<class>/<image>``: ImageNet train
  (``train/n01440764/n01440764_10026.JPEG``; in Kaggle's ImageNet Object
  Localization Challenge download ``ILSVRC/Data/CLS-LOC/train``) and a val
  set already sorted into class folders. Deeper levels belong to their
  top-level class; images directly under ROOT are reported (no class).
- a flat folder with a label file, ``--val-labels LOC_val_solution.csv``:
  Kaggle's ``ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG`` with
  ``ImageId,PredictionString`` rows whose ``PredictionString`` is
  ``<synset> x_min y_min x_max y_max`` repeated per box. No official
  description of this file was found; the layout is the one public loaders
  parse (first token of ``PredictionString`` = the synset). All boxes of an
  image must name the same synset.

Files with an image extension (``.jpg .jpeg .png .bmp .webp .tif .tiff``,
any case) are records; other files are counted as a note. Every image is
decoded (OpenCV, at 1/8 scale: every compressed byte is read, so a corrupt
or truncated file is found; a header check alone would pass a truncated
JPEG) and a file that does not decode is reported naming it. The format is
taken from the bytes: grayscale and CMYK JPEGs and ImageNet's PNG saved as
``n02105855_2933.JPEG`` are valid (tensorflow/models
``research/inception/inception/data/build_imagenet_data.py``, ``_is_png``
and ``_is_cmyk``, lists these quirks); the training pipeline decodes them the
same way (:func:`vlcore.data.images.decode_bgr`). ``--workers`` threads
decode in parallel (OpenCV releases the GIL); ``--no-decode`` skips the
check (and says so in the totals).

``--label-map FILE`` turns directory names into label text, one class a
line ``<dir> <label>``; ImageNet's ``LOC_synset_mapping.txt`` (``n01440764
tench, Tinca tinca``) works as is: the label is the text up to the first
comma ("tench"), as in the paper's "a photo of [label]" prompts. Without it
the label is the directory name (or the synset).

Output records, in sorted path order: ``{"id": "n01440764/n01440764_10026",
"image": "<prefix>n01440764/n01440764_10026.JPEG", "label": "tench",
"class_dir": "n01440764"}``.
"""
from __future__ import annotations

import csv
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vlcore.data.images import ImageError, decode_bgr

from .common import ConvertError, Report, add_common_args, open_outputs, read_lines

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def add_args(p):
    p.add_argument("--src", required=True, help="image root: one sub-directory per class (or flat, "
                                                "with --val-labels)")
    add_common_args(p)
    p.add_argument("--image-prefix", default="", help="prepended to every image path (relative to --src)")
    p.add_argument("--label-map", help="lines '<dir> <label>' (e.g. ImageNet's LOC_synset_mapping.txt)")
    p.add_argument("--val-labels", help="labels of a flat folder: ImageNet's LOC_val_solution.csv")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding threads")
    p.add_argument("--no-decode", action="store_true", help="do not decode the images (no corruption check)")


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


def _val_labels(path, report):
    """``{image stem: synset}`` of LOC_val_solution.csv; bad rows reported."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header != ["ImageId", "PredictionString"]:
            raise ConvertError(f"{path}:1: expected the header 'ImageId,PredictionString', got {header}")
        for lineno, row in enumerate(rows, 2):
            where = f"{path}:{lineno}"
            if len(row) != 2 or not row[0].strip():
                report.bad(where, f"expected 'ImageId,PredictionString', got {row}", "bad label")
                continue
            image_id, boxes = row[0].strip(), row[1].split()
            synsets = set(boxes[::5])
            if not boxes or len(boxes) % 5 or len(synsets) != 1:
                report.bad(f"{where} [ImageId {image_id}]", f"PredictionString must be '<synset> x y x y' boxes of "
                           f"one synset, got {row[1][:60]!r}", "bad label")
                continue
            if image_id in out:
                report.bad(f"{where} [ImageId {image_id}]", "ImageId listed twice", "bad label")
                continue
            out[image_id] = synsets.pop()
    return out


def _list_images(root, report):
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTS:
                report.note("non-image files ignored")
                continue
            files.append(rel)
    files.sort()
    if not files:
        raise ConvertError(f"{root}: no image files (extensions {sorted(IMAGE_EXTS)})")
    return files


def _check_image(path):
    """None if ``path`` decodes, else the reason (the ImageError text)."""
    try:
        decode_bgr(np.fromfile(path, dtype=np.uint8), path, reduced=True)
    except ImageError as e:
        return str(e)[len(path) + 2:]
    except OSError as e:
        return f"cannot read ({e.strerror})"
    return None


def _class_of(rel, val_labels, where, report):
    """The class (directory or synset) of an image, or None (reported)."""
    if val_labels is not None:
        stem = os.path.splitext(os.path.basename(rel))[0]
        if stem not in val_labels:
            report.bad(where, f"image {stem!r} has no row in the --val-labels file", "unknown class")
            return None
        return val_labels[stem]
    if "/" not in rel:
        report.bad(where, "image directly under the root has no class directory", "no class")
        return None
    return rel.split("/", 1)[0]


def convert(args, report: Report):
    if not os.path.isdir(args.src):
        raise ConvertError(f"{args.src}: not a directory")
    labels = _label_map(args.label_map, report) if args.label_map else None
    val_labels = _val_labels(args.val_labels, report) if args.val_labels else None
    files = _list_images(args.src, report)
    if args.no_decode:
        report.note("images not decoded (--no-decode)")
        problems = itertools.repeat(None)
    else:
        problems = _checked([os.path.join(args.src, rel) for rel in files], args.workers)
    with open_outputs({"out": (args.out, "labelled")}, report) as out:
        for rel, problem in zip(files, problems):
            where = os.path.join(args.src, rel)
            if problem is not None:
                report.bad(where, problem, "corrupt image")
                continue
            cls = _class_of(rel, val_labels, where, report)
            if cls is None:
                continue
            if labels is not None and cls not in labels:
                what = "synset" if val_labels is not None else "class directory"
                report.bad(where, f"{what} {cls!r} is not in {args.label_map}", "unknown class")
                continue
            out["out"].write({"id": f"{args.id_prefix}{os.path.splitext(rel)[0]}",
                              "image": args.image_prefix + rel,
                              "label": labels[cls] if labels is not None else cls, "class_dir": cls}, where)
    if val_labels is not None:
        listed = {os.path.splitext(os.path.basename(rel))[0] for rel in files}
        missing = sorted(set(val_labels) - listed)
        if missing:
            report.note(f"--val-labels rows without an image file (first: {missing[0]})", len(missing))
    return list(out.values())


def _checked(paths, workers, window=1024):
    """``_check_image`` of each path, in order, decoded by ``workers``
    threads; at most ``window`` images are in flight (a million futures at
    once would not fit in memory)."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(paths), window):
            yield from pool.map(_check_image, paths[start:start + window])
