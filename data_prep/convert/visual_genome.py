"""Visual Genome region descriptions -> pairs manifest (one record per image,
its region phrases as captions).

Input (VG v1.2 release)::

    region_descriptions.json   [{"id": 1, "regions": [{"region_id": 1382, "image_id": 1,
                                  "phrase": "the clock is green in colour",
                                  "x": 421, "y": 57, "width": 82, "height": 139}, ...]}, ...]
    image_data.json            [{"image_id": 1, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                                  "width": 800, "height": 600, "coco_id": null, "flickr_id": null}, ...]

(v1.0 calls the image id ``id`` in both files; both spellings are read.)
region_descriptions.json is ~0.7 GB, so it is streamed with ``ijson``;
image_data.json (~10 MB) is loaded.

Output records: ``{"id", "image": <prefix>VG_100K_2/1.jpg, "image_id": "1",
"captions": [phrase, ...]}`` plus ``coco_id`` / ``flickr_id`` when the image
is also in those datasets (so evaluation images can be excluded). The image
path is the last two components of the image's ``url`` (the directory layout
of the image zips). Phrases are whitespace-collapsed and de-duplicated per
image (counted).
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

from .common import (ConvertError, ImageCheck, Report, add_common_args, add_image_args, add_unique_text, json_path,
                     load_json, open_outputs)


def add_args(p):
    p.add_argument("--src", required=True, help="region_descriptions.json")
    p.add_argument("--image-data", required=True, help="image_data.json")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--min-captions", type=int, default=1, help="skip images with fewer usable phrases")


def _image_paths(path, report):
    data = load_json(path)
    if not isinstance(data, list):
        raise ConvertError(f"{path}: top level: expected a list of images")
    out = {}
    for i, img in enumerate(data):
        where = f"{path}: {json_path(i)}"
        iid = img.get("image_id", img.get("id")) if isinstance(img, dict) else None
        if not isinstance(iid, int):
            report.bad(f"{where}.image_id", "missing or not an integer")
            continue
        url = img.get("url")
        parts = urlparse(url).path.rstrip("/").split("/") if isinstance(url, str) else []
        if len(parts) < 2 or not parts[-1]:
            report.bad(f"{where}.url", f"cannot take an image path from {url!r}")
            continue
        extra = {k: str(img[k]) for k in ("coco_id", "flickr_id") if img.get(k) is not None}
        out[iid] = ("/".join(parts[-2:]), extra)
    return out


def convert(args, report: Report):
    import ijson
    paths = _image_paths(args.image_data, report)
    images = ImageCheck(args.check_images, args.image_prefix)
    if not os.path.isfile(args.src):
        raise ConvertError(f"{args.src}: no such file")
    with open_outputs({"out": (args.out, "pairs")}, report) as out, open(args.src, "rb") as f:
        i = -1
        try:
            for i, item in enumerate(ijson.items(f, "item", use_float=True)):
                where = f"{args.src}: {json_path(i)}"
                if not isinstance(item, dict):
                    report.bad(where, "not an object")
                    continue
                iid = item.get("id", item.get("image_id"))
                if not isinstance(iid, int):
                    report.bad(f"{where}.id", "missing or not an integer")
                    continue
                if iid not in paths:
                    report.bad(where, f"image {iid} is not in {args.image_data}", "unknown image")
                    continue
                regions = item.get("regions")
                if not isinstance(regions, list):
                    report.bad(f"{where}.regions", "missing or not a list")
                    continue
                caps = []
                for j, r in enumerate(regions):
                    add_unique_text(caps, r.get("phrase") if isinstance(r, dict) else None, report,
                                    f"{where}.{json_path('regions', j)}.phrase", "phrase")
                if len(caps) < max(1, args.min_captions):
                    report.bad(where, f"{len(caps)} usable phrases (need {max(1, args.min_captions)})",
                               "too few phrases")
                    continue
                rel, extra = paths[iid]
                if not images.exists(rel):
                    report.bad(where, f"image {rel!r} not under {args.check_images}", "missing image")
                    continue
                out["out"].write({"id": f"{args.id_prefix}{iid}", "image": images.path(rel), "image_id": str(iid),
                                  "captions": caps, **extra}, where)
        except ijson.JSONError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConvertError(f"{args.src}: malformed JSON in item {json_path(i + 1)} ({first})") from None
        if i < 0:
            raise ConvertError(f"{args.src}: top level: expected a non-empty list of images")
    return list(out.values())
