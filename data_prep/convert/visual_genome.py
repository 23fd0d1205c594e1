"""Visual Genome region descriptions -> pairs manifest (one record per image,
its region phrases as captions).

Input::

    region_descriptions.json   [{"id": 1, "regions": [{"region_id": 1382, "image_id": 1,
                                  "phrase": "the clock is green in colour",
                                  "x": 421, "y": 57, "width": 82, "height": 139}, ...]}, ...]
    image_data.json            [{"image_id": 1, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                                  "width": 800, "height": 600, "coco_id": null, "flickr_id": null}, ...]

Versions and key spellings read. Region descriptions were published as v1.0
(``region_descriptions_v1.json``) and v1.2 (``region_descriptions.json``,
the latest); dataset v1.4 updated only objects and relationships and ships
the v1.2 region descriptions. image_data.json has one published version.
Sources: HuggingFace datasets ``datasets/visual_genome/visual_genome.py``
(huggingface/datasets; ``_LATEST_VERSIONS``, its per-version features and
key normalisers) and the Visual Genome python driver
(ranjaykrishna/visual_genome_python_driver ``visual_genome/utils.py``
``parse_image_data`` / ``parse_region_descriptions``, ``local.py``):

==========================  ===========================  ======================
what                        spellings read               type
==========================  ===========================  ======================
image id, image_data.json   ``image_id`` or ``id``       integer
image id, region file       ``id`` or ``image_id``       integer
region id                   ``region_id`` or ``id``      integer
region's image              ``image_id`` or ``image``    integer (= the image)
region box                  ``x y width height``         integer
image size                  ``width height``             integer
``coco_id`` ``flickr_id``                                integer or null
==========================  ===========================  ======================

region_descriptions.json is ~0.7 GB, so it is streamed with ``ijson``;
image_data.json (~10 MB) is loaded. A wrong type is reported naming the
image id, the region id and the key; a bad region is skipped, a bad image
entry of image_data.json drops that image.

Output records: ``{"id", "image": <prefix>VG_100K_2/1.jpg, "image_id": "1",
"captions": [phrase, ...]}`` plus ``coco_id`` / ``flickr_id`` when the image
is also in those datasets (so evaluation images can be excluded). The image
path is the last two components of the image's ``url`` (the directory layout
of the image zips ``images.zip`` -> ``VG_100K``, ``images2.zip`` ->
``VG_100K_2``). Phrases are whitespace-collapsed and de-duplicated per image
(counted). An image with an empty ``regions`` list is valid (0 regions): it
yields no record and is counted as a note, never an error.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

from .common import (
    ConvertError,
    ImageCheck,
    Report,
    add_common_args,
    add_image_args,
    add_unique_text,
    is_int,
    json_path,
    load_json,
    open_outputs,
    tag,
    type_name,
)

BOX_KEYS = ("x", "y", "width", "height")


def add_args(p):
    p.add_argument("--src", required=True, help="region_descriptions.json (v1.0 or v1.2)")
    p.add_argument("--image-data", required=True, help="image_data.json")
    add_common_args(p)
    add_image_args(p)
    p.add_argument("--min-captions", type=int, default=1,
                   help="write no record for images with fewer usable phrases (counted as a note)")


def _either(d, keys):
    """``(key, value)`` of the first of ``keys`` present in ``d``, else ``(keys[0], None)``."""
    for k in keys:
        if k in d:
            return k, d[k]
    return keys[0], None


def _image_paths(path, report):
    """``{image id: (relative path, extra fields)}`` of image_data.json, and
    the set of image ids whose entry was bad (reported)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise ConvertError(f"{path}: top level: expected a list of images")
    out, bad = {}, set()
    for i, img in enumerate(data):
        where = f"{path}: {json_path(i)}"
        if not isinstance(img, dict):
            report.bad(where, f"expected an object, got {type_name(img)}")
            continue
        key, iid = _either(img, ("image_id", "id"))
        if not is_int(iid):
            report.bad(f"{where}.{key}", f"the image id must be an integer, got {type_name(iid)}", "missing field")
            continue
        where = tag(where, **{key: iid})
        problem = next(((k, f"must be an integer, got {type_name(img.get(k))}") for k in ("width", "height")
                        if not is_int(img.get(k))), None)
        problem = problem or next(((k, f"must be an integer or null, got {type_name(img[k])}")
                                   for k in ("coco_id", "flickr_id") if img.get(k) is not None and not is_int(img[k])),
                                  None)
        url = img.get("url")
        parts = urlparse(url).path.rstrip("/").split("/") if isinstance(url, str) else []
        if not problem and (len(parts) < 2 or not parts[-1]):
            problem = ("url", f"cannot take an image path from {type_name(url)}")
        if problem:
            report.bad(where, f"{problem[0]!r} {problem[1]}")
            bad.add(iid)
            continue
        extra = {k: str(img[k]) for k in ("coco_id", "flickr_id") if img.get(k) is not None}
        out[iid] = ("/".join(parts[-2:]), extra)
    return out, bad


