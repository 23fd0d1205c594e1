"""Web caption corpora (Conceptual Captions, SBU) -> pairs manifest, one
caption per image.

Inputs:

- ``cc``: Conceptual Captions TSV (``Train_GCC-training.tsv``,
  ``Validation_GCC-1.1.0-Validation.tsv``): no header, ``caption<TAB>url``.
  Other caption TSVs: ``--columns`` names the columns in order (``caption``,
  ``url`` or ``file``, anything else ignored), ``--header`` skips a first line.
- ``sbu``: the SBU Captioned Photo release, two line-parallel files
  ``SBU_captioned_photo_dataset_urls.txt`` (``--src``) and
  ``SBU_captioned_photo_dataset_captions.txt`` (``--captions``); or a TSV
  like ``cc`` when ``--captions`` is not given.

The images are whatever a downloader saved: with a ``file`` column the
path is that column; with URLs it is ``--image-name`` formatted with
``index`` (0-based row), ``shard`` (``index // 10000``), ``basename`` and
``stem`` (of the URL path) and ``url_sha1``. The default,
``{shard:05d}/{index:09d}.jpg``, is img2dataset's layout (10,000 per shard)
for an input processed in order. Most web images are gone: use
``--check-images ROOT`` to keep only the rows whose image was downloaded.
Output records: ``{"id": "<prefix><index>", "image", "captions": [caption],
"url"?}``.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from urllib.parse import urlparse

from .common import (ConvertError, ImageCheck, Report, add_common_args, add_image_args, clean_text, open_outputs,
                     read_lines)

DEFAULT_NAME = "{shard:05d}/{index:09d}.jpg"


def add_args(p, sbu=False):
    p.add_argument("--src", required=True, help="SBU urls file or a caption TSV" if sbu else "caption TSV")
    if sbu:
        p.add_argument("--captions", help="SBU_captioned_photo_dataset_captions.txt (line-parallel to --src)")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--columns", default="caption,url", help="TSV columns in order (default caption,url)")
    p.add_argument("--header", action="store_true", help="the TSV has a header line")
    p.add_argument("--image-name", default=DEFAULT_NAME,
                   help=f"image path of a URL row (fields index, shard, basename, stem, url_sha1; "
                        f"default {DEFAULT_NAME!r})")


def _image_name(pattern, index, url):
    base = os.path.basename(urlparse(url).path)
    return pattern.format(index=index, shard=index // 10000, basename=base, stem=os.path.splitext(base)[0],
                          url_sha1=hashlib.sha1(url.encode("utf-8")).hexdigest())


def _tsv_rows(args, report):
    cols = [c.strip() for c in args.columns.split(",")]
    if "caption" not in cols or ("url" in cols) == ("file" in cols):
        raise ConvertError(f"--columns {args.columns!r}: need 'caption' and exactly one of 'url' / 'file'")
    width = len(cols)
    index = -1
    for lineno, text in read_lines(args.src, report):
        if args.header and lineno == 1 or not text.strip():
            continue
        index += 1
        fields = text.split("\t")
        if len(fields) != width:
            report.bad(f"{args.src}:{lineno}", f"{len(fields)} tab-separated fields, expected {width} ({args.columns})",
                       "wrong field count")
            continue
        row = dict(zip(cols, fields))
        yield f"{args.src}:{lineno}", index, row["caption"], row.get("url"), row.get("file")


def _parallel_rows(args, report):
    urls, caps = read_lines(args.src, report), read_lines(args.captions, report)
    for index, (u, c) in enumerate(itertools.zip_longest(urls, caps)):
        if u is None or c is None:
            raise ConvertError(f"{args.src} and {args.captions} have different numbers of lines "
                               f"(first unmatched: {args.src if u else args.captions}:{(u or c)[0]})")
        (uline, url), (cline, caption) = u, c
        if uline != cline:  # a line dropped as non-UTF-8 in one file: the rest would be misaligned
            raise ConvertError(f"{args.src}:{uline} and {args.captions}:{cline}: the files are no longer "
                               "line-parallel (a bad line in one of them)")
        yield f"{args.src}:{uline}", index, caption, url.strip(), None


def convert(args, report: Report):
    rows = _parallel_rows(args, report) if getattr(args, "captions", None) else _tsv_rows(args, report)
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs({"out": (args.out, "pairs")}, report) as out:
        for where, index, caption, url, file in rows:
            text = clean_text(caption)
            if text is None:
                report.bad(where, "empty caption", "bad caption")
                continue
            if file is not None:
                rel = file.strip()
            elif url and urlparse(url).scheme in ("http", "https", "ftp"):
                rel = _image_name(args.image_name, index, url)
            else:
                report.bad(where, f"not a URL: {url!r}", "bad url")
                continue
            if not rel:
                report.bad(where, "empty file name", "bad file")
                continue
            if not images.exists(rel):
                report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                continue
            rec = {"id": f"{args.id_prefix}{index}", "image": images.path(rel), "captions": [text]}
            if url:
                rec["url"] = url
            out["out"].write(rec, where)
    return list(out.values())
