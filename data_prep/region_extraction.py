"""The extraction loop: images -> detector -> region store, resumable.

Resuming is a property of the store: every record is committed atomically
(LMDB) and keyed by image id, so a re-run skips the ids already there and a
killed run loses at most the records of its last uncommitted batch (never
half of one). A store remembers the settings that produced it; a re-run with
other settings (weights, detector config, box mode, top-k) is refused rather
than mixing two kinds of features in one store.
"""
import concurrent.futures
import hashlib
import os
import signal
import sys
import time

import numpy as np

from vlcore.data.images import ImageError
from vlcore.formats.region_store import RegionFeatures, RegionStoreWriter, StoreError, top_k

from .image_sources import SourceError

KILL_ENV = "VLCORE_TEST_KILL_AFTER_IMAGES"  # tests: SIGKILL this process after N stored images


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# settings that change speed or memory but not a record's content
_NOT_CONTENT = ("roi_chunk",)


def settings_fingerprint(cfg, weights_path, given_boxes, topk, attr_topk, full_probs):
    """What decides a record's content; stored in the store's meta."""
    detector = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_CONTENT}
    return {"detector": detector, "given_boxes": bool(given_boxes), "topk": int(topk),
            "attr_topk": int(attr_topk), "full_probs": bool(full_probs),
            "weights": None if weights_path is None else {"file": os.path.basename(weights_path),
                                                          "sha256_16": file_digest(weights_path)}}


def check_settings(writer, settings):
    old = writer.meta.get("settings")
    if old is None:
        writer.meta["settings"] = settings
        writer._put_meta()
        return
    if _jsonable(old) != _jsonable(settings):
        diff = sorted(k for k in set(old) | set(settings) if _jsonable(old.get(k)) != _jsonable(settings.get(k)))
        raise StoreError(f"{writer.path}: written with other settings ({', '.join(diff)} differ); "
                         "extract into a new store")


def _jsonable(x):
    import json
    return json.loads(json.dumps(x))


def to_record(image_id, prepared, regions, topk, attr_topk, full_probs):
    ids, scores = top_k(regions.cls_probs[:, :-1], topk)
    if regions.attr_probs is not None:
        aids, ascores = top_k(regions.attr_probs, attr_topk)
    else:
        aids, ascores = np.zeros((len(ids), 0), np.int32), np.zeros((len(ids), 0), np.float32)
    return RegionFeatures(image_id, prepared.orig_w, prepared.orig_h, regions.boxes, regions.features, ids, scores,
                          aids, ascores, regions.cls_probs if full_probs else None)


def _load(item, cfg):
    from .detector.preprocess import prepare, read_bgr
    try:
        return prepare(read_bgr(item.path), cfg), None
    except ImageError as e:
        return None, e


def run(items, store_path, model, *, weights_path=None, boxes=None, batch_size=1, strict=False, topk=10,
        attr_topk=10, full_probs=False, feature_dtype="float16", commit_every=16, also_done=None,
        progress=None, log=None):
    """Extract ``items`` (:class:`~.image_sources.ImageItem`) into ``store_path``.
    ``model`` is a detector or a zero-argument callable building one (called
    only if there is work). ``boxes``: id -> original-image boxes (given-box
    mode). ``also_done``: ids to skip besides those already in the store
    (e.g. the merged store of earlier sharded runs). Returns counts."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    stats = {"listed": len(items), "done_before": 0, "extracted": 0, "unreadable": 0, "no_boxes": 0,
             "seconds": 0.0}
    cfg = model.cfg if hasattr(model, "cfg") else None
    with RegionStoreWriter(store_path, commit_every=commit_every, feature_dtype=feature_dtype,
                           meta={"num_classes": None}) as out:
        todo = [it for it in items if it.image_id not in out and not (also_done and it.image_id in also_done)]
        stats["done_before"] = len(items) - len(todo)
        if boxes is not None:
            missing = [it for it in todo if it.image_id not in boxes]
            if missing and strict:
                raise SourceError(f"no given boxes for image id {missing[0].image_id!r} "
                                  f"({len(missing)} images without)")
            for it in missing[:20]:
                log(f"skipped (no given boxes): {it.image_id} {it.path}")
            stats["no_boxes"] = len(missing)
            todo = [it for it in todo if it.image_id in boxes]
        log(f"{store_path}: {len(items)} images listed, {stats['done_before']} already done, {len(todo)} to extract")
        if not todo:
            return stats
        if not hasattr(model, "extract"):
            model = model()
        cfg = model.cfg
        check_settings(out, settings_fingerprint(cfg, weights_path, boxes is not None, topk, attr_topk, full_probs))
        if out.meta.get("num_classes") is None:
            out.meta.update(num_classes=cfg.num_classes, num_attrs=cfg.num_attrs)
            out._put_meta()
        stats["seconds"] = _loop(todo, out, model, cfg, boxes, batch_size, strict, topk, attr_topk, full_probs,
                                 kill_after, stats, progress, log)
    rate = stats["extracted"] / stats["seconds"] if stats["seconds"] else 0.0
    log(f"{store_path}: extracted {stats['extracted']} images in {stats['seconds']:.1f} s ({rate:.2f} images/s), "
        f"{stats['unreadable']} unreadable, {stats['no_boxes']} without given boxes")
    return stats


def _loop(todo, out, model, cfg, boxes, batch_size, strict, topk, attr_topk, full_probs, kill_after, stats,
          progress, log):
    from tqdm import tqdm
    bar = tqdm(total=len(todo), unit="img", disable=(None if progress is None else not progress),
               dynamic_ncols=True, file=sys.stderr)
    t0 = time.perf_counter()
    window = max(2, 2 * batch_size)  # images decoded ahead of the network, in a thread (cv2 drops the GIL)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        futures = [pool.submit(_load, it, cfg) for it in todo[:window]]
        next_i, batch = len(futures), []
        for pos, item in enumerate(todo):
            prepared, err = futures[pos].result()
            futures[pos] = None
            if next_i < len(todo):
                futures.append(pool.submit(_load, todo[next_i], cfg))
                next_i += 1
            if err is not None:
                if strict:
                    raise err
                stats["unreadable"] += 1
                log(f"skipped unreadable image: {err}")
                bar.update(1)
            else:
                batch.append((item, prepared))
            if batch and (len(batch) == batch_size or pos == len(todo) - 1):
                given = [boxes[it.image_id] for it, _ in batch] if boxes is not None else None
                regions = model.extract([p for _, p in batch], given)
                for (it, p), reg in zip(batch, regions):
                    out.put(to_record(it.image_id, p, reg, topk, attr_topk, full_probs))
                    stats["extracted"] += 1
                    if kill_after and stats["extracted"] >= kill_after:
                        os.kill(os.getpid(), signal.SIGKILL)
                bar.update(len(batch))
                batch = []
    bar.close()
    return time.perf_counter() - t0