def _phrases(regions, iid, where, ids, report):
    caps = []
    for j, r in enumerate(regions):
        path = f"{where}.{json_path('regions', j)}"
        if not isinstance(r, dict):
            report.bad(tag(path, **ids), f"expected an object, got {type_name(r)}", "bad region")
            continue
        rkey, rid = _either(r, ("region_id", "id"))
        rlabel = "region id" if rkey == "id" else rkey  # v1.0 calls both the image and the region "id"
        rwhere = tag(path, **ids, **{rlabel: rid if is_int(rid) else None})
        if not is_int(rid):
            report.bad(rwhere, f"{rkey!r} (the region id) must be an integer, got {type_name(rid)}", "bad region")
            continue
        ikey, rimage = _either(r, ("image_id", "image"))
        if rimage is not None and rimage != iid:
            report.bad(rwhere, f"{ikey!r} is {type_name(rimage)} but the region is listed under image {iid}",
                       "bad region")
            continue
        wrong = next((k for k in BOX_KEYS if not is_int(r.get(k))), None)
        if wrong:
            report.bad(rwhere, f"{wrong!r} must be an integer, got {type_name(r.get(wrong))}", "bad region")
            continue
        add_unique_text(caps, r.get("phrase"), report, tag(f"{path}.phrase", **ids, **{rlabel: rid}), "phrase")
    return caps


def convert(args, report: Report):
    import ijson
    paths, bad_images = _image_paths(args.image_data, report)
    images = ImageCheck(args.check_images, args.image_prefix)
    need = max(1, args.min_captions)
    if not os.path.isfile(args.src):
        raise ConvertError(f"{args.src}: no such file")
    with open_outputs({"out": (args.out, "pairs")}, report) as out, open(args.src, "rb") as f:
        i = -1
        try:
            for i, item in enumerate(ijson.items(f, "item", use_float=True)):
                where = f"{args.src}: {json_path(i)}"
                if not isinstance(item, dict):
                    report.bad(where, f"expected an object, got {type_name(item)}")
                    continue
                key, iid = _either(item, ("id", "image_id"))
                if not is_int(iid):
                    report.bad(f"{where}.{key}", f"the image id must be an integer, got {type_name(iid)}",
                               "missing field")
                    continue
                ids = {key: iid}
                if iid in bad_images:  # its image_data.json entry was reported
                    report.note("images dropped for a bad image_data.json entry")
                    continue
                if iid not in paths:
                    report.bad(tag(where, **ids), f"image {iid} is not in {args.image_data}", "unknown image")
                    continue
                regions = item.get("regions")
                if not isinstance(regions, list):
                    report.bad(tag(f"{where}.regions", **ids), f"must be a list, got {type_name(regions)}",
                               "missing field")
                    continue
                if not regions:
                    report.note("images with 0 regions (valid, no record)")
                    continue
                caps = _phrases(regions, iid, where, ids, report)
                where = tag(where, **ids)
                if len(caps) < need:  # bad phrases were reported above
                    report.note(f"images with fewer than {need} usable phrases (no record)")
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
