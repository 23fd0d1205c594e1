"""Web caption corpora (Conceptual Captions, CC12M, SBU) -> pairs manifest,
one caption per image.

Inputs and their sources:

- ``cc``: Conceptual Captions (CC3M) ``Train_GCC-training.tsv`` and
  ``Validation_GCC-1.1.0-Validation.tsv``: no header, two columns
  ``caption<TAB>url`` (google-research-datasets/conceptual-captions
  README, "Data Format": column 1 caption, tokenized and lowercased; column 2
  image URL). CC12M ``cc12m.tsv`` has the other order, ``url<TAB>caption``,
  no header (google-research-datasets/conceptual-12m README, "Format
  (.tsv)"): convert it with ``--columns url,caption``; a file whose first
  row has the URL in the caption column is refused with that hint. Other
  caption TSVs: ``--columns`` names the columns in order (``caption``,
  ``url`` or ``file``, anything else ignored), ``--header`` skips a first
  line.
- ``sbu``: the SBU Captioned Photo Dataset (Ordonez et al. 2011), in either
  of its published forms:

  - the original release, two line-parallel files
    ``SBU_captioned_photo_dataset_urls.txt`` (``--src``) and
    ``SBU_captioned_photo_dataset_captions.txt`` (``--captions``), as read
    by torchvision's ``SBU`` dataset and its tests (pytorch/vision
    ``torchvision/datasets/sbu.py``, ``test/test_datasets.py``);
  - ``sbu-captions-all.json`` (``--src``, from ``sbu-captions-all.tar.gz``):
    one object of parallel lists ``{"image_urls": [...], "captions": [...],
    "user_ids": [...]}`` (HuggingFace datasets
    ``datasets/sbu_captions/sbu_captions.py``; img2dataset
    ``dataset_examples/SBUcaptions.md`` reads it with ``--url_col
    image_urls --caption_col captions``);
  - or a TSV like ``cc`` when neither applies.

  Files (or lists) of different lengths are refused naming both and both
  counts.

The images are whatever a downloader saved: with a ``file`` column the
path is that column; with URLs it is ``--image-name`` formatted with
``index`` (0-based row), ``shard`` (``index // 10000``), ``basename`` and
``stem`` (of the URL path) and ``url_sha1``. The default,
``{shard:05d}/{index:09d}.jpg``, is img2dataset's ``files`` layout (10,000
per shard, key = shard id and index, rom1504/img2dataset README) for an
input processed in order. Most web images are gone: use ``--check-images
ROOT`` to keep only the rows whose image was downloaded (the others are
counted). Output records: ``{"id": "<prefix><index>", "image", "captions":
[caption], "url"?}``; messages name ``file:line`` (the files have no other
id) or, for the JSON, the list index.
"""
from __future__ import annotations

import hashlib
import os
from urllib.parse import urlparse

from .common import (
    ConvertError,
    ImageCheck,
    Report,
    add_common_args,
    add_image_args,
    clean_text,
    load_json,
    open_outputs,
    read_lines,
    read_parallel,
    tag,
    type_name,
)

DEFAULT_NAME = "{shard:05d}/{index:09d}.jpg"
SBU_JSON_KEYS = ("image_urls", "captions")


def add_args(p, sbu=False):
    p.add_argument("--src", required=True,
                   help="SBU urls file, sbu-captions-all.json or a caption TSV" if sbu else "caption TSV")
    if sbu:
        p.add_argument("--captions", help="SBU_captioned_photo_dataset_captions.txt (line-parallel to --src)")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--columns", default="caption,url",
                   help="TSV columns in order (default caption,url; CC12M's cc12m.tsv: url,caption)")
    p.add_argument("--header", action="store_true", help="the TSV has a header line")
    p.add_argument("--image-name", default=DEFAULT_NAME,
                   help=f"image path of a URL row (fields index, shard, basename, stem, url_sha1; "
                        f"default {DEFAULT_NAME!r})")


def _is_url(text):
    return isinstance(text, str) and urlparse(text.strip()).scheme in ("http", "https", "ftp")


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
    first = True
    for lineno, text in read_lines(args.src, report):
        if args.header and lineno == 1:
            continue
        if not text.strip():
            report.note("blank lines")
            continue
        index += 1
        fields = text.split("\t")
        if len(fields) != width:
            report.bad(f"{args.src}:{lineno}", f"{len(fields)} tab-separated fields, expected {width} ({args.columns})",
                       "wrong field count")
            continue
        row = dict(zip(cols, fields))
        if first and "url" in row and not _is_url(row["url"]) and _is_url(row["caption"]):
            raise ConvertError(f"{args.src}:{lineno}: the 'url' column holds no URL but the 'caption' column does: "
                               f"the columns are in another order (CC12M's cc12m.tsv is url<TAB>caption: "
                               f"use --columns url,caption)")
        first = False
        yield f"{args.src}:{lineno}", index, row["caption"], row.get("url"), row.get("file")


def _parallel_rows(args, report):
    for index, (lineno, url, caption) in enumerate(read_parallel(args.src, args.captions, report)):
        yield f"{args.src}:{lineno}", index, caption, url.strip(), None


def _sbu_json_rows(args):
    data = load_json(args.src)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in SBU_JSON_KEYS):
        raise ConvertError(f"{args.src}: top level: expected an object with lists {list(SBU_JSON_KEYS)} "
                           "(sbu-captions-all.json)")
    urls, caps = (data[k] for k in SBU_JSON_KEYS)
    if len(urls) != len(caps):
        raise ConvertError(f"{args.src}: 'image_urls' has {len(urls)} items but 'captions' has {len(caps)}: "
                           "the lists must be parallel")
    for index, (url, caption) in enumerate(zip(urls, caps)):
        where = tag(f"{args.src}: captions[{index}]", url=url if isinstance(url, str) else None)
        yield where, index, caption, url, None


def convert(args, report: Report):
    if getattr(args, "captions", None):
        rows = _parallel_rows(args, report)
    elif getattr(args, "format", None) == "sbu" and args.src.endswith(".json"):
        rows = _sbu_json_rows(args)
    else:
        rows = _tsv_rows(args, report)
    images = ImageCheck(args.check_images, args.image_prefix)
    with open_outputs({"out": (args.out, "pairs")}, report) as out:
        for where, index, caption, url, file in rows:
            text = clean_text(caption)
            if text is None:
                report.bad(where, f"the caption must be a non-empty string, got {type_name(caption)}", "bad caption")
                continue
            if file is not None:
                rel = file.strip()
            elif _is_url(url):
                url = url.strip()
                rel = _image_name(args.image_name, index, url)
            else:
                report.bad(where, f"not a URL: {type_name(url)}", "bad url")
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
